//! `/api/v1/contacts`: list, create, change, and push now. A contact is pushed as a Contact or a
//! Lead (`push_as`, default from `[sync] push_as`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written, record_resource};
use crate::domain::Contact;
use crate::domain::view::ContactView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::contacts::{self, ContactChanges, NewContact};

record_resource! {
    ContactsDoc: Contact as ContactView, kind Contact, query RecordQuery, at "/contacts",
    what "contact" "Local contact id",
    docs "A page of contacts, oldest first." "One contact."
        "Pushes the contact's current state now.",
    create = contacts::create [push_as] (NewContact),
    update = contacts::update [push_as] (ContactChanges),
}

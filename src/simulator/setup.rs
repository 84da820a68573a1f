//! Setting the org up as an admin would in Setup: users and their tokens, custom objects and
//! fields, field-level security, opportunity stages, duplicate and validation rules, list views.
//! The control surface and the [`Simulator`](super::Simulator) handle both call these.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::custom::{self, CustomObjectSpec, FieldSpec};
use super::error::SimError;
use super::listviews::{ListView, ListViewSpec, default_columns, standard_views};
use super::rules::{DuplicateRuleSpec, ValidationRuleSpec};
use super::schema::{FieldAccess, ObjectDef};
use super::soql::parse_condition;
use super::stages::{StageSpec, add_stage};
use super::state::{Shared, State};
use super::users::{SimUser, UserSpec};
use crate::domain::SalesforceId;

impl Shared {
    /// Every user with their password.
    pub(crate) fn users(&self) -> Vec<SimUser> {
        self.lock().users.all().to_vec()
    }

    /// Adds a sales user who can sign in.
    pub(crate) fn add_user(&self, spec: &UserSpec) -> Result<SimUser, SimError> {
        self.lock().add_user(spec, false)
    }

    /// Revokes every token and login session of the user `key` (username or id).
    pub(crate) fn revoke_user(&self, key: &str) -> Result<(), SimError> {
        let mut st = self.lock();
        let id = st
            .users
            .by_name_or_id(key)
            .map(|u| u.id.clone())
            .ok_or_else(SimError::not_found)?;
        st.auth.revoke_user(&id);
        Ok(())
    }

    /// Adds a custom object.
    pub(crate) fn add_custom_object(&self, spec: &CustomObjectSpec) -> Result<(), SimError> {
        let mut st = self.lock();
        let def = custom::object_def(spec, st.org.schema.next_custom_prefix())?;
        st.org.schema.add_object(def)
    }

    /// Adds a custom field to an object.
    pub(crate) fn add_field(&self, object: &str, spec: &FieldSpec) -> Result<(), SimError> {
        let def = custom::field_def(spec)?;
        self.lock().org.schema.add_field(object, def)
    }

    /// Removes a custom field from an object (its values stay on the records, unseen).
    pub(crate) fn remove_field(&self, object: &str, field: &str) -> Result<(), SimError> {
        self.lock().org.schema.remove_field(object, field)
    }

    /// Sets what the user `key` (the integration user when `None`) may do with a field.
    pub(crate) fn set_field_access(
        &self,
        key: Option<&str>,
        object: &str,
        field: &str,
        access: FieldAccess,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let user = match key {
            Some(k) => st.users.by_name_or_id(k),
            None => st.users.integration(),
        }
        .map(|u| u.id.clone())
        .ok_or_else(SimError::not_found)?;
        st.org.schema.set_access(&user, object, field, access)
    }

    /// Adds an opportunity stage.
    pub(crate) fn add_stage(&self, spec: &StageSpec) -> Result<SalesforceId, SimError> {
        let mut st = self.lock();
        let admin = admin(&st)?;
        add_stage(&mut st.org, spec, &admin)
    }

    /// Switches the duplicate rule of an object on or off.
    pub(crate) fn set_duplicate_rule(
        &self,
        object: &str,
        spec: Option<DuplicateRuleSpec>,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        st.org.rules.set_duplicate(&obj, spec)
    }

    /// Switches the validation rule of an object on or off.
    pub(crate) fn set_validation_rule(
        &self,
        object: &str,
        spec: Option<ValidationRuleSpec>,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        st.org.rules.set_validation(&obj, spec)
    }

    /// Replaces every Outbound Message rule: object → the fields its action sends.
    pub(crate) fn set_outbound_rules(
        &self,
        rules: BTreeMap<String, Vec<String>>,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let mut checked = BTreeMap::new();
        for (object, fields) in rules {
            let obj = st.org.object(&object)?;
            checked.insert(obj.name.clone(), canonical_fields(&obj, &fields)?);
        }
        st.outbound.rules = checked;
        Ok(())
    }

    /// Sets the fields the Outbound Message action of `object` sends; none removes the rule.
    pub(crate) fn set_outbound_rule(
        &self,
        object: &str,
        fields: &[String],
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        if fields.is_empty() {
            st.outbound.rules.remove(&obj.name);
        } else {
            let fields = canonical_fields(&obj, fields)?;
            st.outbound.rules.insert(obj.name.clone(), fields);
        }
        Ok(())
    }

    /// The list views of an object (its standard ones made on first use).
    pub(crate) fn list_views(
        &self,
        object: &str,
    ) -> Result<(Arc<ObjectDef>, Vec<ListView>), SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        ensure_standard_views(&mut st, &obj)?;
        let views = st
            .list_views
            .iter()
            .filter(|v| v.object == obj.name)
            .cloned()
            .collect();
        Ok((obj, views))
    }

    /// Adds a list view to an object.
    pub(crate) fn add_list_view(
        &self,
        object: &str,
        spec: &ListViewSpec,
    ) -> Result<SalesforceId, SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        ensure_standard_views(&mut st, &obj)?;
        let view = new_view(&mut st, &obj, spec)?;
        let id = view.id.clone();
        st.list_views.push(view);
        Ok(id)
    }
}

/// The object's spelling of each field; `INVALID_FIELD` for one it lacks.
fn canonical_fields(obj: &ObjectDef, fields: &[String]) -> Result<Vec<String>, SimError> {
    fields
        .iter()
        .map(|f| {
            obj.field(f)
                .map(|d| d.name.clone())
                .ok_or_else(|| SimError::invalid_field(&obj.name, f))
        })
        .collect()
}

fn admin(st: &State) -> Result<SalesforceId, SimError> {
    st.users
        .integration()
        .map(|u| u.id.clone())
        .ok_or_else(SimError::not_found)
}

fn ensure_standard_views(st: &mut State, obj: &Arc<ObjectDef>) -> Result<(), SimError> {
    if st.list_views.iter().any(|v| v.object == obj.name) {
        return Ok(());
    }
    for spec in standard_views(obj) {
        let view = new_view(st, obj, &spec)?;
        st.list_views.push(view);
    }
    Ok(())
}

fn new_view(
    st: &mut State,
    obj: &Arc<ObjectDef>,
    spec: &ListViewSpec,
) -> Result<ListView, SimError> {
    if let Some(filter) = &spec.filter {
        parse_condition(filter, obj)?;
    }
    let mine = match spec
        .scope
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("everything") => false,
        Some("mine") => true,
        Some(other) => {
            return Err(SimError::invalid_operation(format!(
                "unsupported scope {other}"
            )));
        }
    };
    let columns = if spec.columns.is_empty() {
        default_columns(obj)
    } else {
        spec.columns
            .iter()
            .map(|c| {
                obj.field(c)
                    .map(|f| f.name.clone())
                    .ok_or_else(|| SimError::invalid_field(&obj.name, c))
            })
            .collect::<Result<_, _>>()?
    };
    let developer_name = spec.developer_name.clone().unwrap_or_else(|| {
        spec.label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    });
    Ok(ListView {
        id: st.org.mint("00B"),
        object: obj.name.clone(),
        label: spec.label.clone(),
        developer_name,
        filter: spec.filter.clone(),
        mine,
        columns,
    })
}

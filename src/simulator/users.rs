//! The org's users: the integration user sfsync signs in as and the sales reps who change records
//! by hand. Each can sign in on the login page with a known password; each is also a `User`
//! record, so SOQL sees them.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::SimError;
use super::org::Org;
use crate::domain::SalesforceId;

/// A user of the simulated org and their password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    /// The user id (`005…`).
    pub id: SalesforceId,
    /// The login name (an email address in form).
    pub username: String,
    /// The password that signs them in on the login page.
    pub password: String,
    /// Their full name.
    pub name: String,
    /// Their email address.
    pub email: String,
    /// The integration user sfsync connects as.
    pub integration: bool,
}

/// A user to add to the org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// The login name; it must be new in the org.
    pub username: String,
    /// The first name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// The last name.
    pub last_name: String,
    /// The email address (the username when absent).
    #[serde(default)]
    pub email: Option<String>,
    /// The password (generated when absent).
    #[serde(default)]
    pub password: Option<String>,
}

/// The org's users, in the order they were added.
#[derive(Debug, Clone, Default)]
pub(crate) struct Users {
    list: Vec<SimUser>,
}

impl Users {
    /// Adds a user with `password`, inserting their `User` record; the first user added records
    /// itself as its creator.
    pub(crate) fn add(
        &mut self,
        org: &mut Org,
        spec: &UserSpec,
        password: String,
        integration: bool,
    ) -> Result<SimUser, SimError> {
        if spec.username.trim().is_empty() || self.by_name_or_id(&spec.username).is_some() {
            let message = format!("duplicate or empty username {}", spec.username);
            return Err(SimError::invalid_operation(message));
        }
        let first = spec.first_name.clone().unwrap_or_default();
        let name = format!("{first} {}", spec.last_name).trim().to_string();
        let email = spec.email.clone().unwrap_or_else(|| spec.username.clone());
        let alias: String = first
            .chars()
            .take(1)
            .chain(spec.last_name.chars())
            .take(8)
            .collect();
        let record = json!({
            "Username": spec.username, "FirstName": spec.first_name, "LastName": spec.last_name,
            "Name": name, "Alias": alias.to_lowercase(), "Email": email, "IsActive": true,
            "UserType": "Standard",
        });
        let mut record = record.as_object().cloned().unwrap_or_default();
        record.retain(|_, v| !v.is_null());
        let obj = org.object("User")?;
        let creator = self.list.first().map(|u| u.id.clone());
        let placeholder = SalesforceId::mint("005", "00", 0);
        let id = org.insert_system(&obj, record, creator.as_ref().unwrap_or(&placeholder));
        if creator.is_none() {
            if let Some(r) = org.records.get_mut(&obj.name).and_then(|m| m.get_mut(&id)) {
                r.insert("CreatedById".into(), json!(id.as_str()));
                r.insert("LastModifiedById".into(), json!(id.as_str()));
            }
        }
        let user = SimUser {
            id,
            username: spec.username.clone(),
            password,
            name,
            email,
            integration,
        };
        self.list.push(user.clone());
        Ok(user)
    }

    /// Every user.
    pub(crate) fn all(&self) -> &[SimUser] {
        &self.list
    }

    /// The user with this id.
    pub(crate) fn by_id(&self, id: &SalesforceId) -> Option<&SimUser> {
        self.list.iter().find(|u| u.id == *id)
    }

    /// The user with this username (case-insensitive) or id (15 or 18 characters).
    pub(crate) fn by_name_or_id(&self, key: &str) -> Option<&SimUser> {
        let id = SalesforceId::parse(key).ok();
        self.list
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(key) || Some(&u.id) == id.as_ref())
    }

    /// The user these credentials sign in, if they match.
    pub(crate) fn check(&self, username: &str, password: &str) -> Option<&SimUser> {
        self.list
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username.trim()) && u.password == password)
    }

    /// The integration user.
    pub(crate) fn integration(&self) -> Option<&SimUser> {
        self.list.iter().find(|u| u.integration)
    }

    /// Whom a change "as a user" is attributed to when no user is named: the first sales rep.
    pub(crate) fn default_actor(&self) -> Option<&SimUser> {
        self.list
            .iter()
            .find(|u| !u.integration)
            .or_else(|| self.integration())
    }
}

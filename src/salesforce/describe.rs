//! What the org says about itself: the REST versions it serves (`GET /services/data`), an
//! object's describe (`GET /sobjects/{Type}/describe`: the object's permissions for the signed-in
//! user and the fields that user can see) and the signed-in user (`/services/oauth2/userinfo`).

use reqwest::Method;
use serde::Deserialize;

use super::Client;
use super::error::SalesforceError;

/// One REST API version the org serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiVersion {
    /// The version, e.g. `62.0`.
    pub version: String,
    /// The release label, e.g. `Winter '25`.
    #[serde(default)]
    pub label: String,
}

/// An object's describe, as far as sfsync reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDescribe {
    /// The object's API name.
    pub name: String,
    /// The signed-in user may create records.
    #[serde(default)]
    pub createable: bool,
    /// The signed-in user may update records.
    #[serde(default)]
    pub updateable: bool,
    /// The signed-in user may query records.
    #[serde(default)]
    pub queryable: bool,
    /// The fields the signed-in user can see.
    #[serde(default)]
    pub fields: Vec<FieldDescribe>,
}

impl ObjectDescribe {
    /// The field named `name` (API names compare case-insensitively, as Salesforce's do).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of a describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    /// The field's API name.
    pub name: String,
    /// Its type (`string`, `id`, `reference`, `datetime`, `picklist`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Its length, for text fields.
    #[serde(default)]
    pub length: u32,
    /// Marked External ID.
    #[serde(default)]
    pub external_id: bool,
    /// Marked Unique.
    #[serde(default)]
    pub unique: bool,
    /// The signed-in user may set it on create.
    #[serde(default)]
    pub createable: bool,
    /// The signed-in user may change it.
    #[serde(default)]
    pub updateable: bool,
}

/// The signed-in user.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    /// The user's id (`005…`).
    pub user_id: String,
    /// The org's id.
    pub organization_id: String,
    /// The login name.
    #[serde(default)]
    pub preferred_username: String,
}

impl Client {
    /// The REST versions the org serves, oldest first.
    #[tracing::instrument(skip_all, fields(org = %self.org_id()))]
    pub async fn api_versions(&self) -> Result<Vec<ApiVersion>, SalesforceError> {
        self.send(Method::GET, "/services/data", false, |r| r)
            .await?
            .success()?
            .json("versions")
    }

    /// `object`'s describe for the signed-in user.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), object))]
    pub async fn describe(&self, object: &str) -> Result<ObjectDescribe, SalesforceError> {
        if !object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SalesforceError::InvalidRequest(
                "an object name is letters, digits and underscores",
            ));
        }
        let path = self.data_path(&format!("/sobjects/{object}/describe"));
        self.send(Method::GET, &path, false, |r| r)
            .await?
            .success()?
            .json("describe")
    }

    /// The signed-in user, from `/services/oauth2/userinfo`.
    #[tracing::instrument(skip_all, fields(org = %self.org_id()))]
    pub async fn user_info(&self) -> Result<UserInfo, SalesforceError> {
        self.send(Method::GET, "/services/oauth2/userinfo", false, |r| r)
            .await?
            .success()?
            .json("userinfo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_describe_reads_the_object_and_field_permissions() {
        let body = r#"{"name":"Contact","createable":true,"updateable":false,"queryable":true,
            "fields":[{"name":"Sfsync_Id__c","type":"string","length":64,"externalId":true,
            "unique":true,"createable":true,"updateable":true,"nillable":true,"picklistValues":[]}]}"#;
        let d: ObjectDescribe = serde_json::from_str(body).expect("describe");
        assert!(d.createable && !d.updateable && d.queryable);
        let marker = d.field("sfsync_id__c").expect("case-insensitive");
        assert!(marker.external_id && marker.unique && marker.createable);
        assert_eq!(marker.length, 64);
    }
}

//! Key encoding for every tree, in one place. Every key starts with the 18-character org id, so
//! nothing crosses orgs; numbers are big-endian so keys sort in numeric order.

use crate::domain::{ObjectType, OrgId, SalesforceId};

/// What kind of sender a dedupe key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DedupeKind {
    /// An Outbound Message `Notification/Id`.
    OutboundNotification,
    /// A Standard Webhooks `webhook-id`.
    WebhookId,
}

impl DedupeKind {
    fn code(self) -> u8 {
        match self {
            Self::OutboundNotification => b'N',
            Self::WebhookId => b'W',
        }
    }
}

/// `org(18) ‖ kind(1) ‖ id`.
pub(crate) fn dedupe(org: &OrgId, kind: DedupeKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(19 + id.len());
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(kind.code());
    k.extend_from_slice(id.as_bytes());
    k
}

/// `org(18) ‖ object code(1) ‖ record id(18)`.
pub(crate) fn pending(org: &OrgId, object: ObjectType, id: &SalesforceId) -> Vec<u8> {
    let mut k = Vec::with_capacity(37);
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(object.code());
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// Decodes a pending key.
pub(crate) fn parse_pending(key: &[u8]) -> Option<(OrgId, ObjectType, SalesforceId)> {
    if key.len() != 37 {
        return None;
    }
    let org = OrgId::parse(std::str::from_utf8(&key[..18]).ok()?).ok()?;
    let object = ObjectType::from_code(key[18])?;
    let id = SalesforceId::parse(std::str::from_utf8(&key[19..]).ok()?).ok()?;
    Some((org, object, id))
}

/// `org(18) ‖ seq(8, BE)`: one inbox journal record; `seq` is unique across the store and grows.
pub(crate) fn journal(org: &OrgId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(26);
    k.extend_from_slice(org.as_str().as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `org(18) ‖ object code(1)`: a request to re-read every record of a type (wildcard or overflow
/// change events).
pub(crate) fn resync(org: &OrgId, object: ObjectType) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(object.code());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_key_round_trips() {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let id = SalesforceId::parse("0031I0000081tbP").expect("id");
        let k = pending(&org, ObjectType::Contact, &id);
        assert_eq!(parse_pending(&k), Some((org, ObjectType::Contact, id)));
    }
}

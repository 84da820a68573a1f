//! Key encoding for every tree, in one place. Every key of an org starts with the org: in the
//! trees every record write touches (records, provenance, records_index, outbox) with its
//! 3-byte [`OrgKey`], elsewhere with its 18-character id; so nothing crosses orgs. Numbers are
//! big-endian so keys sort in numeric order. Nothing outside `store` builds a key: callers use
//! the typed methods, which use these.
//!
//! | tree | key |
//! |---|---|
//! | records | `org key(3) ‖ kind ‖ id(8)` (the record's JSON, then its newest provenance entries, see [`super::provenance`]) |
//! | provenance | `org key(3) ‖ kind ‖ id(8) ‖ seq(8)`: a chunk of a record's older entries, from `seq` on, or one entry |
//! | records_index | `org key(3) ‖ index ‖ value` (the Salesforce id's entry: the linked record, its last pull's stamp, the inbox's applied mark and the stamp read back after sfsync's last write) |
//! | conflicts | `org ‖ id(8)` |
//! | outbox | `org key(3) ‖ 'E' ‖ entry id(8)`, `org key(3) ‖ 'R' ‖ kind ‖ local id(8)` |
//! | org_keys | `org` (its [`OrgKey`]) |
//! | meta | `org ‖ 'M' ‖ name` (`seen/{id}` and `stamp:{id}` of a record linked to no local record, `conflict/{id}`, `conflict/local/{kind}/{id}`, `sweep/{object}`); `0x01 ‖ mark(8)` the outbox entries of a call whose creates may be in flight (see [`outbox_sending`]) |
//! | oauth_tokens | `org` (the sealed refresh token), `org ‖ "/user"` (the connection's user); per application user `org ‖ "/u/" ‖ user ‖ 0 ‖ 't'` (their sealed refresh token) and `… ‖ 0 ‖ 's'` (their Salesforce user) |
//! | inbox trees | see [`dedupe`], [`pending`], [`journal`], [`resync`]; the applied tree: [`pending`] keys of records linked to no local record, and [`applied_high`] |
//! | changes | `'E' ‖ seq(8)` the entries of one transaction, from that number on; `'N'` the last number given, `'P'` the last compacted |
//! | deliveries | `'C' ‖ url` a webhook's cursor, `'D' ‖ url ‖ 0 ‖ seq(8)` its dead letters |
//! | inbox_dedupe | not per org: `'S'` the filters' seed, `'W'` the journal sequence number the runs cover (see [`dedupe_covered`]) |
//!
//! The change log and its deliveries are the service's, not an org's: their keys carry no org
//! (each entry names its org).

use crate::domain::{AppUser, ObjectType, OrgId, SalesforceId};

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

/// The match indexes of local records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Index {
    /// Salesforce id → the one local record linked to it.
    SalesforceId,
    /// Normalized email → contacts.
    Email,
    /// Normalized domain → companies.
    Domain,
    /// Normalized company name → companies.
    Name,
}

impl Index {
    fn code(self) -> u8 {
        match self {
            Self::SalesforceId => b'S',
            Self::Email => b'E',
            Self::Domain => b'D',
            Self::Name => b'N',
        }
    }
}

/// The short key an org's keys start with in the trees every record write touches: a number
/// given to the org the first time the store writes for it (see `org_keys`), 3 bytes,
/// big-endian, below [`OrgKey::LIMIT`]. Its first byte is below b'0', so no key that starts with
/// one starts like an org id (keys written by earlier versions, which the store's open moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OrgKey([u8; 3]);

impl OrgKey {
    /// The first number not given: `0x30_0000`, whose first byte is b'0'.
    pub(crate) const LIMIT: u32 = 0x30_0000;

    /// The key of number `n`, if below [`OrgKey::LIMIT`] and not 0.
    pub(crate) fn from_number(n: u32) -> Option<Self> {
        (n != 0 && n < Self::LIMIT).then(|| {
            let [_, a, b, c] = n.to_be_bytes();
            Self([a, b, c])
        })
    }

    /// The key stored in a value of the org_keys tree.
    pub(crate) fn from_stored(v: &[u8]) -> Option<Self> {
        let [a, b, c]: [u8; 3] = v.try_into().ok()?;
        Self::from_number(u32::from_be_bytes([0, a, b, c]))
    }

    /// Its number.
    pub(crate) fn number(self) -> u32 {
        let [a, b, c] = self.0;
        u32::from_be_bytes([0, a, b, c])
    }

    /// Its bytes, as keys start with them and as the org_keys tree stores them.
    pub(crate) fn bytes(self) -> [u8; 3] {
        self.0
    }
}

/// `org key(3) ‖ tag ‖ rest`.
fn short(org: OrgKey, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + rest.len());
    k.extend_from_slice(&org.0);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// `org key(3)`: the start of every key of an org in the records, provenance, records_index and
/// outbox trees.
pub(crate) fn org_short(org: OrgKey) -> Vec<u8> {
    org.0.to_vec()
}

/// The kind code and local id of a records or provenance key.
pub(crate) fn record_of_key(key: &[u8]) -> Option<(u8, u64)> {
    let kind = *key.get(3)?;
    let id = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    Some((kind, id))
}

/// The org id a key written by an earlier version starts with (18 characters), if it does.
pub(crate) fn legacy_org(key: &[u8]) -> Option<OrgId> {
    OrgId::parse(std::str::from_utf8(key.get(..18)?).ok()?).ok()
}

/// The same key with its leading 18-character org id replaced by `org`.
pub(crate) fn shortened(key: &[u8], org: OrgKey) -> Vec<u8> {
    let mut k = org.0.to_vec();
    k.extend_from_slice(&key[18..]);
    k
}

/// `org(18) ‖ tag ‖ rest`.
fn tagged(org: &OrgId, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(19 + rest.len());
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

/// `org(18)`: the start of every key of an org.
pub(crate) fn org(org: &OrgId) -> Vec<u8> {
    org.as_str().as_bytes().to_vec()
}

/// `org key(3) ‖ kind(1) ‖ id(8, BE)`: a local record (`kind` is its record kind's code).
pub(crate) fn record(org: OrgKey, kind: u8, id: u64) -> Vec<u8> {
    short(org, kind, &id.to_be_bytes())
}

/// `org key(3) ‖ kind(1)`: every local record of a kind.
pub(crate) fn records_of(org: OrgKey, kind: u8) -> Vec<u8> {
    short(org, kind, &[])
}

/// `org key(3) ‖ kind(1) ‖ id(8) ‖ seq(8)`: one provenance entry of a record; the record's key
/// is the prefix of all of them.
pub(crate) fn provenance(org: OrgKey, kind: u8, id: u64, seq: u64) -> Vec<u8> {
    let mut k = record(org, kind, id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `org key(3) ‖ index(1) ‖ value`.
pub(crate) fn index(org: OrgKey, index: Index, value: &str) -> Vec<u8> {
    short(org, index.code(), value.as_bytes())
}

/// `org(18) ‖ id(8, BE)`: a quarantined record.
pub(crate) fn conflict(org: &OrgId, id: u64) -> Vec<u8> {
    let mut k = self::org(org);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The conflict id in a conflict key.
pub(crate) fn conflict_id(key: &[u8]) -> Option<u64> {
    key.get(18..26)?.try_into().ok().map(u64::from_be_bytes)
}

/// `org key(3) ‖ 'E' ‖ entry id(8, BE)`: an outbox entry.
pub(crate) fn outbox_entry(org: OrgKey, id: u64) -> Vec<u8> {
    short(org, b'E', &id.to_be_bytes())
}

/// `org key(3) ‖ 'E'`: every outbox entry of an org, in enqueue order.
pub(crate) fn outbox_entries(org: OrgKey) -> Vec<u8> {
    short(org, b'E', &[])
}

/// `org key(3) ‖ 'R' ‖ kind(1) ‖ local id(8, BE)`: the live outbox entry of a local record.
pub(crate) fn outbox_record(org: OrgKey, kind: u8, id: u64) -> Vec<u8> {
    let mut k = short(org, b'R', &[kind]);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn meta(org: &OrgId, name: &str) -> Vec<u8> {
    tagged(org, b'M', name.as_bytes())
}

/// `0x01 ‖ mark(8, BE)`: the outbox entries whose creates one call may have sent (its org and
/// entry ids); no org id starts with that byte.
pub(crate) fn outbox_sending(mark: u64) -> Vec<u8> {
    let mut k = outbox_sending_all();
    k.extend_from_slice(&mark.to_be_bytes());
    k
}

/// The prefix of every [`outbox_sending`] key.
pub(crate) fn outbox_sending_all() -> Vec<u8> {
    vec![0x01]
}

/// What was last pulled of a Salesforce record linked to no local record.
pub(crate) fn seen(org: &OrgId, id: &SalesforceId) -> Vec<u8> {
    meta(org, &format!("seen/{id}"))
}

/// The open conflict of a quarantined Salesforce record.
pub(crate) fn conflict_of(org: &OrgId, id: &SalesforceId) -> Vec<u8> {
    meta(org, &format!("conflict/{id}"))
}

/// The open conflict of a local record whose create found several records in the org.
pub(crate) fn local_conflict_of(org: &OrgId, kind: u8, id: u64) -> Vec<u8> {
    meta(org, &format!("conflict/local/{}/{id}", char::from(kind)))
}

/// The `SystemModstamp` the outbox read back after its last write to a Salesforce record.
pub(crate) fn written_stamp(org: &OrgId, id: &SalesforceId) -> Vec<u8> {
    meta(org, &format!("stamp:{id}"))
}

/// Where the catch-up sweep of an object resumes.
pub(crate) fn sweep_cursor(org: &OrgId, object: ObjectType) -> Vec<u8> {
    meta(org, &format!("sweep/{}", object.api_name()))
}

/// When an org's catch-up sweep last finished without error.
pub(crate) fn last_sweep(org: &OrgId) -> Vec<u8> {
    meta(org, "sweep/last_success")
}

/// `org(18)`: an org's sealed refresh token.
pub(crate) fn token(org: &OrgId) -> Vec<u8> {
    self::org(org)
}

/// `org(18) ‖ "/user"`: the Salesforce user an org's connection acts as.
pub(crate) fn connection_user(org: &OrgId) -> Vec<u8> {
    let mut k = self::org(org);
    k.extend_from_slice(b"/user");
    k
}

/// `org(18) ‖ "/u/"`: every application user's connection to an org.
pub(crate) fn user_connections(org: &OrgId) -> Vec<u8> {
    let mut k = self::org(org);
    k.extend_from_slice(b"/u/");
    k
}

/// `org(18) ‖ "/u/" ‖ user ‖ 0 ‖ 't'`: an application user's sealed refresh token for an org.
/// User ids hold no 0 byte, so the user ends where the 0 is.
pub(crate) fn user_token(org: &OrgId, user: &AppUser) -> Vec<u8> {
    user_part(org, user, b't')
}

/// `org(18) ‖ "/u/" ‖ user ‖ 0 ‖ 's'`: the Salesforce user an application user's connection
/// acts as.
pub(crate) fn user_salesforce_user(org: &OrgId, user: &AppUser) -> Vec<u8> {
    user_part(org, user, b's')
}

fn user_part(org: &OrgId, user: &AppUser, part: u8) -> Vec<u8> {
    let mut k = user_connections(org);
    k.extend_from_slice(user.as_str().as_bytes());
    k.extend_from_slice(&[0, part]);
    k
}

/// The application user of a [`user_token`] key, or `None` for another key under
/// [`user_connections`].
pub(crate) fn user_of_token_key(org: &OrgId, key: &[u8]) -> Option<AppUser> {
    let rest = key.strip_prefix(user_connections(org).as_slice())?;
    let user = rest.strip_suffix(&[0, b't'])?;
    AppUser::parse(std::str::from_utf8(user).ok()?).ok()
}

/// `org(18) ‖ kind(1) ‖ id`.
pub(crate) fn dedupe(org: &OrgId, kind: DedupeKind, id: &str) -> Vec<u8> {
    tagged(org, kind.code(), id.as_bytes())
}

/// `inbox_dedupe` holds `'S'`, the seed of the dedupe filters' hash, and `'W'`, the journal
/// sequence number through which every dedupe key is in a run (the runs themselves are files:
/// see `runs`). Stores written before that kept the runs in this tree too, under the keys below,
/// until the store's next open moves them into files.
fn run_key(tag: u8, run: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&run.to_be_bytes());
    k
}

/// `'M'`: every run meta of the tree layout (`'M' ‖ run(8, BE)`: level first, then count, time
/// range and filter).
pub(crate) fn legacy_dedupe_runs_all() -> Vec<u8> {
    vec![b'M']
}

/// `'R' ‖ run(8, BE)`: every chunk of a run of the tree layout (`… ‖ first key`), in key order.
pub(crate) fn legacy_dedupe_chunks(run: u64) -> Vec<u8> {
    run_key(b'R', run)
}

/// The run in a meta or chunk key of the tree layout.
pub(crate) fn legacy_dedupe_run_id(key: &[u8]) -> Option<u64> {
    key.get(1..9)?.try_into().ok().map(u64::from_be_bytes)
}

/// `'S'`: the seed of the dedupe filters' hash.
pub(crate) fn dedupe_seed() -> Vec<u8> {
    vec![b'S']
}

/// `'W'`: the journal sequence number through which every dedupe key is in a run.
pub(crate) fn dedupe_covered() -> Vec<u8> {
    vec![b'W']
}

/// `org(18) ‖ object code(1) ‖ record id(18)`.
pub(crate) fn pending(org: &OrgId, object: ObjectType, id: &SalesforceId) -> Vec<u8> {
    tagged(org, object.code(), id.as_str().as_bytes())
}

/// The Salesforce id index key of the record a pending key names, given the key of the org
/// it names: `org key(3) ‖ 'S' ‖ record id(18)`.
pub(crate) fn link_of_pending(key: &[u8], org: OrgKey) -> Option<Vec<u8>> {
    if key.len() != 37 {
        return None;
    }
    Some(short(org, Index::SalesforceId.code(), &key[19..]))
}

/// `0xFF`: in the inbox's applied tree, the highest applied mark ever written, wherever it was
/// kept. No pending key starts with it (they start with an org id).
pub(crate) fn applied_high() -> Vec<u8> {
    vec![0xFF]
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
    let mut k = self::org(org);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number in a journal key.
pub(crate) fn journal_seq(key: &[u8]) -> Option<u64> {
    key.get(18..26)?.try_into().ok().map(u64::from_be_bytes)
}

/// `org(18) ‖ object code(1)`: a request to re-read every record of a type (wildcard or overflow
/// change events).
pub(crate) fn resync(org: &OrgId, object: ObjectType) -> Vec<u8> {
    tagged(org, object.code(), &[])
}

/// The object type of a re-read request key.
pub(crate) fn resync_object(key: &[u8]) -> Option<ObjectType> {
    key.get(18).copied().and_then(ObjectType::from_code)
}

/// `'E' ‖ seq(8, BE)`: the change-log entries of one transaction, the first numbered `seq`.
pub(crate) fn change(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'E');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `'N'`: the last sequence number the change log gave.
pub(crate) fn change_counter() -> &'static [u8] {
    b"N"
}

/// `'P'`: the last sequence number compaction removed.
pub(crate) fn change_compacted() -> &'static [u8] {
    b"P"
}

/// `'C' ‖ url`: where an app webhook's deliveries stand.
pub(crate) fn delivery_cursor(webhook: &str) -> Vec<u8> {
    let mut k = vec![b'C'];
    k.extend_from_slice(webhook.as_bytes());
    k
}

/// `'D' ‖ url ‖ 0`: every dead letter of an app webhook.
pub(crate) fn delivery_dead_all(webhook: &str) -> Vec<u8> {
    let mut k = vec![b'D'];
    k.extend_from_slice(webhook.as_bytes());
    k.push(0);
    k
}

/// `'D' ‖ url ‖ 0 ‖ seq(8, BE)`: the dead letter of one change for an app webhook.
pub(crate) fn delivery_dead(webhook: &str, seq: u64) -> Vec<u8> {
    let mut k = delivery_dead_all(webhook);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    #[test]
    fn a_pending_key_round_trips() {
        let id = SalesforceId::parse("0031I0000081tbP").expect("id");
        let k = pending(&org(), ObjectType::Contact, &id);
        assert_eq!(parse_pending(&k), Some((org(), ObjectType::Contact, id)));
    }

    #[test]
    fn metadata_keys_keep_their_stored_names() {
        let id = SalesforceId::parse("0031I0000081tbP").expect("id");
        let name = |k: Vec<u8>| String::from_utf8(k[19..].to_vec()).expect("utf-8");
        assert_eq!(name(seen(&org(), &id)), "seen/0031I0000081tbPQAQ");
        assert_eq!(
            name(conflict_of(&org(), &id)),
            "conflict/0031I0000081tbPQAQ"
        );
        assert_eq!(name(written_stamp(&org(), &id)), "stamp:0031I0000081tbPQAQ");
        assert_eq!(name(sweep_cursor(&org(), ObjectType::Lead)), "sweep/Lead");
        assert_eq!(seen(&org(), &id)[18], b'M');
    }

    #[test]
    fn numbers_sort_in_numeric_order_and_ids_come_back() {
        let short = OrgKey::from_number(7).expect("key");
        assert!(outbox_entry(short, 255) < outbox_entry(short, 256));
        assert!(journal(&org(), 9) < journal(&org(), 10));
        assert!(change(255) < change(256));
        assert!(change(u64::MAX) < change_counter().to_vec());
        assert!(delivery_dead("http://a/x", 9) < delivery_dead("http://a/x", 10));
        assert!(!delivery_dead("http://a/x2", 1).starts_with(&delivery_dead_all("http://a/x")));
        assert_eq!(journal_seq(&journal(&org(), 77)), Some(77));
        assert_eq!(conflict_id(&conflict(&org(), 5)), Some(5));
        assert_eq!(
            resync_object(&resync(&org(), ObjectType::Opportunity)),
            Some(ObjectType::Opportunity)
        );
    }
}

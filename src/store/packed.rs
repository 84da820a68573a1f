//! The JSON values of the trees every record write touches (records, records_index, outbox),
//! stored LZ4-compressed against a fixed dictionary of their field names and common values.
//!
//! A value of a few hundred bytes of JSON has little in it that repeats, so LZ4 alone saves
//! almost nothing; against the dictionary its field names become back-references, and a record
//! or an outbox entry takes a half to a quarter of its JSON. Every byte of a value is written
//! again when sled splits or consolidates its leaf, so this is bytes written, not only bytes kept.
//!
//! `PACKED ‖ compressed length, JSON length (postcard varints) ‖ LZ4 block`. JSON starts with
//! `{`, `[` or `"`, never with [`PACKED`], so values written by earlier versions (plain JSON)
//! still read. The dictionary is part of the format: values written with it can only be read
//! with the same bytes, so it never changes; another dictionary would take another first byte.

use std::borrow::Cow;

use super::StoreError;

/// The first byte of a packed value.
pub(super) const PACKED: u8 = 0x02;

/// The largest JSON a packed value may claim to hold: a larger claim is a corrupt value, and is
/// never allocated.
const MAX_JSON: u32 = 16 << 20;

/// What packed values are compressed against: the shapes of the JSON the hot trees hold (Salesforce
/// id links, outbox entries, companies, contacts, opportunities, activities), field names first.
const DICTIONARY: &[u8] = concat!(
    r#"{"id":,"org_id":"00D","kind":"email_sent","contact_id":,"company_id":,"subject":"","#,
    r#""description":null,"occurred_at":"20","starts_at":null,"ends_at":null,"#,
    r#""salesforce_id":"00T","updated_at":"20"}"#,
    r#"{"id":,"org_id":"00D","company_id":,"product":"","status":"opportunity","#,
    r#""opportunity_size":,"stage":"","close_date":null,"salesforce_opportunity_id":"006","#,
    r#""synced_stage":,"updated_at":"20"}"#,
    r#"{"id":,"org_id":"00D","company_id":,"first_name":"","last_name":"","email":"","#,
    r#""title":null,"phone":null,"salesforce_id":"003","salesforce_kind":"contact","#,
    r#""updated_at":"20"}"#,
    r#"{"id":,"org_id":"00D","name":"","domain":"","website":"https://www.","industry":null,"#,
    r#""annual_revenue":null,"employees":null,"salesforce_id":"001","updated_at":"20"}"#,
    r#"{"id":,"org_id":"00D","target":{"kind":"company_product","id":},"state":"pending","#,
    r#""version":1,"attempts":0,"maybe_sent":false,"next_attempt_ms":17,"last_error":null,"#,
    r#""push_as":null,"user":"","create_new":true,"held_by_conflict":,"paused_on":"","#,
    r#""created_at":"20","updated_at":"20"}"#,
    r#"{"kind":"activity","id":}{"kind":"contact","id":}"#,
    r#"{"kind":"company","id":,"seen":{"stamp_ms":17,"pulled_ms":17},"applied":,"written_ms":17}"#,
)
.as_bytes();

fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    }
}

/// What to store for `json`: its packed value, or the JSON itself where packing would not make
/// it shorter (an index entry's few ids), which reads the same way.
pub(super) fn pack(json: &[u8]) -> Vec<u8> {
    let block = lz4_flex::block::compress_with_dict(json, DICTIONARY);
    let mut v = Vec::with_capacity(block.len() + 7);
    v.push(PACKED);
    // Two u32 varints fit the buffer; lengths past u32 never reach here (values are far smaller).
    let lengths = (block.len() as u32, json.len() as u32);
    v.extend_from_slice(&postcard::to_stdvec(&lengths).unwrap_or_default());
    v.extend_from_slice(&block);
    if v.len() >= json.len() {
        return json.to_vec();
    }
    v
}

/// The stored JSON at the start of `value` (packed, or plain JSON as earlier versions wrote it,
/// up to the first byte `ends_plain` accepts) and what follows it.
pub(super) fn split_off<'a>(
    tree: &'static str,
    value: &'a [u8],
    ends_plain: impl Fn(&u8) -> bool,
) -> Result<(&'a [u8], &'a [u8]), StoreError> {
    let Some(rest) = value.strip_prefix(&[PACKED]) else {
        let end = value.iter().position(ends_plain).unwrap_or(value.len());
        return Ok(value.split_at(end));
    };
    let ((block_len, _), after) = lengths(tree, rest)?;
    if after.len() < block_len as usize {
        return Err(corrupt(tree, "a packed value shorter than its block"));
    }
    Ok(value.split_at(value.len() - after.len() + block_len as usize))
}

fn lengths<'a>(tree: &'static str, rest: &'a [u8]) -> Result<((u32, u32), &'a [u8]), StoreError> {
    postcard::take_from_bytes::<(u32, u32)>(rest)
        .map_err(|e| corrupt(tree, format!("a packed value's lengths: {e}")))
}

/// The JSON of stored JSON (a whole value, or what [`split_off`] split off): unpacked, or as it
/// is when plain.
pub(super) fn unpack<'a>(
    tree: &'static str,
    stored: &'a [u8],
) -> Result<Cow<'a, [u8]>, StoreError> {
    let Some(rest) = stored.strip_prefix(&[PACKED]) else {
        return Ok(Cow::Borrowed(stored));
    };
    let ((block_len, json_len), block) = lengths(tree, rest)?;
    if json_len > MAX_JSON {
        return Err(corrupt(
            tree,
            format!("a packed value claims {json_len} bytes of JSON, more than {MAX_JSON}"),
        ));
    }
    if block.len() != block_len as usize {
        return Err(corrupt(
            tree,
            "a packed value's block is not the length it claims",
        ));
    }
    let json = lz4_flex::block::decompress_with_dict(block, json_len as usize, DICTIONARY)
        .map_err(|e| corrupt(tree, format!("LZ4: {e}")))?;
    if json.len() != json_len as usize {
        return Err(corrupt(
            tree,
            "a packed value's JSON is not the length it claims",
        ));
    }
    Ok(Cow::Owned(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_json_reads_back_plain_json_still_reads_and_damage_is_an_error() {
        let outbox = br#"{"id":9912,"org_id":"00D7F00000107XsEAI","target":{"kind":"contact","id":48214},"state":"pending","version":1,"attempts":0,"maybe_sent":false,"next_attempt_ms":1764641000123,"last_error":null,"push_as":null,"created_at":"2026-12-02T02:03:11.255146Z","updated_at":"2026-12-02T02:03:11.255146Z"}"#;
        let link = br#"{"kind":"company","id":48213,"seen":{"stamp_ms":1764641000000,"pulled_ms":1764641000123},"applied":123456}"#;
        let samples: [(&[u8], bool); 5] = [
            (outbox, true),
            (link, true),
            (b"[12345]", false),
            (b"\"\"", false),
            (b"", false),
        ];
        for (json, packs) in samples {
            let packed = pack(json);
            assert_eq!(packed.first() == Some(&PACKED), packs, "{packed:?}");
            assert!(packed.len() <= json.len(), "never longer than the JSON");
            assert_eq!(unpack("t", &packed).expect("unpack").as_ref(), json);
            let mut with_tail = packed.clone();
            with_tail.extend_from_slice(b"\x1ftail");
            let (stored, rest) = split_off("t", &with_tail, |b| *b == 0x1f).expect("split");
            assert_eq!((stored, rest), (&packed[..], &b"\x1ftail"[..]));
            if packs {
                assert!(
                    unpack("t", &packed[..packed.len() - 1]).is_err(),
                    "a cut block"
                );
            } else {
                assert_eq!(packed, json, "not shorter packed: kept plain");
            }
            // Plain JSON, as earlier versions wrote it.
            assert_eq!(unpack("t", json).expect("plain").as_ref(), json);
        }
        assert!(
            pack(outbox).len() * 2 < outbox.len(),
            "{}",
            pack(outbox).len()
        );
        assert!(pack(link).len() * 2 < link.len(), "{}", pack(link).len());
        // A claim past the limit is refused before anything is allocated.
        let mut huge = vec![PACKED];
        huge.extend_from_slice(&postcard::to_stdvec(&(4u32, u32::MAX)).expect("lengths"));
        huge.extend_from_slice(b"\x00\x00\x00\x00");
        assert!(unpack("t", &huge).is_err());
    }

    #[test]
    fn a_store_reads_plain_values_of_earlier_versions_and_packs_what_it_writes_again() {
        use crate::domain::{Company, OrgId, SalesforceId};
        use crate::store::{LocalRef, RecordKind, Store, keys};
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let sfid = SalesforceId::parse("001000000000001AAA").expect("id");
        let me = LocalRef::new(RecordKind::Company, 1);
        let mut company = Company::named(1, org.clone(), "Acme".into(), chrono::Utc::now());
        company.salesforce_id = Some(sfid.clone());
        store
            .atomically(|tx| {
                tx.put_company(&company)?;
                tx.enqueue_push(&org, me, None, None, chrono::Utc::now())
            })
            .expect("write");
        let short = store.known_org_key(&org).expect("org key");
        let record_key = keys::record(short, RecordKind::Company.code(), 1);
        let link_key = keys::index(short, keys::Index::SalesforceId, sfid.as_str());
        let inner = &store.inner;
        let entry = store.outbox_entries(&org, None).expect("entries").remove(0);
        let entry_key = keys::outbox_entry(short, entry.id);
        // Each value as earlier versions wrote it: plain JSON (the record's with its parts).
        let stored = inner
            .records
            .get(&record_key)
            .expect("get")
            .expect("record");
        let (packed_json, parts) = split_off("records", &stored, |_| false).expect("split");
        assert_eq!(packed_json[0], PACKED);
        let plain_record = [&unpack("records", packed_json).expect("json")[..], parts].concat();
        for (tree, key) in [
            (&inner.records, &record_key),
            (&inner.index, &link_key),
            (&inner.outbox, &entry_key),
        ] {
            let value = tree.get(key).expect("get").expect("value");
            let plain = if key == &record_key {
                plain_record.clone()
            } else {
                unpack("t", &value).expect("json").into_owned()
            };
            assert_eq!(plain[0], b'{');
            tree.insert(key, plain).expect("plain");
        }

        assert_eq!(store.companies(&org).expect("read"), vec![company.clone()]);
        assert_eq!(
            store.local_by_salesforce_id(&org, &sfid).expect("link"),
            Some(me)
        );
        assert_eq!(
            store.outbox_entries(&org, None).expect("entries"),
            vec![entry.clone()]
        );
        let live = store
            .atomically(|tx| tx.outbox_entry_for(&org, me))
            .expect("live");
        assert_eq!(
            live.map(|e| e.id),
            Some(entry.id),
            "the record's parts read too"
        );

        company.name = "Acme Corp".into();
        store
            .atomically(|tx| tx.put_company(&company))
            .expect("rewrite");
        let again = inner
            .records
            .get(&record_key)
            .expect("get")
            .expect("record");
        assert_eq!(again[0], PACKED, "written again packed");
        assert_eq!(store.companies(&org).expect("read"), vec![company]);
        let live = store
            .atomically(|tx| tx.outbox_entry_for(&org, me))
            .expect("live");
        assert_eq!(live.map(|e| e.id), Some(entry.id), "the parts kept");
    }

    #[test]
    fn the_dictionary_is_part_of_the_format_and_never_changes() {
        // FNV-1a of the dictionary: values packed with it are read with it.
        let hash = DICTIONARY.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!((DICTIONARY.len(), hash), (1135, 17_596_522_104_435_407_716));
    }
}

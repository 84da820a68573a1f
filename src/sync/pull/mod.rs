//! Pull: apply one Salesforce record locally: the match ladder, the conflict policy, deletes,
//! merges and conversions.
//!
//! Everything here runs inside one [`Store::transact`](crate::store::Store::transact) closure
//! and does no I/O of its own: it reads and writes through the [`Tx`] it is given, so a record,
//! its indexes, its provenance, its `SystemModstamp` bookmark and the pending entry it clears
//! commit together. The inbox worker, the import and the conflicts API all apply through
//! [`apply_record`] and [`apply_gone`].
//!
//! The match ladder, per object:
//! - Account → Company: Salesforce id; then the domain of `Website`; then the normalized name.
//! - Contact / Lead → Contact: Salesforce id; then the normalized email, among contacts of the
//!   same Company (or of none).
//! - Opportunity → CompanyProduct: Salesforce id; else a new one on the Company of its Account.
//!
//! Rungs after the first only consider local records not yet linked to Salesforce (a linked
//! record is some other Salesforce record's copy). Two or more candidates at one rung: no guess;
//! the record is quarantined as a [`Conflict`] until a person resolves it.
//!
//! Conflict policy ([`ConflictPolicy`]): `salesforce_wins` overwrites the synced fields on every
//! pull; `ours_wins` links the Salesforce id and only fills fields that are empty locally. A
//! local record with a live outbox entry (a change Salesforce has not seen yet) is treated as
//! `ours_wins` whatever the policy, so an unsent local change is never overwritten. A record
//! read before sfsync's own latest write to it took effect is not applied at all: it stays
//! pending and is read again ([`commit_records`]).
//!
//! Links: a Contact's Company comes from `AccountId` (a Contact without one keeps its local
//! Company); a Lead's from a unique Company with its website's or email's domain, or its
//! `Company` name. Accounts a record points at that are not local yet are pulled first by the
//! inbox worker.

mod commit;
mod company;
mod conflicts;
mod echo;
mod fields;
mod gone;
mod ladder;
mod opportunity;
mod outcome;
mod person;
mod policy;

pub use crate::store::{SAME_SECOND_MARGIN_MS, Seen};
pub use commit::{
    APPLY_CHUNK, Covered, GoneRecord, PulledRecord, apply_record, clear_covered, clear_if_covered,
    commit_gone, commit_gone_records, commit_record, commit_records, read_before_own_write, seen,
    skip_covered,
};
pub use conflicts::{Conflict, ConflictView, close_conflict};
pub use echo::{is_own_write, skip_own_write};
pub(crate) use fields::{PERSON, join};
pub use fields::{can_merge, fields_for, parse_datetime, stamp_ms};
pub use gone::{Children, apply_gone, children_of};
pub use outcome::{Applied, Origin, Target, hold_push};
pub use policy::Rules;

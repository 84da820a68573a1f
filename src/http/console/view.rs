//! What the console shows, read from the same places the API reads: the org's status (the same
//! function `GET /api/v1/status` uses), its setup report, the store's queues, the open
//! conflicts and dead letters (the same use cases as `/api/v1/conflicts` and `/api/v1/outbox`),
//! the latest applied changes, and the recent errors. Every value is turned into text here, so
//! the templates only lay it out.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Connection;
use crate::domain::{Activity, Company, CompanyProduct, Contact, OrgId};
use crate::http::api::{self, ConnectionStatus};
use crate::http::state::AppState;
use crate::store::{LocalRef, OutboxState, PageRequest, RecordKind};
use crate::sync::local::conflicts::{self, Candidate, OpenConflict};
use crate::sync::local::history;
use crate::telemetry::RecentError;

/// Rows shown per list.
const ROWS: usize = 50;

/// An instant as shown: how long ago, and exactly.
#[derive(Debug, Clone)]
pub(super) struct When {
    /// `3 min ago`.
    pub(super) ago: String,
    /// `2026-12-01 04:10:05 UTC`.
    pub(super) exact: String,
}

impl When {
    pub(super) fn of(at: DateTime<Utc>) -> Self {
        let secs = (Utc::now() - at).num_seconds().max(0);
        let ago = match secs {
            0..=4 => "just now".to_string(),
            5..=59 => format!("{secs} s ago"),
            60..=3599 => format!("{} min ago", secs / 60),
            3600..=172_799 => format!("{} h ago", secs / 3600),
            _ => format!("{} days ago", secs / 86_400),
        };
        Self {
            ago,
            exact: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    fn parse(rfc3339: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(rfc3339)
            .ok()
            .map(|t| Self::of(t.with_timezone(&Utc)))
    }
}

/// The setup check in one line.
#[derive(Debug, Clone)]
pub(super) struct SetupLine {
    /// Nothing missing.
    pub(super) ok: bool,
    /// `All set` or `3 problems`.
    pub(super) text: String,
    /// When it ran.
    pub(super) checked: When,
    /// What is missing, each prefixed with its object.
    pub(super) problems: Vec<String>,
}

/// One org at a glance.
#[derive(Debug, Clone)]
pub(super) struct OrgCard {
    /// The org id.
    pub(super) org_id: String,
    /// `connected`, `needs_reauth`, `not_connected` or `not_configured`.
    pub(super) state: &'static str,
    /// The state in words.
    pub(super) state_label: &'static str,
    /// Why the org is not configured.
    pub(super) reason: Option<String>,
    /// `Connect` or `Reconnect`, when the connected app is configured.
    pub(super) connect: Option<&'static str>,
    /// The latest setup check.
    pub(super) setup: Option<SetupLine>,
    /// API calls used and allowed in the last 24 h (`1,204` and `100,000`), and the share
    /// used in percent.
    pub(super) api: Option<(String, String, u64)>,
    /// Whether the share used is past the share sfsync may use.
    pub(super) api_over: bool,
    /// Records waiting to be pulled.
    pub(super) inbox_pending: u64,
    /// The latest notification since start.
    pub(super) last_notification: Option<When>,
    /// Outbox entries waiting.
    pub(super) outbox_pending: u64,
    /// Dead letters.
    pub(super) outbox_dead: u64,
    /// Open conflicts (`50+` past a page).
    pub(super) conflicts: String,
    /// The latest sweep that finished without error.
    pub(super) last_sweep: Option<When>,
}

fn state_label(state: &str) -> &'static str {
    match state {
        "connected" => "Connected",
        "needs_reauth" => "Needs re-authorization",
        "not_connected" => "Not connected",
        _ => "Not configured",
    }
}

fn setup_line(status: &ConnectionStatus) -> Option<SetupLine> {
    let s = status.setup.as_ref()?;
    let text = match s.problems.len() {
        0 => "All set".to_string(),
        1 => "1 problem".to_string(),
        n => format!("{n} problems"),
    };
    Some(SetupLine {
        ok: s.ok,
        text,
        checked: When::of(s.checked_at),
        problems: s.problems.clone(),
    })
}

/// One org's card.
pub(super) fn card(state: &AppState, conn: &Connection) -> OrgCard {
    let org = &conn.org_id;
    let status = api::connection_status(state, conn);
    let outbox = state.store.outbox_counts(org).unwrap_or_default();
    let pending = state
        .store
        .pending_records(org)
        .map_or(0, |p| p.len() as u64);
    let open = conflicts::page(&state.store, std::slice::from_ref(org), page(), None);
    let conflicts = match open {
        Ok(p) if p.next.is_some() => format!("{}+", p.items.len()),
        Ok(p) => p.items.len().to_string(),
        Err(_) => "?".to_string(),
    };
    let share = state.console.limit_share;
    let usage = status.api_usage.filter(|u| u.limit > 0);
    let api_over = usage.is_some_and(|u| u.used as f64 > u.limit as f64 * share);
    let api = usage.map(|u| {
        let pct = u.used.saturating_mul(100) / u.limit;
        (thousands(u.used), thousands(u.limit), pct)
    });
    OrgCard {
        org_id: org.to_string(),
        state: status.state,
        state_label: state_label(status.state),
        reason: status.reason.clone(),
        // Without the connected app's settings no flow can start; the reason says what is
        // missing.
        connect: match status.state {
            _ if state.oauth.is_err() => None,
            "not_connected" => Some("Connect"),
            _ => Some("Reconnect"),
        },
        setup: setup_line(&status),
        api_over,
        api,
        inbox_pending: pending,
        last_notification: state.counters.last_notification(org).map(When::of),
        outbox_pending: outbox.pending,
        outbox_dead: outbox.dead,
        conflicts,
        last_sweep: state.store.last_sweep(org).ok().flatten().map(When::of),
    }
}

/// `100000` as `100,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn page() -> PageRequest {
    PageRequest {
        after: None,
        limit: ROWS,
    }
}

/// Every configured org's card.
pub(super) fn cards(state: &AppState) -> Vec<OrgCard> {
    state
        .connections
        .all()
        .iter()
        .map(|c| card(state, c))
        .collect()
}

/// The configured org named by `raw` (15 or 18 characters).
pub(super) fn configured_org(state: &AppState, raw: &str) -> Option<Connection> {
    let org = api::configured_org(&state.connections, Some(raw), "org").ok()?;
    state
        .connections
        .all()
        .iter()
        .find(|c| c.org_id == org)
        .cloned()
}

/// A dead letter as listed.
#[derive(Debug, Clone)]
pub(super) struct DeadLetter {
    /// Outbox entry id.
    pub(super) id: u64,
    /// `contact #12`.
    pub(super) record: String,
    /// Failed sends.
    pub(super) attempts: u32,
    /// Salesforce's message.
    pub(super) error: String,
    /// When it was last changed.
    pub(super) updated: When,
}

/// `contact #12 · Ada Lovelace`: a record's kind, id and, when it is still there, its name.
fn record_label(state: &AppState, org: &OrgId, target: LocalRef) -> String {
    let (store, id) = (&state.store, target.id);
    let name = match target.kind {
        RecordKind::Company => store
            .record::<Company>(org, id)
            .ok()
            .flatten()
            .map(|c| c.name),
        RecordKind::Contact => store.record::<Contact>(org, id).ok().flatten().map(|c| {
            let name = [c.first_name.as_deref(), Some(c.last_name.as_str())];
            name.into_iter().flatten().collect::<Vec<_>>().join(" ")
        }),
        RecordKind::CompanyProduct => store
            .record::<CompanyProduct>(org, id)
            .ok()
            .flatten()
            .map(|p| p.product),
        RecordKind::Activity => store
            .record::<Activity>(org, id)
            .ok()
            .flatten()
            .map(|a| a.subject),
    };
    let kind = kind_name(target.kind);
    match name.filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("{kind} #{id} · {name}"),
        None => format!("{kind} #{id}"),
    }
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Company => "company",
        RecordKind::Contact => "contact",
        RecordKind::CompanyProduct => "company product",
        RecordKind::Activity => "activity",
    }
}

/// The org's dead letters, oldest first.
pub(super) fn dead_letters(state: &AppState, org: &OrgId) -> Vec<DeadLetter> {
    let found = state
        .store
        .outbox_page(org, page(), Some(OutboxState::Dead), None);
    found
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .map(|e| DeadLetter {
            id: e.id,
            record: record_label(state, org, e.target),
            attempts: e.attempts,
            error: e.last_error.unwrap_or_default(),
            updated: When::of(e.updated_at),
        })
        .collect()
}

/// One field of a record, as shown.
#[derive(Debug, Clone)]
pub(super) struct Field {
    /// Its name.
    pub(super) name: String,
    /// Its value.
    pub(super) value: String,
}

/// A local record a conflict could be.
#[derive(Debug, Clone)]
pub(super) struct CandidateView {
    /// Local id.
    pub(super) id: u64,
    /// Its identifying fields.
    pub(super) fields: Vec<Field>,
}

/// An open conflict as listed.
#[derive(Debug, Clone)]
pub(super) struct ConflictView {
    /// Conflict id.
    pub(super) id: u64,
    /// `Account`, `Contact`, …
    pub(super) object: &'static str,
    /// The Salesforce id (a pull conflict's; empty for a push conflict).
    pub(super) salesforce_id: String,
    /// The rung that found several candidates.
    pub(super) rung: String,
    /// The pulled record's identifying fields.
    pub(super) fields: Vec<Field>,
    /// When it was quarantined.
    pub(super) at: Option<When>,
    /// The local records it could be.
    pub(super) candidates: Vec<CandidateView>,
    /// A push conflict: the local record whose create was held (`company #3`).
    pub(super) local: Option<String>,
    /// A push conflict: the org's records its create found.
    pub(super) matches: Vec<MatchView>,
}

/// A record of the org that a held create found.
#[derive(Debug, Clone)]
pub(super) struct MatchView {
    /// Its Salesforce id.
    pub(super) id: String,
    /// Its identifying fields.
    pub(super) fields: Vec<Field>,
}

/// The identifying fields of a Salesforce record.
fn shown_fields(record: &crate::salesforce::Record) -> Vec<Field> {
    SHOWN
        .iter()
        .filter_map(|name| field(name, record.get(*name).and_then(Value::as_str)))
        .collect()
}

/// The pulled fields worth showing to tell records apart.
const SHOWN: &[&str] = &[
    "Name",
    "FirstName",
    "LastName",
    "Email",
    "Website",
    "Company",
    "Title",
    "Phone",
];

fn field(name: &str, value: Option<impl ToString>) -> Option<Field> {
    let value = value?.to_string();
    (!value.is_empty()).then(|| Field {
        name: name.to_string(),
        value,
    })
}

fn candidate(c: Candidate) -> CandidateView {
    match c {
        Candidate::Company(x) => CandidateView {
            id: x.id,
            fields: [
                field("name", Some(&x.name)),
                field("website", x.website.as_ref()),
                field("salesforce id", x.salesforce_id.as_ref()),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        Candidate::Contact(x) => {
            let name = [x.first_name.as_deref(), Some(x.last_name.as_str())];
            let name = name.into_iter().flatten().collect::<Vec<_>>().join(" ");
            CandidateView {
                id: x.id,
                fields: [
                    field("name", Some(name)),
                    field("email", x.email.as_ref()),
                    field("title", x.title.as_ref()),
                    field("company", x.company_id.map(|c| format!("#{c}"))),
                ]
                .into_iter()
                .flatten()
                .collect(),
            }
        }
    }
}

fn conflict(o: OpenConflict) -> ConflictView {
    let c = o.conflict;
    let matches = c.matches.iter().filter_map(|r| {
        let id = r.get("Id").and_then(Value::as_str)?.to_string();
        Some(MatchView {
            id,
            fields: shown_fields(r),
        })
    });
    ConflictView {
        id: o.id,
        object: c.object.api_name(),
        salesforce_id: c.salesforce_id.map(|id| id.to_string()).unwrap_or_default(),
        rung: c.rung,
        fields: shown_fields(&c.record),
        at: When::parse(&c.at),
        candidates: o.candidates.into_iter().map(candidate).collect(),
        local: c.local.map(|l| format!("{} #{}", kind_name(l.kind), l.id)),
        matches: matches.collect(),
    }
}

/// The org's open conflicts, oldest first, with their candidates.
pub(super) fn conflicts(state: &AppState, org: &OrgId) -> Vec<ConflictView> {
    conflicts::page(&state.store, std::slice::from_ref(org), page(), None)
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .map(conflict)
        .collect()
}

/// One applied change as listed.
#[derive(Debug, Clone)]
pub(super) struct ChangeRow {
    /// When.
    pub(super) at: Option<When>,
    /// `company #3`.
    pub(super) record: String,
    /// `salesforce` or `local`.
    pub(super) side: String,
    /// What caused it.
    pub(super) event: String,
    /// The rule, and the policy when one decided.
    pub(super) rule: String,
}

/// The org's latest applied changes, newest first.
pub(super) fn changes(state: &AppState, org: &OrgId) -> Vec<ChangeRow> {
    history::latest(&state.store, org, ROWS)
        .unwrap_or_default()
        .into_iter()
        .map(|(target, c)| ChangeRow {
            at: When::parse(&c.at),
            record: record_label(state, org, target),
            side: c.side,
            event: c.event,
            rule: match c.policy {
                Some(p) => format!("{} ({p})", c.rule),
                None => c.rule,
            },
        })
        .collect()
}

/// A recent error as listed.
#[derive(Debug, Clone)]
pub(super) struct ErrorRow {
    /// When.
    pub(super) at: When,
    /// The org.
    pub(super) org: String,
    /// `push`, `pull`, `sweep`, `setup` or `auth`.
    pub(super) source: &'static str,
    /// Why.
    pub(super) reason: String,
}

/// The newest errors, of one org when given.
pub(super) fn errors(state: &AppState, org: Option<&OrgId>) -> Vec<ErrorRow> {
    state
        .telemetry
        .errors
        .latest(org, ROWS)
        .into_iter()
        .map(|e: RecentError| ErrorRow {
            at: When::of(e.at),
            org: e.org.to_string(),
            source: e.source.as_str(),
            reason: e.reason,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn an_instant_reads_as_how_long_ago() {
        let now = Utc::now();
        assert_eq!(When::of(now).ago, "just now");
        assert_eq!(
            When::of(now - chrono::TimeDelta::seconds(30)).ago,
            "30 s ago"
        );
        assert_eq!(
            When::of(now - chrono::TimeDelta::minutes(5)).ago,
            "5 min ago"
        );
        assert_eq!(When::of(now - chrono::TimeDelta::hours(3)).ago, "3 h ago");
        assert_eq!(When::of(now - chrono::TimeDelta::days(4)).ago, "4 days ago");
        assert!(When::of(now).exact.ends_with(" UTC"));
    }
}

//! Match before create, for companies: before a company becomes a new Account, the org is
//! searched for it by the domain of its website, then by its normalized name (the pull side's
//! rungs, the other way round). One query serves a whole batch ([`account_lookup`]); its rows are
//! then compared exactly, with the normalization the pull side uses ([`match_account`]).
//!
//! Rules: an Account already linked to another local record, or carrying the marker of another
//! sfsync record, is that record's and never a match. One candidate on a rung links; two or more
//! are a conflict for a person to resolve; none lets the create go ahead.

use crate::domain::{Company, normalize};
use crate::salesforce::{Condition, Record, RecordExt as _};

/// What a company is looked for by in the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyKeys {
    /// Its name as written.
    pub name: String,
    /// Its normalized name.
    pub normalized_name: Option<String>,
    /// Its domain (from `domain`, else `website`), normalized.
    pub domain: Option<String>,
}

impl CompanyKeys {
    /// The keys of a local company.
    pub fn of(c: &Company) -> Self {
        Self {
            name: c.name.trim().to_string(),
            normalized_name: normalize::company_name(&c.name),
            domain: c
                .domain
                .as_deref()
                .or(c.website.as_deref())
                .and_then(normalize::domain),
        }
    }
}

/// Fields read of each candidate Account: what the pull side applies, so a link can take the
/// org's values as the conflict policy says.
pub fn account_fields() -> &'static [&'static str] {
    crate::sync::pull::fields_for(crate::domain::ObjectType::Account)
}

/// What the org holds for one company.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountMatch {
    /// One Account on the first rung that found any; the rule names the rung.
    One(Record, &'static str),
    /// Several Accounts on one rung (`domain` or `name`): a conflict.
    Several(&'static str, Vec<Record>),
    /// Nothing: create it.
    None,
}

/// The conditions that find every Account one of `companies` could be: its website contains
/// the company's domain, or its name starts with the first word of the company's normalized name
/// (Salesforce compares both without regard to case). A first word under three letters would
/// match too much; such a name is looked for as it is written.
pub fn account_lookup(companies: &[&CompanyKeys]) -> Vec<Condition> {
    let mut out = Vec::new();
    for c in companies {
        if let Some(d) = &c.domain {
            out.push(Condition::contains("Website", d));
        }
        let first_word = c
            .normalized_name
            .as_deref()
            .and_then(|n| n.split_whitespace().next());
        match first_word {
            Some(w) if w.chars().count() >= 3 => out.push(Condition::starts_with("Name", w)),
            _ if !c.name.is_empty() => out.push(Condition::eq("Name", &c.name)),
            _ => {}
        }
    }
    out
}

/// The rows whose value (by `of`) is `want`: one is a match by `rule`, several a conflict on
/// rung `name`.
fn rung(
    candidates: &[&Record],
    name: &'static str,
    rule: &'static str,
    want: Option<String>,
    of: impl Fn(&Record) -> Option<String>,
) -> AccountMatch {
    let Some(want) = want else {
        return AccountMatch::None;
    };
    let mut hits: Vec<Record> = candidates
        .iter()
        .filter(|r| of(r).as_deref() == Some(want.as_str()))
        .map(|r| (*r).clone())
        .collect();
    match hits.len() {
        0 => AccountMatch::None,
        1 => AccountMatch::One(hits.remove(0), rule),
        _ => AccountMatch::Several(name, hits),
    }
}

/// The Account among `rows` that `company` is, by the ladder's rungs: the domain of `Website`,
/// then the normalized `Name`. `free` says whether a row may be matched at all (not linked to
/// another local record, no other sfsync record's marker).
pub fn match_account(
    company: &CompanyKeys,
    rows: &[Record],
    free: impl Fn(&Record) -> bool,
) -> AccountMatch {
    let candidates: Vec<&Record> = rows.iter().filter(|r| free(r)).collect();
    let by_domain = |r: &Record| r.str_field("Website").and_then(normalize::domain);
    let domain = company.domain.clone();
    match rung(
        &candidates,
        "domain",
        "push:match-domain",
        domain,
        by_domain,
    ) {
        AccountMatch::None => {
            let by_name = |r: &Record| r.str_field("Name").and_then(normalize::company_name);
            let want = company.normalized_name.clone();
            rung(&candidates, "name", "push:match-name", want, by_name)
        }
        found => found,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::domain::{OrgId, SalesforceId};

    fn company(name: &str, website: Option<&str>) -> CompanyKeys {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        CompanyKeys::of(&Company {
            website: website.map(String::from),
            ..Company::named(1, org, name.into(), Utc::now())
        })
    }

    fn row(id: u32, name: &str, website: Option<&str>) -> Record {
        let id = SalesforceId::mint("001", "5g", u64::from(id));
        match json!({"Id": id.as_str(), "Name": name, "Website": website}) {
            serde_json::Value::Object(m) => m,
            _ => Record::new(),
        }
    }

    fn ids(m: &AccountMatch) -> Vec<String> {
        match m {
            AccountMatch::One(r, _) => vec![r["Id"].as_str().unwrap_or_default().to_string()],
            AccountMatch::Several(_, rs) => rs
                .iter()
                .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
                .collect(),
            AccountMatch::None => Vec::new(),
        }
    }

    #[test]
    fn the_domain_rung_comes_first_and_ignores_scheme_www_path_and_case() {
        let acme = company("Acme", Some("acme.example"));
        let rows = [
            row(1, "Something Else", Some("https://WWW.Acme.example/about")),
            row(2, "Acme, Inc.", None),
        ];
        let m = match_account(&acme, &rows, |_| true);
        assert!(
            matches!(m, AccountMatch::One(_, "push:match-domain")),
            "{m:?}"
        );
        assert_eq!(ids(&m), ids(&AccountMatch::One(rows[0].clone(), "")));
    }

    #[test]
    fn the_name_rung_compares_normalized_names_exactly() {
        let acme = company("ACME", None);
        let rows = [
            row(1, "Acme, Inc.", None),
            row(2, "Acme Widgets", None),
            row(3, "Acmecorp", None),
        ];
        let m = match_account(&acme, &rows, |_| true);
        assert!(
            matches!(m, AccountMatch::One(_, "push:match-name")),
            "{m:?}"
        );
        assert_eq!(ids(&m), ids(&AccountMatch::One(rows[0].clone(), "")));
    }

    #[test]
    fn two_candidates_on_a_rung_are_a_conflict_and_taken_accounts_do_not_count() {
        let acme = company("Acme", Some("https://acme.example"));
        let rows = [
            row(1, "Acme", Some("acme.example")),
            row(2, "Acme EMEA", Some("http://acme.example/emea")),
        ];
        assert!(matches!(
            match_account(&acme, &rows, |_| true),
            AccountMatch::Several("domain", _)
        ));
        let first = rows[0]["Id"].clone();
        let m = match_account(&acme, &rows, |r| r["Id"] != first);
        assert_eq!(ids(&m), ids(&AccountMatch::One(rows[1].clone(), "")));
        assert_eq!(
            match_account(&company("Initech", None), &rows, |_| true),
            AccountMatch::None
        );
    }

    #[test]
    fn the_lookup_asks_for_the_domain_and_the_first_word_of_the_name() {
        let a = company("Acme, Inc.", Some("https://www.acme.example/x"));
        let b = company("IBM", None);
        let c = company("A.B. Dick", None);
        let text: Vec<String> = account_lookup(&[&a, &b, &c])
            .into_iter()
            .map(|c| format!("{c:?}"))
            .collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].contains("Website LIKE '%acme.example%'"),
            "{text:?}"
        );
        assert!(text[1].contains("Name LIKE 'acme%'"), "{text:?}");
        assert!(text[2].contains("Name LIKE 'ibm%'"), "{text:?}");
        assert!(text[3].contains("Name = 'A.B. Dick'"), "{text:?}");
    }
}

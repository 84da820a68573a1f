//! Evaluating a parsed SOQL query over records: SOQL's comparison rules (null only equals null,
//! strings compare case-insensitively, ids in either length form, date literals as ranges),
//! `LIKE` with `%`, `_` and their escapes, ordering with null placement, scope, offset and limit.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::soql::{Cond, Lit, Op, OrderKey, Query, Scope};
use super::value::{Record, parse_date, parse_datetime};
use crate::domain::SalesforceId;

impl Query {
    /// The records that match for `user`, ordered, offset and limited (`records` in creation
    /// order).
    pub(crate) fn run<'a>(
        &self,
        records: impl Iterator<Item = &'a Record>,
        user: &SalesforceId,
    ) -> Vec<&'a Record> {
        let mut rows: Vec<&Record> = records
            .filter(|r| self.scope == Scope::Everything || owned_by(r, user))
            .filter(|r| self.filter.as_ref().is_none_or(|c| matches(c, r)))
            .collect();
        if !self.order.is_empty() {
            rows.sort_by(|a, b| order(&self.order, a, b));
        }
        rows.into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
}

fn owned_by(record: &Record, user: &SalesforceId) -> bool {
    record
        .get("OwnerId")
        .and_then(Value::as_str)
        .and_then(|o| SalesforceId::parse(o).ok())
        .is_some_and(|o| o == *user)
}

fn order(keys: &[OrderKey], a: &Record, b: &Record) -> Ordering {
    for key in keys {
        let ord = match (non_null(a.get(&key.field)), non_null(b.get(&key.field))) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) if key.nulls_last => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) if key.nulls_last => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = compare_values(x, y);
                if key.descending { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

fn non_null(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn compare_values(x: &Value, y: &Value) -> Ordering {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&b.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::String(a), Value::String(b)) => match (parse_datetime(a), parse_datetime(b)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.to_lowercase().cmp(&b.to_lowercase()),
        },
        _ => x.to_string().cmp(&y.to_string()),
    }
}

/// Whether a record satisfies a condition.
pub(crate) fn matches(cond: &Cond, r: &Record) -> bool {
    match cond {
        Cond::And(a, b) => matches(a, r) && matches(b, r),
        Cond::Or(a, b) => matches(a, r) || matches(b, r),
        Cond::Not(a) => !matches(a, r),
        Cond::Cmp(f, op, lit) => compare(non_null(r.get(f)), *op, lit),
        Cond::In(f, lits, negated) => {
            let v = non_null(r.get(f));
            lits.iter().any(|l| compare(v, Op::Eq, l)) != *negated
        }
        Cond::Like(f, pattern) => match non_null(r.get(f)) {
            Some(Value::String(s)) => like(&s.to_lowercase(), &pattern.to_lowercase()),
            _ => false,
        },
    }
}

fn instant(value: &str) -> Option<DateTime<Utc>> {
    parse_datetime(value).or_else(|| {
        parse_date(value).and_then(|d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
    })
}

/// `field op range`: inside the range is equal, before it less, after it greater.
fn range_order(value: &str, from: &DateTime<Utc>, to: &DateTime<Utc>) -> Option<Ordering> {
    let at = instant(value)?;
    Some(if at < *from {
        Ordering::Less
    } else if at >= *to {
        Ordering::Greater
    } else {
        Ordering::Equal
    })
}

/// `field op literal` with SOQL's semantics: null only equals null, strings compare
/// case-insensitively, ids in either length form.
fn compare(value: Option<&Value>, op: Op, lit: &Lit) -> bool {
    let Some(value) = value else {
        return match (op, lit) {
            (Op::Eq, Lit::Null) => true,
            (Op::Ne, l) => *l != Lit::Null,
            _ => false,
        };
    };
    let ord = match (value, lit) {
        (_, Lit::Null) => return op == Op::Ne,
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Lit::Num(l)) => n.as_f64().and_then(|n| n.partial_cmp(l)),
        (Value::String(s), Lit::DateTime(l)) => parse_datetime(s).map(|d| d.cmp(l)),
        (Value::String(s), Lit::Date(l)) => parse_date(s).map(|d| d.cmp(l)),
        (Value::String(s), Lit::Range(from, to, _)) => range_order(s, from, to),
        (Value::String(s), Lit::Str(l)) => {
            if matches!(op, Op::Eq | Op::Ne) {
                if let (Ok(a), Ok(b)) = (SalesforceId::parse(s), SalesforceId::parse(l)) {
                    return (a == b) == (op == Op::Eq);
                }
            }
            Some(s.to_lowercase().cmp(&l.to_lowercase()))
        }
        (Value::String(s), Lit::Num(l)) => s.parse::<f64>().ok().and_then(|n| n.partial_cmp(l)),
        _ => return op == Op::Ne,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
        Op::Le => ord != Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// One element of a `LIKE` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    Any,
    One,
    Char(char),
}

fn pattern(p: &str) -> Vec<Pat> {
    let mut out = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => Pat::Char(chars.next().unwrap_or('\\')),
            '%' => Pat::Any,
            '_' => Pat::One,
            c => Pat::Char(c),
        });
    }
    out
}

/// SOQL `LIKE`: `%` any run, `_` one character, `\%` and `\_` themselves.
pub(crate) fn like(s: &str, p: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p = pattern(p);
    let (mut si, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == Pat::One || p[pi] == Pat::Char(s[si])) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == Pat::Any {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == Pat::Any)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::simulator::schema::Schema;
    use crate::simulator::soql::parse;
    use crate::simulator::standard::standard_objects;

    fn rec(v: Value) -> Record {
        v.as_object().cloned().unwrap_or_default()
    }

    fn user() -> SalesforceId {
        SalesforceId::mint("005", "5g", 1)
    }

    fn ids(q: &str, records: &[Record]) -> Vec<String> {
        let schema = Schema::new(standard_objects(None));
        let q = parse(q, &schema, &user()).unwrap();
        q.run(records.iter(), &user())
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn sample() -> Vec<Record> {
        vec![
            rec(
                json!({"Id": "0015g000000000AAAQ", "Name": "Acme", "AnnualRevenue": 10.0,
                "SystemModstamp": "2024-01-02T00:00:00.000+0000", "OwnerId": user().as_str()}),
            ),
            rec(json!({"Id": "b", "Name": "beta", "AnnualRevenue": 30.0,
                "SystemModstamp": "2024-03-01T00:00:00.000+0000"})),
            rec(
                json!({"Id": "c", "Name": "Gam_ma", "SystemModstamp": "2023-12-31T23:59:59.000+0000"}),
            ),
        ]
    }

    #[test]
    fn unquoted_datetime_literals_compare_as_instants() {
        let got = ids(
            "SELECT Id FROM Account WHERE SystemModstamp > 2024-01-01T00:00:00Z ORDER BY SystemModstamp",
            &sample(),
        );
        assert_eq!(got, vec!["0015g000000000AAAQ", "b"]);
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_override() {
        let s = sample();
        assert_eq!(
            ids(
                "SELECT Id FROM Account WHERE Name = 'gam_ma' OR Name = 'Acme' AND AnnualRevenue > 20",
                &s
            ),
            vec!["c"]
        );
        assert_eq!(
            ids(
                "SELECT Id FROM Account WHERE (Name = 'gam_ma' OR Name = 'Acme') AND AnnualRevenue < 20",
                &s
            ),
            vec!["0015g000000000AAAQ"]
        );
    }

    #[test]
    fn in_matches_fifteen_character_ids() {
        let got = ids(
            "SELECT Id FROM Account WHERE Id IN ('0015g000000000A', 'zzz')",
            &sample(),
        );
        assert_eq!(got, vec!["0015g000000000AAAQ"]);
    }

    #[test]
    fn like_is_case_insensitive_with_wildcards_and_escapes() {
        assert_eq!(
            ids("SELECT Id FROM Account WHERE Name LIKE '%M%'", &sample()),
            vec!["0015g000000000AAAQ", "c"]
        );
        assert_eq!(
            ids("SELECT Id FROM Account WHERE Name LIKE '%\\_%'", &sample()),
            vec!["c"]
        );
        assert!(like("beta", "b_t%"));
        assert!(!like("beta", "b_x%"));
        assert!(!like("beta", "b\\_ta"));
    }

    #[test]
    fn nulls_sort_first_ascending_and_last_descending() {
        let s = sample();
        assert_eq!(
            ids("SELECT Id FROM Account ORDER BY AnnualRevenue", &s),
            vec!["c", "0015g000000000AAAQ", "b"]
        );
        assert_eq!(
            ids("SELECT Id FROM Account ORDER BY AnnualRevenue DESC", &s),
            vec!["b", "0015g000000000AAAQ", "c"]
        );
        assert_eq!(
            ids(
                "SELECT Id FROM Account ORDER BY AnnualRevenue DESC NULLS FIRST",
                &s
            ),
            vec!["c", "b", "0015g000000000AAAQ"]
        );
    }

    #[test]
    fn scope_mine_keeps_the_users_records() {
        assert_eq!(
            ids("SELECT Id FROM Account USING SCOPE mine", &sample()),
            vec!["0015g000000000AAAQ"]
        );
    }

    #[test]
    fn date_literals_are_ranges() {
        let today = chrono::Utc::now();
        let records = vec![
            rec(json!({"Id": "new", "CreatedDate": super::super::value::rest_datetime(today)})),
            rec(json!({"Id": "old", "CreatedDate": "2001-01-01T00:00:00.000+0000"})),
        ];
        assert_eq!(
            ids(
                "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:3",
                &records
            ),
            vec!["new"]
        );
        assert_eq!(
            ids(
                "SELECT Id FROM Account WHERE CreatedDate < LAST_N_DAYS:3",
                &records
            ),
            vec!["old"]
        );
    }
}

//! SOQL text, built in one place: `SELECT fields FROM object [WHERE …] [ORDER BY …] [LIMIT n]`.
//!
//! Every string value goes through [`quote`], the one function that writes a SOQL string
//! literal. Field and object names are the code's own or the operator's configuration, never a
//! request's. The one way to put text in a query unquoted is [`Soql::raw_where`], for a filter an
//! operator typed on purpose (`sfsync import --filter "Industry = 'Energy'"`).

use std::fmt;

use chrono::{DateTime, Utc};

/// A SOQL string literal: the value in single quotes with backslash, quotes and control
/// characters escaped as SOQL's quoted string escape sequences say (`\\`, `\'`, `\"`, `\n`, `\r`,
/// `\t`, `\b`, `\f`); every other character stands for itself.
pub fn quote(value: &str) -> String {
    literal("", value, "", false)
}

/// The one writer of string literals: `before` and `after` (LIKE wildcards, written as they are)
/// around `value` escaped as [`quote`] says; in a LIKE pattern (`like`) the value's own `%` and
/// `_` are escaped too (`\%`, `\_`), so they match only themselves.
fn literal(before: &str, value: &str, after: &str, like: bool) -> String {
    let mut out = String::with_capacity(value.len() + before.len() + after.len() + 2);
    out.push('\'');
    out.push_str(before);
    for c in value.chars() {
        match c {
            '%' if like => out.push_str("\\%"),
            '_' if like => out.push_str("\\_"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            other => out.push(other),
        }
    }
    out.push_str(after);
    out.push('\'');
    out
}

/// The longest query text sent in one call, counted as its URL-encoded `q` parameter: the REST
/// API refuses a request whose URI and headers pass 16,384 bytes, so a query stays well under it.
pub const MAX_QUERY_BYTES: usize = 12_000;

/// The length of `text` as a URL-encoded form value (`application/x-www-form-urlencoded`).
fn encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' | b' ' => 1,
            _ => 3,
        })
        .sum()
}

/// A SOQL datetime literal: the whole second at or before `at`, in UTC, unquoted.
pub fn datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A list view's query (the text its describe gives, the org's own) selecting `fields` instead
/// of the view's columns: its `FROM`, `USING SCOPE`, `WHERE` and `ORDER BY` stay as the org
/// wrote them. `None` when the text is not a `SELECT … FROM …` query.
pub fn reselect<S: AsRef<str>>(query: &str, fields: &[S]) -> Option<String> {
    let text = query.trim();
    let head = text.get(..7)?;
    if !head.eq_ignore_ascii_case("SELECT ") {
        return None;
    }
    let mut depth = 0i32;
    let bytes = text.as_bytes();
    let from = (7..bytes.len()).find(|&i| {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        depth == 0
            && text
                .get(i..i + 6)
                .is_some_and(|w| w.eq_ignore_ascii_case(" FROM "))
    })?;
    let list: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
    Some(format!("SELECT {}{}", list.join(", "), &text[from..]))
}

/// One condition of a `WHERE` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition(String);

impl Condition {
    /// `field IN ('a', 'b', …)`.
    pub fn is_in<S: AsRef<str>>(field: &str, values: impl IntoIterator<Item = S>) -> Self {
        let list: Vec<String> = values.into_iter().map(|v| quote(v.as_ref())).collect();
        Self(format!("{field} IN ({})", list.join(", ")))
    }

    /// `field = 'value'`.
    pub fn eq(field: &str, value: &str) -> Self {
        Self(format!("{field} = {}", quote(value)))
    }

    /// `field LIKE '%text%'`: the field contains `text` (compared case-insensitively by
    /// Salesforce; `text`'s own `%` and `_` match only themselves).
    pub fn contains(field: &str, text: &str) -> Self {
        Self(format!("{field} LIKE {}", literal("%", text, "%", true)))
    }

    /// `field LIKE 'text%'`: the field starts with `text` (see [`Condition::contains`]).
    pub fn starts_with(field: &str, text: &str) -> Self {
        Self(format!("{field} LIKE {}", literal("", text, "%", true)))
    }

    /// `field = true` or `field = false`.
    pub fn is(field: &str, value: bool) -> Self {
        Self(format!("{field} = {value}"))
    }

    /// `field >= <the whole second of at>`: a datetime at or after that second.
    pub fn since(field: &str, at: DateTime<Utc>) -> Self {
        Self(format!("{field} >= {}", datetime(at)))
    }

    /// `(a OR b OR …)`; one alternative stands alone.
    pub fn any(alternatives: Vec<Condition>) -> Self {
        match <[Condition; 1]>::try_from(alternatives) {
            Ok([one]) => one,
            Err(many) => {
                let parts: Vec<String> = many.into_iter().map(|c| c.0).collect();
                Self(format!("({})", parts.join(" OR ")))
            }
        }
    }
}

/// A `SELECT` query. [`fmt::Display`] writes its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soql {
    fields: Vec<String>,
    object: String,
    /// Each condition, and whether it is an operator's raw text.
    conditions: Vec<(String, bool)>,
    order_by: Vec<String>,
    limit: Option<u32>,
}

impl Soql {
    /// `SELECT fields FROM object`.
    pub fn select<S: AsRef<str>>(fields: &[S], object: &str) -> Self {
        Self {
            fields: fields.iter().map(|f| f.as_ref().to_string()).collect(),
            object: object.to_string(),
            conditions: Vec::new(),
            order_by: Vec::new(),
            limit: None,
        }
    }

    /// Adds a condition; conditions are joined with `AND`.
    pub fn filter(mut self, condition: Condition) -> Self {
        self.conditions.push((condition.0, false));
        self
    }

    /// `field IN ('a', …)` (see [`Condition::is_in`]).
    pub fn where_in<S: AsRef<str>>(self, field: &str, values: impl IntoIterator<Item = S>) -> Self {
        self.filter(Condition::is_in(field, values))
    }

    /// `field = 'value'` (see [`Condition::eq`]).
    pub fn where_eq(self, field: &str, value: &str) -> Self {
        self.filter(Condition::eq(field, value))
    }

    /// A `WHERE` condition written by an operator, put in the query as it is (in parentheses
    /// when there are other conditions, so its `OR`s stay its own). Blank text adds nothing.
    /// Never for values sfsync or a request supplies: those go through [`quote`].
    pub fn raw_where(mut self, text: &str) -> Self {
        let text = text.trim();
        if !text.is_empty() {
            self.conditions.push((text.to_string(), true));
        }
        self
    }

    /// `ORDER BY fields` (ascending).
    pub fn order_by(mut self, fields: &[&str]) -> Self {
        self.order_by = fields.iter().map(|f| (*f).to_string()).collect();
        self
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether this query's text, URL-encoded, is within [`MAX_QUERY_BYTES`].
    pub fn fits_a_request(&self) -> bool {
        encoded_len(&self.to_string()) <= MAX_QUERY_BYTES
    }

    /// This query once for each group of `alternatives`, each with `(a OR b OR …)` of its group
    /// added: as few queries as keep each one's text within [`MAX_QUERY_BYTES`] URL-encoded
    /// (one, unless the alternatives are many and long). No alternatives: no query.
    pub fn any_of(self, alternatives: Vec<Condition>) -> Vec<Soql> {
        let base = encoded_len(&self.to_string()) + encoded_len(" WHERE ()");
        let mut groups: Vec<Vec<Condition>> = Vec::new();
        let mut size = base;
        for c in alternatives {
            let len = encoded_len(&c.0) + encoded_len(" OR ");
            match groups.last_mut() {
                Some(group) if size + len <= MAX_QUERY_BYTES => group.push(c),
                _ => {
                    size = base;
                    groups.push(vec![c]);
                }
            }
            size += len;
        }
        groups
            .into_iter()
            .map(|g| self.clone().filter(Condition::any(g)))
            .collect()
    }
}

impl fmt::Display for Soql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM {}", self.fields.join(", "), self.object)?;
        let alone = self.conditions.len() == 1;
        for (n, (text, raw)) in self.conditions.iter().enumerate() {
            f.write_str(if n == 0 { " WHERE " } else { " AND " })?;
            if *raw && !alone {
                write!(f, "({text})")?;
            } else {
                f.write_str(text)?;
            }
        }
        if !self.order_by.is_empty() {
            write!(f, " ORDER BY {}", self.order_by.join(", "))?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reads a SOQL string literal back, as SOQL's escape sequences define it: `None` when the
    /// text is not exactly one literal.
    fn unquote(literal: &str) -> Option<String> {
        let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => return None,
                '\\' => out.push(match chars.next()? {
                    'n' | 'N' => '\n',
                    'r' | 'R' => '\r',
                    't' | 'T' => '\t',
                    'b' | 'B' => '\u{8}',
                    'f' | 'F' => '\u{c}',
                    c @ ('"' | '\'' | '\\') => c,
                    _ => return None,
                }),
                c => out.push(c),
            }
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn quoting_round_trips_any_string(s in any::<String>()) {
            prop_assert_eq!(unquote(&quote(&s)), Some(s));
        }

        #[test]
        fn quoting_round_trips_strings_made_of_what_soql_escapes(
            s in "[\\\\'\"\n\r\t\u{8}\u{c}a%_]{0,40}"
        ) {
            prop_assert_eq!(unquote(&quote(&s)), Some(s));
        }
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote("O'Brien \\ Co"), r"'O\'Brien \\ Co'");
        assert_eq!(quote("o'brien@x"), "'o\\'brien@x'");
        assert_eq!(quote("two\nlines"), r"'two\nlines'");
    }

    #[test]
    fn a_query_reads_select_from_where_order_by_limit() {
        let q = Soql::select(&["Id", "Name"], "Account")
            .where_in("Id", ["001A", "001B"])
            .where_eq("Name", "Bob's")
            .filter(Condition::is("IsDeleted", false))
            .order_by(&["SystemModstamp", "Id"])
            .limit(10);
        assert_eq!(
            q.to_string(),
            r"SELECT Id, Name FROM Account WHERE Id IN ('001A', '001B') AND Name = 'Bob\'s' AND IsDeleted = false ORDER BY SystemModstamp, Id LIMIT 10"
        );
    }

    #[test]
    fn alternatives_are_grouped_and_a_raw_filter_keeps_its_own_ors() {
        let q = Soql::select(&["Id"], "Lead")
            .filter(Condition::any(vec![
                Condition::is_in("M__c", ["m"]),
                Condition::is_in("Email", ["e"]),
            ]))
            .raw_where("Industry = 'Energy' OR Industry = 'Oil'");
        assert_eq!(
            q.to_string(),
            "SELECT Id FROM Lead WHERE (M__c IN ('m') OR Email IN ('e')) AND (Industry = 'Energy' OR Industry = 'Oil')"
        );
        let one = Condition::any(vec![Condition::eq("A", "x")]);
        assert_eq!(one, Condition::eq("A", "x"));
        assert_eq!(
            Soql::select(&["Id"], "Account").raw_where("  ").to_string(),
            "SELECT Id FROM Account"
        );
        assert_eq!(
            Soql::select(&["Id"], "Account")
                .raw_where(" Industry = 'Energy' ")
                .to_string(),
            "SELECT Id FROM Account WHERE Industry = 'Energy'"
        );
    }

    #[test]
    fn a_list_views_query_selects_our_fields_and_keeps_the_rest() {
        let q = "SELECT Name, toLabel(Type), (SELECT Id FROM Contacts) , Id FROM Account \
                 USING SCOPE mine WHERE Name LIKE 'A%' ORDER BY Name ASC NULLS FIRST";
        assert_eq!(
            reselect(q, &["Id", "Website"]).as_deref(),
            Some(
                "SELECT Id, Website FROM Account USING SCOPE mine WHERE Name LIKE 'A%' ORDER BY Name ASC NULLS FIRST"
            )
        );
        assert_eq!(reselect("DELETE FROM Account", &["Id"]), None);
        assert_eq!(reselect("SELECT Id", &["Id"]), None);
    }

    #[test]
    fn like_patterns_escape_their_own_wildcards() {
        assert_eq!(
            Condition::contains("Website", "a_b%c.example"),
            Condition(r"Website LIKE '%a\_b\%c.example%'".into())
        );
        assert_eq!(
            Condition::starts_with("Name", "o'brien"),
            Condition(r"Name LIKE 'o\'brien%'".into())
        );
    }

    #[test]
    fn many_alternatives_are_split_into_queries_that_fit_a_request() {
        let base = Soql::select(&["Id"], "Account").order_by(&["Id"]);
        let one = base.clone().any_of(vec![Condition::eq("Name", "a")]);
        assert_eq!(
            one.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["SELECT Id FROM Account WHERE Name = 'a' ORDER BY Id"]
        );
        let many: Vec<Condition> = (0..600)
            .map(|i| Condition::contains("Website", &format!("company{i}.example")))
            .collect();
        let queries = base.clone().any_of(many);
        assert!(queries.len() > 1, "{}", queries.len());
        for q in &queries {
            assert!(encoded_len(&q.to_string()) <= MAX_QUERY_BYTES);
        }
        let all: usize = queries
            .iter()
            .map(|q| q.to_string().matches(" LIKE ").count())
            .sum();
        assert_eq!(all, 600);
        assert!(base.any_of(Vec::new()).is_empty());
    }

    #[test]
    fn datetimes_are_whole_seconds_in_utc() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.250+02:00")
            .expect("datetime")
            .with_timezone(&Utc);
        assert_eq!(
            Condition::since("SystemModstamp", at),
            Condition("SystemModstamp >= 2024-05-01T08:00:00Z".into())
        );
        let rest =
            DateTime::parse_from_str("2024-05-01T10:00:00.250+0000", "%Y-%m-%dT%H:%M:%S%.f%z")
                .expect("datetime")
                .with_timezone(&Utc);
        assert_eq!(datetime(rest), "2024-05-01T10:00:00Z");
    }
}

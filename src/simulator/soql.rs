//! The SOQL subset the simulator answers: `SELECT` a field list (or `COUNT()`) `FROM` one object,
//! `WHERE` with `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `IN`, `NOT IN`, `LIKE`, `AND`, `OR`, `NOT`
//! and parentheses, `ORDER BY` several keys (`ASC`/`DESC`, `NULLS FIRST|LAST`), `LIMIT`, `OFFSET`.
//! Datetime literals are unquoted ISO-8601; ids compare equal in their 15- and 18-char forms.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::error::SimError;
use super::org::{Record, parse_datetime};
use super::schema::{self, ObjectInfo};
use crate::domain::SalesforceId;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// Selected fields (canonical names); empty with `count`.
    pub(crate) fields: Vec<String>,
    /// `SELECT COUNT()`.
    pub(crate) count: bool,
    /// The object queried.
    pub(crate) object: &'static ObjectInfo,
    /// The `WHERE` condition.
    pub(crate) filter: Option<Cond>,
    /// `ORDER BY` keys.
    pub(crate) order: Vec<OrderKey>,
    /// `LIMIT`.
    pub(crate) limit: Option<usize>,
    /// `OFFSET`.
    pub(crate) offset: Option<usize>,
}

/// One `ORDER BY` key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderKey {
    field: String,
    descending: bool,
    nulls_last: bool,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp(String, Op, Lit),
    In(String, Vec<Lit>, bool),
    Like(String, String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Lit(Lit),
    Sym(&'static str),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, SimError> {
    let chars: Vec<char> = q.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(SimError::malformed_query("unterminated string literal")),
                    Some('\\') => {
                        let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ":.+-".contains(chars[i]))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            toks.push(Tok::Lit(literal(&text)?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let sym = match two.as_str() {
                "!=" => "!=",
                "<>" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    _ => {
                        return Err(SimError::malformed_query(format!(
                            "unexpected character '{c}'"
                        )));
                    }
                },
            };
            i += if sym.len() == 2 || two == "<>" { 2 } else { 1 };
            toks.push(Tok::Sym(sym));
        }
    }
    Ok(toks)
}

/// An unquoted literal starting with a digit: datetime, date or number.
fn literal(text: &str) -> Result<Lit, SimError> {
    if text.contains('T') {
        return parse_datetime(text)
            .map(Lit::DateTime)
            .ok_or_else(|| SimError::malformed_query(format!("invalid datetime literal {text}")));
    }
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Lit::Date)
            .map_err(|_| SimError::malformed_query(format!("invalid date literal {text}")));
    }
    text.parse::<f64>()
        .map(Lit::Num)
        .map_err(|_| SimError::malformed_query(format!("invalid literal {text}")))
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    object: Option<&'static ObjectInfo>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), SimError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(SimError::malformed_query(format!("expected {kw}")))
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Result<String, SimError> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(SimError::malformed_query(format!(
                "expected a name, found {other:?}"
            ))),
        }
    }

    fn field(&mut self) -> Result<String, SimError> {
        let name = self.word()?;
        let object = self
            .object
            .ok_or_else(|| SimError::malformed_query("no object"))?;
        object
            .field(&name)
            .ok_or_else(|| SimError::invalid_field(object.name, &name))
    }

    fn lit(&mut self) -> Result<Lit, SimError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Lit(l)) => Ok(l),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            other => Err(SimError::malformed_query(format!(
                "expected a value, found {other:?}"
            ))),
        }
    }

    fn or(&mut self) -> Result<Cond, SimError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, SimError> {
        let mut left = self.unary()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Cond, SimError> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.sym("(") {
            let c = self.or()?;
            if !self.sym(")") {
                return Err(SimError::malformed_query("expected )"));
            }
            return Ok(c);
        }
        let field = self.field()?;
        if self.keyword("IN") {
            return Ok(Cond::In(field, self.list()?, false));
        }
        if self.keyword("NOT") {
            self.expect_keyword("IN")?;
            return Ok(Cond::In(field, self.list()?, true));
        }
        if self.keyword("LIKE") {
            return match self.lit()? {
                Lit::Str(p) => Ok(Cond::Like(field, p)),
                _ => Err(SimError::malformed_query("LIKE takes a string")),
            };
        }
        let op = match self.next() {
            Some(Tok::Sym("=")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">=")) => Op::Ge,
            other => {
                return Err(SimError::malformed_query(format!(
                    "expected an operator, found {other:?}"
                )));
            }
        };
        Ok(Cond::Cmp(field, op, self.lit()?))
    }

    fn list(&mut self) -> Result<Vec<Lit>, SimError> {
        if !self.sym("(") {
            return Err(SimError::malformed_query("expected ("));
        }
        let mut items = vec![self.lit()?];
        while self.sym(",") {
            items.push(self.lit()?);
        }
        if !self.sym(")") {
            return Err(SimError::malformed_query("expected )"));
        }
        Ok(items)
    }

    fn number(&mut self) -> Result<usize, SimError> {
        match self.next() {
            Some(Tok::Lit(Lit::Num(n))) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            other => Err(SimError::malformed_query(format!(
                "expected a number, found {other:?}"
            ))),
        }
    }
}

/// Parses a query, resolving every field against the object it names.
pub(crate) fn parse(q: &str) -> Result<Query, SimError> {
    let toks = tokenize(q)?;
    // Find FROM first so fields can be resolved against the object.
    let from_at = toks
        .iter()
        .position(|t| matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("FROM")))
        .ok_or_else(|| SimError::malformed_query("expected FROM"))?;
    let object_name = match toks.get(from_at + 1) {
        Some(Tok::Word(w)) => w.clone(),
        _ => return Err(SimError::malformed_query("expected an object after FROM")),
    };
    let object =
        schema::object(&object_name).ok_or_else(|| SimError::invalid_type(&object_name))?;
    let mut p = Parser {
        toks,
        pos: 0,
        object: Some(object),
    };
    p.expect_keyword("SELECT")?;
    let mut fields = Vec::new();
    let mut count = false;
    if matches!(p.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("COUNT")) {
        p.pos += 1;
        if !(p.sym("(") && p.sym(")")) {
            return Err(SimError::malformed_query("only COUNT() is supported"));
        }
        count = true;
    } else {
        loop {
            let f = p.field()?;
            if !fields.contains(&f) {
                fields.push(f);
            }
            if !p.sym(",") {
                break;
            }
        }
    }
    p.expect_keyword("FROM")?;
    p.pos += 1;
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let field = p.field()?;
            let descending = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            let mut nulls_last = descending;
            if p.keyword("NULLS") {
                nulls_last = if p.keyword("LAST") {
                    true
                } else {
                    p.expect_keyword("FIRST")?;
                    false
                };
            }
            order.push(OrderKey {
                field,
                descending,
                nulls_last,
            });
            if !p.sym(",") {
                break;
            }
        }
    }
    let limit = if p.keyword("LIMIT") {
        Some(p.number()?)
    } else {
        None
    };
    let offset = if p.keyword("OFFSET") {
        Some(p.number()?)
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(SimError::malformed_query(format!("unexpected token {t:?}")));
    }
    Ok(Query {
        fields,
        count,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

impl Query {
    /// The records that match, ordered, offset and limited (`records` in creation order).
    pub(crate) fn run<'a>(&self, records: impl Iterator<Item = &'a Record>) -> Vec<&'a Record> {
        let mut rows: Vec<&Record> = records
            .filter(|r| self.filter.as_ref().is_none_or(|c| matches(c, r)))
            .collect();
        if !self.order.is_empty() {
            rows.sort_by(|a, b| {
                for key in &self.order {
                    let (x, y) = (non_null(a.get(&key.field)), non_null(b.get(&key.field)));
                    let ord = match (x, y) {
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => {
                            if key.nulls_last {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                        }
                        (Some(_), None) => {
                            if key.nulls_last {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
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
            });
        }
        rows.into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
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

fn matches(cond: &Cond, r: &Record) -> bool {
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
        (Value::Bool(b), Lit::Bool(l)) => b.cmp(l),
        (Value::Number(n), Lit::Num(l)) => match n.as_f64().and_then(|n| n.partial_cmp(l)) {
            Some(o) => o,
            None => return false,
        },
        (Value::String(s), Lit::DateTime(l)) => match parse_datetime(s) {
            Some(d) => d.cmp(l),
            None => return false,
        },
        (Value::String(s), Lit::Date(l)) => {
            match NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d") {
                Ok(d) => d.cmp(l),
                Err(_) => return false,
            }
        }
        (Value::String(s), Lit::Str(l)) => {
            if matches!(op, Op::Eq | Op::Ne) {
                if let (Ok(a), Ok(b)) = (SalesforceId::parse(s), SalesforceId::parse(l)) {
                    return (a == b) == (op == Op::Eq);
                }
            }
            s.to_lowercase().cmp(&l.to_lowercase())
        }
        (Value::String(s), Lit::Num(l)) => {
            match s.parse::<f64>().ok().and_then(|n| n.partial_cmp(l)) {
                Some(o) => o,
                None => return false,
            }
        }
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
        Op::Le => ord != Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// SOQL `LIKE`: `%` any run, `_` one character.
fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut si, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
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
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rec(v: Value) -> Record {
        v.as_object().cloned().unwrap_or_default()
    }

    fn ids(q: &str, records: &[Record]) -> Vec<String> {
        let q = parse(q).unwrap();
        q.run(records.iter())
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn sample() -> Vec<Record> {
        vec![
            rec(
                json!({"Id": "0015g000000000AAAQ", "Name": "Acme", "AnnualRevenue": 10.0,
                "SystemModstamp": "2024-01-02T00:00:00.000+0000"}),
            ),
            rec(json!({"Id": "b", "Name": "beta", "AnnualRevenue": 30.0,
                "SystemModstamp": "2024-03-01T00:00:00.000+0000"})),
            rec(
                json!({"Id": "c", "Name": "Gamma", "SystemModstamp": "2023-12-31T23:59:59.000+0000"}),
            ),
        ]
    }

    #[test]
    fn a_field_list_where_and_order_parse() {
        let q =
            parse("select id, Name FROM account WHERE Name != null ORDER BY Name DESC, Id LIMIT 5")
                .unwrap();
        assert_eq!(q.fields, vec!["Id".to_string(), "Name".to_string()]);
        assert_eq!(q.object.name, "Account");
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.order.len(), 2);
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
                "SELECT Id FROM Account WHERE Name = 'gamma' OR Name = 'Acme' AND AnnualRevenue > 20",
                &s
            ),
            vec!["c"]
        );
        assert_eq!(
            ids(
                "SELECT Id FROM Account WHERE (Name = 'gamma' OR Name = 'Acme') AND AnnualRevenue < 20",
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
    fn like_is_case_insensitive_with_wildcards() {
        assert_eq!(
            ids("SELECT Id FROM Account WHERE Name LIKE '%M%'", &sample()),
            vec!["0015g000000000AAAQ", "c"]
        );
        assert!(like("beta", "b_t%"));
        assert!(!like("beta", "b_x%"));
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
    }

    #[test]
    fn unknown_columns_and_objects_are_refused_with_salesforce_codes() {
        assert_eq!(
            parse("SELECT Foo FROM Account").unwrap_err().code,
            "INVALID_FIELD"
        );
        assert_eq!(
            parse("SELECT Id FROM Widget").unwrap_err().code,
            "INVALID_TYPE"
        );
        assert_eq!(
            parse("SELECT Id FROM Account WHERE").unwrap_err().code,
            "MALFORMED_QUERY"
        );
        assert!(parse("SELECT Id, Ext__c FROM Account").is_ok());
    }

    #[test]
    fn count_and_offset_parse() {
        let q =
            parse("SELECT COUNT() FROM Contact WHERE IsDeleted = false LIMIT 10 OFFSET 2").unwrap();
        assert!(q.count);
        assert_eq!(q.offset, Some(2));
    }
}

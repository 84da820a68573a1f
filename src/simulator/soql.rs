//! The SOQL subset the simulator answers, parsed: `SELECT` a field list, `COUNT()` or
//! `COUNT(field)` `FROM` one object, `USING SCOPE mine|everything`, `WHERE` with `=`, `!=`, `<>`,
//! `<`, `>`, `<=`, `>=`, `IN`, `NOT IN`, `LIKE`, `AND`, `OR`, `NOT` and parentheses, `ORDER BY`
//! several keys (`ASC`/`DESC`, `NULLS FIRST|LAST`), `LIMIT`, `OFFSET`. Datetime literals are
//! unquoted ISO-8601; date literals (`TODAY`, `THIS_WEEK`, `LAST_N_DAYS:n`, …) are ranges in GMT.
//! Every name is resolved against the object as the querying user sees it. Evaluation is in
//! `soql_eval.rs`.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::error::SimError;
use super::schema::{ObjectDef, Schema};
use super::value::parse_datetime;
use crate::domain::SalesforceId;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// Selected fields (canonical names); empty for an aggregate.
    pub(crate) fields: Vec<String>,
    /// `COUNT()` or `COUNT(field)`.
    pub(crate) aggregate: Option<Aggregate>,
    /// The object queried.
    pub(crate) object: Arc<ObjectDef>,
    /// `USING SCOPE`.
    pub(crate) scope: Scope,
    /// The `WHERE` condition.
    pub(crate) filter: Option<Cond>,
    /// `ORDER BY` keys.
    pub(crate) order: Vec<OrderKey>,
    /// `LIMIT`.
    pub(crate) limit: Option<usize>,
    /// `OFFSET`.
    pub(crate) offset: Option<usize>,
}

/// An aggregate select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Aggregate {
    /// `COUNT()`: the answer is `totalSize` with no records.
    Rows,
    /// `COUNT(field)`: one `AggregateResult` row with `expr0`, the non-null values counted.
    Field(String),
}

/// `USING SCOPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every record the user can see.
    Everything,
    /// Records the querying user owns.
    Mine,
}

/// One `ORDER BY` key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderKey {
    pub(crate) field: String,
    pub(crate) descending: bool,
    pub(crate) nulls_last: bool,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp(String, Op, Lit),
    In(String, Vec<Lit>, bool),
    /// A field and a pattern in which `\%`, `\_` and `\\` are escapes.
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
    /// A date literal: the instants from `.0` (inclusive) to `.1` (exclusive), and its text.
    Range(DateTime<Utc>, DateTime<Utc>, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A string literal: its text, and its text with `LIKE` escapes kept.
    Str(String, String),
    Lit(Lit),
    Sym(&'static str),
}

/// A token and the character offset it starts at.
#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: usize,
}

fn string_literal(chars: &[char], i: &mut usize) -> Result<Tok, SimError> {
    let (mut text, mut like) = (String::new(), String::new());
    *i += 1;
    loop {
        match chars.get(*i) {
            None => return Err(SimError::malformed_query("unterminated string literal")),
            Some('\\') => {
                let escaped = chars.get(*i + 1).copied().unwrap_or('\\');
                let plain = match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                };
                text.push(plain);
                if matches!(escaped, '%' | '_' | '\\') {
                    like.push('\\');
                }
                like.push(plain);
                *i += 2;
            }
            Some('\'') => {
                *i += 1;
                return Ok(Tok::Str(text, like));
            }
            Some(ch) => {
                text.push(*ch);
                like.push(*ch);
                *i += 1;
            }
        }
    }
}

fn symbol(chars: &[char], i: &mut usize) -> Result<Tok, SimError> {
    let two: String = chars[*i..chars.len().min(*i + 2)].iter().collect();
    let sym = match two.as_str() {
        "!=" | "<>" => "!=",
        "<=" => "<=",
        ">=" => ">=",
        _ => match chars[*i] {
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            c => {
                return Err(SimError::malformed_query(format!(
                    "unexpected character '{c}'"
                )));
            }
        },
    };
    *i += if ["!=", "<>", "<=", ">="].contains(&two.as_str()) {
        2
    } else {
        1
    };
    Ok(Tok::Sym(sym))
}

fn tokenize(q: &str) -> Result<Vec<Token>, SimError> {
    let chars: Vec<char> = q.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i;
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '\'' {
            string_literal(&chars, &mut i)?
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ":.+-".contains(chars[i]))
            {
                i += 1;
            }
            Tok::Lit(literal(&chars[at..i].iter().collect::<String>())?)
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            // `LAST_N_DAYS:7` and its kin are one word.
            if chars.get(i) == Some(&':') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                i += 1;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
            }
            Tok::Word(chars[at..i].iter().collect())
        } else {
            symbol(&chars, &mut i)?
        };
        toks.push(Token { tok, at });
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

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// A date literal (`TODAY`, `THIS_WEEK`, `LAST_N_DAYS:7`, …) as a range of instants, weeks
/// starting on Sunday and days in GMT.
pub(crate) fn date_literal(word: &str, today: NaiveDate) -> Option<Lit> {
    let upper = word.to_ascii_uppercase();
    let range =
        |from: NaiveDate, to: NaiveDate| Lit::Range(midnight(from), midnight(to), upper.clone());
    let days = |from: i64, to: i64| range(today + Duration::days(from), today + Duration::days(to));
    let week_start = -(i64::from(today.weekday().num_days_from_sunday()));
    let month_start = today.with_day(1)?;
    let next_month = (month_start + Duration::days(32)).with_day(1)?;
    let last_month = (month_start - Duration::days(1)).with_day(1)?;
    if let Some((name, n)) = upper.split_once(':') {
        let n: i64 = n.parse().ok()?;
        return match name {
            "LAST_N_DAYS" => Some(days(-n, 1)),
            "NEXT_N_DAYS" => Some(days(1, n + 1)),
            _ => None,
        };
    }
    Some(match upper.as_str() {
        "TODAY" => days(0, 1),
        "YESTERDAY" => days(-1, 0),
        "TOMORROW" => days(1, 2),
        "THIS_WEEK" => days(week_start, week_start + 7),
        "LAST_WEEK" => days(week_start - 7, week_start),
        "NEXT_WEEK" => days(week_start + 7, week_start + 14),
        "THIS_MONTH" => range(month_start, next_month),
        "LAST_MONTH" => range(last_month, month_start),
        _ => return None,
    })
}

/// How names resolve: as one user sees the schema, or (for rules) every field.
enum Resolver<'a> {
    User(&'a Schema, &'a SalesforceId),
    All,
}

struct Parser<'a> {
    query: &'a str,
    toks: Vec<Token>,
    pos: usize,
    object: Arc<ObjectDef>,
    resolver: Resolver<'a>,
    today: NaiveDate,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
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

    fn expect_sym(&mut self, s: &str) -> Result<(), SimError> {
        if self.sym(s) {
            Ok(())
        } else {
            Err(SimError::malformed_query(format!("expected {s}")))
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

    /// Where the token at `pos` sits, as Salesforce echoes it: the line, a caret, the row and
    /// column.
    fn position(&self, pos: usize) -> String {
        let at = self.toks.get(pos).map_or(0, |t| t.at);
        let before: String = self.query.chars().take(at).collect();
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let col = before[line_start..].chars().count() + 1;
        let line = self.query.lines().nth(row - 1).unwrap_or(self.query);
        format!(
            "\n{line}\n{}^\nERROR at Row:{row}:Column:{col}\n",
            " ".repeat(col - 1)
        )
    }

    fn field(&mut self) -> Result<String, SimError> {
        let pos = self.pos;
        let name = self.word()?;
        let found = match self.resolver {
            Resolver::User(schema, user) => schema.visible_field(user, &self.object, &name),
            Resolver::All => self.object.field(&name),
        };
        found
            .map(|f| f.name.clone())
            .ok_or_else(|| SimError::invalid_column(&self.object.name, &name, &self.position(pos)))
    }

    fn lit(&mut self) -> Result<Lit, SimError> {
        match self.next() {
            Some(Tok::Str(s, _)) => Ok(Lit::Str(s)),
            Some(Tok::Lit(l)) => Ok(l),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Word(w)) => date_literal(&w, self.today)
                .ok_or_else(|| SimError::malformed_query(format!("unknown value {w}"))),
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
            self.expect_sym(")")?;
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
            return match self.next() {
                Some(Tok::Str(_, pattern)) => Ok(Cond::Like(field, pattern)),
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
        self.expect_sym("(")?;
        let mut items = vec![self.lit()?];
        while self.sym(",") {
            items.push(self.lit()?);
        }
        self.expect_sym(")")?;
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

    /// The select list: fields, `COUNT()` or `COUNT(field)`.
    fn select(&mut self) -> Result<(Vec<String>, Option<Aggregate>), SimError> {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("COUNT")) {
            self.pos += 1;
            self.expect_sym("(")?;
            if self.sym(")") {
                return Ok((Vec::new(), Some(Aggregate::Rows)));
            }
            let field = self.field()?;
            self.expect_sym(")")?;
            return Ok((Vec::new(), Some(Aggregate::Field(field))));
        }
        let mut fields = Vec::new();
        loop {
            let f = self.field()?;
            if !fields.contains(&f) {
                fields.push(f);
            }
            if !self.sym(",") {
                return Ok((fields, None));
            }
        }
    }

    fn scope(&mut self) -> Result<Scope, SimError> {
        if !self.keyword("USING") {
            return Ok(Scope::Everything);
        }
        self.expect_keyword("SCOPE")?;
        match self.word()?.to_ascii_lowercase().as_str() {
            "everything" => Ok(Scope::Everything),
            "mine" => Ok(Scope::Mine),
            other => Err(SimError::malformed_query(format!(
                "unsupported scope {other}"
            ))),
        }
    }

    fn order_by(&mut self) -> Result<Vec<OrderKey>, SimError> {
        let mut order = Vec::new();
        if !self.keyword("ORDER") {
            return Ok(order);
        }
        self.expect_keyword("BY")?;
        loop {
            let field = self.field()?;
            let descending = if self.keyword("DESC") {
                true
            } else {
                self.keyword("ASC");
                false
            };
            let mut nulls_last = descending;
            if self.keyword("NULLS") {
                nulls_last = if self.keyword("LAST") {
                    true
                } else {
                    self.expect_keyword("FIRST")?;
                    false
                };
            }
            order.push(OrderKey {
                field,
                descending,
                nulls_last,
            });
            if !self.sym(",") {
                return Ok(order);
            }
        }
    }

    fn optional_number(&mut self, kw: &str) -> Result<Option<usize>, SimError> {
        if self.keyword(kw) {
            self.number().map(Some)
        } else {
            Ok(None)
        }
    }

    fn end(&self) -> Result<(), SimError> {
        match self.peek() {
            Some(t) => Err(SimError::malformed_query(format!("unexpected token {t:?}"))),
            None => Ok(()),
        }
    }
}

/// Parses a query as `user` sees the schema: unknown and hidden names are `INVALID_FIELD`, an
/// unknown object is `INVALID_TYPE`.
pub(crate) fn parse(q: &str, schema: &Schema, user: &SalesforceId) -> Result<Query, SimError> {
    let toks = tokenize(q)?;
    // Find FROM first so fields can be resolved against the object.
    let from_at = toks
        .iter()
        .position(|t| matches!(&t.tok, Tok::Word(w) if w.eq_ignore_ascii_case("FROM")))
        .ok_or_else(|| SimError::malformed_query("expected FROM"))?;
    let object_name = match toks.get(from_at + 1).map(|t| &t.tok) {
        Some(Tok::Word(w)) => w.clone(),
        _ => return Err(SimError::malformed_query("expected an object after FROM")),
    };
    let object = schema
        .object(&object_name)
        .filter(|o| o.queryable)
        .ok_or_else(|| SimError::invalid_type(&object_name))?;
    let mut p = Parser {
        query: q,
        toks,
        pos: 0,
        object: object.clone(),
        resolver: Resolver::User(schema, user),
        today: Utc::now().date_naive(),
    };
    p.expect_keyword("SELECT")?;
    let (fields, aggregate) = p.select()?;
    p.expect_keyword("FROM")?;
    p.pos += 1;
    let scope = p.scope()?;
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let order = p.order_by()?;
    let limit = p.optional_number("LIMIT")?;
    let offset = p.optional_number("OFFSET")?;
    p.end()?;
    Ok(Query {
        fields,
        aggregate,
        object,
        scope,
        filter,
        order,
        limit,
        offset,
    })
}

/// Parses a `WHERE` condition over every field of `object` (validation rules, list views).
pub(crate) fn parse_condition(text: &str, object: &Arc<ObjectDef>) -> Result<Cond, SimError> {
    let mut p = Parser {
        query: text,
        toks: tokenize(text)?,
        pos: 0,
        object: object.clone(),
        resolver: Resolver::All,
        today: Utc::now().date_naive(),
    };
    let cond = p.or()?;
    p.end()?;
    Ok(cond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::standard::standard_objects;

    fn schema() -> Schema {
        Schema::new(standard_objects(Some("Sfsync_Id__c")))
    }

    fn user() -> SalesforceId {
        SalesforceId::mint("005", "5g", 1)
    }

    #[test]
    fn a_field_list_where_and_order_parse() {
        let q = parse(
            "select id, Name FROM account WHERE Name != null ORDER BY Name DESC, Id LIMIT 5",
            &schema(),
            &user(),
        )
        .unwrap();
        assert_eq!(q.fields, vec!["Id".to_string(), "Name".to_string()]);
        assert_eq!(q.object.name, "Account");
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.order.len(), 2);
    }

    #[test]
    fn unknown_columns_and_objects_are_refused_with_salesforce_codes() {
        let (s, u) = (schema(), user());
        let err = parse("SELECT Foo FROM Account", &s, &u).unwrap_err();
        assert_eq!(err.code, "INVALID_FIELD");
        assert!(
            err.message.starts_with(
                "\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Account'."
            ),
            "{}",
            err.message
        );
        assert_eq!(
            parse("SELECT Id FROM Widget", &s, &u).unwrap_err().code,
            "INVALID_TYPE"
        );
        assert_eq!(
            parse("SELECT Id FROM Account WHERE", &s, &u)
                .unwrap_err()
                .code,
            "MALFORMED_QUERY"
        );
        assert!(parse("SELECT Id, Sfsync_Id__c FROM Account", &s, &u).is_ok());
        assert!(parse("SELECT Id, Other__c FROM Account", &s, &u).is_err());
    }

    #[test]
    fn count_scope_and_offset_parse() {
        let q = parse(
            "SELECT COUNT() FROM Contact USING SCOPE mine WHERE IsDeleted = false LIMIT 10 OFFSET 2",
            &schema(),
            &user(),
        )
        .unwrap();
        assert_eq!(q.aggregate, Some(Aggregate::Rows));
        assert_eq!(q.scope, Scope::Mine);
        assert_eq!(q.offset, Some(2));
    }

    #[test]
    fn this_week_starts_on_sunday() {
        let wednesday = NaiveDate::from_ymd_opt(2024, 5, 15).unwrap();
        let Some(Lit::Range(from, to, _)) = date_literal("THIS_WEEK", wednesday) else {
            panic!("a range")
        };
        assert_eq!(from.date_naive().to_string(), "2024-05-12");
        assert_eq!(to.date_naive().to_string(), "2024-05-19");
        let Some(Lit::Range(from, to, _)) = date_literal("last_n_days:2", wednesday) else {
            panic!("a range")
        };
        assert_eq!(
            (from.date_naive().to_string(), to.date_naive().to_string()),
            ("2024-05-13".into(), "2024-05-16".into())
        );
    }
}

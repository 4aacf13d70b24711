//! SCIM filters (RFC 7644 §3.4.2.2) and attribute paths (§3.5.2, for PATCH), read from hostile text: a
//! filter longer than [`MAX_LENGTH`], with more than [`MAX_TERMS`] comparisons or nested deeper than
//! [`MAX_DEPTH`] is refused before anything is evaluated. A filter is evaluated against a resource as JSON,
//! the way the RFC says: attribute names and operators in any case, a multi-valued attribute matching when
//! any of its values does, strings compared in any case unless the attribute is case-exact.

use serde_json::Value;
use std::fmt;

/// The longest filter read, in characters.
pub const MAX_LENGTH: usize = 2_000;
/// The most comparisons (and `pr` tests) one filter holds.
pub const MAX_TERMS: usize = 64;
/// The deepest nesting of parentheses, `not` and value filters.
pub const MAX_DEPTH: usize = 16;

/// A filter, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`.
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    /// `path pr`: the attribute has a value (not null, not empty).
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `path[filter]`: one of the multi-valued attribute's values matches `filter`, whose paths are
    /// that value's sub-attributes.
    Values {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// `[schema URI ":"] attribute ["." sub-attribute]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, when the path names one (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
    pub schema: Option<String>,
    pub attribute: String,
    pub sub_attribute: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A comparison's value.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

/// A PATCH operation's `path`: an attribute, or the values of a multi-valued one a filter picks, with
/// perhaps a sub-attribute of them (`emails[type eq "work"].value`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub path: AttrPath,
    pub filter: Option<Filter>,
    /// After a value filter: the sub-attribute of the values it picks.
    pub sub_attribute: Option<String>,
}

/// Why a filter or a path could not be read; the text says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

impl Filter {
    /// Reads a filter.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut parser = Parser::new(text)?;
        let filter = parser.filter(0)?;
        parser.end()?;
        Ok(filter)
    }

    /// Whether `resource` matches; `case_exact` says which attributes compare strings exactly.
    pub fn matches(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource, case_exact) && b.matches(resource, case_exact),
            Filter::Or(a, b) => a.matches(resource, case_exact) || b.matches(resource, case_exact),
            Filter::Not(f) => !f.matches(resource, case_exact),
            Filter::Present(path) => values_at(resource, path).iter().any(|v| is_present(v)),
            Filter::Compare { path, op, value } => {
                let exact = case_exact(path);
                values_at(resource, path)
                    .iter()
                    .any(|found| compare(found, *op, value, exact))
            }
            Filter::Values { path, filter } => {
                let whole = AttrPath {
                    sub_attribute: None,
                    ..path.clone()
                };
                values_at(resource, &whole).iter().any(|item| {
                    let inner = |p: &AttrPath| {
                        case_exact(&AttrPath {
                            schema: path.schema.clone(),
                            attribute: path.attribute.clone(),
                            sub_attribute: Some(p.attribute.clone()),
                        })
                    };
                    filter.matches(item, &inner)
                })
            }
        }
    }
}

impl AttrPath {
    /// Reads a path alone, as `attributes` and `excludedAttributes` list them.
    pub fn parse(text: &str) -> Result<AttrPath, FilterError> {
        let mut parser = Parser::new(text)?;
        let path = parser.attr_path()?;
        parser.end()?;
        Ok(path)
    }
}

impl PatchPath {
    /// Reads a PATCH operation's `path`.
    pub fn parse(text: &str) -> Result<PatchPath, FilterError> {
        let mut parser = Parser::new(text)?;
        let path = parser.attr_path()?;
        let (filter, sub_attribute) = if parser.eat_char('[') {
            let filter = parser.filter(1)?;
            parser.expect_char(']')?;
            let sub = if parser.eat_char('.') {
                Some(parser.name()?)
            } else {
                None
            };
            (Some(filter), sub)
        } else {
            (None, None)
        };
        parser.end()?;
        Ok(PatchPath {
            path,
            filter,
            sub_attribute,
        })
    }
}

/// The values at `path` in `resource`: none, one, or each of a multi-valued attribute's (and of its
/// values' sub-attribute). Names are matched in any case.
fn values_at<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let scope = match &path.schema {
        Some(urn) => match field(resource, urn) {
            Some(extension) => extension,
            // A core schema's URN names the resource itself.
            None if urn
                .to_ascii_lowercase()
                .starts_with("urn:ietf:params:scim:schemas:core:") =>
            {
                resource
            }
            None => return Vec::new(),
        },
        None => resource,
    };
    let Some(value) = field(scope, &path.attribute) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub_attribute {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|item| field(item, sub))
            .collect(),
    }
}

/// An object's key matching `name` in any case (the exact spelling first).
pub(crate) fn key_of(object: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_string());
    }
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

/// A member of an object, its name in any case.
pub(crate) fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let object = object.as_object()?;
    object.get(&key_of(object, name)?)
}

/// A boolean sent as text (`"True"`, `"false"`), as some identity providers send them.
pub(crate) fn text_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(found: &Value, op: CompareOp, wanted: &CompValue, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (found, wanted) {
        (Value::Null, CompValue::Null) => Some(Ordering::Equal),
        (Value::Bool(a), CompValue::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), CompValue::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Value::String(a), CompValue::String(b)) => {
            let (a, b) = fold(a, b, exact);
            match op {
                CompareOp::Co => return a.contains(b.as_str()),
                CompareOp::Sw => return a.starts_with(b.as_str()),
                CompareOp::Ew => return a.ends_with(b.as_str()),
                _ => Some(a.cmp(&b)),
            }
        }
        // A boolean sent as text ("True", "false"), as some identity providers store them.
        (Value::String(a), CompValue::Bool(b)) => text_bool(a).map(|a| a.cmp(b)),
        _ => None,
    };
    match (op, ordering) {
        (CompareOp::Ne, None) => !matches!(wanted, CompValue::Null) || !found.is_null(),
        (_, None) => false,
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        // Substring operators on anything but strings match nothing.
        (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, Some(_)) => false,
    }
}

/// Both strings as compared: as they are when case-exact, else in lower case.
fn fold(a: &str, b: &str, exact: bool) -> (String, String) {
    if exact {
        (a.to_string(), b.to_string())
    } else {
        (a.to_lowercase(), b.to_lowercase())
    }
}

/// Reads a filter's text a character at a time, counting what a filter may hold.
struct Parser<'a> {
    text: &'a str,
    at: usize,
    terms: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, FilterError> {
        if text.chars().count() > MAX_LENGTH {
            return Err(FilterError(format!(
                "a filter is at most {MAX_LENGTH} characters"
            )));
        }
        if text.contains('\0') {
            return Err(FilterError("a filter holds no NUL character".into()));
        }
        Ok(Parser {
            text,
            at: 0,
            terms: 0,
        })
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn error<T>(&self, what: &str) -> Result<T, FilterError> {
        Err(FilterError(format!(
            "{what} at character {} of the filter",
            self.text[..self.at].chars().count() + 1
        )))
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start_matches(' ').len();
    }

    fn eat_char(&mut self, c: char) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect_char(&mut self, c: char) -> Result<(), FilterError> {
        if self.eat_char(c) {
            Ok(())
        } else {
            self.error(&format!("expected `{c}`"))
        }
    }

    fn end(&mut self) -> Result<(), FilterError> {
        self.skip_spaces();
        if self.rest().is_empty() {
            Ok(())
        } else {
            self.error("unexpected text")
        }
    }

    /// The next word (letters, digits and `_-:.$` ), without taking it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest().trim_start_matches(' ');
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-:.$".contains(c)))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Takes `keyword` (in any case) when it is the next word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let word = self.peek_word();
        if word.eq_ignore_ascii_case(keyword) {
            self.skip_spaces();
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// `FILTER`: or-terms of and-terms of factors.
    fn filter(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return self.error(&format!("nested deeper than {MAX_DEPTH}"));
        }
        let mut left = self.and_term(depth)?;
        while self.eat_keyword("or") {
            let right = self.and_term(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_term(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.factor(depth)?;
        while self.eat_keyword("and") {
            let right = self.factor(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if self.eat_keyword("not") {
            self.expect_char('(')?;
            let inner = self.filter(depth + 1)?;
            self.expect_char(')')?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat_char('(') {
            let inner = self.filter(depth + 1)?;
            self.expect_char(')')?;
            return Ok(inner);
        }
        let path = self.attr_path()?;
        if self.eat_char('[') {
            if path.sub_attribute.is_some() {
                return self.error("a value filter follows an attribute, not a sub-attribute");
            }
            let filter = self.filter(depth + 1)?;
            self.expect_char(']')?;
            return Ok(Filter::Values {
                path,
                filter: Box::new(filter),
            });
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return self.error(&format!("more than {MAX_TERMS} comparisons"));
        }
        if self.eat_keyword("pr") {
            return Ok(Filter::Present(path));
        }
        let op = self.compare_op()?;
        let value = self.comp_value()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn compare_op(&mut self) -> Result<CompareOp, FilterError> {
        let word = self.peek_word().to_ascii_lowercase();
        let op = match word.as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "lt" => CompareOp::Lt,
            "ge" => CompareOp::Ge,
            "le" => CompareOp::Le,
            _ => {
                return self.error("expected an operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)")
            }
        };
        self.eat_keyword(&word);
        Ok(op)
    }

    fn comp_value(&mut self) -> Result<CompValue, FilterError> {
        self.skip_spaces();
        if self.rest().starts_with('"') {
            return self.string().map(CompValue::String);
        }
        for (word, value) in [
            ("true", CompValue::Bool(true)),
            ("false", CompValue::Bool(false)),
            ("null", CompValue::Null),
        ] {
            if self.eat_keyword(word) {
                return Ok(value);
            }
        }
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(rest.len());
        match rest[..end].parse::<f64>() {
            Ok(n) if end > 0 && n.is_finite() => {
                self.at += end;
                Ok(CompValue::Number(n))
            }
            _ => self.error("expected a value (a \"string\", a number, true, false or null)"),
        }
    }

    /// A JSON string.
    fn string(&mut self) -> Result<String, FilterError> {
        let rest = self.rest();
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    let literal = &rest[..=i];
                    return match serde_json::from_str::<String>(literal) {
                        Ok(s) => {
                            self.at += i + 1;
                            Ok(s)
                        }
                        Err(_) => self.error("a string that is not valid JSON"),
                    };
                }
                _ => {}
            }
        }
        self.error("a string without its closing quote")
    }

    /// An attribute name: a letter, then letters, digits, `_`, `-` and `$` (or `$ref`, RFC 7643's
    /// reference sub-attribute).
    fn name(&mut self) -> Result<String, FilterError> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-$".contains(c)))
            .unwrap_or(rest.len());
        if end == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '$') {
            return self.error("expected an attribute name");
        }
        self.at += end;
        Ok(rest[..end].to_string())
    }

    /// `[URN ":"] name ["." name]`; a URN is told by its `urn:` start, and ends at its last `:`.
    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        self.skip_spaces();
        let rest = self.rest();
        let schema = if rest
            .get(..4)
            .is_some_and(|start| start.eq_ignore_ascii_case("urn:"))
        {
            let end = rest.find([' ', '[', '(', ')', ']']).unwrap_or(rest.len());
            let word = &rest[..end];
            // The attribute follows the URN's last `:`; a sub-attribute may follow it after a `.`.
            let Some(colon) = word.rfind(':') else {
                return self.error("a schema URN without an attribute");
            };
            let urn = word[..colon].to_string();
            self.at += colon + 1;
            Some(urn)
        } else {
            None
        };
        let attribute = self.name()?;
        let sub_attribute = if self.rest().starts_with('.') {
            self.at += 1;
            Some(self.name()?)
        } else {
            None
        };
        Ok(AttrPath {
            schema,
            attribute,
            sub_attribute,
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        write!(f, "{}", self.attribute)?;
        if let Some(sub) = &self.sub_attribute {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        };
        f.write_str(text)
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write!(f, "{}", Value::String(s.clone())),
        }
    }
}

/// Written back fully parenthesized, so that reading it again gives the same filter.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::Values { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(attribute: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            schema: None,
            attribute: attribute.into(),
            sub_attribute: sub.map(Into::into),
        }
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "u1", "externalId": "00uABC", "userName": "Ada.Lovelace@example.com", "active": true,
            "displayName": "Ada Lovelace",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [
                {"value": "ada@example.com", "type": "work", "primary": true},
                {"value": "ada@home.example", "type": "home"}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Analytical Engines"},
            "title": null
        })
    }

    fn case_exact(path: &AttrPath) -> bool {
        ["id", "externalId"].contains(&path.attribute.as_str()) && path.sub_attribute.is_none()
    }

    fn matches(filter: &str) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&user(), &case_exact)
    }

    #[test]
    fn reads_the_rfcs_examples() {
        // RFC 7644 §3.4.2.2, its list of example filters.
        for text in [
            r#"userName Eq "john""#,
            r#"Username eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            let filter = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            // Written back and read again, it is the same filter.
            assert_eq!(
                Filter::parse(&filter.to_string()).unwrap(),
                filter,
                "{text}"
            );
        }
    }

    #[test]
    fn and_binds_closer_than_or_and_not_closest() {
        let filter = Filter::parse(r#"a eq 1 or b eq 2 and not (c pr)"#).unwrap();
        let a = Filter::Compare {
            path: path("a", None),
            op: CompareOp::Eq,
            value: CompValue::Number(1.0),
        };
        let b = Filter::Compare {
            path: path("b", None),
            op: CompareOp::Eq,
            value: CompValue::Number(2.0),
        };
        let not_c = Filter::Not(Box::new(Filter::Present(path("c", None))));
        assert_eq!(
            filter,
            Filter::Or(
                Box::new(a),
                Box::new(Filter::And(Box::new(b), Box::new(not_c)))
            )
        );
    }

    #[test]
    fn matches_as_the_rfc_says() {
        for (filter, expected) in [
            // userName is not case-exact; id and externalId are.
            (r#"userName eq "ada.lovelace@EXAMPLE.com""#, true),
            (r#"USERNAME EQ "ada.lovelace@example.com""#, true),
            (r#"externalId eq "00uabc""#, false),
            (r#"externalId eq "00uABC""#, true),
            (r#"id eq "u1""#, true),
            (r#"userName ne "someone""#, true),
            (r#"userName sw "ada.""#, true),
            (r#"userName ew "@example.com""#, true),
            (r#"displayName co "love""#, true),
            // A multi-valued attribute matches when any value does.
            (r#"emails.value eq "ada@home.example""#, true),
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (r#"emails[not (primary eq true)]"#, true),
            ("title pr", false),
            ("name.givenName pr", true),
            ("active eq true", true),
            ("active eq false", false),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "analytical""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "ada""#,
                true,
            ),
            (
                r#"userName eq "x" or (displayName sw "Ada" and not (active eq false))"#,
                true,
            ),
            (r#"userName gt "a""#, true),
            (r#"userName lt "a""#, false),
            // A number compared with a string matches nothing.
            ("userName eq 1", false),
            ("nothing eq null", false),
        ] {
            assert_eq!(matches(filter), expected, "{filter}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_filter_with_where() {
        for (text, says) in [
            ("", "expected an attribute name"),
            ("userName", "expected an operator"),
            (r#"userName eq"#, "expected a value"),
            (r#"userName eq "open"#, "closing quote"),
            (r#"userName eq "a" and"#, "expected an attribute name"),
            (r#"(userName eq "a""#, "expected `)`"),
            (r#"userName eq "a")"#, "unexpected text"),
            (r#"userName like "a""#, "expected an operator"),
            (r#"emails.value[type eq "work"]"#, "not a sub-attribute"),
            (r#"userName eq "\q""#, "not valid JSON"),
            ("userName eq 1e999", "expected a value"),
            ("a\0 pr", "NUL"),
            ("urñ:x pr", "expected an operator"),
        ] {
            let error = Filter::parse(text).unwrap_err();
            assert!(error.0.contains(says), "{text:?}: {error}");
        }
    }

    #[test]
    fn refuses_filters_past_their_limits_before_reading_on() {
        let long = format!(r#"userName eq "{}""#, "x".repeat(MAX_LENGTH));
        assert!(Filter::parse(&long).unwrap_err().0.contains("at most"));
        let many = vec!["a pr"; MAX_TERMS + 1].join(" or ");
        assert!(Filter::parse(&many).unwrap_err().0.contains("comparisons"));
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(Filter::parse(&deep).unwrap_err().0.contains("deeper"));
        let within = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Filter::parse(&within).is_ok());
        let enough = vec!["a pr"; MAX_TERMS].join(" or ");
        assert!(Filter::parse(&enough).is_ok());
    }

    #[test]
    fn reads_patch_paths_as_identity_providers_send_them() {
        let members =
            PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#)
                .unwrap();
        assert_eq!(members.path, path("members", None));
        assert!(members.filter.is_some() && members.sub_attribute.is_none());
        let work = PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(work.sub_attribute.as_deref(), Some("value"));
        let reference = PatchPath::parse("members.$ref").unwrap();
        assert_eq!(reference.path, path("members", Some("$ref")));
        let plain = PatchPath::parse("name.familyName").unwrap();
        assert_eq!(plain.path, path("name", Some("familyName")));
        let extension = PatchPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            extension.path.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(extension.path.attribute, "manager");
        assert_eq!(extension.path.sub_attribute.as_deref(), Some("value"));
        assert!(PatchPath::parse("members[value eq").is_err());
        assert!(PatchPath::parse("members]").is_err());
    }

    proptest::proptest! {
        /// Any text is read or refused, never a panic; what is read reads back the same.
        #[test]
        fn any_text_is_read_or_refused(text in "[a-zA-Z ()\\[\\]\".:0-9\\\\]{0,80}") {
            if let Ok(filter) = Filter::parse(&text) {
                proptest::prop_assert_eq!(Filter::parse(&filter.to_string()).unwrap(), filter);
            }
        }

        /// Nor any Unicode text, as paths of PATCH operations too.
        #[test]
        fn any_unicode_is_read_or_refused(text in "(urn:|u|\\PC){0,40}") {
            let _ = Filter::parse(&text);
            let _ = PatchPath::parse(&text);
        }
    }
}

//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource as JSON, read as the big identity providers send
//! it: operations in any case (Entra's `Replace`, `Add`), booleans as text (`"False"`), paths with a value
//! filter (`members[value eq "…"]`, `emails[type eq "work"].value`), and path-less operations whose value
//! names the attributes (`{"op": "replace", "value": {"active": false}}`). Attribute names are matched in
//! any case; an attribute set for the first time keeps the spelling given.

use super::filter::{key_of, text_bool, AttrPath, Filter, PatchPath};
use serde_json::{Map, Value};

/// The most operations one PATCH request holds.
pub const MAX_OPERATIONS: usize = 1_000;

/// Why a PATCH was refused, with its SCIM `scimType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// `invalidSyntax`: not a PATCH request, or an operation that is not add, replace or remove.
    #[error("{0}")]
    InvalidSyntax(String),
    /// `invalidPath`: a path that cannot be read.
    #[error("{0}")]
    InvalidPath(String),
    /// `noTarget`: a value filter that picks nothing to replace.
    #[error("{0}")]
    NoTarget(String),
    /// `invalidValue`: a value that cannot go where it is put.
    #[error("{0}")]
    InvalidValue(String),
}

impl PatchError {
    /// The SCIM error type (`scimType`) the refusal answers.
    pub fn scim_type(&self) -> &'static str {
        match self {
            PatchError::InvalidSyntax(_) => "invalidSyntax",
            PatchError::InvalidPath(_) => "invalidPath",
            PatchError::NoTarget(_) => "noTarget",
            PatchError::InvalidValue(_) => "invalidValue",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies a PATCH request (`{"schemas": [...PatchOp], "Operations": [...]}`) to `resource`, every
/// operation or none: on an error `resource` is as it was.
pub fn apply(resource: &mut Value, request: &Value) -> Result<(), PatchError> {
    let operations = request
        .get("Operations")
        .or_else(|| request.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| PatchError::InvalidSyntax("a PATCH request has `Operations`".into()))?;
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError::InvalidSyntax(format!(
            "a PATCH request holds at most {MAX_OPERATIONS} operations"
        )));
    }
    let mut patched = resource.clone();
    for (i, operation) in operations.iter().enumerate() {
        apply_one(&mut patched, operation).map_err(|e| at_operation(e, i))?;
    }
    *resource = patched;
    Ok(())
}

/// The error, saying which operation it is about.
fn at_operation(error: PatchError, i: usize) -> PatchError {
    let say = |text: String| format!("operation {}: {text}", i + 1);
    match error {
        PatchError::InvalidSyntax(t) => PatchError::InvalidSyntax(say(t)),
        PatchError::InvalidPath(t) => PatchError::InvalidPath(say(t)),
        PatchError::NoTarget(t) => PatchError::NoTarget(say(t)),
        PatchError::InvalidValue(t) => PatchError::InvalidValue(say(t)),
    }
}

fn apply_one(resource: &mut Value, operation: &Value) -> Result<(), PatchError> {
    let op = match operation
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        _ => {
            return Err(PatchError::InvalidSyntax(
                "`op` is add, replace or remove".into(),
            ))
        }
    };
    let value = operation.get("value");
    let path = operation
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.trim().is_empty());
    match (path, op) {
        (None, Op::Remove) => Err(PatchError::NoTarget("a remove names its `path`".into())),
        (None, _) => {
            // Path-less: the value's members name the attributes (some with a path of their own).
            let Some(Value::Object(fields)) = value else {
                return Err(PatchError::InvalidValue(
                    "an add or replace without a path takes an object".into(),
                ));
            };
            for (name, value) in fields {
                let path = PatchPath::parse(name).map_err(|e| PatchError::InvalidPath(e.0))?;
                set(resource, &path, op, Some(value))?;
            }
            Ok(())
        }
        (Some(path), _) => {
            let path = PatchPath::parse(path).map_err(|e| PatchError::InvalidPath(e.0))?;
            if op != Op::Remove && value.is_none() {
                return Err(PatchError::InvalidValue(
                    "an add or replace takes a `value`".into(),
                ));
            }
            set(resource, &path, op, value)
        }
    }
}

/// Applies one operation at `path`.
fn set(
    resource: &mut Value,
    path: &PatchPath,
    op: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let value = value.map(|v| as_boolean(&path.path, v));
    if let Some(extension) = whole_extension(resource, path) {
        // The path names an extension itself (`urn:…:enterprise:2.0:User`): its object is the
        // resource's attribute of that name.
        let whole = AttrPath {
            schema: None,
            attribute: extension,
            sub_attribute: None,
        };
        let object = resource
            .as_object_mut()
            .ok_or_else(|| PatchError::InvalidValue("the resource is not an object".into()))?;
        return set_attribute(object, &whole, op, value);
    }
    let scope = scope_of(resource, &path.path, op != Op::Remove)?;
    let Some(scope) = scope else {
        return Ok(()); // Removing from an extension the resource does not have.
    };
    match &path.filter {
        None => set_attribute(scope, &path.path, op, value),
        Some(filter) => set_filtered(scope, path, filter, op, value),
    }
}

/// The extension schema a path names as a whole (which reads as a schema and an attribute, `urn:…:2.0`
/// and `User`): the enterprise extension, or one the resource lists in its `schemas`.
fn whole_extension(resource: &Value, path: &PatchPath) -> Option<String> {
    let schema = path.path.schema.as_deref()?;
    if path.filter.is_some() || path.path.sub_attribute.is_some() || path.sub_attribute.is_some() {
        return None;
    }
    let urn = format!("{schema}:{}", path.path.attribute);
    let listed = resource
        .get("schemas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    std::iter::once(super::discovery::ENTERPRISE_SCHEMA)
        .chain(listed)
        .find(|known| known.eq_ignore_ascii_case(&urn))
        .map(str::to_string)
}

/// The object a path's attribute lives in: the resource, or its extension's object (made when adding).
fn scope_of<'a>(
    resource: &'a mut Value,
    path: &AttrPath,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, PatchError> {
    let object = resource
        .as_object_mut()
        .ok_or_else(|| PatchError::InvalidValue("the resource is not an object".into()))?;
    let Some(urn) = &path.schema else {
        return Ok(Some(object));
    };
    if urn
        .to_ascii_lowercase()
        .starts_with("urn:ietf:params:scim:schemas:core:")
    {
        return Ok(Some(object));
    }
    let key = key_of(object, urn).unwrap_or_else(|| urn.clone());
    if !object.contains_key(&key) {
        if !create {
            return Ok(None);
        }
        object.insert(key.clone(), Value::Object(Map::new()));
    }
    match object.get_mut(&key) {
        Some(Value::Object(extension)) => Ok(Some(extension)),
        _ => Err(PatchError::InvalidValue(format!("{urn} is not an object"))),
    }
}

/// `active` and `primary` given as text (`"False"`, as Entra sends them) are booleans.
fn as_boolean(path: &AttrPath, value: &Value) -> Value {
    let boolean = |name: &str| {
        ["active", "primary"]
            .iter()
            .any(|b| b.eq_ignore_ascii_case(name))
    };
    let leaf = path.sub_attribute.as_deref().unwrap_or(&path.attribute);
    match value {
        Value::String(text) if boolean(leaf) => {
            text_bool(text).map_or_else(|| value.clone(), Value::Bool)
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let inner = AttrPath {
                        schema: None,
                        attribute: k.clone(),
                        sub_attribute: None,
                    };
                    (k.clone(), as_boolean(&inner, v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Value::Object(_) => as_boolean(
                        &AttrPath {
                            sub_attribute: None,
                            ..path.clone()
                        },
                        item,
                    ),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An operation on an attribute (or a sub-attribute of it), no filter.
fn set_attribute(
    scope: &mut Map<String, Value>,
    path: &AttrPath,
    op: Op,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let key = key_of(scope, &path.attribute).unwrap_or_else(|| path.attribute.clone());
    if let Some(sub) = &path.sub_attribute {
        // `name.givenName`: a sub-attribute of a complex attribute (of each value, if multi-valued).
        if op == Op::Remove {
            match scope.get_mut(&key) {
                Some(Value::Object(complex)) => {
                    if let Some(k) = key_of(complex, sub) {
                        complex.remove(&k);
                    }
                }
                Some(Value::Array(items)) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(k) = key_of(item, sub) {
                            item.remove(&k);
                        }
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        let value = value.unwrap_or(Value::Null);
        let complex = scope
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(complex) = complex else {
            return Err(PatchError::InvalidValue(format!(
                "{key} has no sub-attribute {sub}"
            )));
        };
        let sub_key = key_of(complex, sub).unwrap_or_else(|| sub.clone());
        complex.insert(sub_key, value);
        return Ok(());
    }
    match op {
        Op::Remove => {
            match (scope.get_mut(&key), &value) {
                // Entra removes members by value: `{"path": "members", "value": [{"value": "id"}]}`.
                (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                    items.retain(|item| !gone.iter().any(|g| same_value(item, g)));
                }
                _ => {
                    scope.remove(&key);
                }
            }
            Ok(())
        }
        Op::Add | Op::Replace => {
            let value = value.unwrap_or(Value::Null);
            match (scope.get_mut(&key), value) {
                // Adding to a multi-valued attribute appends what it does not hold yet.
                (Some(Value::Array(items)), Value::Array(new)) if op == Op::Add => {
                    for item in new {
                        if !items.iter().any(|i| same_value(i, &item)) {
                            items.push(item);
                        }
                    }
                }
                (Some(Value::Array(items)), new @ Value::Object(_)) if op == Op::Add => {
                    if !items.iter().any(|i| same_value(i, &new)) {
                        items.push(new);
                    }
                }
                // A complex attribute takes the sub-attributes given, keeping the others.
                (Some(Value::Object(complex)), Value::Object(new)) => {
                    for (k, v) in new {
                        let k = key_of(complex, &k).unwrap_or(k);
                        complex.insert(k, v);
                    }
                }
                (_, new) => {
                    scope.insert(key, new);
                }
            }
            Ok(())
        }
    }
}

/// Two values of a multi-valued attribute are the same one when their `value`s are (else when equal).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// An operation on the values of a multi-valued attribute that a filter picks.
fn set_filtered(
    scope: &mut Map<String, Value>,
    path: &PatchPath,
    filter: &Filter,
    op: Op,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let key = key_of(scope, &path.path.attribute);
    let items = match key.as_ref().and_then(|k| scope.get_mut(k)) {
        Some(Value::Array(items)) => items,
        _ if op == Op::Remove => return Ok(()),
        _ => {
            return Err(PatchError::NoTarget(format!(
                "no value of {} matches the filter",
                path.path.attribute
            )))
        }
    };
    // Inside the brackets, names are the values' own sub-attributes; `value` of a member or an email
    // is compared as it is only for members (an id).
    let members = path.path.attribute.eq_ignore_ascii_case("members");
    let exact = |p: &AttrPath| members && p.attribute.eq_ignore_ascii_case("value");
    let picked: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter.matches(item, &exact))
        .map(|(i, _)| i)
        .collect();
    if op == Op::Remove {
        match &path.sub_attribute {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !picked.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for i in &picked {
                    if let Some(item) = items[*i].as_object_mut() {
                        if let Some(k) = key_of(item, sub) {
                            item.remove(&k);
                        }
                    }
                }
            }
        }
        return Ok(());
    }
    if picked.is_empty() {
        return Err(PatchError::NoTarget(format!(
            "no value of {} matches the filter",
            path.path.attribute
        )));
    }
    let value = value.unwrap_or(Value::Null);
    for i in picked {
        let Some(item) = items[i].as_object_mut() else {
            continue;
        };
        match (&path.sub_attribute, &value) {
            (Some(sub), v) => {
                let k = key_of(item, sub).unwrap_or_else(|| sub.clone());
                item.insert(k, v.clone());
            }
            (None, Value::Object(fields)) => {
                for (k, v) in fields {
                    let k = key_of(item, k).unwrap_or_else(|| k.clone());
                    item.insert(k, v.clone());
                }
            }
            (None, _) => {
                return Err(PatchError::InvalidValue(
                    "a value filter without a sub-attribute takes an object".into(),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "u1", "userName": "ada@example.com", "active": true,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": true}]
        })
    }

    fn group() -> Value {
        json!({"id": "g1", "displayName": "Engineers", "members": [{"value": "u1"}, {"value": "u2"}]})
    }

    fn patch(resource: &Value, operations: Value) -> Result<Value, PatchError> {
        let mut patched = resource.clone();
        apply(
            &mut patched,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
        )?;
        Ok(patched)
    }

    #[test]
    fn a_path_may_name_the_enterprise_extension_as_a_whole() {
        let added = patch(
            &user(),
            json!([{"op": "add", "path": ENTERPRISE, "value": {"department": "Research"}}]),
        )
        .unwrap();
        assert_eq!(added[ENTERPRISE], json!({"department": "Research"}));
        let pathless = patch(
            &user(),
            json!([{"op": "add", "value": {ENTERPRISE: {"employeeNumber": "7"}}}]),
        )
        .unwrap();
        assert_eq!(pathless[ENTERPRISE], json!({"employeeNumber": "7"}));
        let merged = patch(
            &added,
            json!([{"op": "add", "path": ENTERPRISE, "value": {"employeeNumber": "7"}}]),
        )
        .unwrap();
        assert_eq!(
            merged[ENTERPRISE],
            json!({"department": "Research", "employeeNumber": "7"})
        );
        let removed = patch(&merged, json!([{"op": "remove", "path": ENTERPRISE}])).unwrap();
        assert!(removed.get(ENTERPRISE).is_none(), "{removed}");
        // One of its attributes is still reached inside it.
        let department = patch(
            &merged,
            json!([{"op": "remove", "path": format!("{ENTERPRISE}:department")}]),
        )
        .unwrap();
        assert_eq!(department[ENTERPRISE], json!({"employeeNumber": "7"}));
    }

    #[test]
    fn okta_deactivates_and_renames() {
        // Okta: `replace` of `active`, path-less, and of a name's parts.
        let patched = patch(
            &user(),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert_eq!(patched["active"], false);
        let patched = patch(
            &user(),
            json!([{"op": "replace", "path": "name.familyName", "value": "King"}]),
        )
        .unwrap();
        assert_eq!(
            patched["name"],
            json!({"givenName": "Ada", "familyName": "King"})
        );
    }

    #[test]
    fn okta_adds_and_removes_group_members() {
        let added = patch(
            &group(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u3", "display": "c@x"}, {"value": "u1"}]}]),
        )
        .unwrap();
        let ids: Vec<&str> = added["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["u1", "u2", "u3"],
            "a member already there is not added twice"
        );
        let removed = patch(
            &added,
            json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]),
        )
        .unwrap();
        assert_eq!(
            removed["members"],
            json!([{"value": "u1"}, {"value": "u3", "display": "c@x"}])
        );
        // Removing someone who is not a member changes nothing.
        assert_eq!(
            patch(
                &removed,
                json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}])
            )
            .unwrap(),
            removed
        );
    }

    #[test]
    fn entra_sends_capitals_text_booleans_and_filtered_paths() {
        let patched = patch(
            &user(),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada@new.example"},
                {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Engines"},
                {"op": "Replace", "value": {"name.givenName": "Augusta", "displayName": "Augusta King"}},
            ]),
        )
        .unwrap();
        assert_eq!(patched["active"], false);
        assert_eq!(patched["emails"][0]["value"], "ada@new.example");
        assert_eq!(patched["emails"][0]["primary"], true);
        assert_eq!(patched[ENTERPRISE]["department"], "Engines");
        assert_eq!(patched["name"]["givenName"], "Augusta");
        assert_eq!(patched["displayName"], "Augusta King");
        // Entra removes group members by value.
        let removed = patch(
            &group(),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}]),
        )
        .unwrap();
        assert_eq!(removed["members"], json!([{"value": "u2"}]));
    }

    #[test]
    fn names_match_in_any_case_and_keep_their_spelling() {
        let patched = patch(
            &user(),
            json!([{"op": "replace", "path": "USERNAME", "value": "ada@new.example"},
                   {"op": "add", "path": "nickName", "value": "Ada"}]),
        )
        .unwrap();
        assert_eq!(patched["userName"], "ada@new.example");
        assert!(patched.get("USERNAME").is_none());
        assert_eq!(patched["nickName"], "Ada");
    }

    #[test]
    fn refuses_with_the_scim_type_and_changes_nothing() {
        let original = user();
        for (operations, scim_type) in [
            (
                json!([{"op": "move", "path": "active", "value": true}]),
                "invalidSyntax",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x"}]),
                "noTarget",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "value": "not an object"}]),
                "invalidValue",
            ),
            (json!([{"op": "add", "path": "nickName"}]), "invalidValue"),
            // The second operation fails: the first is not kept either.
            (
                json!([{"op": "replace", "path": "active", "value": false}, {"op": "bogus"}]),
                "invalidSyntax",
            ),
        ] {
            let mut patched = original.clone();
            let request = json!({"Operations": operations});
            let error = apply(&mut patched, &request).unwrap_err();
            assert_eq!(error.scim_type(), scim_type, "{operations}: {error}");
            assert_eq!(patched, original, "{operations}");
        }
        let mut patched = original.clone();
        let error = apply(&mut patched, &json!({"schemas": []})).unwrap_err();
        assert_eq!(error.scim_type(), "invalidSyntax");
        let many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "replace", "path": "active", "value": true}))
            .collect();
        assert!(patch(&original, Value::Array(many)).is_err());
    }
}

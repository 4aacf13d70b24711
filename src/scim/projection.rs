//! Which attributes a SCIM response shows (RFC 7644 §3.9): `attributes` keeps only those named,
//! `excludedAttributes` drops them. A name may be an attribute (`name`), a sub-attribute
//! (`name.givenName`, `emails.value`: of each value of a multi-valued one), either after a schema URN
//! (`urn:…:enterprise:2.0:User:manager.value`), or an extension as a whole
//! (`urn:…:enterprise:2.0:User`). Names match in any case; `id`, `schemas` and `meta` are always shown
//! (`returned: always`).

use super::filter::{AttrPath, FilterError};
use serde_json::{Map, Value};

/// What a client asked to see.
#[derive(Debug, Default)]
pub struct Projection {
    only: Option<Vec<AttrPath>>,
    excluded: Vec<AttrPath>,
}

/// The attributes shown whatever is asked.
const ALWAYS: [&str; 3] = ["id", "schemas", "meta"];

/// A path from the resource's top, each name in lower case.
type Steps = Vec<String>;

impl Projection {
    /// Reads the two lists of names; an empty name is passed over, a malformed one refused.
    pub fn parse(
        attributes: Option<&[String]>,
        excluded_attributes: Option<&[String]>,
    ) -> Result<Self, FilterError> {
        let paths = |names: &[String]| -> Result<Vec<AttrPath>, FilterError> {
            names
                .iter()
                .map(|name| name.trim())
                .filter(|name| !name.is_empty())
                .map(AttrPath::parse)
                .collect()
        };
        Ok(Projection {
            only: attributes.map(paths).transpose()?,
            excluded: excluded_attributes
                .map(paths)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The resource as the client asked to see it.
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut object) = resource else {
            return resource;
        };
        let steps = |paths: &[AttrPath], object: &Map<String, Value>| -> Vec<Steps> {
            paths.iter().map(|path| steps_of(path, object)).collect()
        };
        let excluded = steps(&self.excluded, &object);
        for path in &excluded {
            if !is_always(&path[0]) {
                remove(&mut object, path);
            }
        }
        match &self.only {
            None => Value::Object(object),
            Some(only) => {
                let wanted = steps(only, &object);
                let kept = keep(object, &wanted, true);
                Value::Object(kept)
            }
        }
    }
}

fn is_always(name: &str) -> bool {
    ALWAYS
        .iter()
        .any(|always| always.eq_ignore_ascii_case(name))
}

/// Where `path` leads in `resource`: the extension's key when it names one (as a whole, or the object
/// its attribute lives in), then the attribute and its sub-attribute.
fn steps_of(path: &AttrPath, resource: &Map<String, Value>) -> Steps {
    let extension_key = |urn: &str| {
        resource
            .keys()
            .find(|key| key.eq_ignore_ascii_case(urn))
            .map(|key| key.to_ascii_lowercase())
    };
    let mut steps = Vec::with_capacity(3);
    if let Some(schema) = &path.schema {
        // `urn:…:2.0:User` reads as a schema and an attribute: it names the extension as a whole.
        if path.sub_attribute.is_none() {
            if let Some(key) = extension_key(&format!("{schema}:{}", path.attribute)) {
                return vec![key];
            }
        }
        let core = schema
            .to_ascii_lowercase()
            .starts_with("urn:ietf:params:scim:schemas:core:");
        if !core {
            steps.push(extension_key(schema).unwrap_or_else(|| schema.to_ascii_lowercase()));
        }
    }
    steps.push(path.attribute.to_ascii_lowercase());
    steps.extend(path.sub_attribute.as_ref().map(|s| s.to_ascii_lowercase()));
    steps
}

/// Drops what `path` leads to, in each value of a multi-valued attribute on the way.
fn remove(object: &mut Map<String, Value>, path: &[String]) {
    let Some(key) = object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(&path[0]))
        .cloned()
    else {
        return;
    };
    if path.len() == 1 {
        object.remove(&key);
        return;
    }
    match object.get_mut(&key) {
        Some(Value::Object(inner)) => remove(inner, &path[1..]),
        Some(Value::Array(items)) => {
            for item in items.iter_mut() {
                if let Value::Object(inner) = item {
                    remove(inner, &path[1..]);
                }
            }
        }
        _ => {}
    }
}

/// Keeps of `object` what the paths lead to (and, at the top, what is always shown); an object or list
/// left with nothing asked for is dropped.
fn keep(object: Map<String, Value>, paths: &[Steps], top: bool) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in object {
        if top && is_always(&key) {
            kept.insert(key, value);
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let here: Vec<&Steps> = paths.iter().filter(|p| p[0] == lower).collect();
        if here.is_empty() {
            continue;
        }
        if here.iter().any(|p| p.len() == 1) {
            kept.insert(key, value);
            continue;
        }
        let deeper: Vec<Steps> = here.iter().map(|p| p[1..].to_vec()).collect();
        // An object keeps what is asked of it, and is dropped when that is nothing; a simple value has
        // no sub-attributes: asking for one of them shows it.
        let kept_of = |value: Value| match value {
            Value::Object(inner) => Some(keep(inner, &deeper, false))
                .filter(|m| !m.is_empty())
                .map(Value::Object),
            other => Some(other),
        };
        let value = match value {
            Value::Array(items) => {
                let items: Vec<Value> = items.into_iter().filter_map(kept_of).collect();
                Some(items).filter(|i| !i.is_empty()).map(Value::Array)
            }
            other => kept_of(other),
        };
        if let Some(value) = value {
            kept.insert(key, value);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "id": "u1",
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
            "active": true,
            ENTERPRISE: {"department": "Analytics", "manager": {"value": "u2", "displayName": "Charles"}},
            "meta": {"resourceType": "User"}
        })
    }

    fn shown(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        let list =
            |text: Option<&str>| text.map(|t| t.split(',').map(str::to_string).collect::<Vec<_>>());
        let (attributes, excluded) = (list(attributes), list(excluded));
        Projection::parse(attributes.as_deref(), excluded.as_deref())
            .unwrap()
            .apply(user())
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_sub_attribute_keeps_only_itself() {
        let user = shown(Some("name.givenName"), None);
        assert_eq!(keys(&user), ["id", "meta", "name", "schemas"]);
        assert_eq!(user["name"], json!({"givenName": "Ada"}));
        let user = shown(Some("EMAILS.value,userName"), None);
        assert_eq!(user["emails"], json!([{"value": "ada@example.com"}]));
        assert_eq!(user["userName"], "ada@example.com");
        // Asked for and absent: nothing shown for it, not an empty object.
        let user = shown(Some("name.middleName"), None);
        assert_eq!(keys(&user), ["id", "meta", "schemas"]);
    }

    #[test]
    fn schema_urns_name_the_core_an_extension_or_inside_one() {
        let core = shown(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"),
            None,
        );
        assert_eq!(core["name"], json!({"familyName": "Lovelace"}));
        let whole = shown(Some(ENTERPRISE), None);
        assert_eq!(whole[ENTERPRISE], user()[ENTERPRISE]);
        assert!(whole.get("userName").is_none());
        let inside = shown(Some(&format!("{ENTERPRISE}:manager.value")), None);
        assert_eq!(inside[ENTERPRISE], json!({"manager": {"value": "u2"}}));
    }

    #[test]
    fn excluded_attributes_drop_what_they_name_but_never_the_id() {
        let user = shown(None, Some("name.givenName,emails.type,id,meta"));
        assert_eq!(user["name"], json!({"familyName": "Lovelace"}));
        assert_eq!(
            user["emails"],
            json!([{"value": "ada@example.com", "primary": true}])
        );
        assert_eq!(
            (user["id"].as_str(), user["meta"].is_object()),
            (Some("u1"), true)
        );
        let user = shown(None, Some(&format!("{ENTERPRISE}:department")));
        assert_eq!(
            user[ENTERPRISE],
            json!({"manager": {"value": "u2", "displayName": "Charles"}})
        );
        let user = shown(None, Some(&ENTERPRISE.to_lowercase()));
        assert!(user.get(ENTERPRISE).is_none());
        assert_eq!(user["userName"], "ada@example.com");
    }

    #[test]
    fn a_malformed_name_is_refused_and_an_empty_one_passed_over() {
        let malformed = ["name..givenName".to_string()];
        assert!(Projection::parse(Some(&malformed), None).is_err());
        assert!(Projection::parse(None, Some(&["a b".to_string()])).is_err());
        let empty = ["".to_string(), " userName ".to_string()];
        let user = Projection::parse(Some(&empty), None).unwrap().apply(user());
        assert_eq!(keys(&user), ["id", "meta", "schemas", "userName"]);
    }
}

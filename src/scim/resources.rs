//! SCIM resources as the apply engine knows directory records: a User becomes the `directory_user`
//! snapshot a `dsync.user.*` event carries, a Group the `directory_group` one, so a directory provisioned
//! over SCIM goes through the very rules a broker's directory does. What the identity provider pushed is
//! kept whole in `raw_attributes`.

use super::discovery::ENTERPRISE_SCHEMA;
use super::filter::{field, text_bool};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// Where a record belongs and when the service stamped it (its own monotonic clock: the order of the
/// identity provider's writes, rule 6).
pub struct Stamps<'a> {
    pub directory_id: &'a str,
    pub organization_id: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
}

fn text<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    field(object, name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `active` as a boolean, also when sent as text (`"False"`); absent, the user is active.
fn is_active(user: &Value) -> bool {
    match field(user, "active") {
        Some(Value::Bool(active)) => *active,
        Some(Value::String(text)) => text_bool(text) != Some(false),
        _ => true,
    }
}

/// The `directory_user` snapshot for SCIM User `user`, whose id is `id`.
pub fn user_snapshot(user: &Value, id: &str, stamps: &Stamps<'_>) -> Value {
    let user_name = text(user, "userName");
    let mut emails: Vec<Value> = field(user, "emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|email| {
            let value = text(email, "value")?;
            let primary = matches!(field(email, "primary"), Some(Value::Bool(true)))
                || text(email, "primary").and_then(text_bool) == Some(true);
            Some(json!({"primary": primary, "type": text(email, "type"), "value": value}))
        })
        .collect();
    if emails.is_empty() {
        // Many identity providers send the email as the user name only.
        if let Some(name) = user_name.filter(|n| n.contains('@')) {
            emails.push(json!({"primary": true, "type": "work", "value": name}));
        }
    }
    if !emails.iter().any(|e| e["primary"] == true) {
        if let Some(first) = emails.first_mut() {
            first["primary"] = json!(true);
        }
    }
    let email = emails
        .iter()
        .find(|e| e["primary"] == true)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string);
    let name = field(user, "name").cloned().unwrap_or(Value::Null);
    let enterprise = field(user, ENTERPRISE_SCHEMA)
        .cloned()
        .unwrap_or(Value::Null);
    let mut custom = Map::new();
    for (scim, ours) in [
        ("department", "department"),
        ("employeeNumber", "employee_number"),
        ("costCenter", "cost_center"),
        ("division", "division"),
        ("organization", "organization"),
    ] {
        if let Some(value) = text(&enterprise, scim) {
            custom.insert(ours.to_string(), json!(value));
        }
    }
    if let Some(manager) = field(&enterprise, "manager").and_then(|m| text(m, "value")) {
        custom.insert("manager_id".to_string(), json!(manager));
    }
    json!({
        "object": "directory_user",
        "id": id,
        "directory_id": stamps.directory_id,
        "organization_id": stamps.organization_id,
        "idp_id": text(user, "externalId").or(user_name).unwrap_or(id),
        "email": email,
        "emails": emails,
        "username": user_name,
        "first_name": text(&name, "givenName"),
        "last_name": text(&name, "familyName"),
        "job_title": text(user, "title"),
        "state": if is_active(user) { "active" } else { "inactive" },
        "custom_attributes": custom,
        "raw_attributes": user,
        "created_at": stamps.created_at,
        "updated_at": stamps.updated_at,
    })
}

/// The `directory_group` snapshot for SCIM Group `group`, whose id is `id`.
pub fn group_snapshot(group: &Value, id: &str, stamps: &Stamps<'_>) -> Value {
    let name = text(group, "displayName").unwrap_or(id);
    json!({
        "object": "directory_group",
        "id": id,
        "directory_id": stamps.directory_id,
        "organization_id": stamps.organization_id,
        "idp_id": text(group, "externalId").unwrap_or(name),
        "name": name,
        "raw_attributes": group,
        "created_at": stamps.created_at,
        "updated_at": stamps.updated_at,
    })
}

/// The members a Group's `members` attribute lists, each once (as first named) with the value, display,
/// type and `$ref` given; a member without a value is left out.
pub fn members(listed: &Value) -> Vec<Value> {
    let mut seen: HashSet<&str> = HashSet::new();
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|member| {
            let id = text(member, "value")?;
            if !seen.insert(id) {
                return None;
            }
            let mut kept = Map::new();
            kept.insert("value".into(), json!(id));
            for name in ["display", "type", "$ref"] {
                if let Some(given) = field(member, name).filter(|v| v.is_string()) {
                    kept.insert(name.into(), given.clone());
                }
            }
            Some(Value::Object(kept))
        })
        .collect()
}

/// The ids of a SCIM Group's members (`members[].value`), each once, in the order given.
pub fn member_ids(group: &Value) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    field(group, "members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| text(member, "value"))
        .filter(|id| seen.insert(id))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workos::events::{DirectoryGroup, DirectoryUser};

    const STAMPS: Stamps<'static> = Stamps {
        directory_id: "directory_scim_1",
        organization_id: "org_1",
        created_at: "2026-12-06T10:00:00.000Z",
        updated_at: "2026-12-06T10:00:01.000Z",
    };

    #[test]
    fn an_okta_user_reads_as_a_directory_user() {
        // The shape of Okta's `POST /Users` (its SCIM 2.0 provisioning guide).
        let okta = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"primary": true, "value": "ada@example.com", "type": "work"}],
            "displayName": "Ada Lovelace", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [], "password": "never-kept", "active": true
        });
        let snapshot = user_snapshot(&okta, "directory_user_1", &STAMPS);
        let user: DirectoryUser = serde_json::from_value(snapshot.clone()).unwrap();
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
        assert_eq!(user.first_name.as_deref(), Some("Ada"));
        assert_eq!(user.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(user.state.as_deref(), Some("active"));
        assert_eq!(user.idp_id.as_deref(), Some("00ujl29u0le5T6Aj10h7"));
        assert_eq!(snapshot["raw_attributes"]["locale"], "en-US");
    }

    #[test]
    fn an_entra_user_with_the_enterprise_extension_and_text_booleans() {
        // The shape of Entra ID's provisioning requests (its SCIM guide): the email as userName, booleans
        // as text, the enterprise extension.
        let entra = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_SCHEMA],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.com",
            "active": "False",
            "title": "Engineer",
            "name": {"givenName": "Test", "familyName": "User"},
            ENTERPRISE_SCHEMA: {"department": "Analytics", "employeeNumber": "42",
                                "manager": {"value": "directory_user_9"}}
        });
        let snapshot = user_snapshot(&entra, "directory_user_2", &STAMPS);
        let user: DirectoryUser = serde_json::from_value(snapshot.clone()).unwrap();
        assert_eq!(user.state.as_deref(), Some("inactive"));
        assert_eq!(
            user.email.as_deref(),
            Some("Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.com")
        );
        assert_eq!(snapshot["job_title"], "Engineer");
        assert_eq!(
            snapshot["custom_attributes"],
            json!({"department": "Analytics", "employee_number": "42", "manager_id": "directory_user_9"})
        );
    }

    #[test]
    fn the_first_email_is_primary_when_none_says_so_and_a_name_alone_is_no_email() {
        let user = json!({"userName": "ada", "emails": [{"value": "a@x.example"}, {"value": "b@x.example"}]});
        let snapshot = user_snapshot(&user, "u", &STAMPS);
        assert_eq!(snapshot["email"], "a@x.example");
        let nameless = user_snapshot(&json!({"userName": "ada"}), "u", &STAMPS);
        assert_eq!(nameless["email"], Value::Null);
        assert_eq!(nameless["emails"], json!([]));
        assert_eq!(nameless["idp_id"], "ada");
    }

    #[test]
    fn a_group_reads_as_a_directory_group_with_its_members_once_each() {
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineers", "externalId": "eng",
            "members": [{"value": "u1"}, {"value": "u2", "display": "B"}, {"value": "u1"}, {"display": "no id"}]
        });
        let snapshot = group_snapshot(&group, "directory_group_1", &STAMPS);
        let parsed: DirectoryGroup = serde_json::from_value(snapshot).unwrap();
        assert_eq!(parsed.name.as_deref(), Some("Engineers"));
        assert_eq!(member_ids(&group), ["u1", "u2"]);
    }
}

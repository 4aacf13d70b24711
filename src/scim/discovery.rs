//! What a SCIM client asks first (RFC 7644 §4, RFC 7643 §5–7): the service provider's configuration,
//! its resource types, and the schemas of the attributes it keeps: the core User with the enterprise
//! extension, and the Group.

use serde_json::{json, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most resources one list answers (`count` above it is lowered to it).
pub const MAX_RESULTS: usize = 200;

/// `GET /ServiceProviderConfig`: PATCH, filters and ETags supported; bulk, sorting and password change
/// not; bearer tokens.
pub fn service_provider_config(documentation: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": documentation,
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token the workspace's admin made for this directory, sent as `Authorization: Bearer …`",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig"}
    })
}

/// `GET /ResourceTypes`: User (with the enterprise extension) and Group, under `base` (the directory's
/// SCIM base URL).
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "description": "A person of the directory",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "A group of the directory",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

/// An attribute's definition (RFC 7643 §7), with the defaults most attributes share.
struct Attribute {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    multi_valued: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    uniqueness: &'static str,
    sub_attributes: Vec<Attribute>,
}

fn attribute(name: &'static str, kind: &'static str, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        description,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        uniqueness: "none",
        sub_attributes: Vec::new(),
    }
}

impl Attribute {
    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.mutability = "readOnly";
        self
    }
    fn unique(mut self) -> Self {
        self.uniqueness = "server";
        self
    }
    fn with(mut self, sub: Vec<Attribute>) -> Self {
        self.sub_attributes = sub;
        self
    }

    fn json(&self) -> Value {
        let mut value = json!({
            "name": self.name, "type": self.kind, "description": self.description,
            "multiValued": self.multi_valued, "required": self.required, "caseExact": self.case_exact,
            "mutability": self.mutability, "returned": "default", "uniqueness": self.uniqueness
        });
        if !self.sub_attributes.is_empty() {
            value["subAttributes"] = self.sub_attributes.iter().map(Attribute::json).collect();
        }
        value
    }
}

fn schema(id: &str, name: &str, description: &str, base: &str, attributes: &[Attribute]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id, "name": name, "description": description,
        "attributes": attributes.iter().map(Attribute::json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")}
    })
}

/// `GET /Schemas`: the attributes kept, by schema.
pub fn schemas(base: &str) -> Vec<Value> {
    let multi_value = |what: &'static str| {
        vec![
            attribute("value", "string", what),
            attribute("display", "string", "A name for display"),
            attribute("type", "string", "A label: work, home, other"),
            attribute("primary", "boolean", "Whether this is the primary value"),
        ]
    };
    let user = [
        attribute(
            "userName",
            "string",
            "The user's unique name at the identity provider",
        )
        .required()
        .unique(),
        attribute("name", "complex", "The user's name").with(vec![
            attribute("formatted", "string", "The full name"),
            attribute("familyName", "string", "The family name"),
            attribute("givenName", "string", "The given name"),
        ]),
        attribute("displayName", "string", "The name shown"),
        attribute("title", "string", "The job title"),
        attribute(
            "active",
            "boolean",
            "Whether the user may use the product; false deprovisions",
        ),
        attribute("emails", "complex", "Email addresses")
            .multi()
            .with(multi_value("An email address")),
    ];
    let enterprise = [
        attribute("employeeNumber", "string", "The employee number"),
        attribute("department", "string", "The department"),
        attribute("manager", "complex", "The user's manager").with(vec![
            attribute("value", "string", "The manager's id").exact(),
            attribute("displayName", "string", "The manager's name").read_only(),
        ]),
    ];
    let group = [
        attribute("displayName", "string", "The group's name").required(),
        attribute("members", "complex", "The group's members")
            .multi()
            .with(vec![
                attribute("value", "string", "A member's id").exact(),
                attribute("display", "string", "A member's name").read_only(),
                attribute("type", "string", "User or Group"),
            ]),
    ];
    vec![
        schema(
            USER_SCHEMA,
            "User",
            "A person of the directory",
            base,
            &user,
        ),
        schema(
            ENTERPRISE_SCHEMA,
            "EnterpriseUser",
            "An employee's organizational attributes",
            base,
            &enterprise,
        ),
        schema(
            GROUP_SCHEMA,
            "Group",
            "A group of the directory",
            base,
            &group,
        ),
    ]
}

/// A list answer (RFC 7644 §3.4.2): one page of `resources`, from `start_index` (1-based), of
/// `total` matching.
pub fn list_response(resources: Vec<Value>, total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources
    })
}

/// An error answer (RFC 7644 §3.12), with its `scimType` when the RFC defines one for it.
pub fn error_body(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut body =
        json!({"schemas": [ERROR_SCHEMA], "status": status.to_string(), "detail": detail});
    if let Some(scim_type) = scim_type {
        body["scimType"] = json!(scim_type);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every attribute of every schema says all RFC 7643 §7 asks of it, sub-attributes too.
    fn assert_complete(attribute: &Value, at: &str) {
        for field in [
            "name",
            "type",
            "multiValued",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
            "description",
        ] {
            assert!(
                attribute.get(field).is_some(),
                "{at}: no {field} in {attribute}"
            );
        }
        let kind = attribute["type"].as_str().unwrap();
        assert!(
            [
                "string",
                "boolean",
                "decimal",
                "integer",
                "dateTime",
                "reference",
                "complex",
                "binary"
            ]
            .contains(&kind),
            "{at}: type {kind}"
        );
        assert_eq!(
            kind == "complex",
            attribute.get("subAttributes").is_some(),
            "{at}"
        );
        for sub in attribute["subAttributes"].as_array().into_iter().flatten() {
            assert_complete(sub, &format!("{at}.{}", sub["name"].as_str().unwrap()));
        }
    }

    #[test]
    fn schemas_describe_every_attribute_fully() {
        let schemas = schemas("https://rollcall.example/scim/v2/directory_x");
        let ids: Vec<&str> = schemas.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA]);
        for schema in &schemas {
            let id = schema["id"].as_str().unwrap();
            assert!(schema["meta"]["location"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/Schemas/{id}")));
            for attribute in schema["attributes"].as_array().unwrap() {
                assert_complete(attribute, attribute["name"].as_str().unwrap());
            }
        }
        let user_name = &schemas[0]["attributes"][0];
        assert_eq!(
            (
                &user_name["name"],
                &user_name["required"],
                &user_name["uniqueness"],
                &user_name["caseExact"]
            ),
            (
                &json!("userName"),
                &json!(true),
                &json!("server"),
                &json!(false)
            )
        );
    }

    #[test]
    fn resource_types_point_at_their_schemas() {
        let types = resource_types("https://rollcall.example/scim/v2/d");
        assert_eq!(types[0]["schema"], USER_SCHEMA);
        assert_eq!(types[0]["schemaExtensions"][0]["schema"], ENTERPRISE_SCHEMA);
        assert_eq!(types[1]["endpoint"], "/Groups");
        let config = service_provider_config("https://rollcall.example/docs");
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["filter"]["maxResults"], MAX_RESULTS);
        assert_eq!(config["bulk"]["supported"], false);
    }

    #[test]
    fn lists_and_errors_take_the_rfcs_shapes() {
        let list = list_response(vec![json!({"id": "a"})], 7, 3);
        assert_eq!(list["totalResults"], 7);
        assert_eq!(list["startIndex"], 3);
        assert_eq!(list["itemsPerPage"], 1);
        assert_eq!(list["Resources"][0]["id"], "a");
        let error = error_body(409, Some("uniqueness"), "userName is taken");
        // The RFC's `status` is a string.
        assert_eq!(error["status"], "409");
        assert_eq!(error["scimType"], "uniqueness");
        assert!(error_body(404, None, "no such user")
            .get("scimType")
            .is_none());
    }
}

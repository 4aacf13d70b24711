//! `GET /openapi.json`: the OpenAPI document of the whole API.
//!
//! Written by hand from the handlers. Every operation lists each status it can answer; a problem
//! response names the `code` values it may carry, so a conformance run catches a code that drifts.
//! `tests/api/openapi.rs` snapshots the document, so API changes show up in review.

use super::resource;
use crate::domain::{EventStatus, ManagedBy, MemberStatus, Plan, Role};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/openapi.json").route(web::get().to(openapi_json)));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    let paths: Map<String, Value> = [
        service_paths(),
        workspace_paths(),
        member_paths(),
        team_paths(),
        directory_group_paths(),
        role_and_audit_paths(),
        event_paths(),
    ]
    .into_iter()
    .flatten()
    .map(|(path, item)| (path.to_string(), item))
    .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Rollcall",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Keeps a SaaS product's workspaces in step with each customer's identity provider \
                through WorkOS Directory Sync. Errors are `application/problem+json` with a stable `code`; \
                another workspace's resources answer 404. Lists take `?limit=` (1 to 1000, default 100) and \
                `?after=`, and answer `{data, list_metadata: {after}}`; `after` is null on the last page. \
                A method a path does not take answers 405 `method_not_allowed`.",
        },
        "tags": [
            { "name": "service", "description": "Liveness, readiness and this document." },
            { "name": "webhooks", "description": "Signed `dsync.*` deliveries from the broker." },
            { "name": "workspaces", "description": "Workspaces, their admin tokens and their directory-sync setting." },
            { "name": "members", "description": "Workspace members; with directory sync on, the directory owns them." },
            { "name": "teams", "description": "Teams, why each member is in each, and the directory groups linked to them." },
            { "name": "directory", "description": "Directory groups and the roles they map to." },
            { "name": "audit", "description": "Every change, with its cause." },
            { "name": "events", "description": "Stored webhook deliveries, for operators." },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An operator token (the `ROLLCALL_OPERATOR_TOKEN` setting, or one made with \
                        `rollcall token create`) may do everything; a workspace admin token acts on its own \
                        workspace only.",
                },
            },
            "parameters": parameters(),
            "responses": standard_responses(),
            "schemas": schemas(),
        },
    })
}

// ---------------------------------------------------------------------------------------------------
// Building blocks

/// A reference to a component schema.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A reference to a component parameter.
fn parameter_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

/// A reference to a component response.
fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn integer() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// An RFC 3339 time.
fn timestamp() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

/// `schema` or null.
fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = Value::Bool(true);
    schema
}

/// A string that is one of `values`.
fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    json!({ "type": "string", "enum": values.into_iter().collect::<Vec<_>>() })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// An object with every listed property required; extra properties may be added later.
fn object(properties: &[(&str, Value)]) -> Value {
    json!({
        "type": "object",
        "required": properties.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "properties": properties.iter().map(|(name, s)| (name.to_string(), s.clone())).collect::<Map<_, _>>(),
    })
}

/// A request body object: `required` fields must be there, and with `closed` no other field is accepted
/// (the handler denies unknown fields).
fn request_object(required: &[&str], closed: bool, properties: &[(&str, Value)]) -> Value {
    let mut schema = json!({
        "type": "object",
        "properties": properties.iter().map(|(name, s)| (name.to_string(), s.clone())).collect::<Map<_, _>>(),
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if closed {
        schema["additionalProperties"] = Value::Bool(false);
    }
    schema
}

/// One page of a list of `item`s.
fn list_of(item: &str) -> Value {
    object(&[
        ("data", array(schema_ref(item))),
        ("list_metadata", schema_ref("ListMetadata")),
    ])
}

/// A path parameter naming one resource.
fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "minLength": 1 },
    })
}

/// An optional query parameter.
fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// An `application/problem+json` response whose `code` is one of `codes`.
fn problem(status: StatusCode, codes: &[&str]) -> Value {
    let listed = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "description": format!("{}: {listed}", status.canonical_reason().unwrap_or("Error")),
        "content": {
            "application/problem+json": {
                "schema": {
                    "allOf": [
                        schema_ref("Problem"),
                        {
                            "type": "object",
                            "properties": {
                                "status": { "type": "integer", "enum": [status.as_u16()] },
                                "code": one_of(codes.iter().copied()),
                            },
                        },
                    ],
                },
            },
        },
    })
}

/// A JSON response.
fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// The problems most operations share, each with its one code.
fn standard_responses() -> Map<String, Value> {
    [
        ("Unauthorized", StatusCode::UNAUTHORIZED, "unauthorized"),
        ("Forbidden", StatusCode::FORBIDDEN, "forbidden"),
        ("NotFound", StatusCode::NOT_FOUND, "not_found"),
        (
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
        ),
        (
            "DatabaseUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
        ),
    ]
    .into_iter()
    .map(|(name, status, code)| (name.to_string(), problem(status, &[code])))
    .collect()
}

/// One operation, built up status by status.
struct Operation(Map<String, Value>);

/// Starts an operation; `id` is the handler's name.
fn operation(id: &str, tag: &str, summary: &str) -> Operation {
    let mut fields = Map::new();
    fields.insert("operationId".into(), json!(id));
    fields.insert("tags".into(), json!([tag]));
    fields.insert("summary".into(), json!(summary));
    fields.insert("responses".into(), Value::Object(Map::new()));
    Operation(fields)
}

impl Operation {
    fn describe(mut self, text: &str) -> Self {
        self.0.insert("description".into(), json!(text));
        self
    }

    fn parameters(mut self, parameters: Vec<Value>) -> Self {
        self.0.insert("parameters".into(), Value::Array(parameters));
        self
    }

    /// `?limit=` and `?after=`, after any other parameters.
    fn paged(mut self) -> Self {
        let parameters = self
            .0
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are a list");
        parameters.extend([parameter_ref("limit"), parameter_ref("after")]);
        self.fails(StatusCode::BAD_REQUEST, &["invalid_parameter"])
    }

    /// A required JSON body.
    fn body(mut self, schema: Value) -> Self {
        self.0.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
        self
    }

    fn respond(mut self, status: StatusCode, response: Value) -> Self {
        self.0["responses"]
            .as_object_mut()
            .expect("responses are an object")
            .insert(status.as_str().to_string(), response);
        self
    }

    /// A JSON answer.
    fn answers(self, status: StatusCode, description: &str, schema: Value) -> Self {
        self.respond(status, json_response(description, schema))
    }

    /// An answer without a body.
    fn answers_empty(self, status: StatusCode, description: &str) -> Self {
        self.respond(status, json!({ "description": description }))
    }

    /// A problem with one of these codes.
    fn fails(self, status: StatusCode, codes: &[&str]) -> Self {
        self.respond(status, problem(status, codes))
    }

    /// 400 for a body that is not JSON of the right shape, and for a field with a bad value.
    fn checks_body(self) -> Self {
        self.fails(StatusCode::BAD_REQUEST, &["invalid_body", "invalid_field"])
    }

    /// 404 for a resource that is unknown or in another workspace.
    fn finds(self) -> Self {
        self.respond(StatusCode::NOT_FOUND, response_ref("NotFound"))
    }

    /// 403 for a workspace admin.
    fn operator_only(self) -> Self {
        self.respond(StatusCode::FORBIDDEN, response_ref("Forbidden"))
    }

    /// An `/api/v1` operation: bearer token, 401 without a valid one, 503 and 500.
    fn authenticated(self) -> Value {
        let mut op = self
            .respond(StatusCode::UNAUTHORIZED, response_ref("Unauthorized"))
            .respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                response_ref("InternalError"),
            )
            .respond(
                StatusCode::SERVICE_UNAVAILABLE,
                response_ref("DatabaseUnavailable"),
            )
            .0;
        op.insert("security".into(), json!([{ "bearer": [] }]));
        Value::Object(op)
    }

    /// An operation anyone may call.
    fn public(self) -> Value {
        let mut op = self.0;
        op.insert("security".into(), json!([]));
        Value::Object(op)
    }
}

/// A path with the parameters its operations share and its operations by method.
fn path(
    template: &'static str,
    parameters: &[&str],
    operations: Vec<(&str, Value)>,
) -> (&'static str, Value) {
    let mut item: Map<String, Value> = operations
        .into_iter()
        .map(|(method, op)| (method.to_string(), op))
        .collect();
    if !parameters.is_empty() {
        item.insert(
            "parameters".into(),
            parameters.iter().map(|p| parameter_ref(p)).collect(),
        );
    }
    (template, Value::Object(item))
}

fn parameters() -> Map<String, Value> {
    let mut parameters: Map<String, Value> = [
        ("ws", "The workspace (`ws_…`)."),
        ("member", "The member (`mem_…`)."),
        ("team", "The team."),
        ("group", "The directory group (`directory_group_…`)."),
    ]
    .into_iter()
    .map(|(name, description)| (name.to_string(), path_parameter(name, description)))
    .collect();
    parameters.insert(
        "event".into(),
        json!({
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The stored delivery's `id`; anything else is 404.",
            "schema": integer(),
        }),
    );
    parameters.insert(
        "limit".into(),
        query_parameter(
            "limit",
            "At most this many items.",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
        ),
    );
    parameters.insert(
        "after".into(),
        query_parameter(
            "after",
            "The previous page's `list_metadata.after`.",
            string(),
        ),
    );
    parameters
}

// ---------------------------------------------------------------------------------------------------
// Paths

fn service_paths() -> Vec<(&'static str, Value)> {
    vec![
        path(
            "/healthz",
            &[],
            vec![(
                "get",
                operation("healthz", "service", "Liveness: the process answers")
                    .answers(StatusCode::OK, "Alive.", schema_ref("Health"))
                    .public(),
            )],
        ),
        path(
            "/readyz",
            &[],
            vec![(
                "get",
                operation("readyz", "service", "Readiness: the database answers too")
                    .answers(StatusCode::OK, "Ready.", schema_ref("Readiness"))
                    .answers(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database does not answer.",
                        schema_ref("Readiness"),
                    )
                    .public(),
            )],
        ),
        path(
            "/openapi.json",
            &[],
            vec![(
                "get",
                operation("openapi_json", "service", "This document")
                    .answers(
                        StatusCode::OK,
                        "The OpenAPI 3.0 document.",
                        json!({ "type": "object", "required": ["openapi", "info", "paths"] }),
                    )
                    .public(),
            )],
        ),
        path(
            "/webhooks/workos",
            &[],
            vec![(
                "post",
                operation("receive_webhook", "webhooks", "Receive a signed broker event")
                    .describe(
                        "Verifies `WorkOS-Signature` over the raw body, stores the delivery durably, then \
                         answers. A signed body that is not an event is stored as `invalid` and answered 400.",
                    )
                    .parameters(vec![json!({
                        "name": "WorkOS-Signature",
                        "in": "header",
                        "required": true,
                        "description": "`t=<milliseconds>, v1=<hex HMAC-SHA256 of \"t.body\">`.",
                        "schema": string(),
                    })])
                    .body(json!({ "description": "Any JSON; a `dsync.*` event to be applied." }))
                    .answers(
                        StatusCode::OK,
                        "Stored (whether applied, duplicate, skipped or of an unknown type).",
                        object(&[("received", string())]),
                    )
                    .fails(StatusCode::BAD_REQUEST, &["invalid_payload"])
                    .fails(StatusCode::UNAUTHORIZED, &["invalid_signature"])
                    .fails(StatusCode::PAYLOAD_TOO_LARGE, &["payload_too_large"])
                    .fails(StatusCode::SERVICE_UNAVAILABLE, &["database_unavailable"])
                    .public(),
            )],
        ),
    ]
}

fn workspace_paths() -> Vec<(&'static str, Value)> {
    let workspace = || schema_ref("Workspace");
    vec![
        path(
            "/api/v1/workspaces",
            &[],
            vec![
                (
                    "get",
                    operation("list_workspaces", "workspaces", "List workspaces")
                        .describe(
                            "An operator sees every workspace; a workspace admin only its own.",
                        )
                        .paged()
                        .answers(
                            StatusCode::OK,
                            "A page of workspaces.",
                            list_of("Workspace"),
                        )
                        .authenticated(),
                ),
                (
                    "post",
                    operation("create_workspace", "workspaces", "Create a workspace")
                        .operator_only()
                        .body(schema_ref("NewWorkspace"))
                        .answers(StatusCode::CREATED, "Created.", workspace())
                        .checks_body()
                        .fails(StatusCode::CONFLICT, &["organization_taken"])
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}",
            &["ws"],
            vec![
                (
                    "get",
                    operation("get_workspace", "workspaces", "Get a workspace")
                        .answers(StatusCode::OK, "The workspace.", workspace())
                        .finds()
                        .authenticated(),
                ),
                (
                    "patch",
                    operation("update_workspace", "workspaces", "Change a workspace")
                        .describe("Only an operator may change `plan` (403 `forbidden`).")
                        .body(schema_ref("WorkspaceChanges"))
                        .answers(StatusCode::OK, "The changed workspace.", workspace())
                        .checks_body()
                        .operator_only()
                        .finds()
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/admin-tokens",
            &["ws"],
            vec![(
                "post",
                operation(
                    "create_admin_token",
                    "workspaces",
                    "Create a workspace admin token",
                )
                .describe("The token is shown once; only its hash is stored.")
                .answers(StatusCode::CREATED, "Created.", schema_ref("AdminToken"))
                .operator_only()
                .finds()
                .authenticated(),
            )],
        ),
        path(
            "/api/v1/workspaces/{ws}/directory-sync",
            &["ws"],
            vec![
                (
                    "get",
                    operation(
                        "get_directory_sync",
                        "workspaces",
                        "Directory sync: the setting and the workspace's directories",
                    )
                    .answers(StatusCode::OK, "The setting.", schema_ref("DirectorySync"))
                    .finds()
                    .authenticated(),
                ),
                (
                    "put",
                    operation(
                        "set_directory_sync",
                        "workspaces",
                        "Turn directory sync on or off",
                    )
                    .describe("On needs the `growth` or `enterprise` plan (403 `plan_required`).")
                    .body(schema_ref("DirectorySyncSetting"))
                    .answers(StatusCode::OK, "The setting.", schema_ref("DirectorySync"))
                    .fails(StatusCode::BAD_REQUEST, &["invalid_body"])
                    .fails(StatusCode::FORBIDDEN, &["plan_required"])
                    .finds()
                    .authenticated(),
                ),
            ],
        ),
    ]
}

fn member_paths() -> Vec<(&'static str, Value)> {
    let member = || schema_ref("Member");
    vec![
        path(
            "/api/v1/workspaces/{ws}/members",
            &["ws"],
            vec![
                (
                    "get",
                    operation("list_members", "members", "List members")
                        .parameters(vec![query_parameter(
                            "status",
                            "Only members with this status.",
                            one_of(MemberStatus::ALL.iter().map(|s| s.as_str())),
                        )])
                        .paged()
                        .answers(StatusCode::OK, "A page of members.", list_of("Member"))
                        .finds()
                        .authenticated(),
                ),
                (
                    "post",
                    operation("add_member", "members", "Add a member by hand")
                        .describe("With directory sync on, members come from the identity provider (409).")
                        .body(schema_ref("NewMember"))
                        .answers(StatusCode::CREATED, "Added.", member())
                        .checks_body()
                        .finds()
                        .fails(
                            StatusCode::CONFLICT,
                            &["managed_by_directory_sync", "email_taken"],
                        )
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/members/{member}",
            &["ws", "member"],
            vec![
                (
                    "get",
                    operation("get_member", "members", "Get a member")
                        .answers(StatusCode::OK, "The member.", member())
                        .finds()
                        .authenticated(),
                ),
                (
                    "patch",
                    operation("update_member", "members", "Change a member")
                        .describe(
                            "A directory-managed member's email and name come from the identity provider, \
                             and while the workspace has role mappings so does their role (409).",
                        )
                        .body(schema_ref("MemberChanges"))
                        .answers(StatusCode::OK, "The changed member.", member())
                        .checks_body()
                        .finds()
                        .fails(
                            StatusCode::CONFLICT,
                            &["managed_by_directory_sync", "email_taken"],
                        )
                        .authenticated(),
                ),
                (
                    "delete",
                    operation("remove_member", "members", "Remove a member")
                        .describe("With directory sync on, a directory-managed member is removed in the identity provider (409).")
                        .answers_empty(StatusCode::NO_CONTENT, "Removed.")
                        .finds()
                        .fails(StatusCode::CONFLICT, &["managed_by_directory_sync"])
                        .authenticated(),
                ),
            ],
        ),
    ]
}

fn team_paths() -> Vec<(&'static str, Value)> {
    let team = || schema_ref("Team");
    vec![
        path(
            "/api/v1/workspaces/{ws}/teams",
            &["ws"],
            vec![
                (
                    "get",
                    operation("list_teams", "teams", "List teams")
                        .paged()
                        .answers(StatusCode::OK, "A page of teams.", list_of("Team"))
                        .finds()
                        .authenticated(),
                ),
                (
                    "post",
                    operation("create_team", "teams", "Create a team")
                        .body(schema_ref("NewTeam"))
                        .answers(StatusCode::CREATED, "Created.", team())
                        .checks_body()
                        .finds()
                        .fails(StatusCode::CONFLICT, &["team_name_taken"])
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/teams/{team}",
            &["ws", "team"],
            vec![
                (
                    "get",
                    operation("get_team", "teams", "Get a team")
                        .answers(StatusCode::OK, "The team.", team())
                        .finds()
                        .authenticated(),
                ),
                (
                    "patch",
                    operation("update_team", "teams", "Rename a team")
                        .body(schema_ref("TeamChanges"))
                        .answers(StatusCode::OK, "The renamed team.", team())
                        .checks_body()
                        .finds()
                        .fails(StatusCode::CONFLICT, &["team_name_taken"])
                        .authenticated(),
                ),
                (
                    "delete",
                    operation("delete_team", "teams", "Delete a team")
                        .answers_empty(StatusCode::NO_CONTENT, "Deleted.")
                        .finds()
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/teams/{team}/members",
            &["ws", "team"],
            vec![
                (
                    "get",
                    operation("list_team_members", "teams", "List a team's members and why each is in it")
                        .paged()
                        .answers(StatusCode::OK, "A page of team members.", list_of("TeamMember"))
                        .finds()
                        .authenticated(),
                ),
                (
                    "post",
                    operation("add_team_member", "teams", "Add a member to a team by hand")
                        .describe("Adds a `manual` source; a deprovisioned member cannot be added (409).")
                        .body(schema_ref("NewTeamMember"))
                        .answers(StatusCode::CREATED, "Added.", schema_ref("TeamMember"))
                        .answers(
                            StatusCode::OK,
                            "The member already had a manual source in this team.",
                            schema_ref("TeamMember"),
                        )
                        .fails(StatusCode::BAD_REQUEST, &["invalid_body"])
                        .finds()
                        .fails(StatusCode::CONFLICT, &["member_deprovisioned"])
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/teams/{team}/members/{member}",
            &["ws", "team", "member"],
            vec![(
                "delete",
                operation("remove_team_member", "teams", "Remove a member's manual source")
                    .describe(
                        "Removes the `manual` source only (404 if there is none); the member stays while a \
                         linked directory group still puts them in the team.",
                    )
                    .answers_empty(StatusCode::NO_CONTENT, "Removed.")
                    .finds()
                    .authenticated(),
            )],
        ),
        path(
            "/api/v1/workspaces/{ws}/teams/{team}/directory-groups",
            &["ws", "team"],
            vec![
                (
                    "get",
                    operation("list_team_links", "teams", "List the directory groups linked to a team")
                        .paged()
                        .answers(StatusCode::OK, "A page of linked groups.", list_of("TeamLink"))
                        .finds()
                        .authenticated(),
                ),
                (
                    "post",
                    operation("link_directory_group", "teams", "Link a directory group to a team")
                        .describe(
                            "Needs directory sync on and at least one directory group in the workspace; adds \
                             every active member of the group, who then follow the group.",
                        )
                        .body(schema_ref("NewTeamLink"))
                        .answers(StatusCode::CREATED, "Linked.", schema_ref("CreatedTeamLink"))
                        .fails(StatusCode::BAD_REQUEST, &["invalid_body"])
                        .finds()
                        .fails(
                            StatusCode::CONFLICT,
                            &["directory_sync_inactive", "no_directory_groups", "already_linked"],
                        )
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/teams/{team}/directory-groups/{group}",
            &["ws", "team", "group"],
            vec![(
                "delete",
                operation("unlink_directory_group", "teams", "Unlink a directory group from a team")
                    .describe(
                        "`members=keep` turns the group's sources in this team into manual ones; \
                         `members=remove` deletes them, and members with no other source leave the team.",
                    )
                    .parameters(vec![json!({
                        "name": "members",
                        "in": "query",
                        "required": true,
                        "description": "What happens to the members the group brought in.",
                        "schema": one_of(["keep", "remove"]),
                    })])
                    .answers_empty(StatusCode::NO_CONTENT, "Unlinked.")
                    .fails(
                        StatusCode::BAD_REQUEST,
                        &["members_choice_required", "invalid_parameter"],
                    )
                    .finds()
                    .authenticated(),
            )],
        ),
    ]
}

fn directory_group_paths() -> Vec<(&'static str, Value)> {
    vec![path(
        "/api/v1/workspaces/{ws}/directory-groups",
        &["ws"],
        vec![(
            "get",
            operation(
                "list_directory_groups",
                "directory",
                "List the workspace's directory groups",
            )
            .paged()
            .answers(
                StatusCode::OK,
                "A page of groups.",
                list_of("DirectoryGroup"),
            )
            .finds()
            .authenticated(),
        )],
    )]
}

fn role_and_audit_paths() -> Vec<(&'static str, Value)> {
    let mappings = || object(&[("data", array(schema_ref("RoleMapping")))]);
    vec![
        path(
            "/api/v1/workspaces/{ws}/role-mappings",
            &["ws"],
            vec![
                (
                    "get",
                    operation("list_role_mappings", "directory", "List role mappings")
                        .answers(StatusCode::OK, "Every mapping.", mappings())
                        .finds()
                        .authenticated(),
                ),
                (
                    "put",
                    operation("replace_role_mappings", "directory", "Replace the role mappings")
                        .describe(
                            "Replaces the whole set; directory-managed members' roles are recomputed. Each \
                             group must be one of the workspace's directory groups (400 `unknown_group`).",
                        )
                        .body(array(schema_ref("RoleMapping")))
                        .answers(StatusCode::OK, "The new set.", mappings())
                        .fails(
                            StatusCode::BAD_REQUEST,
                            &["invalid_body", "invalid_field", "unknown_group"],
                        )
                        .finds()
                        .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/audit-log",
            &["ws"],
            vec![(
                "get",
                operation("list_audit_log", "audit", "Read the audit log, newest first")
                    .paged()
                    .answers(StatusCode::OK, "A page of entries.", list_of("AuditEntry"))
                    .finds()
                    .authenticated(),
            )],
        ),
    ]
}

fn event_paths() -> Vec<(&'static str, Value)> {
    vec![
        path(
            "/api/v1/events",
            &[],
            vec![(
                "get",
                operation(
                    "list_events",
                    "events",
                    "List stored deliveries, newest first",
                )
                .parameters(vec![query_parameter(
                    "status",
                    "Only deliveries with this status.",
                    schema_ref("EventStatus"),
                )])
                .paged()
                .answers(StatusCode::OK, "A page of deliveries.", list_of("Event"))
                .operator_only()
                .authenticated(),
            )],
        ),
        path(
            "/api/v1/events/{id}",
            &["event"],
            vec![(
                "get",
                operation("get_event", "events", "Get a stored delivery with its body")
                    .answers(StatusCode::OK, "The delivery.", schema_ref("EventWithBody"))
                    .operator_only()
                    .finds()
                    .authenticated(),
            )],
        ),
        path(
            "/api/v1/events/{id}/retry",
            &["event"],
            vec![(
                "post",
                operation(
                    "retry_event",
                    "events",
                    "Send a delivery back to the applier",
                )
                .describe("Only `failed`, `skipped` and `conflict` deliveries can be retried.")
                .answers(StatusCode::ACCEPTED, "Queued again.", schema_ref("Event"))
                .operator_only()
                .finds()
                .fails(StatusCode::CONFLICT, &["not_retryable"])
                .authenticated(),
            )],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------------
// Schemas

fn schemas() -> Map<String, Value> {
    let plan = || one_of(Plan::ALL.iter().map(|p| p.as_str()));
    let role = || one_of(Role::ALL.iter().map(|r| r.as_str()));
    // The directory never assigns `owner`.
    let directory_role = || {
        one_of(
            Role::ALL
                .iter()
                .filter(|r| **r != Role::Owner)
                .map(|r| r.as_str()),
        )
    };
    let name = || json!({ "type": "string", "minLength": 1, "maxLength": 200 });
    let ids = || array(string());
    [
        (
            "Problem",
            json!({
                "type": "object",
                "description": "An RFC 9457 problem; `code` is stable, `detail` is for people.",
                "required": ["type", "status", "title", "code", "detail"],
                "properties": {
                    "type": string(),
                    "status": { "type": "integer" },
                    "title": string(),
                    "code": string(),
                    "detail": string(),
                },
            }),
        ),
        (
            "ListMetadata",
            object(&[(
                "after",
                nullable(json!({
                    "type": "string",
                    "description": "Pass as `?after=` for the next page; null on the last page.",
                })),
            )]),
        ),
        ("Health", object(&[("status", one_of(["ok"]))])),
        (
            "Readiness",
            json!({
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": one_of(["ready", "unavailable"]),
                    "database": one_of(["ok", "unreachable"]),
                },
            }),
        ),
        (
            "Workspace",
            object(&[
                ("id", string()),
                ("name", string()),
                ("plan", plan()),
                ("organization_id", string()),
                ("directory_sync_enabled", boolean()),
                ("default_role", directory_role()),
                ("created_at", timestamp()),
                ("updated_at", timestamp()),
            ]),
        ),
        (
            "NewWorkspace",
            request_object(
                &["name", "plan", "organization_id"],
                false,
                &[
                    ("name", name()),
                    ("plan", plan()),
                    (
                        "organization_id",
                        json!({
                            "type": "string",
                            "pattern": "^\\S+$",
                            "description": "The broker's organization (`org_…`); one workspace each.",
                        }),
                    ),
                    ("default_role", directory_role()),
                ],
            ),
        ),
        (
            "WorkspaceChanges",
            request_object(
                &[],
                true,
                &[
                    ("name", name()),
                    ("plan", plan()),
                    ("default_role", directory_role()),
                ],
            ),
        ),
        (
            "AdminToken",
            object(&[
                ("id", string()),
                (
                    "token",
                    json!({ "type": "string", "description": "Shown only here." }),
                ),
            ]),
        ),
        (
            "DirectorySync",
            object(&[
                ("enabled", boolean()),
                ("directories", array(schema_ref("Directory"))),
            ]),
        ),
        (
            "Directory",
            object(&[
                ("id", string()),
                ("type", string()),
                ("name", string()),
                ("state", string()),
                ("last_synced_at", nullable(timestamp())),
            ]),
        ),
        (
            "DirectorySyncSetting",
            request_object(&["enabled"], false, &[("enabled", boolean())]),
        ),
        (
            "Member",
            object(&[
                ("id", string()),
                ("workspace_id", string()),
                ("email", string()),
                ("first_name", nullable(string())),
                ("last_name", nullable(string())),
                ("role", role()),
                ("status", schema_ref("MemberStatus")),
                ("managed_by", one_of(ManagedBy::ALL.iter().map(|m| m.as_str()))),
                ("directory_user_id", nullable(string())),
                ("created_at", timestamp()),
                ("updated_at", timestamp()),
            ]),
        ),
        (
            "MemberStatus",
            one_of(MemberStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            "NewMember",
            request_object(
                &["email"],
                true,
                &[
                    ("email", json!({ "type": "string", "format": "email", "maxLength": 320 })),
                    ("first_name", string()),
                    ("last_name", string()),
                    ("role", role()),
                ],
            ),
        ),
        (
            "MemberChanges",
            request_object(
                &[],
                true,
                &[
                    ("email", json!({ "type": "string", "format": "email", "maxLength": 320 })),
                    ("first_name", string()),
                    ("last_name", string()),
                    ("role", role()),
                ],
            ),
        ),
        (
            "DirectoryGroup",
            object(&[
                ("id", string()),
                ("name", string()),
                ("directory_id", string()),
                ("member_count", integer()),
                ("linked_team_ids", ids()),
            ]),
        ),
        (
            "Team",
            object(&[
                ("id", string()),
                ("workspace_id", string()),
                ("name", string()),
                ("member_count", integer()),
                ("linked_group_ids", ids()),
                ("created_at", timestamp()),
                ("updated_at", timestamp()),
            ]),
        ),
        (
            "NewTeam",
            request_object(&["name"], true, &[("name", name())]),
        ),
        (
            "TeamChanges",
            request_object(&["name"], true, &[("name", name())]),
        ),
        (
            "TeamMember",
            object(&[
                ("member_id", string()),
                ("email", string()),
                ("first_name", nullable(string())),
                ("last_name", nullable(string())),
                ("status", schema_ref("MemberStatus")),
                ("sources", array(schema_ref("TeamMembershipSource"))),
            ]),
        ),
        (
            "TeamMembershipSource",
            json!({
                "description": "Why a member is in a team: added by hand, or through a linked directory group.",
                "oneOf": [schema_ref("ManualSource"), schema_ref("DirectoryGroupSource")],
                "discriminator": {
                    "propertyName": "type",
                    "mapping": {
                        "manual": "#/components/schemas/ManualSource",
                        "directory_group": "#/components/schemas/DirectoryGroupSource",
                    },
                },
            }),
        ),
        ("ManualSource", object(&[("type", one_of(["manual"]))])),
        (
            "DirectoryGroupSource",
            object(&[("type", one_of(["directory_group"])), ("group_id", string())]),
        ),
        (
            "NewTeamMember",
            request_object(&["member_id"], true, &[("member_id", string())]),
        ),
        (
            "TeamLink",
            object(&[
                ("group_id", string()),
                ("name", string()),
                ("directory_id", string()),
                ("linked_at", timestamp()),
            ]),
        ),
        (
            "NewTeamLink",
            request_object(&["group_id"], true, &[("group_id", string())]),
        ),
        (
            "CreatedTeamLink",
            object(&[
                ("team_id", string()),
                ("group_id", string()),
                ("name", string()),
                ("directory_id", string()),
                ("linked_at", timestamp()),
                (
                    "members_added",
                    json!({ "type": "integer", "description": "Active members of the group added to the team." }),
                ),
            ]),
        ),
        (
            "RoleMapping",
            json!({
                "type": "object",
                "required": ["group_id", "role"],
                "additionalProperties": false,
                "properties": { "group_id": string(), "role": directory_role() },
            }),
        ),
        (
            "AuditEntry",
            object(&[
                ("id", integer()),
                ("occurred_at", timestamp()),
                ("action", string()),
                ("subject_type", string()),
                ("subject_id", string()),
                ("before", nullable(json!({ "type": "object" }))),
                ("after", nullable(json!({ "type": "object" }))),
                ("cause", schema_ref("AuditCause")),
            ]),
        ),
        (
            "AuditCause",
            object(&[
                ("type", one_of(["event", "sync_run", "api_token", "operator"])),
                (
                    "id",
                    json!({
                        "type": "string",
                        "description": "The event id, sync run id or token id; `bootstrap` for the configured operator token.",
                    }),
                ),
            ]),
        ),
        (
            "EventStatus",
            one_of(EventStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            "Event",
            object(&[
                ("id", integer()),
                ("event_id", nullable(string())),
                ("event_type", nullable(string())),
                ("directory_id", nullable(string())),
                ("status", schema_ref("EventStatus")),
                ("reason", nullable(string())),
                ("attempts", json!({ "type": "integer" })),
                ("event_created_at", nullable(timestamp())),
                ("received_at", timestamp()),
                ("processed_at", nullable(timestamp())),
                ("next_attempt_at", nullable(timestamp())),
            ]),
        ),
        (
            "EventWithBody",
            json!({
                "allOf": [
                    schema_ref("Event"),
                    object(&[("body", json!({ "type": "string", "description": "The raw delivery as received." }))]),
                ],
            }),
        ),
    ]
    .into_iter()
    .map(|(name, schema)| (name.to_string(), schema))
    .collect()
}

//! `GET /openapi.json`: the OpenAPI document of the whole API.
//!
//! Written by hand from the handlers. Every operation lists each status it can answer; a problem
//! response names the `code` values it may carry, so a conformance run catches a code that drifts.
//! `tests/api/openapi.rs` snapshots the document, so API changes show up in review.

use super::resource;
use super::sync_runs::RUN_STATUSES;
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
        directory_paths(),
        audit_paths(),
        event_paths(),
        sync_run_paths(),
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
        "tags": tags(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An operator token (the `ROLLCALL_OPERATOR_TOKEN` setting, or one made with \
                        `rollcall token create`) may do everything; a workspace admin token acts on its own \
                        workspace only. A revoked or expired token answers 401.",
                },
            },
            "parameters": parameters(),
            "responses": standard_responses(),
            "schemas": schemas(),
        },
    })
}

/// The groups operations are listed in.
fn tags() -> Value {
    [
        ("service", "Liveness, readiness and this document."),
        ("webhooks", "Signed `dsync.*` deliveries from the broker."),
        (
            "workspaces",
            "Workspaces, their admin tokens and their directory-sync setting.",
        ),
        (
            "members",
            "Workspace members; with directory sync on, the directory owns them.",
        ),
        (
            "teams",
            "Teams, why each member is in each, and the directory groups linked to them.",
        ),
        ("directory", "Directory groups and the roles they map to."),
        ("audit", "Every change, with its cause."),
        ("events", "Stored webhook deliveries, for operators."),
        (
            "sync runs",
            "Full pulls of a directory: on demand, every `RESYNC_INTERVAL`, after `dsync.activated` and \
             when a workspace turns directory sync on.",
        ),
    ]
    .into_iter()
    .map(|(name, description)| json!({ "name": name, "description": description }))
    .collect()
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

/// An object with these properties, of which `required` must be there.
fn object_with(required: &[&str], properties: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| (name.to_string(), schema.clone()))
        .collect();
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// An object with every listed property always there; answers may gain properties later.
fn object(properties: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    object_with(&required, properties)
}

/// `schema` taking no other properties: the handler denies unknown fields.
fn closed(mut schema: Value) -> Value {
    schema["additionalProperties"] = Value::Bool(false);
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
    fn paged(self) -> Self {
        self.paged_with("after")
    }

    /// `?limit=` and `?after=` for a list whose cursor is a numeric id.
    fn paged_by_id(self) -> Self {
        self.paged_with("after_id")
    }

    fn paged_with(mut self, after: &str) -> Self {
        let parameters = self
            .0
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are a list");
        parameters.extend([parameter_ref("limit"), parameter_ref(after)]);
        self.fails(StatusCode::BAD_REQUEST, &["invalid_parameter"])
    }

    /// A required JSON body.
    fn body(self, schema: Value) -> Self {
        self.request_body(true, schema)
    }

    /// A JSON body that may be left out altogether.
    fn optional_body(self, schema: Value) -> Self {
        self.request_body(false, schema)
    }

    fn request_body(mut self, required: bool, schema: Value) -> Self {
        self.0.insert(
            "requestBody".into(),
            json!({ "required": required, "content": { "application/json": { "schema": schema } } }),
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

    /// Links the `status` answer to the operations that take what it returns: `parameters` maps each of
    /// their parameters to a runtime expression such as `$response.body#/id`.
    fn links(mut self, status: StatusCode, parameters: &[(&str, &str)], targets: &[&str]) -> Self {
        let parameters: Map<String, Value> = parameters
            .iter()
            .map(|(name, expression)| (name.to_string(), json!(expression)))
            .collect();
        let links: Map<String, Value> = targets
            .iter()
            .map(|target| {
                let link = json!({ "operationId": target, "parameters": parameters });
                (target.to_string(), link)
            })
            .collect();
        self.0["responses"][status.as_str()]["links"] = Value::Object(links);
        self
    }

    /// A problem with one of these codes.
    /// A problem answer; codes already listed for the same status are kept.
    fn fails(self, status: StatusCode, codes: &[&str]) -> Self {
        let listed: Vec<String> = self.0["responses"][status.as_str()]["content"]
            ["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
            .as_array()
            .map(|codes| {
                codes
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut all: Vec<&str> = listed.iter().map(String::as_str).collect();
        all.extend(codes.iter().filter(|c| !listed.iter().any(|l| l == *c)));
        self.respond(status, problem(status, &all))
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
            // A NUL byte in the path or query is refused on every route.
            .fails(StatusCode::BAD_REQUEST, &["invalid_parameter"])
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
        let mut op = self
            .fails(StatusCode::BAD_REQUEST, &["invalid_parameter"])
            .0;
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
        ("dir", "The directory (`directory_…`)."),
        ("run", "The sync run (`run_…`)."),
        ("token", "The admin token (`tok_…`)."),
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
    parameters.insert(
        "after_id".into(),
        query_parameter(
            "after",
            "The previous page's `list_metadata.after`, a numeric id.",
            integer(),
        ),
    );
    parameters
}

// ---------------------------------------------------------------------------------------------------
// Paths

/// The operations on one workspace that take nothing but its id.
const WORKSPACE_OPERATIONS: [&str; 14] = [
    "get_workspace",
    "update_workspace",
    "create_admin_token",
    "list_admin_tokens",
    "get_directory_sync",
    "set_directory_sync",
    "list_members",
    "add_member",
    "list_teams",
    "create_team",
    "list_directory_groups",
    "get_role_mappings",
    "put_role_mappings",
    "list_audit_log",
];

/// The operations on one team that take nothing but its workspace's id and its own.
const TEAM_OPERATIONS: [&str; 7] = [
    "get_team",
    "rename_team",
    "delete_team",
    "list_team_members",
    "add_team_member",
    "list_linked_groups",
    "link_directory_group",
];

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
            "/metrics",
            &[],
            vec![(
                "get",
                operation("metrics", "service", "Counters and gauges for Prometheus")
                    .describe(
                        "The Prometheus text exposition format, version 0.0.4: \
                         `rollcall_sync_runs_total{status}`, `rollcall_sync_runs_started_total{trigger}`, \
                         `rollcall_sync_runs_running`, `rollcall_broker_requests_total{endpoint}`, \
                         `rollcall_broker_rate_limited_total`, `rollcall_broker_retries_total` and \
                         `rollcall_webhooks_received_total{outcome}`. Counts are this process's since it started.",
                    )
                    .respond(
                        StatusCode::OK,
                        json!({
                            "description": "Every series, one sample a line.",
                            "content": { "text/plain": { "schema": string() } },
                        }),
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
                        schema_ref("WebhookReceipt"),
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
                        .links(
                            StatusCode::CREATED,
                            &[("ws", "$response.body#/id")],
                            &WORKSPACE_OPERATIONS,
                        )
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
            vec![
                (
                    "get",
                    operation(
                        "list_admin_tokens",
                        "workspaces",
                        "List the workspace's admin tokens",
                    )
                    .describe(
                        "The tokens not revoked, oldest first, expired ones included; never a token or \
                         its hash.",
                    )
                    .paged()
                    .answers(
                        StatusCode::OK,
                        "A page of admin tokens.",
                        list_of("AdminToken"),
                    )
                    .operator_only()
                    .finds()
                    .authenticated(),
                ),
                (
                    "post",
                    operation(
                        "create_admin_token",
                        "workspaces",
                        "Create a workspace admin token",
                    )
                    .describe(
                        "The token is shown once; only its hash is stored. The body may be left out: the \
                         token then has no name and lasts until revoked.",
                    )
                    .optional_body(schema_ref("NewAdminToken"))
                    .answers(
                        StatusCode::CREATED,
                        "Created.",
                        schema_ref("CreatedAdminToken"),
                    )
                    .links(
                        StatusCode::CREATED,
                        &[("ws", "$request.path.ws"), ("token", "$response.body#/id")],
                        &["revoke_admin_token"],
                    )
                    .checks_body()
                    .operator_only()
                    .finds()
                    .authenticated(),
                ),
            ],
        ),
        path(
            "/api/v1/workspaces/{ws}/admin-tokens/{token}",
            &["ws", "token"],
            vec![(
                "delete",
                operation(
                    "revoke_admin_token",
                    "workspaces",
                    "Revoke a workspace admin token",
                )
                .describe(
                    "The token answers 401 from then on and is no longer listed. A token already revoked \
                     is not found.",
                )
                .answers_empty(StatusCode::NO_CONTENT, "Revoked.")
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
                        .parameters(vec![
                            query_parameter(
                                "status",
                                "Only members with this status.",
                                schema_ref("MemberStatus"),
                            ),
                            query_parameter(
                                "email",
                                "Only the member with this email, compared case-insensitively.",
                                json!({ "type": "string" }),
                            ),
                        ])
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
                        .links(
                            StatusCode::CREATED,
                            &[("ws", "$request.path.ws"), ("member", "$response.body#/id")],
                            &["get_member", "update_member", "remove_member"],
                        )
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
                        .describe(
                            "With directory sync on, a directory-managed member is removed in the identity \
                             provider (409); leftover manual members can still be removed here.",
                        )
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
                        .body(schema_ref("TeamName"))
                        .answers(StatusCode::CREATED, "Created.", team())
                        .links(
                            StatusCode::CREATED,
                            &[("ws", "$request.path.ws"), ("team", "$response.body#/id")],
                            &TEAM_OPERATIONS,
                        )
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
                    operation("rename_team", "teams", "Rename a team")
                        .body(schema_ref("TeamName"))
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
                        .body(schema_ref("TeamMemberRef"))
                        .answers(StatusCode::CREATED, "Added.", schema_ref("TeamMember"))
                        .links(
                            StatusCode::CREATED,
                            &[
                                ("ws", "$request.path.ws"),
                                ("team", "$request.path.team"),
                                ("member", "$response.body#/member_id"),
                            ],
                            &["remove_team_member"],
                        )
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
                    operation("list_linked_groups", "teams", "List the directory groups linked to a team")
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
                        .body(schema_ref("GroupRef"))
                        .answers(StatusCode::CREATED, "Linked.", schema_ref("CreatedTeamLink"))
                        .links(
                            StatusCode::CREATED,
                            &[
                                ("ws", "$request.path.ws"),
                                ("team", "$request.path.team"),
                                ("group", "$response.body#/group_id"),
                            ],
                            &["unlink_directory_group"],
                        )
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

fn directory_paths() -> Vec<(&'static str, Value)> {
    vec![
        path(
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
                .answers(StatusCode::OK, "A page of groups.", list_of("DirectoryGroup"))
                .finds()
                .authenticated(),
            )],
        ),
        path(
            "/api/v1/workspaces/{ws}/role-mappings",
            &["ws"],
            vec![
                (
                    "get",
                    operation("get_role_mappings", "directory", "List role mappings")
                        .answers(StatusCode::OK, "Every mapping.", schema_ref("RoleMappings"))
                        .finds()
                        .authenticated(),
                ),
                (
                    "put",
                    operation("put_role_mappings", "directory", "Replace the role mappings")
                        .describe(
                            "Replaces the whole set; directory-managed members' roles are recomputed. A \
                             group may appear once, and must be one of the workspace's directory groups \
                             (400 `unknown_group`).",
                        )
                        .body(array(schema_ref("RoleMapping")))
                        .answers(StatusCode::OK, "The new set.", schema_ref("RoleMappings"))
                        .fails(
                            StatusCode::BAD_REQUEST,
                            &["invalid_body", "invalid_field", "unknown_group"],
                        )
                        .finds()
                        .authenticated(),
                ),
            ],
        ),
    ]
}

fn audit_paths() -> Vec<(&'static str, Value)> {
    vec![path(
        "/api/v1/workspaces/{ws}/audit-log",
        &["ws"],
        vec![(
            "get",
            operation(
                "list_audit_log",
                "audit",
                "Read the audit log, newest first",
            )
            .paged_by_id()
            .answers(StatusCode::OK, "A page of entries.", list_of("AuditEntry"))
            .finds()
            .authenticated(),
        )],
    )]
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
                .paged_by_id()
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
                .links(
                    StatusCode::ACCEPTED,
                    &[("id", "$response.body#/id")],
                    &["get_event"],
                )
                .operator_only()
                .finds()
                .fails(StatusCode::CONFLICT, &["not_retryable"])
                .authenticated(),
            )],
        ),
    ]
}

fn sync_run_paths() -> Vec<(&'static str, Value)> {
    vec![
        path(
            "/api/v1/directories/{dir}/resync",
            &["dir"],
            vec![(
                "post",
                operation(
                    "resync_directory",
                    "sync runs",
                    "Start a full pull of a directory",
                )
                .describe("`?force=true` applies deprovisioning that a previous run held back.")
                .parameters(vec![query_parameter(
                    "force",
                    "Apply everything, even past the mass-deprovision guard.",
                    json!({ "type": "boolean", "default": false }),
                )])
                .answers(
                    StatusCode::ACCEPTED,
                    "The run is queued.",
                    object_with(&["run_id"], &[("run_id", string())]),
                )
                .links(
                    StatusCode::ACCEPTED,
                    &[("run", "$response.body#/run_id")],
                    &["get_sync_run"],
                )
                .operator_only()
                .finds()
                .fails(
                    StatusCode::CONFLICT,
                    &["sync_in_progress", "broker_not_configured"],
                )
                .authenticated(),
            )],
        ),
        path(
            "/api/v1/sync-runs",
            &[],
            vec![(
                "get",
                operation(
                    "list_sync_runs",
                    "sync runs",
                    "List sync runs, newest first",
                )
                .parameters(vec![
                    query_parameter(
                        "directory",
                        "Only runs of this directory (`directory_…`).",
                        string(),
                    ),
                    query_parameter(
                        "status",
                        "Only runs with this status.",
                        one_of(RUN_STATUSES),
                    ),
                ])
                .paged()
                .answers(StatusCode::OK, "A page of runs.", list_of("SyncRun"))
                .operator_only()
                .authenticated(),
            )],
        ),
        path(
            "/api/v1/sync-runs/{run}",
            &["run"],
            vec![(
                "get",
                operation(
                    "get_sync_run",
                    "sync runs",
                    "Get a sync run with its progress and counts",
                )
                .answers(StatusCode::OK, "The run.", schema_ref("SyncRun"))
                .operator_only()
                .finds()
                .authenticated(),
            )],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------------
// Schemas

fn schemas() -> Map<String, Value> {
    [
        common_schemas(),
        workspace_schemas(),
        member_schemas(),
        team_schemas(),
        directory_and_audit_schemas(),
        event_schemas(),
        sync_run_schemas(),
    ]
    .into_iter()
    .flatten()
    .map(|(name, schema)| (name.to_string(), schema))
    .collect()
}

/// `schema` with a description.
fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

/// A name as admins give it: trimmed, 1 to 200 characters.
/// 1 to 200 characters, not only spaces, no control characters (as `check_name` accepts them).
fn name() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    })
}

fn email() -> Value {
    json!({ "type": "string", "format": "email", "maxLength": 320 })
}

fn role() -> Value {
    one_of(Role::ALL.iter().map(|r| r.as_str()))
}

/// A role the directory may give: any but `owner`.
fn directory_role() -> Value {
    one_of(
        Role::ALL
            .iter()
            .filter(|r| **r != Role::Owner)
            .map(|r| r.as_str()),
    )
}

fn plan() -> Value {
    one_of(Plan::ALL.iter().map(|p| p.as_str()))
}

fn common_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Problem",
            described(
                object(&[
                    ("type", string()),
                    ("status", json!({ "type": "integer" })),
                    ("title", string()),
                    ("code", string()),
                    ("detail", string()),
                ]),
                "An RFC 9457 problem; `code` is stable, `detail` is for people.",
            ),
        ),
        (
            "ListMetadata",
            object(&[(
                "after",
                described(
                    nullable(string()),
                    "Pass as `?after=` for the next page; null on the last page.",
                ),
            )]),
        ),
        (
            "WebhookReceipt",
            object(&[
                ("received", described(string(), "The event's id.")),
                (
                    "redelivery",
                    described(
                        json!({ "type": "boolean" }),
                        "True when the event was stored before: acknowledged, its body not stored again.",
                    ),
                ),
            ]),
        ),
        ("Health", object(&[("status", one_of(["ok"]))])),
        (
            "Readiness",
            object_with(
                &["status"],
                &[
                    ("status", one_of(["ready", "unavailable"])),
                    ("database", one_of(["ok", "unreachable"])),
                ],
            ),
        ),
    ]
}

fn workspace_schemas() -> Vec<(&'static str, Value)> {
    vec![
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
            object_with(
                &["name", "plan", "organization_id"],
                &[
                    ("name", name()),
                    ("plan", plan()),
                    (
                        "organization_id",
                        described(
                            json!({ "type": "string", "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$" }),
                            "The broker's organization (`org_…`); one workspace each.",
                        ),
                    ),
                    ("default_role", directory_role()),
                ],
            ),
        ),
        (
            "WorkspaceChanges",
            closed(object_with(
                &[],
                &[
                    ("name", name()),
                    ("plan", plan()),
                    ("default_role", directory_role()),
                ],
            )),
        ),
        (
            "AdminToken",
            object(&[
                ("id", string()),
                ("name", nullable(string())),
                ("created_at", timestamp()),
                (
                    "last_used_at",
                    described(
                        nullable(timestamp()),
                        "When the token was last used, to the minute; null until it is.",
                    ),
                ),
                (
                    "expires_at",
                    described(
                        nullable(timestamp()),
                        "From then on the token answers 401; null when it lasts until revoked.",
                    ),
                ),
            ]),
        ),
        (
            "CreatedAdminToken",
            json!({
                "allOf": [
                    schema_ref("AdminToken"),
                    object(&[("token", described(string(), "Shown only here."))]),
                ],
            }),
        ),
        (
            "NewAdminToken",
            closed(object_with(
                &[],
                &[
                    ("name", name()),
                    (
                        "expires_in",
                        described(
                            json!({ "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)?$" }),
                            "How long the token lasts, such as `30d`, `12h` or `90m` (1s to 3650d); \
                             without it, until revoked.",
                        ),
                    ),
                ],
            )),
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
            object_with(&["enabled"], &[("enabled", boolean())]),
        ),
    ]
}

fn member_schemas() -> Vec<(&'static str, Value)> {
    let changes = [
        ("email", email()),
        ("first_name", string()),
        ("last_name", string()),
        ("role", role()),
    ];
    vec![
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
                (
                    "managed_by",
                    one_of(ManagedBy::ALL.iter().map(|m| m.as_str())),
                ),
                ("directory_user_id", nullable(string())),
                ("created_at", timestamp()),
                ("updated_at", timestamp()),
            ]),
        ),
        (
            "MemberStatus",
            one_of(MemberStatus::ALL.iter().map(|s| s.as_str())),
        ),
        ("NewMember", closed(object_with(&["email"], &changes))),
        ("MemberChanges", closed(object_with(&[], &changes))),
    ]
}

fn team_schemas() -> Vec<(&'static str, Value)> {
    let ids = || array(string());
    vec![
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
        ("TeamName", closed(object(&[("name", name())]))),
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
            object(&[
                ("type", one_of(["directory_group"])),
                ("group_id", string()),
            ]),
        ),
        ("TeamMemberRef", closed(object(&[("member_id", string())]))),
        (
            "TeamLink",
            object(&[
                ("team_id", string()),
                ("group_id", string()),
                ("name", string()),
                ("directory_id", string()),
                ("linked_at", timestamp()),
            ]),
        ),
        ("GroupRef", closed(object(&[("group_id", string())]))),
        (
            "CreatedTeamLink",
            json!({
                "allOf": [
                    schema_ref("TeamLink"),
                    object(&[(
                        "members_added",
                        described(
                            json!({ "type": "integer" }),
                            "Active members of the group added to the team.",
                        ),
                    )]),
                ],
            }),
        ),
    ]
}

fn directory_and_audit_schemas() -> Vec<(&'static str, Value)> {
    let ids = || array(string());
    vec![
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
            "RoleMapping",
            closed(object(&[
                ("group_id", string()),
                ("role", directory_role()),
            ])),
        ),
        (
            "RoleMappings",
            object(&[("data", array(schema_ref("RoleMapping")))]),
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
                (
                    "type",
                    one_of(["event", "sync_run", "api_token", "operator"]),
                ),
                (
                    "id",
                    described(
                        string(),
                        "The event, sync run or token id; `bootstrap` for the configured operator token.",
                    ),
                ),
            ]),
        ),
    ]
}

fn sync_run_schemas() -> Vec<(&'static str, Value)> {
    let count = || integer();
    vec![(
        "SyncRun",
        object(&[
            ("id", string()),
            ("directory_id", string()),
            (
                "trigger",
                described(
                    one_of(["on_demand", "scheduled", "directory_activated", "sync_enabled"]),
                    "What started the run: an operator, the schedule, an applied `dsync.activated`, or \
                     the workspace turning directory sync on.",
                ),
            ),
            ("force", json!({ "type": "boolean" })),
            (
                "status",
                one_of(["queued", "running", "succeeded", "failed", "held"]),
            ),
            (
                "progress",
                object(&[
                    (
                        "phase",
                        one_of(["queued", "listing", "reconciling teams", "done"]),
                    ),
                    ("requests", integer()),
                    ("users_listed", integer()),
                ]),
            ),
            (
                "counts",
                nullable(object(&[
                    ("users_created", count()),
                    ("users_updated", count()),
                    ("users_deleted", count()),
                    ("groups_created", count()),
                    ("groups_updated", count()),
                    ("groups_deleted", count()),
                    ("memberships_added", count()),
                    ("memberships_removed", count()),
                    ("deprovisioned", count()),
                    ("held", count()),
                    ("held_users_deleted", count()),
                    ("held_groups_deleted", count()),
                    ("held_memberships_removed", count()),
                    ("conflicts", count()),
                ])),
            ),
            ("error", nullable(string())),
            ("created_at", timestamp()),
            ("started_at", nullable(timestamp())),
            ("finished_at", nullable(timestamp())),
        ]),
    )]
}

fn event_schemas() -> Vec<(&'static str, Value)> {
    vec![
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
                (
                    "redeliveries",
                    json!({ "type": "integer", "description": "Deliveries of the same event after this one, acknowledged and not stored again" }),
                ),
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
                    object(&[("body", described(string(), "The raw delivery as received."))]),
                ],
            }),
        ),
    ]
}

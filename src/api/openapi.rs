//! `GET /openapi.json`: the OpenAPI document of the whole API.
//!
//! Derived from each handler's `#[utoipa::path]` and from the types the handlers take and answer. A
//! problem response names the `code` values it may carry under `x-problem-codes`; [`Conventions`] turns
//! them into the response's schema, so a conformance run catches a code that drifts, and adds what every
//! operation shares. `tests/api/openapi.rs` snapshots the document, so API changes show up in review.

use super::error::Problem;
use super::route::Route;
use crate::lists::ListMetadata;

use crate::schemas::one_of;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

pub fn routes() -> Vec<Route> {
    Route::of::<__path_openapi_json>(|| web::to(openapi_json))
}

/// This document
#[utoipa::path(get, path = "/openapi.json", tag = "service", responses(
    (status = 200, description = "The OpenAPI document.", body = Object),
))]
pub(super) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The OpenAPI 3.1 document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rollcall",
        description = "Keeps a SaaS product's workspaces in step with each customer's identity provider \
            through WorkOS Directory Sync. Errors are `application/problem+json` with a stable `code`; \
            another workspace's resources answer 404. Lists take `?limit=` (1 to 1000, default 100) and \
            `?after=`, and answer `{data, list_metadata: {after}}`; `after` is null on the last page. \
            A method a path does not take answers 405 `method_not_allowed`.",
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        openapi_json,
        super::webhooks::receive_webhook,
        super::caller::get_caller,
        super::workspaces::list_workspaces,
        super::workspaces::create_workspace,
        super::workspaces::get_workspace,
        super::workspaces::update_workspace,
        super::workspaces::list_admin_tokens,
        super::workspaces::create_admin_token,
        super::workspaces::revoke_admin_token,
        super::workspaces::get_directory_sync,
        super::workspaces::set_directory_sync,
        super::members::list_members,
        super::members::add_member,
        super::members::get_member,
        super::members::update_member,
        super::members::remove_member,
        super::teams::list_teams,
        super::teams::create_team,
        super::teams::get_team,
        super::teams::rename_team,
        super::teams::delete_team,
        super::teams::list_team_members,
        super::teams::add_team_member,
        super::teams::remove_team_member,
        super::teams::list_linked_groups,
        super::teams::link_directory_group,
        super::teams::unlink_directory_group,
        super::teams::preview_unlink,
        super::directory_groups::list_directory_groups,
        super::role_mappings::get_role_mappings,
        super::role_mappings::put_role_mappings,
        super::role_mappings::preview_role_mappings,
        super::role_mappings::get_role_source,
        super::role_mappings::put_role_source,
        super::role_mappings::preview_role_source,
        super::audit_log::list_audit_log,
        super::changes::list_workspace_changes,
        super::changes::list_changes,
        super::webhook_endpoints::list_endpoints,
        super::webhook_endpoints::create_endpoint,
        super::webhook_endpoints::get_endpoint,
        super::webhook_endpoints::update_endpoint,
        super::webhook_endpoints::delete_endpoint,
        super::webhook_endpoints::list_attempts,
        super::webhook_endpoints::replay_endpoint,
        super::scim_directories::list_scim_directories,
        super::scim_directories::create_scim_directory,
        super::scim_directories::get_scim_directory,
        super::scim_directories::create_scim_token,
        super::scim_directories::revoke_scim_token,
        super::events::list_events,
        super::events::get_event,
        super::events::retry_event,
        super::events::dismiss_event,
        super::event_tail::get_event_tail,
        super::sync_runs::resync_directory,
        super::sync_runs::list_sync_runs,
        super::sync_runs::get_sync_run,
    ),
    components(schemas(Problem, ListMetadata)),
    tags(
        (name = "service", description = "Liveness, readiness and this document."),
        (name = "webhooks", description = "Signed `dsync.*` deliveries from the broker."),
        (name = "workspaces", description = "Workspaces, their admin tokens and their directory-sync setting."),
        (name = "members", description = "Workspace members; with directory sync on, the directory owns them."),
        (name = "teams", description = "Teams, why each member is in each, and the directory groups linked to them."),
        (name = "directory", description = "Directory groups and the roles they map to."),
        (name = "audit", description = "Every change, with its cause."),
        (name = "changes", description = "The change feed: what Rollcall changed, in order, for the product to follow, and the webhook endpoints it is sent to."),
        (name = "scim", description = "Rollcall's own SCIM 2.0 directories, which an identity provider provisions \
            straight into a workspace (at `/scim/v2/{directory}`, outside this document), and their bearer tokens."),
        (name = "events", description = "Stored deliveries, from webhooks and the Events API tail, for operators."),
        (name = "sync runs", description = "Full pulls of a directory: on demand, every `RESYNC_INTERVAL`, \
            after `dsync.activated` and when a workspace turns directory sync on."),
    ),
    modifiers(&Conventions),
)]
struct ApiDoc;

// ---------------------------------------------------------------------------------------------------
// What every operation shares

/// Adds what the handlers share rather than declare one by one: the bearer token and its answers on
/// `/api/v1`, the 400 for a NUL byte in the path or query (refused on every route), the problem
/// schemas of the `x-problem-codes` each response lists, and the links between operations.
struct Conventions;

/// The problems every `/api/v1` operation may answer, besides its own.
const AUTHENTICATED: [(StatusCode, &str); 3] = [
    (StatusCode::UNAUTHORIZED, "unauthorized"),
    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
];

/// The extension a handler's response lists its problem codes in.
const CODES: &str = "x-problem-codes";

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An operator token (the `ROLLCALL_OPERATOR_TOKEN` setting, or one made with \
                         `rollcall token create`) may do everything; a workspace admin token acts on its \
                         own workspace only. A revoked or expired token answers 401.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let authenticated = path.starts_with("/api/v1/");
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_problem(operation, StatusCode::BAD_REQUEST, "invalid_parameter");
                if authenticated {
                    for (status, code) in AUTHENTICATED {
                        add_problem(operation, status, code);
                    }
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                } else {
                    operation.security = Some(Vec::new());
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let status = StatusCode::from_bytes(status.as_bytes());
                    if let (RefOr::T(response), Ok(status)) = (response, status) {
                        describe_problems(response, status);
                    }
                }
                if let Some(id) = operation.operation_id.clone() {
                    add_links(operation, &id);
                }
            }
        }
    }
}

/// The codes a response lists.
fn codes(response: &Response) -> Vec<String> {
    response
        .extensions
        .as_ref()
        .and_then(|e| e.get(CODES))
        .and_then(Value::as_array)
        .map(|codes| {
            codes
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `code` to the `status` problem of `operation`, keeping the codes it lists already.
fn add_problem(operation: &mut Operation, status: StatusCode, code: &str) {
    let response = operation
        .responses
        .responses
        .entry(status.as_str().to_string())
        .or_insert_with(|| RefOr::T(Response::new("")));
    let RefOr::T(response) = response else { return };
    let mut listed = codes(response);
    if !listed.iter().any(|c| c == code) {
        listed.push(code.to_string());
    }
    let mut extensions = Extensions::default();
    extensions.insert(CODES.to_string(), json!(listed));
    response.extensions = Some(extensions);
}

/// A response listing problem codes: `application/problem+json` with its status and one of those codes.
fn describe_problems(response: &mut Response, status: StatusCode) {
    let codes = codes(response);
    if codes.is_empty() {
        return;
    }
    let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    let reason = status.canonical_reason().unwrap_or("Error");
    response.description = format!("{reason}: {}", listed.join(", "));
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(
            ObjectBuilder::new()
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status.as_u16()])),
                )
                .property("code", one_of(codes.iter().map(String::as_str))),
        );
    response.content.insert(
        "application/problem+json".to_string(),
        ContentBuilder::new().schema(Some(schema)).build(),
    );
}

/// The links from one operation's answers to the operations that take what they return: the status,
/// each parameter with the runtime expression giving it, and the operations.
type Links = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// The operations on one workspace that take nothing but its id.
const WORKSPACE_OPERATIONS: &[&str] = &[
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
    "preview_role_mappings",
    "get_role_source",
    "put_role_source",
    "preview_role_source",
    "list_audit_log",
];

/// The operations on one team that take nothing but its workspace's id and its own.
const TEAM_OPERATIONS: &[&str] = &[
    "get_team",
    "rename_team",
    "delete_team",
    "list_team_members",
    "add_team_member",
    "list_linked_groups",
    "link_directory_group",
];

fn links_of(operation_id: &str) -> Option<Links> {
    Some(match operation_id {
        "create_workspace" => ("201", &[("ws", "$response.body#/id")], WORKSPACE_OPERATIONS),
        "create_admin_token" => (
            "201",
            &[("ws", "$request.path.ws"), ("token", "$response.body#/id")],
            &["revoke_admin_token"],
        ),
        "add_member" => (
            "201",
            &[("ws", "$request.path.ws"), ("member", "$response.body#/id")],
            &["get_member", "update_member", "remove_member"],
        ),
        "create_team" => (
            "201",
            &[("ws", "$request.path.ws"), ("team", "$response.body#/id")],
            TEAM_OPERATIONS,
        ),
        "add_team_member" => (
            "201",
            &[
                ("ws", "$request.path.ws"),
                ("team", "$request.path.team"),
                ("member", "$response.body#/member_id"),
            ],
            &["remove_team_member"],
        ),
        "link_directory_group" => (
            "201",
            &[
                ("ws", "$request.path.ws"),
                ("team", "$request.path.team"),
                ("group", "$response.body#/group_id"),
            ],
            &["unlink_directory_group"],
        ),
        "retry_event" => ("202", &[("id", "$response.body#/id")], &["get_event"]),
        "resync_directory" => (
            "202",
            &[("run", "$response.body#/run_id")],
            &["get_sync_run"],
        ),
        _ => return None,
    })
}

fn add_links(operation: &mut Operation, operation_id: &str) {
    let Some((status, parameters, targets)) = links_of(operation_id) else {
        return;
    };
    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
        return;
    };
    for target in targets {
        let mut link = parameters
            .iter()
            .fold(LinkBuilder::new(), |link, (name, expression)| {
                link.parameter(*name, *expression)
            })
            .build();
        // utoipa writes `operation_id`, where OpenAPI names the field `operationId`.
        let mut operation = Extensions::default();
        operation.insert("operationId".to_string(), json!(target));
        link.extensions = Some(operation);
        response.links.insert(target.to_string(), RefOr::T(link));
    }
}

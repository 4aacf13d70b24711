//! Rollcall's own SCIM 2.0 directories: an identity provider provisions a workspace straight into
//! Rollcall, through the same log and apply engine as a broker. Okta's and Entra ID's provisioning
//! sessions replayed in their request shapes (as their SCIM guides show them), group links with keep and
//! remove, and the protocol's answers: tokens, uniqueness, filters, paging, ETags, limits.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use diesel::prelude::*;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    an_okta_session_provisions_updates_and_deprovisions,
    an_entra_session_with_its_shapes_links_and_unlinks_a_group,
    answers_follow_the_rfc,
    tokens_rotate_and_revoke_and_stay_in_their_directory,
    the_command_line_creates_lists_and_rotates,
    what_was_pushed_while_sync_was_off_is_applied_when_it_turns_on,
    a_directorys_writes_keep_their_order_when_the_clock_goes_back,
);

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM directory of a synced workspace, as its identity provider reaches it.
struct Scim {
    ws: String,
    directory: String,
    base: String,
    token: String,
    client: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Scim {
    async fn new(app: &TestApp, organization: &str) -> Scim {
        let ws = app.synced_workspace(organization).await;
        Scim::of(app, &ws).await
    }

    /// A new SCIM directory of workspace `ws`.
    async fn of(app: &TestApp, ws: &str) -> Scim {
        let (status, created) = app
            .op(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/scim-directories"),
                Some(json!({"name": "Identity provider"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let directory = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["base_path"], format!("/scim/v2/{directory}"));
        Scim {
            ws: ws.to_string(),
            base: format!("{}/scim/v2/{directory}", app.address),
            directory,
            token: created["token"]["secret"].as_str().unwrap().to_string(),
            client: app.client.clone(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with(method, path, body, Some(&self.token), &[])
            .await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the SCIM request is sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() && status != StatusCode::NOT_MODIFIED {
            assert_eq!(
                headers["content-type"], "application/scim+json",
                "{status} {body}"
            );
            assert_eq!(
                body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
            );
            assert_eq!(body["status"], status.as_u16().to_string());
        }
        Answer {
            status,
            body,
            headers,
        }
    }

    /// Posts a resource; returns it as kept.
    async fn create(&self, endpoint: &str, resource: Value) -> Value {
        let answer = self.send(Method::POST, endpoint, Some(resource)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let id = answer.body["id"].as_str().unwrap();
        assert_eq!(
            answer.headers["location"],
            format!("{}{endpoint}/{id}", self.base)
        );
        answer.body
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let answer = self.send(method, path, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        answer.body
    }

    fn path(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.ws)
    }
}

fn patch(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

fn filter(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The workspace's member of `email`, once the log is applied.
async fn member(app: &TestApp, scim: &Scim, email: &str) -> Value {
    app.wait_applied().await;
    app.member(&scim.ws, email)
        .await
        .unwrap_or_else(|| panic!("no member {email}"))
}

async fn team_members(app: &TestApp, scim: &Scim, team: &str) -> Vec<String> {
    app.wait_applied().await;
    let (status, body) = app
        .op(
            Method::GET,
            &scim.path(&format!("/teams/{team}/members")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    crate::helpers::sorted_emails(&body)
}

async fn new_team(app: &TestApp, scim: &Scim, name: &str) -> String {
    let (status, team) = app
        .op(
            Method::POST,
            &scim.path("/teams"),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    team["id"].as_str().unwrap().to_string()
}

async fn link(app: &TestApp, scim: &Scim, team: &str, group: &str) {
    app.wait_applied().await;
    let (status, body) = app
        .op(
            Method::POST,
            &scim.path(&format!("/teams/{team}/directory-groups")),
            Some(json!({ "group_id": group })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn unlink(app: &TestApp, scim: &Scim, team: &str, group: &str, members: &str) {
    let (status, body) = app
        .op(
            Method::DELETE,
            &scim.path(&format!(
                "/teams/{team}/directory-groups/{group}?members={members}"
            )),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// Okta's provisioning, in the order and shapes of its SCIM 2.0 guide: it looks the user up by
/// `userName`, creates it (with a password it must not get back), reads it, pushes a group and its
/// members with PATCH, deactivates with a path-less `replace` of `active`, reactivates, and updates the
/// profile with PUT.
async fn an_okta_session_provisions_updates_and_deprovisions(app: TestApp) {
    let scim = Scim::new(&app, "org_okta").await;
    let lookup = scim
        .ok(
            Method::GET,
            &format!(
                "/Users?filter={}&startIndex=1&count=100",
                filter(r#"userName eq "ada@example.com""#)
            ),
            None,
        )
        .await;
    assert_eq!(lookup["totalResults"], 0);
    assert_eq!(lookup["Resources"], json!([]));

    let ada = scim
        .create(
            "/Users",
            json!({
                "schemas": [USER_SCHEMA],
                "userName": "ada@example.com",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "emails": [{"primary": true, "value": "ada@example.com", "type": "work"}],
                "displayName": "Ada Lovelace", "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [], "password": "1mz050nq", "active": true
            }),
        )
        .await;
    let id = ada["id"].as_str().unwrap();
    assert!(ada.get("password").is_none(), "a password is never kept");
    assert_eq!(ada["meta"]["resourceType"], "User");
    assert_eq!(ada["meta"]["version"], "W/\"1\"");
    // Read your writes: the identity provider reads what it pushed at once.
    let read = scim.ok(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read, ada);

    let member = member(&app, &scim, "ada@example.com").await;
    assert_eq!(member["status"], "active");
    assert_eq!(member["first_name"], "Ada");
    assert_eq!(member["managed_by"], "directory");
    assert_eq!(member["directory_user_id"], id);

    // A group, then its members by PATCH (Okta's group push).
    let group = scim
        .create(
            "/Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": []}),
        )
        .await;
    let group_id = group["id"].as_str().unwrap();
    let team = new_team(&app, &scim, "Engineering").await;
    link(&app, &scim, &team, group_id).await;
    let patched = scim
        .ok(
            Method::PATCH,
            &format!("/Groups/{group_id}"),
            Some(patch(json!([{"op": "add", "path": "members",
                "value": [{"value": id, "display": "ada@example.com"}]}]))),
        )
        .await;
    assert_eq!(patched["members"][0]["value"], id);
    assert_eq!(team_members(&app, &scim, &team).await, ["ada@example.com"]);
    // A membership carries the user as last written: nothing of it is lost.
    assert_eq!(
        crate::scim::member(&app, &scim, "ada@example.com").await["first_name"],
        "Ada"
    );

    // Deactivated: deprovisioned (rule 3), out of the team.
    let inactive = scim
        .ok(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        )
        .await;
    assert_eq!(inactive["active"], false);
    assert_eq!(
        crate::scim::member(&app, &scim, "ada@example.com").await["status"],
        "deprovisioned"
    );
    assert!(team_members(&app, &scim, &team).await.is_empty());

    // Reactivated and renamed with PUT.
    let mut profile = read.clone();
    profile["active"] = json!(true);
    profile["name"]["givenName"] = json!("Augusta Ada");
    let replaced = scim
        .ok(Method::PUT, &format!("/Users/{id}"), Some(profile))
        .await;
    assert_eq!(replaced["meta"]["version"], "W/\"3\"");
    let member = crate::scim::member(&app, &scim, "ada@example.com").await;
    assert_eq!(member["status"], "active");
    assert_eq!(member["first_name"], "Augusta Ada");
    assert_eq!(team_members(&app, &scim, &team).await, ["ada@example.com"]);

    // Every change names SCIM as its cause.
    let (_, log) = app
        .op(Method::GET, &scim.path("/audit-log?limit=100"), None)
        .await;
    let causes: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject_type"] == "member")
        .map(|e| e["cause"]["type"].as_str().unwrap())
        .collect();
    assert!(!causes.is_empty());
    assert!(causes.iter().all(|c| *c == "scim"), "{causes:?}");
}

/// Entra ID's provisioning, in its shapes: the enterprise extension, a filter on `userName` first,
/// capitalized operations, booleans as text, members added and removed by PATCH with a value list or a
/// filtered path, groups read without their members, then a deletion; with a linked team unlinked
/// keeping its members, and another removing them.
async fn an_entra_session_with_its_shapes_links_and_unlinks_a_group(app: TestApp) {
    let scim = Scim::new(&app, "org_entra").await;
    let mut ids = Vec::new();
    for (name, department) in [("grace", "Research"), ("alan", "Cryptography")] {
        let email = format!("{name}@contoso.example");
        let lookup = scim
            .ok(
                Method::GET,
                &format!(
                    "/Users?filter={}",
                    filter(&format!("userName eq \"{email}\""))
                ),
                None,
            )
            .await;
        assert_eq!(lookup["totalResults"], 0);
        let user = scim
            .create(
                "/Users",
                json!({
                    "schemas": [USER_SCHEMA, ENTERPRISE],
                    "externalId": format!("{name}-object-id"),
                    "userName": email,
                    "active": true,
                    "displayName": name,
                    "emails": [{"primary": true, "type": "work", "value": email}],
                    "name": {"formatted": name, "familyName": "Test", "givenName": name},
                    ENTERPRISE: {"department": department, "employeeNumber": "7"}
                }),
            )
            .await;
        ids.push(user["id"].as_str().unwrap().to_string());
    }
    let grace = member(&app, &scim, "grace@contoso.example").await;
    assert_eq!(grace["attributes"]["department"], "Research");

    let group = scim
        .create(
            "/Groups",
            json!({"schemas": [GROUP_SCHEMA], "externalId": "eng-object-id", "displayName": "Research"}),
        )
        .await;
    let group_id = group["id"].as_str().unwrap().to_string();
    // Entra looks the group up by name, without its members.
    let found = scim
        .ok(
            Method::GET,
            &format!(
                "/Groups?excludedAttributes=members&filter={}",
                filter(r#"displayName eq "research""#)
            ),
            None,
        )
        .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], group_id.as_str());
    assert!(found["Resources"][0].get("members").is_none());

    scim.ok(
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        Some(patch(json!([{"op": "Add", "path": "members",
            "value": [{"value": ids[0]}, {"value": ids[1]}]}]))),
    )
    .await;
    let keep = new_team(&app, &scim, "Keeps its members").await;
    let remove = new_team(&app, &scim, "Loses its members").await;
    link(&app, &scim, &keep, &group_id).await;
    link(&app, &scim, &remove, &group_id).await;
    let both = ["alan@contoso.example", "grace@contoso.example"];
    assert_eq!(team_members(&app, &scim, &keep).await, both);
    assert_eq!(team_members(&app, &scim, &remove).await, both);

    // Membership by filter: Entra removes one member with a filtered path.
    let members_of = scim
        .ok(
            Method::GET,
            &format!(
                "/Groups?filter={}",
                filter(&format!("members.value eq \"{}\"", ids[1]))
            ),
            None,
        )
        .await;
    assert_eq!(members_of["totalResults"], 1);
    scim.ok(
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        Some(patch(
            json!([{"op": "Remove", "path": format!("members[value eq \"{}\"]", ids[1])}]),
        )),
    )
    .await;
    assert_eq!(
        team_members(&app, &scim, &keep).await,
        ["grace@contoso.example"]
    );

    // Disabled with a boolean as text.
    scim.ok(
        Method::PATCH,
        &format!("/Users/{}", ids[1]),
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    )
    .await;
    assert_eq!(
        member(&app, &scim, "alan@contoso.example").await["status"],
        "deprovisioned"
    );

    unlink(&app, &scim, &keep, &group_id, "keep").await;
    unlink(&app, &scim, &remove, &group_id, "remove").await;
    assert_eq!(
        team_members(&app, &scim, &keep).await,
        ["grace@contoso.example"]
    );
    assert!(team_members(&app, &scim, &remove).await.is_empty());

    // Deleted: deprovisioned, gone from SCIM and from its group.
    let deleted = scim
        .send(Method::DELETE, &format!("/Users/{}", ids[0]), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = scim
        .send(Method::GET, &format!("/Users/{}", ids[0]), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let group = scim
        .ok(Method::GET, &format!("/Groups/{group_id}"), None)
        .await;
    assert_eq!(group["members"], json!([]));
    assert_eq!(
        member(&app, &scim, "grace@contoso.example").await["status"],
        "deprovisioned"
    );
}

async fn answers_follow_the_rfc(app: TestApp) {
    let scim = Scim::new(&app, "org_rfc").await;

    // Discovery.
    let config = scim.ok(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["filter"]["maxResults"], 200);
    let types = scim.ok(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(types["totalResults"], 2);
    let user_type = scim.ok(Method::GET, "/ResourceTypes/User", None).await;
    assert_eq!(user_type["endpoint"], "/Users");
    let schema = scim
        .ok(Method::GET, &format!("/Schemas/{USER_SCHEMA}"), None)
        .await;
    assert_eq!(schema["id"], USER_SCHEMA);
    assert_eq!(
        scim.send(Method::GET, "/Nothing", None).await.status,
        StatusCode::NOT_FOUND
    );

    // userName is unique in the directory, in any case.
    let first = scim
        .create("/Users", json!({"userName": "Case@Example.com"}))
        .await;
    let taken = scim
        .send(
            Method::POST,
            "/Users",
            Some(json!({"userName": "case@example.COM"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.body["scimType"], "uniqueness");
    let nameless = scim
        .send(
            Method::POST,
            "/Users",
            Some(json!({"name": {"givenName": "x"}})),
        )
        .await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    assert_eq!(nameless.body["scimType"], "invalidValue");
    let not_json = scim
        .send_with(Method::POST, "/Users", None, Some(&scim.token), &[])
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.body["scimType"], "invalidSyntax");
    // A member that is no user of the directory (here, another directory's) is kept as pushed and
    // means nothing to the workspace.
    let stranger = Scim::new(&app, "org_stranger").await;
    let theirs = stranger
        .create("/Users", json!({"userName": "theirs@example.com"}))
        .await;
    let group = scim
        .create(
            "/Groups",
            json!({"displayName": "G", "members": [{"value": theirs["id"]}, {"value": "nobody"}]}),
        )
        .await;
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    app.wait_applied().await;
    assert!(app.member(&scim.ws, "theirs@example.com").await.is_none());
    let (_, groups) = app
        .op(Method::GET, &scim.path("/directory-groups"), None)
        .await;
    assert_eq!(groups["data"][0]["name"], "G", "{groups}");

    // Paging: totalResults counts all, startIndex is 1-based, count is capped.
    for n in 0..5 {
        scim.create(
            "/Users",
            json!({"userName": format!("user{n}@example.com")}),
        )
        .await;
    }
    let page = scim
        .ok(Method::GET, "/Users?startIndex=2&count=2", None)
        .await;
    assert_eq!(page["totalResults"], 6);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    let all = scim.ok(Method::GET, "/Users?count=1000", None).await;
    let listed: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed[1..3],
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect::<Vec<_>>()[..]
    );
    let filtered = scim
        .ok(
            Method::GET,
            &format!(
                "/Users?filter={}&attributes=userName",
                filter(r#"userName sw "user" and not (userName eq "user0@example.com")"#)
            ),
            None,
        )
        .await;
    assert_eq!(filtered["totalResults"], 4);
    let shown = &filtered["Resources"][0];
    assert!(shown.get("userName").is_some() && shown.get("id").is_some());
    assert!(shown.get("active").is_none() && shown.get("schemas").is_some());
    for bad in ["userName eq", "userName zz \"x\"", &"(".repeat(40)] {
        let answer = scim
            .send(Method::GET, &format!("/Users?filter={}", filter(bad)), None)
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.body["scimType"], "invalidFilter", "{bad}");
    }
    let too_long = format!("userName eq \"{}\"", "x".repeat(3000));
    let answer = scim
        .send(
            Method::GET,
            &format!("/Users?filter={}", filter(&too_long)),
            None,
        )
        .await;
    assert_eq!(answer.body["scimType"], "invalidFilter");

    // ETags: If-None-Match answers 304, a stale If-Match 412 and changes nothing.
    let id = first["id"].as_str().unwrap();
    let read = scim
        .send_with(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            Some(&scim.token),
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(read.status, StatusCode::NOT_MODIFIED);
    assert_eq!(read.headers["etag"], "W/\"1\"");
    let stale = scim
        .send_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "replace", "path": "active", "value": false}]),
            )),
            Some(&scim.token),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = scim
        .send_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "replace", "path": "title", "value": "Engineer"}]),
            )),
            Some(&scim.token),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.headers["etag"], "W/\"2\"");
    assert_eq!(fresh.body["active"], Value::Null);
    let bad_patch = scim
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([{"op": "jump", "path": "title"}]))),
        )
        .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_patch.body["scimType"], "invalidSyntax");

    // A body over the limit is refused before it is read.
    let huge = json!({"userName": "big@example.com", "title": "x".repeat(2 << 20)});
    let answer = scim.send(Method::POST, "/Users", Some(huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // No pull for a SCIM directory.
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/directories/{}/resync", scim.directory),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "scim_directory");
    let (_, listed) = app
        .op(Method::GET, &scim.path("/directory-sync"), None)
        .await;
    assert_eq!(listed["directories"][0]["type"], "scim");
    assert_eq!(listed["directories"][0]["member_count"], 6);
}

async fn tokens_rotate_and_revoke_and_stay_in_their_directory(app: TestApp) {
    let scim = Scim::new(&app, "org_tokens").await;
    let other = Scim::new(&app, "org_other").await;
    let admin = app.admin_token(&scim.ws).await;
    // Another workspace's admin sees nothing of it.
    let other_admin = app.admin_token(&other.ws).await;
    let (status, _) = app
        .call(
            Method::GET,
            &scim.path("/scim-directories"),
            Some(&other_admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for token in [None, Some("scim_wrong"), Some(other.token.as_str())] {
        let answer = scim
            .send_with(Method::GET, "/Users", None, token, &[])
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
    }

    let (status, second) = app
        .call(
            Method::POST,
            &scim.path(&format!("/scim-directories/{}/tokens", scim.directory)),
            Some(&admin),
            Some(json!({"name": "rotation"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_secret = second["secret"].as_str().unwrap();
    for token in [scim.token.as_str(), second_secret] {
        let answer = scim
            .send_with(Method::GET, "/Users", None, Some(token), &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // A use is recorded behind the answer: read until it shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let (_, listed) = app
            .call(
                Method::GET,
                &scim.path(&format!("/scim-directories/{}", scim.directory)),
                Some(&admin),
                None,
            )
            .await;
        if listed["tokens"][0]["last_used_at"].is_string() || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let first_id = listed["tokens"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2);
    assert!(listed["tokens"][0]["last_used_at"].is_string(), "{listed}");
    assert!(listed["tokens"][0].get("secret").is_none());

    let revoke_path = scim.path(&format!(
        "/scim-directories/{}/tokens/{first_id}",
        scim.directory
    ));
    let revoke = || app.call(Method::DELETE, &revoke_path, Some(&admin), None);
    let (status, revoked) = revoke().await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let refused = scim.send(Method::GET, "/Users", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let still = scim
        .send_with(Method::GET, "/Users", None, Some(second_secret), &[])
        .await;
    assert_eq!(still.status, StatusCode::OK);
    let (status, _) = revoke().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a token is revoked once");
}

/// What the identity provider pushed while the workspace had directory sync off was skipped by the
/// engine; turning it on applies the directory as it now is: new users and memberships, and the
/// deletions and removals the engine had not seen.
async fn what_was_pushed_while_sync_was_off_is_applied_when_it_turns_on(app: TestApp) {
    let scim = Scim::new(&app, "org_paused").await;
    let mut ids = Vec::new();
    for name in ["ann", "bob"] {
        let user = scim
            .create("/Users", json!({"userName": format!("{name}@example.com")}))
            .await;
        ids.push(user["id"].as_str().unwrap().to_string());
    }
    let group = scim
        .create(
            "/Groups",
            json!({"displayName": "Crew", "members": [{"value": ids[0]}, {"value": ids[1]}]}),
        )
        .await;
    let group_id = group["id"].as_str().unwrap().to_string();
    let team = new_team(&app, &scim, "Crew").await;
    link(&app, &scim, &team, &group_id).await;
    assert_eq!(
        team_members(&app, &scim, &team).await,
        ["ann@example.com", "bob@example.com"]
    );

    app.set_sync(&scim.ws, false).await;
    let cid = scim
        .create("/Users", json!({"userName": "cid@example.com"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    scim.ok(
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        Some(patch(json!([
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])},
            {"op": "add", "path": "members", "value": [{"value": cid}]}
        ]))),
    )
    .await;
    let deleted = scim
        .send(Method::DELETE, &format!("/Users/{}", ids[0]), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.wait_applied().await;
    // Skipped while off: nothing changed.
    assert_eq!(
        member(&app, &scim, "ann@example.com").await["status"],
        "active"
    );
    assert!(app.member(&scim.ws, "cid@example.com").await.is_none());

    app.set_sync(&scim.ws, true).await;
    assert_eq!(
        member(&app, &scim, "ann@example.com").await["status"],
        "deprovisioned"
    );
    assert_eq!(
        member(&app, &scim, "bob@example.com").await["status"],
        "active"
    );
    assert_eq!(
        member(&app, &scim, "cid@example.com").await["status"],
        "active"
    );
    assert_eq!(team_members(&app, &scim, &team).await, ["cid@example.com"]);
}

/// Rule 6 for a SCIM directory: its writes are stamped by its own clock, which never goes back. Here the
/// last write was stamped an hour ahead of the service's clock (as before the host's clock was set back:
/// the directory's clock and the engine's record of the user both say so): each later write is still
/// stamped after it, so the write the service accepted last wins.
async fn a_directorys_writes_keep_their_order_when_the_clock_goes_back(app: TestApp) {
    use rollcall::db::schema::{directory_users, scim_directories};
    let scim = Scim::new(&app, "org_clock").await;
    let ada = scim
        .create(
            "/Users",
            json!({"userName": "ada@example.com", "name": {"givenName": "Ada"}}),
        )
        .await;
    let id = ada["id"].as_str().unwrap().to_string();
    member(&app, &scim, "ada@example.com").await;
    let ahead = chrono::Utc::now().naive_utc() + chrono::Duration::hours(1);
    let (directory, user) = (scim.directory.clone(), id.clone());
    app.db
        .write(|conn| {
            diesel::update(scim_directories::table.find(&directory))
                .set(scim_directories::clock.eq(ahead))
                .execute(conn)?;
            diesel::update(directory_users::table.find(&user))
                .set((
                    directory_users::source_updated_at.eq(ahead),
                    directory_users::source_event_at.eq(ahead),
                ))
                .execute(conn)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    let mut modified = Vec::new();
    for name in ["First", "Second"] {
        let written = scim
            .ok(
                Method::PATCH,
                &format!("/Users/{id}"),
                Some(patch(
                    json!([{"op": "replace", "path": "name.givenName", "value": name}]),
                )),
            )
            .await;
        modified.push(
            written["meta"]["lastModified"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert_eq!(
            member(&app, &scim, "ada@example.com").await["first_name"],
            name,
            "the write the service accepted last wins"
        );
    }
    // Shown to the millisecond: writes a microsecond apart may show the same time, never an earlier one.
    assert!(modified[0] <= modified[1], "{modified:?}");
    assert!(modified[0].as_str() > ada["meta"]["lastModified"].as_str().unwrap());
}

/// `rollcall scim-directories …` on the app's database: whether it succeeded, stdout and stderr.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let args: Vec<&str> = std::iter::once("scim-directories")
        .chain(args.iter().copied())
        .collect();
    crate::process::on_database(app, &args, &[]).await
}

async fn the_command_line_creates_lists_and_rotates(app: TestApp) {
    let ws = app.synced_workspace("org_cli").await;
    let (ok, _, err) = cli(&app, &["create", "--workspace", "ws_nobody"]).await;
    assert!(!ok && err.contains("workspace not found"), "{err}");
    let (ok, token, err) = cli(&app, &["create", "--workspace", &ws, "--name", "Okta"]).await;
    assert!(ok, "{err}");
    let directory = err
        .split_whitespace()
        .find(|w| w.starts_with("directory_"))
        .expect("the directory is named")
        .to_string();
    let scim = Scim {
        ws: ws.clone(),
        base: format!("{}/scim/v2/{directory}", app.address),
        directory: directory.clone(),
        token: token.trim().to_string(),
        client: app.client.clone(),
    };
    scim.create("/Users", json!({"userName": "cli@example.com"}))
        .await;
    let (ok, listed, _) = cli(&app, &["list", "--workspace", &ws]).await;
    assert!(ok);
    assert!(
        listed.contains(&format!("/scim/v2/{directory}")) && listed.contains("1 users, 0 groups"),
        "{listed}"
    );
    let first = listed
        .split_whitespace()
        .find(|w| w.starts_with("scimtok_"))
        .unwrap()
        .to_string();

    let (ok, second, err) = cli(
        &app,
        &[
            "create-token",
            "--workspace",
            &ws,
            &directory,
            "--name",
            "rotation",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &app,
        &["revoke-token", "--workspace", &ws, &directory, &first],
    )
    .await;
    assert!(ok, "{err}");
    let refused = scim.send(Method::GET, "/Users", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let answer = scim
        .send_with(Method::GET, "/Users", None, Some(second.trim()), &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["totalResults"], 1);
}

/// Tests that start a service with settings of their own: a rate limit, or none.
mod own_settings {
    use super::*;

    crate::on_both_backends!(
        backend: a_directory_over_its_rate_is_told_to_wait,
        the_conformance_suites_pass
    );

    /// `scim2-tester` (through `scim2-cli test`) and `scim-sanity probe` against a directory of a service
    /// without a rate limit (the suites send hundreds of requests at once): every check passes.
    async fn the_conformance_suites_pass(backend: Backend) {
        let app = spawn_app_with(backend, |settings| settings.scim_rate = 0).await;
        let python = crate::python::sdk_python("scim2_cli, scim2_tester, scim_sanity").await;

        let scim = Scim::new(&app, "org_tester").await;
        let tester = tokio::process::Command::new(&python)
            .args([
                "-c",
                "from scim2_cli import cli; cli()",
                "--url",
                &scim.base,
                "test",
            ])
            .env(
                "SCIM_CLI_HEADERS",
                format!("Authorization: Bearer {}", scim.token),
            )
            .output()
            .await
            .expect("scim2-cli runs");
        let report = String::from_utf8_lossy(&tester.stdout).to_string()
            + &String::from_utf8_lossy(&tester.stderr);
        let failed: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("CRITICAL"))
            .collect();
        assert!(tester.status.success() && failed.is_empty(), "{report}");
        let passed = report.lines().filter(|l| l.starts_with("SUCCESS")).count();
        assert!(passed >= 80, "only {passed} checks ran:\n{report}");

        let scim = Scim::new(&app, "org_sanity").await;
        let probe = tokio::process::Command::new(&python)
            .args([
                "-m",
                "scim_sanity",
                "probe",
                &scim.base,
                "--token",
                &scim.token,
            ])
            .arg("--i-accept-side-effects")
            .output()
            .await
            .expect("scim-sanity runs");
        let report = String::from_utf8_lossy(&probe.stdout).to_string()
            + &String::from_utf8_lossy(&probe.stderr);
        assert!(
            probe.status.success() && report.contains("Result: All tests passed."),
            "{report}"
        );
        assert!(!report.contains("[FAIL]"), "{report}");
    }

    async fn a_directory_over_its_rate_is_told_to_wait(backend: Backend) {
        let app = spawn_app_with(backend, |settings| settings.scim_rate = 3).await;
        let busy = Scim::new(&app, "org_busy").await;
        let calm = Scim::new(&app, "org_calm").await;
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..10 {
            let answer = busy.send(Method::GET, "/Users", None).await;
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                retry_after = Some(answer.headers["retry-after"].to_str().unwrap().to_string());
            }
            statuses.push(answer.status);
        }
        assert!(
            statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
            "{statuses:?}"
        );
        assert_eq!(retry_after.as_deref(), Some("1"));
        // Another directory is not slowed by the busy one.
        assert_eq!(
            calm.send(Method::GET, "/Users", None).await.status,
            StatusCode::OK
        );
    }
}

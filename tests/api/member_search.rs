//! Finding members in a workspace of any size: by any part of a name or email in any case, by status,
//! source, role and group, a page at a time with how many match, each member with its groups' names.

use crate::broker::{event, TestDirectory};
use crate::helpers::TestApp;
use crate::teams::{new_team, Org};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    members_are_found_by_any_part_of_their_name_or_email,
    filters_pages_counts_and_groups_come_in_one_answer,
    a_teams_members_are_searched_and_counted,
);

/// A workspace with two members added by hand, then directory sync on and four directory users:
/// Ada Lovelace, Grace Hopper (in group `navy`), Zoë Ångström and "100% Sure" (both in `science`).
async fn people(app: &TestApp) -> Org {
    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    for (email, first, role) in [
        ("linus@kernel.example", "Linus", "admin"),
        ("margaret@apollo.example", "Margaret", "viewer"),
    ] {
        let (status, body) = app
            .op(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/members"),
                Some(json!({"email": email, "first_name": first, "last_name": "Manual", "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let org = Org::attached(app, dir, ws).await;
    let mut events = vec![org.group_created("navy"), org.group_created("science")];
    for (name, first, last, email) in [
        ("ada", "Ada", "Lovelace", "ada@example.com"),
        ("grace", "Grace", "Hopper", "grace.hopper@navy.example"),
        ("zoe", "Zoë", "Ångström", "zoe@example.com"),
        ("pct", "100%", "Sure", "pct_x@example.com"),
    ] {
        events.push(person(
            &org,
            "dsync.user.created",
            name,
            [first, last, email],
            "active",
        ));
    }
    events.extend([
        org.added("grace", "navy"),
        org.added("zoe", "science"),
        org.added("pct", "science"),
    ]);
    app.deliver(&events).await;
    org
}

/// An event of `kind` about directory user `name` with these first name, last name and email.
fn person(
    org: &Org,
    kind: &str,
    name: &str,
    [first, last, email]: [&str; 3],
    state: &str,
) -> Value {
    let t = org.tick();
    let mut user = org.user(name, state, &t);
    user["first_name"] = json!(first);
    user["last_name"] = json!(last);
    user["email"] = json!(email);
    user["emails"] = json!([{"primary": true, "type": "work", "value": email}]);
    event(kind, user, &t)
}

/// The emails of the members a list answers, in its order, and the total it says matches.
async fn found(app: &TestApp, org: &Org, query: &str) -> (Vec<String>, i64) {
    let (status, page) = app
        .op(Method::GET, &org.path(&format!("/members?{query}")), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    (
        crate::helpers::sorted_emails(&page),
        page["list_metadata"]["total"].as_i64().unwrap(),
    )
}

fn search(text: &str) -> String {
    format!("search={}", urlencoding(text))
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn members_are_found_by_any_part_of_their_name_or_email(app: TestApp) {
    let org = people(&app).await;
    for (text, expected) in [
        // A prefix, a substring, in any case, across first and last name.
        ("ada", vec!["ada@example.com"]),
        ("LOVE", vec!["ada@example.com"]),
        ("ada love", vec!["ada@example.com"]),
        ("opper", vec!["grace.hopper@navy.example"]),
        (
            "g",
            vec![
                "grace.hopper@navy.example",
                "margaret@apollo.example",
                "zoe@example.com",
            ],
        ),
        ("li", vec!["linus@kernel.example"]),
        // Letters beyond ASCII, in another case than stored.
        ("ÅNGSTRÖM", vec!["zoe@example.com"]),
        ("zoë", vec!["zoe@example.com"]),
        // Part of an email, its domain, and the characters that are wildcards in SQL: literal here.
        (
            "example.com",
            vec!["ada@example.com", "pct_x@example.com", "zoe@example.com"],
        ),
        ("100%", vec!["pct_x@example.com"]),
        ("t_x", vec!["pct_x@example.com"]),
        ("%", vec!["pct_x@example.com"]),
        ("_", vec!["pct_x@example.com"]),
        ("a_a", vec![]),
        ("a%a", vec![]),
        // Quotes and operators of the full-text syntax are text too.
        ("\"ada", vec![]),
        ("ada OR grace", vec![]),
        ("nobody", vec![]),
    ] {
        let (emails, total) = found(&app, &org, &search(text)).await;
        assert_eq!(emails, expected, "search {text:?}");
        assert_eq!(total, expected.len() as i64, "search {text:?}");
    }
    // A blank search is no search.
    assert_eq!(found(&app, &org, "search=%20").await.1, 6);

    // A member renamed is found by the new name only; one removed is found no more.
    let renamed = ["Augusta", "King", "ada@example.com"];
    app.deliver(&[person(&org, "dsync.user.updated", "ada", renamed, "active")])
        .await;
    assert_eq!(found(&app, &org, &search("lovelace")).await.1, 0);
    assert_eq!(
        found(&app, &org, &search("augusta k")).await.0,
        ["ada@example.com"]
    );
    let linus = app.member(&org.ws, "linus@kernel.example").await.unwrap();
    app.set_sync(&org.ws, false).await;
    let (status, _) = app
        .op(
            Method::DELETE,
            &org.path(&format!("/members/{}", linus["id"].as_str().unwrap())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(found(&app, &org, &search("linus")).await.1, 0);

    // Bad input is refused with the parameter's name.
    for query in [
        format!("search={}", "x".repeat(201)),
        "search=a%00b".to_string(),
        "managed_by=robot".to_string(),
        "role=king".to_string(),
    ] {
        let (status, problem) = app
            .op(Method::GET, &org.path(&format!("/members?{query}")), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(problem["code"], "invalid_parameter", "{query}");
    }
}

async fn filters_pages_counts_and_groups_come_in_one_answer(app: TestApp) {
    let org = people(&app).await;
    let pct = ["100%", "Sure", "pct_x@example.com"];
    app.deliver(&[person(&org, "dsync.user.updated", "pct", pct, "inactive")])
        .await;
    for (query, expected) in [
        (
            "managed_by=manual",
            vec!["linus@kernel.example", "margaret@apollo.example"],
        ),
        ("role=admin", vec!["linus@kernel.example"]),
        ("status=deprovisioned", vec!["pct_x@example.com"]),
        (
            "managed_by=directory&status=active",
            vec![
                "ada@example.com",
                "grace.hopper@navy.example",
                "zoe@example.com",
            ],
        ),
        (
            &format!("group={}", org.group_id("science")),
            vec!["pct_x@example.com", "zoe@example.com"],
        ),
        (
            &format!("group={}&search=z", org.group_id("science")),
            vec!["zoe@example.com"],
        ),
        ("managed_by=manual&search=ada", vec![]),
    ] {
        let (emails, total) = found(&app, &org, query).await;
        assert_eq!(emails, expected, "{query}");
        assert_eq!(total, expected.len() as i64, "{query}");
    }

    // Pages of two: every page says the same total, and together they hold each match once.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (_, page) = app
            .op(
                Method::GET,
                &org.path(&format!("/members?search=e&limit=2{after}")),
                None,
            )
            .await;
        assert_eq!(page["list_metadata"]["total"], 6, "{page}");
        assert!(page["data"].as_array().unwrap().len() <= 2);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["email"].clone()),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);

    // Groups are found by any part of their name, in any case.
    for (text, expected) in [("SCI", vec!["science"]), ("a", vec!["navy"]), ("_", vec![])] {
        let (status, page) = app
            .op(
                Method::GET,
                &org.path(&format!("/directory-groups?search={}", urlencoding(text))),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let names: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, expected, "{text:?}");
    }

    // Each member comes with its groups' names, in name order; a member in none has none.
    let (_, page) = app.op(Method::GET, &org.path("/members"), None).await;
    let groups = |email: &str| -> Value {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .unwrap()["groups"]
            .clone()
    };
    assert_eq!(
        groups("grace.hopper@navy.example"),
        json!([{"id": org.group_id("navy"), "name": "navy"}])
    );
    app.deliver(&[org.added("zoe", "navy")]).await;
    let (_, page) = app.op(Method::GET, &org.path("/members"), None).await;
    let zoe = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "zoe@example.com")
        .unwrap()
        .clone();
    assert_eq!(
        zoe["groups"],
        json!([
            {"id": org.group_id("navy"), "name": "navy"},
            {"id": org.group_id("science"), "name": "science"},
        ])
    );
    assert_eq!(groups("linus@kernel.example"), json!([]));
    // A deleted group is no longer shown.
    app.deliver(&[org.group_deleted("navy")]).await;
    let (_, page) = app
        .op(Method::GET, &org.path("/members?search=grace"), None)
        .await;
    assert_eq!(page["data"][0]["groups"], json!([]));
}

async fn a_teams_members_are_searched_and_counted(app: TestApp) {
    let org = people(&app).await;
    let team = new_team(&app, &org, "Research").await;
    let (status, body) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{team}/directory-groups")),
            Some(json!({"group_id": org.group_id("science")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, shown) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(
        (&shown["member_count"], &shown["linked_groups"]),
        (
            &json!(2),
            &json!([{"id": org.group_id("science"), "name": "science"}])
        )
    );
    for (query, expected) in [
        ("", vec!["pct_x@example.com", "zoe@example.com"]),
        ("search=%C3%85ngstr", vec!["zoe@example.com"]),
        ("search=100%25", vec!["pct_x@example.com"]),
        ("search=ada", vec![]),
    ] {
        let (status, page) = app
            .op(
                Method::GET,
                &org.path(&format!("/teams/{team}/members?{query}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut emails: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap())
            .collect();
        emails.sort();
        assert_eq!(emails, expected, "{query}");
        assert_eq!(page["list_metadata"]["total"], expected.len(), "{query}");
    }
}

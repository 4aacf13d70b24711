//! The OpenAPI document: a reviewed snapshot, internally consistent, and served as is.

use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use rollcall::api::openapi::document;
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Any change to the API shows up in review as a change to `snapshots/api__openapi__document.snap`.
#[test]
fn the_document_matches_its_snapshot() {
    insta::assert_json_snapshot!("document", document());
}

/// Every `$ref` in `value`, wherever it is.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(target) => doc
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{target} does not resolve")),
        None => value,
    }
}

#[test]
fn every_reference_resolves_to_a_component() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        assert!(
            target.starts_with("#/components/"),
            "{target} points outside the components"
        );
        assert!(
            doc.pointer(target.trim_start_matches('#')).is_some(),
            "{target} does not resolve"
        );
    }
}

#[test]
fn every_path_has_operations_with_answers_and_declared_parameters() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut operation_ids = std::collections::HashSet::new();
    for (template, item) in paths {
        let operations: Vec<(&str, &Value)> = METHODS
            .iter()
            .filter_map(|m| item.get(*m).map(|op| (*m, op)))
            .collect();
        assert!(!operations.is_empty(), "{template} has no operation");
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in operations {
            let name = format!("{} {template}", method.to_uppercase());
            let responses = op["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{name} has no responses"
            );
            assert!(
                responses.unwrap().keys().any(|s| s.starts_with('2')),
                "{name} has no success"
            );
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(operation_ids.insert(id.to_string()), "{id} is used twice");

            // Each `{name}` of the template is a declared path parameter, and nothing else is.
            let own = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut declared: Vec<&str> = shared
                .iter()
                .chain(own.iter())
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("a parameter name"))
                .collect();
            declared.sort_unstable();
            let mut in_template: Vec<&str> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            in_template.sort_unstable();
            assert_eq!(declared, in_template, "{name}: path parameters");

            // The admin API takes a bearer token; the service's own routes and the webhook do not.
            let expected = if template.starts_with("/api/v1/") {
                serde_json::json!([{ "bearer": [] }])
            } else {
                serde_json::json!([])
            };
            assert_eq!(op["security"], expected, "{name}: security");
            if template.starts_with("/api/v1/") {
                assert!(
                    responses.unwrap().contains_key("401"),
                    "{name} does not answer 401"
                );
            }
        }
    }
}

async fn the_server_serves_the_document_without_a_token(app: TestApp) {
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, document());

    let (status, _) = app.call(Method::POST, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

crate::on_both_backends!(the_server_serves_the_document_without_a_token);

//! The OpenAPI document: a reviewed snapshot, internally consistent, and served as is.

use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};

/// The document as served.
fn document() -> Value {
    serde_json::to_value(rollcall::api::openapi::document()).expect("the document serializes")
}

/// Any change to the API shows up in review as a change to `snapshots/api__openapi__document.snap`.
#[test]
fn the_document_matches_its_snapshot() {
    insta::assert_json_snapshot!("document", document());
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the document.
struct Operation<'a> {
    /// `METHOD /path/{param}`, for messages.
    name: String,
    template: &'a str,
    op: &'a Value,
    /// The path's shared parameters and the operation's own, resolved.
    parameters: Vec<&'a Value>,
}

impl<'a> Operation<'a> {
    fn id(&self) -> &'a str {
        self.op["operationId"].as_str().expect("an operationId")
    }

    fn responses(&self) -> &'a serde_json::Map<String, Value> {
        self.op["responses"].as_object().expect("responses")
    }

    fn takes(&self, parameter: &str) -> bool {
        self.parameters.iter().any(|p| p["name"] == parameter)
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

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut found = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let shared = item["parameters"].as_array().into_iter().flatten();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let own = op["parameters"].as_array().into_iter().flatten();
            found.push(Operation {
                name: format!("{} {template}", method.to_uppercase()),
                template,
                op,
                parameters: shared.clone().chain(own).map(|p| resolve(doc, p)).collect(),
            });
        }
    }
    found
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

/// A query parameter the server refuses a request without is documented as required (SPEC rule 9:
/// unlinking says what happens to the group's members), with the values it takes.
#[test]
fn the_unlink_choice_is_a_required_parameter_with_its_values() {
    let doc = document();
    let unlink =
        &doc["paths"]["/api/v1/workspaces/{ws}/teams/{team}/directory-groups/{group}"]["delete"];
    let members = unlink["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "members")
        .expect("the members parameter");
    assert_eq!(members["required"], true, "{members}");
    assert_eq!(members["in"], "query", "{members}");
    assert!(members["description"].is_string(), "{members}");
    assert_eq!(
        members["schema"]["enum"],
        serde_json::json!(["keep", "remove"]),
        "{members}"
    );
}

#[test]
fn every_path_has_an_operation() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (template, item) in paths {
        assert!(
            METHODS.iter().any(|m| item.get(*m).is_some()),
            "{template} has no operation"
        );
    }
}

#[test]
fn every_operation_has_answers_its_path_parameters_and_its_security() {
    let doc = document();
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let mut ids = HashSet::new();
    for operation in operations(&doc) {
        let name = &operation.name;
        assert!(
            ids.insert(operation.id()),
            "{} is used twice",
            operation.id()
        );
        assert!(
            operation.responses().keys().any(|s| s.starts_with('2')),
            "{name} has no success answer"
        );

        // Each `{name}` of the template is a declared path parameter, and nothing else is.
        let mut declared: Vec<&str> = (operation.parameters.iter())
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("a parameter name"))
            .collect();
        declared.sort_unstable();
        let mut in_template: Vec<&str> = (operation.template.split('/'))
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        in_template.sort_unstable();
        assert_eq!(declared, in_template, "{name}: path parameters");

        // The admin API takes a bearer token; the service's own routes and the webhook do not.
        if operation.template.starts_with("/api/v1/") {
            assert_eq!(
                operation.op["security"],
                json!([{ "bearer": [] }]),
                "{name}"
            );
            assert!(operation.responses().contains_key("401"), "{name}: no 401");
        } else {
            assert_eq!(operation.op["security"], json!([]), "{name}");
        }
    }
}

#[test]
fn every_link_names_an_operation_and_parameters_it_takes() {
    let doc = document();
    let all = operations(&doc);
    let mut links = 0;
    for operation in &all {
        for (status, response) in operation.responses() {
            for link in response["links"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, l)| l)
            {
                links += 1;
                let from = format!("{} {status}", operation.name);
                let target = all
                    .iter()
                    .find(|o| o.op["operationId"] == link["operationId"])
                    .unwrap_or_else(|| panic!("{from} links to an unknown operation"));
                for parameter in link["parameters"].as_object().expect("parameters").keys() {
                    assert!(
                        target.takes(parameter),
                        "{from}: {} takes no {parameter}",
                        target.name
                    );
                }
            }
        }
    }
    assert!(links > 0);
}

/// The app is built from `rollcall::api::routes()`: every route it serves is documented, with the same
/// method, and every documented operation is served.
#[test]
fn every_served_route_is_documented_and_every_documented_one_served() {
    let served: BTreeSet<(String, String)> = rollcall::api::routes()
        .into_iter()
        .map(|route| (route.method.as_str().to_lowercase(), route.path))
        .collect();
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .iter()
        .map(|operation| {
            let method = operation.name.split(' ').next().expect("a method");
            (method.to_lowercase(), operation.template.to_string())
        })
        .collect();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
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

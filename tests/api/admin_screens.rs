//! The admin screens' files: served at `/admin/` under a strict Content-Security-Policy, outside the API.

use crate::helpers::TestApp;
use crate::on_both_backends;
use reqwest::StatusCode;

async fn the_screens_are_served_with_a_strict_policy(app: TestApp) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/admin/");
    for (path, kind, holds) in [
        (
            "/admin/",
            "text/html",
            "<script type=\"module\" src=\"app.js\">",
        ),
        ("/admin/app.js", "text/javascript", "sessionStorage"),
        ("/admin/app.css", "text/css", "dialog"),
        ("/admin/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(response.text().await.unwrap().contains(holds), "{path}");
    }
    // No inline script or style that the policy would refuse.
    let page = client
        .get(format!("{}/admin/", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>") && !page.contains("style="));
    let wrong_method = client
        .post(format!("{}/admin/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let missing = client
        .get(format!("{}/admin/missing.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The screens are not part of the API's document.
    let document = serde_json::to_value(rollcall::api::openapi::document()).unwrap();
    assert!(document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.starts_with("/admin")));
}

on_both_backends!(the_screens_are_served_with_a_strict_policy);

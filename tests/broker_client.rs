//! The broker client over real HTTP: against the dev broker, and against small test servers for the
//! shapes and faults the dev broker does not produce.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rollcall::broker::*;
use rollcall::dev_broker::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn settings(base_url: &str, api_key: &str) -> BrokerSettings {
    BrokerSettings {
        base_url: base_url.to_owned(),
        api_key: api_key.into(),
        timeout: Duration::from_secs(5),
        max_retries: 5,
        user_listing_rate_per_directory: 1000.0,
        events_rate_per_key: 1000.0,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        retry_after_cap: Duration::from_secs(5),
    }
}

async fn dev_broker(users: u32, groups: u32, fill_user_groups: bool) -> DevBrokerHandle {
    DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups,
            memberships_per_user: 2.0,
            inactive_share: 0.1,
        }),
        fill_user_groups,
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts")
}

fn client_for(broker: &DevBrokerHandle) -> BrokerClient {
    BrokerClient::new(settings(&broker.base_url, &broker.api_key)).expect("a client")
}

/// A test server answering every request with `answer(request, hit number from 1)`.
struct TestServer {
    url: String,
    hits: Arc<AtomicU32>,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn serve(answer: impl Fn(&HttpRequest, u32) -> HttpResponse + Send + Sync + 'static) -> TestServer {
    let answer = Arc::new(answer);
    let hits = Arc::new(AtomicU32::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("an address");
    let (answer_f, hits_f) = (answer.clone(), hits.clone());
    let server = HttpServer::new(move || {
        let (answer, hits) = (answer_f.clone(), hits_f.clone());
        App::new().default_service(web::to(move |request: HttpRequest| {
            let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
            let response = answer(&request, n);
            async move { response }
        }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .expect("listening")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    TestServer {
        url: format!("http://{addr}"),
        hits,
        handle,
    }
}

fn query(request: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

fn user(id: &str) -> serde_json::Value {
    json!({"id": id, "directory_id": "directory_t", "state": "active"})
}

fn one_page_of_users() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": [user("directory_user_1")],
        "list_metadata": {"before": null, "after": null}
    }))
}

#[tokio::test]
async fn lists_250_users_across_3_pages_each_once() {
    let broker = dev_broker(250, 5, false).await;
    let client = client_for(&broker);
    let listing = client
        .list_users(&broker.directory_id)
        .await
        .expect("a listing");
    assert!(listing.complete);
    assert_eq!(listing.requests, 3);
    assert_eq!(listing.items.len(), 250);
    let ids: BTreeSet<_> = listing.items.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), 250, "every user exactly once");
    let truth: BTreeSet<_> = broker.truth().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, truth);
    assert_eq!(client.stats().requests(), 3);
    assert_eq!(client.stats().retries(), 0);
}

#[tokio::test]
async fn lists_directories_groups_and_group_members() {
    let broker = dev_broker(40, 6, false).await;
    let client = client_for(&broker);
    let truth = broker.truth();

    let directories = client.list_directories(None).await.expect("directories");
    assert_eq!(directories.items.len(), 1);
    assert_eq!(directories.items[0].id, broker.directory_id);
    let org = client
        .list_directories(Some("org_dev"))
        .await
        .expect("directories of an organization");
    assert_eq!(org.items.len(), 1);

    let groups = client
        .list_groups(&broker.directory_id)
        .await
        .expect("groups");
    let ids: BTreeSet<_> = groups.items.iter().map(|g| g.id.clone()).collect();
    let truth_ids: BTreeSet<_> = truth.groups.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids, truth_ids);

    for group in &groups.items {
        let members = client
            .list_group_members(&group.id, &broker.directory_id)
            .await
            .expect("members");
        let got: BTreeSet<_> = members.items.iter().map(|u| u.id.clone()).collect();
        let expected: BTreeSet<_> = truth
            .memberships
            .iter()
            .filter(|(g, _)| *g == group.id)
            .map(|(_, u)| u.clone())
            .collect();
        assert_eq!(got, expected, "members of {}", group.id);
    }
}

#[tokio::test]
async fn accepts_the_legacy_list_metadata() {
    let server = serve(|request, _| {
        let after = query(request).get("after").cloned();
        let body = match after.as_deref() {
            None => json!({"data": [{"id": "directory_1"}], "listMetadata": {"after": "c1"}}),
            Some("c1") => json!({"data": [{"id": "directory_2"}], "listMetadata": {"after": null}}),
            Some(_) => return HttpResponse::BadRequest().finish(),
        };
        HttpResponse::Ok().json(body)
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let listing = client.list_directories(None).await.expect("a listing");
    let ids: Vec<_> = listing.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["directory_1", "directory_2"]);
    assert_eq!(listing.requests, 2);
}

#[tokio::test]
async fn sends_the_bearer_key_and_page_parameters() {
    let server = serve(|request, _| {
        let q = query(request);
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some("Bearer sk_key")
            || q.get("limit").map(String::as_str) != Some("100")
            || q.get("order").map(String::as_str) != Some("asc")
            || q.get("directory").map(String::as_str) != Some("directory_t")
        {
            return HttpResponse::BadRequest().body(format!("{q:?} {auth:?}"));
        }
        one_page_of_users()
    });
    let client = BrokerClient::new(settings(&server.url, "sk_key")).expect("a client");
    let listing = client.list_users("directory_t").await.expect("a listing");
    assert_eq!(listing.items.len(), 1);
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error() {
    let server = serve(|_, n| {
        HttpResponse::Ok().json(json!({
            "data": [user(&format!("directory_user_{n}"))],
            "list_metadata": {"after": "same"}
        }))
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let error = client
        .list_users("directory_t")
        .await
        .expect_err("an error");
    assert!(
        matches!(error, BrokerError::RepeatedCursor { ref cursor, items: 2, .. } if cursor == "same"),
        "{error}"
    );
    assert_eq!(server.hits(), 2);
    assert!(error.to_string().contains("/directory_users"), "{error}");
}

#[tokio::test]
async fn waits_for_retry_after_on_429() {
    let server = serve(|_, n| {
        if n == 1 {
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "1"))
                .body("\"Ratelimited\"")
        } else {
            one_page_of_users()
        }
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let started = Instant::now();
    let listing = client.list_users("directory_t").await.expect("a listing");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(listing.requests, 2);
    let stats = client.stats().snapshot();
    assert_eq!((stats.rate_limited, stats.retries), (1, 1));
}

#[tokio::test]
async fn backs_off_on_429_without_retry_after() {
    let server = serve(|_, n| {
        if n <= 2 {
            HttpResponse::TooManyRequests().body("\"Ratelimited\"")
        } else {
            one_page_of_users()
        }
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let started = Instant::now();
    let listing = client.list_users("directory_t").await.expect("a listing");
    // Backoff 20 ms then 40 ms, each at least half of it with jitter.
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(listing.requests, 3);
    assert_eq!(client.stats().rate_limited(), 2);
}

#[tokio::test]
async fn retries_5xx_and_succeeds() {
    let server = serve(|_, n| {
        if n == 1 {
            HttpResponse::BadGateway().finish()
        } else {
            one_page_of_users()
        }
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let listing = client.list_users("directory_t").await.expect("a listing");
    assert_eq!(listing.requests, 2);
    assert_eq!(client.stats().retries(), 1);
}

#[tokio::test]
async fn a_page_that_keeps_failing_is_an_error_not_a_partial_listing() {
    let server = serve(|request, _| {
        if query(request).contains_key("after") {
            HttpResponse::InternalServerError().body("boom")
        } else {
            HttpResponse::Ok().json(json!({
                "data": [user("directory_user_1")],
                "list_metadata": {"after": "c1"}
            }))
        }
    });
    let mut settings = settings(&server.url, "sk");
    settings.max_retries = 2;
    let client = BrokerClient::new(settings).expect("a client");
    let error = client
        .list_users("directory_t")
        .await
        .expect_err("an error");
    match &error {
        BrokerError::Incomplete {
            items,
            requests,
            cause,
            ..
        } => {
            assert_eq!((*items, *requests), (1, 4));
            assert!(
                matches!(**cause, BrokerError::RetriesExhausted { attempts: 3, .. }),
                "{cause}"
            );
        }
        other => panic!("not an incomplete listing: {other}"),
    }
    assert_eq!(error.items_so_far(), 1);
    let text = error.to_string();
    assert!(
        text.contains("500") && text.contains("/directory_users"),
        "{text}"
    );
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let broker = dev_broker(5, 1, false).await;
    let client = BrokerClient::new(settings(&broker.base_url, "sk_wrong")).expect("a client");
    let error = client
        .list_users(&broker.directory_id)
        .await
        .expect_err("refused");
    assert!(
        matches!(error.root(), BrokerError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert_eq!(client.stats().requests(), 1);
    assert_eq!(client.stats().retries(), 0);
    assert!(error.to_string().contains("401"), "{error}");
}

#[tokio::test]
async fn not_found_and_invalid_are_not_retried() {
    let server = serve(|request, _| {
        if request.path() == "/directories" {
            HttpResponse::NotFound().json(json!({"message": "nope", "code": "entity_not_found"}))
        } else {
            HttpResponse::UnprocessableEntity().json(json!({"message": "Validation failed"}))
        }
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let error = client.list_directories(None).await.expect_err("404");
    assert!(
        matches!(error.root(), BrokerError::NotFound { .. }),
        "{error}"
    );
    let error = client.list_users("directory_t").await.expect_err("422");
    assert!(
        matches!(error.root(), BrokerError::Invalid { body, .. } if body.contains("Validation")),
        "{error}"
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn user_listings_are_rate_limited_per_directory() {
    let server = serve(|_, _| one_page_of_users());
    let mut settings = settings(&server.url, "sk");
    settings.user_listing_rate_per_directory = 4.0;
    let client = BrokerClient::new(settings).expect("a client");
    let started = Instant::now();
    // Concurrent calls share the limit: 12 requests at 4/s take at least 11 intervals of 250 ms.
    let calls = (0..12).map(|i| {
        let client = client.clone();
        async move {
            if i % 2 == 0 {
                client.list_users("directory_a").await.map(|_| ())
            } else {
                client
                    .list_group_members("directory_group_x", "directory_a")
                    .await
                    .map(|_| ())
            }
        }
    });
    for result in futures_util::future::join_all(calls).await {
        result.expect("a listing");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4500), "{elapsed:?}");

    // Another directory has its own budget, and groups are not limited.
    let started = Instant::now();
    client.list_users("directory_b").await.expect("a listing");
    client.list_groups("directory_a").await.expect("a listing");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn users_with_groups_uses_filled_user_groups() {
    let broker = dev_broker(60, 6, true).await;
    let client = client_for(&broker);
    let result = client
        .users_with_groups(&broker.directory_id)
        .await
        .expect("users and groups");
    let truth = broker.truth();
    assert!(result.from_user_groups);
    assert_eq!(client.stats().group_member_requests(), 0);
    assert_eq!(result.requests, 2, "one page of users, one of groups");
    assert_eq!(result.memberships, truth.memberships);
    assert_eq!(result.users.len(), truth.users.len());
    assert_eq!(result.groups.len(), truth.groups.len());
}

#[tokio::test]
async fn users_with_groups_lists_each_group_when_user_groups_are_empty() {
    let broker = dev_broker(60, 6, false).await;
    let client = client_for(&broker);
    let result = client
        .users_with_groups(&broker.directory_id)
        .await
        .expect("users and groups");
    let truth = broker.truth();
    assert!(!result.from_user_groups);
    assert_eq!(
        client.stats().group_member_requests(),
        truth.groups.len() as u64
    );
    assert_eq!(result.requests as usize, 2 + truth.groups.len());
    assert_eq!(result.memberships, truth.memberships);
}

#[tokio::test]
async fn survives_the_dev_brokers_injected_faults() {
    let broker = dev_broker(250, 4, false).await;
    broker
        .set_faults(&FaultsUpdate {
            rate_429: Some(0.3),
            rate_500: Some(0.2),
            ..FaultsUpdate::default()
        })
        .expect("faults");
    let mut settings = settings(&broker.base_url, &broker.api_key);
    settings.max_retries = 10;
    settings.retry_after_cap = Duration::from_millis(50);
    let client = BrokerClient::new(settings).expect("a client");
    let listing = client
        .list_users(&broker.directory_id)
        .await
        .expect("a listing");
    let ids: BTreeSet<_> = listing.items.iter().map(|u| u.id.clone()).collect();
    assert_eq!((listing.items.len(), ids.len()), (250, 250));
    assert!(client.stats().retries() > 0);
}

#[tokio::test]
async fn transport_errors_are_retried_then_reported() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port();
    let mut settings = settings(&format!("http://127.0.0.1:{port}"), "sk");
    settings.max_retries = 2;
    let client = BrokerClient::new(settings).expect("a client");
    let error = client.list_directories(None).await.expect_err("no server");
    assert!(
        matches!(error.root(), BrokerError::RetriesExhausted { attempts: 3, last, .. } if last.contains("transport")),
        "{error}"
    );
    assert_eq!(client.stats().retries(), 2);
}

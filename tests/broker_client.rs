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

/// An event of a page, read.
fn value(event: &serde_json::value::RawValue) -> serde_json::Value {
    serde_json::from_str(event.get()).expect("an event is JSON")
}

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

/// A test server answering every request with this JSON text, and a client of it.
fn serving_page(page: String) -> (TestServer, BrokerClient) {
    let server = serve(move |_, _| {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(page.clone())
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    (server, client)
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
    let ids: BTreeSet<_> = listing.items.iter().map(|u| u.id.to_string()).collect();
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
    assert_eq!(directories.items[0].id.as_str(), broker.directory_id);
    let org = client
        .list_directories(Some("org_dev"))
        .await
        .expect("directories of an organization");
    assert_eq!(org.items.len(), 1);

    let groups = client
        .list_groups(&broker.directory_id)
        .await
        .expect("groups");
    let ids: BTreeSet<_> = groups.items.iter().map(|g| g.id.to_string()).collect();
    let truth_ids: BTreeSet<_> = truth.groups.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids, truth_ids);

    for group in &groups.items {
        let members = client
            .list_group_members(group.id.as_str(), &broker.directory_id)
            .await
            .expect("members");
        let got: BTreeSet<_> = members.items.iter().map(|u| u.id.to_string()).collect();
        let expected: BTreeSet<_> = truth
            .memberships
            .iter()
            .filter(|(g, _)| group.id == g.as_str())
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

/// A first answer of `status` with `Retry-After: 1`, then a page; returns the client's counts of rate
/// limits and retries, after checking it waited the second (not its own 10 to 20 ms backoff) and no more.
async fn waits_for_retry_after(status: reqwest::StatusCode) -> (u64, u64) {
    let status = actix_web::http::StatusCode::from_u16(status.as_u16()).unwrap();
    let server = serve(move |_, n| {
        if n == 1 {
            HttpResponse::build(status)
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
    assert!(
        elapsed >= Duration::from_millis(950),
        "{status}: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{status}: {elapsed:?}");
    assert_eq!(listing.requests, 2);
    let stats = client.stats().snapshot();
    (stats.rate_limited, stats.retries)
}

#[tokio::test]
async fn waits_for_retry_after_on_429() {
    let counted = waits_for_retry_after(reqwest::StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(counted, (1, 1));
}

#[tokio::test]
async fn waits_for_retry_after_on_503() {
    let counted = waits_for_retry_after(reqwest::StatusCode::SERVICE_UNAVAILABLE).await;
    // Retried, but not counted as a rate limit.
    assert_eq!(counted, (0, 1));
}

/// A broker that allows 2 `/directory_users` requests a second per directory and answers more with 429
/// and `Retry-After: 1`, while the users and several groups' members are listed at once at the client's
/// default 4 requests a second: after a 429 every listing of that directory waits the second out, not
/// only the request that was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_every_listing_of_the_directory() {
    let accepted: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let arrivals: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let refusals: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let server = {
        let (accepted, arrivals, refusals) = (accepted.clone(), arrivals.clone(), refusals.clone());
        serve(move |request, _| {
            let q = query(request);
            let page = |data: Vec<serde_json::Value>, after: Option<String>| {
                HttpResponse::Ok().json(json!({
                    "object": "list", "data": data,
                    "list_metadata": {"before": null, "after": after}
                }))
            };
            if request.path() == "/directory_groups" {
                let groups = (0..4)
                    .map(|g| json!({"id": format!("directory_group_{g}"), "directory_id": "directory_t", "name": format!("G{g}")}))
                    .collect();
                return page(groups, None);
            }
            let now = Instant::now();
            arrivals.lock().unwrap().push(now);
            let mut accepted = accepted.lock().unwrap();
            if accepted
                .iter()
                .filter(|&&at| now - at < Duration::from_secs(1))
                .count()
                >= 2
            {
                refusals.lock().unwrap().push(now);
                return HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", "1"))
                    .body("\"Ratelimited\"");
            }
            accepted.push(now);
            let step: u32 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let after = (step < 1).then(|| (step + 1).to_string());
            let id = format!(
                "directory_user_{}_{step}",
                q.get("group").map_or("all", |g| g.as_str())
            );
            page(vec![user(&id)], after)
        })
    };
    let mut settings = settings(&server.url, "sk");
    settings.user_listing_rate_per_directory = 4.0;
    settings.max_retries = 20;
    let client = BrokerClient::new(settings).expect("a client");
    let listed = client
        .users_with_groups("directory_t")
        .await
        .expect("a listing");
    assert!(
        !listed.from_user_groups,
        "the groups' members were listed too"
    );
    let refusals = refusals.lock().unwrap().clone();
    assert!(!refusals.is_empty(), "the broker's limit was reached");
    // A request already on its way when a 429 was sent may still arrive; none is sent once the client has
    // read it, until its second is over.
    let arrivals = arrivals.lock().unwrap().clone();
    let inside: Vec<Duration> = refusals
        .iter()
        .flat_map(|&refused| {
            arrivals.iter().filter_map(move |&at| {
                let since = at.checked_duration_since(refused)?;
                (since > Duration::from_millis(150) && since < Duration::from_millis(950))
                    .then_some(since)
            })
        })
        .collect();
    assert!(
        inside.is_empty(),
        "requests inside a Retry-After window: {inside:?} ({} refusals, {} requests)",
        refusals.len(),
        arrivals.len()
    );
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

/// Reads the Events API a page at a time from `from` until the broker names no next cursor.
async fn read_events(
    client: &BrokerClient,
    types: &[&str],
    from: EventsFrom,
    limit: u32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from = from;
    loop {
        let page = client
            .list_events(types, &from, limit)
            .await
            .expect("a page of events");
        assert!(page.data.len() <= limit as usize);
        ids.extend(
            page.data
                .iter()
                .map(|e| value(e)["id"].as_str().unwrap().to_string()),
        );
        match page.after {
            Some(after) => from = EventsFrom::After(after),
            None => return ids,
        }
    }
}

const USER_EVENTS: [&str; 3] = [
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_events_pages_the_dev_broker_from_the_start_a_cursor_or_a_time() {
    let broker = dev_broker(30, 4, false).await;
    broker.random_changes(25);
    let client = client_for(&broker);
    let logged: Vec<String> = broker.events().into_iter().map(|r| r.event.id).collect();
    assert!(logged.len() >= 25);

    let before = client.stats().requests();
    let all = read_events(&client, &[], EventsFrom::Start, 7).await;
    assert_eq!(all, logged);
    assert_eq!(
        client.stats().requests() - before,
        logged.len().div_ceil(7) as u64
    );
    let rest = read_events(&client, &[], EventsFrom::After(logged[9].clone()), 100).await;
    assert_eq!(rest, logged[10..]);

    // Only the types asked for.
    let users: Vec<String> = broker
        .events()
        .into_iter()
        .filter(|r| USER_EVENTS.contains(&r.event.event.as_str()))
        .map(|r| r.event.id)
        .collect();
    assert!(!users.is_empty() && users.len() < logged.len());
    assert_eq!(
        read_events(&client, &USER_EVENTS, EventsFrom::Start, 5).await,
        users
    );

    // From a time: the first page starts there, the next ones follow the cursor.
    let mark = broker.mark_time();
    broker.random_changes(5);
    let later: Vec<String> = broker
        .events()
        .into_iter()
        .skip(logged.len())
        .map(|r| r.event.id)
        .collect();
    assert_eq!(
        read_events(&client, &[], EventsFrom::RangeStart(mark), 2).await,
        later
    );
}

#[tokio::test]
async fn list_events_sends_the_types_limit_order_and_one_start() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let server = serve(move |request, _| {
        assert_eq!(request.path(), "/events");
        recorded.lock().unwrap().push(query(request));
        HttpResponse::Ok().json(json!({
            "object": "list",
            "data": [{"object": "event", "id": "event_2", "event": "dsync.user.created", "data": {},
                      "created_at": "2026-12-01T10:00:00.000Z"}],
            "list_metadata": {"before": null, "after": "event_2"}
        }))
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let types = ["dsync.user.created", "dsync.group.user_added"];
    let page = client
        .list_events(&types, &EventsFrom::After("event_1".into()), 100)
        .await
        .expect("a page");
    assert_eq!(page.after.as_deref(), Some("event_2"));
    assert_eq!(value(&page.data[0])["event"], "dsync.user.created");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00.5Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    client
        .list_events(&types, &EventsFrom::RangeStart(at), 500)
        .await
        .expect("a page");
    client
        .list_events(&types, &EventsFrom::Start, 0)
        .await
        .expect("a page");
    let seen = seen.lock().unwrap();
    let expect = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let events = "dsync.user.created,dsync.group.user_added";
    assert_eq!(
        seen[0],
        expect(&[
            ("events", events),
            ("limit", "100"),
            ("order", "asc"),
            ("after", "event_1")
        ])
    );
    assert_eq!(
        seen[1],
        expect(&[
            ("events", events),
            ("limit", "100"),
            ("order", "asc"),
            ("range_start", "2026-11-30T08:00:00.500Z")
        ])
    );
    assert_eq!(
        seen[2],
        expect(&[("events", events), ("limit", "1"), ("order", "asc")])
    );
}

#[tokio::test]
async fn list_events_waits_for_retry_after_and_retries_5xx() {
    let server = serve(|_, n| match n {
        1 => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .body("\"Ratelimited\""),
        2 => HttpResponse::ServiceUnavailable().finish(),
        _ => HttpResponse::Ok().json(json!({
            "object": "list", "data": [], "list_metadata": {"before": null, "after": null}
        })),
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let started = Instant::now();
    let page = client
        .list_events(&USER_EVENTS, &EventsFrom::Start, 100)
        .await
        .expect("a page after the retries");
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert!(page.data.is_empty() && page.after.is_none());
    assert_eq!(server.hits(), 3);
    let stats = client.stats().snapshot();
    assert_eq!(
        (stats.requests, stats.rate_limited, stats.retries),
        (3, 1, 2)
    );

    // A broker that keeps failing: the page is an error after the last retry.
    let failing = serve(|_, _| HttpResponse::InternalServerError().finish());
    let mut settings = settings(&failing.url, "sk");
    settings.max_retries = 2;
    let client = BrokerClient::new(settings).expect("a client");
    let error = client
        .list_events(&USER_EVENTS, &EventsFrom::Start, 100)
        .await
        .expect_err("no page");
    assert!(
        matches!(error, BrokerError::RetriesExhausted { attempts: 3, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_outside_the_retention_window_is_cursor_expired() {
    let broker = dev_broker(10, 2, false).await;
    broker.random_changes(5);
    let client = client_for(&broker);
    let oldest = broker.events()[0].event.id.clone();
    client
        .list_events(&[], &EventsFrom::After(oldest.clone()), 10)
        .await
        .expect("a cursor in the window");
    broker
        .expire_events(&EventExpiry::Through(oldest.clone()))
        .unwrap();
    let error = client
        .list_events(&[], &EventsFrom::After(oldest), 10)
        .await
        .expect_err("the cursor is expired");
    assert!(
        matches!(error, BrokerError::CursorExpired { .. }),
        "{error}"
    );
    let long_ago = chrono::Utc::now() - chrono::Duration::days(31);
    let error = client
        .list_events(&[], &EventsFrom::RangeStart(long_ago), 10)
        .await
        .expect_err("the time is before the window");
    assert!(
        matches!(error, BrokerError::CursorExpired { .. }),
        "{error}"
    );
    assert_eq!(
        client.stats().retries(),
        0,
        "a refused start is not retried"
    );

    // The real broker's shapes: a 422 naming the field, a 400 naming it in its message; other refusals stay
    // what they are.
    let server =
        serve(|request, _| {
            match query(request).get("limit").map(String::as_str) {
        Some("1") => HttpResponse::UnprocessableEntity().json(json!({
            "message": "Validation failed", "errors": [{"field": "after", "code": "cursor_expired"}]
        })),
        Some("2") => HttpResponse::BadRequest()
            .json(json!({"message": "range_start must be within the last 30 days"})),
        Some("3") => HttpResponse::UnprocessableEntity().json(json!({
            "message": "Validation failed", "errors": [{"field": "limit", "code": "too_large"}]
        })),
        _ => HttpResponse::BadRequest()
            .json(json!({"message": "Organization not found: 'org_x'. Try again afterwards."})),
    }
        });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let from = EventsFrom::After("event_1".into());
    for (limit, expired) in [(1, true), (2, true), (3, false), (4, false)] {
        let error = client
            .list_events(&[], &from, limit)
            .await
            .expect_err("refused");
        assert_eq!(
            matches!(error, BrokerError::CursorExpired { .. }),
            expired,
            "limit {limit}: {error}"
        );
    }
}

#[tokio::test]
async fn events_requests_share_the_keys_rate_limit() {
    let server = serve(|_, _| {
        HttpResponse::Ok().json(json!({
            "object": "list", "data": [], "list_metadata": {"before": null, "after": null}
        }))
    });
    let mut settings = settings(&server.url, "sk");
    settings.events_rate_per_key = 20.0;
    let client = BrokerClient::new(settings).expect("a client");
    let started = Instant::now();
    // 11 concurrent requests at 20/s take at least 10 intervals of 50 ms.
    let calls = (0..11).map(|_| {
        let client = client.clone();
        async move {
            client
                .list_events(&USER_EVENTS, &EventsFrom::Start, 100)
                .await
        }
    });
    for result in futures_util::future::join_all(calls).await {
        result.expect("a page");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert_eq!(server.hits(), 11);
}

#[tokio::test]
async fn an_answer_over_the_cap_is_refused_unread_and_not_retried() {
    // Over the cap, with and without a Content-Length the client could trust.
    let big = vec![b' '; MAX_ANSWER_BYTES + 1];
    let server = serve(move |_, n| {
        let body = big.clone();
        if n == 1 {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        } else {
            let chunks = futures_util::stream::iter(
                body.chunks(64 * 1024)
                    .map(|c| Ok::<_, std::io::Error>(web::Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            );
            HttpResponse::Ok()
                .content_type("application/json")
                .streaming(chunks)
        }
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    for _ in 0..2 {
        let error = client.list_users("directory_t").await.expect_err("refused");
        assert!(
            matches!(error.root(), BrokerError::TooLarge { .. }),
            "{error}"
        );
    }
    assert_eq!(server.hits(), 2, "not retried");
}

#[tokio::test]
async fn an_empty_page_that_names_a_next_cursor_ends_the_listing_incomplete() {
    let server = serve(|_, n| {
        HttpResponse::Ok().json(json!({
            "data": [],
            "list_metadata": {"after": format!("cursor_{n}")}
        }))
    });
    let client = BrokerClient::new(settings(&server.url, "sk")).expect("a client");
    let error = client
        .list_users("directory_t")
        .await
        .expect_err("an error");
    assert!(
        matches!(error, BrokerError::EmptyPageWithCursor { .. }),
        "{error}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_set_aside_and_the_page_read_on() {
    let nested = "[".repeat(300) + &"]".repeat(300);
    let page = format!(
        r#"{{"data":[{{"id":"directory_user_1","directory_id":"directory_t","first_name":"A\u0000nn","custom_attributes":{{"x":{nested}}}}},{{"id":"directory_user_2","directory_id":"directory_t","groups":{nested}}},{{"id":"directory_user_3","directory_id":"directory_t"}}],"list_metadata":{{"after":null}}}}"#
    );
    let (_server, client) = serving_page(page);
    let listed = client
        .users_with_groups("directory_t")
        .await
        .expect("a listing");
    let ids: Vec<&str> = listed.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["directory_user_1", "directory_user_3"]);
    assert_eq!(listed.users[0].first_name.as_deref(), Some("Ann"));
    assert_eq!(listed.unreadable.len(), 1);
    assert_eq!(listed.unreadable[0].id.as_deref(), Some("directory_user_2"));
    assert!(
        listed.unreadable[0].reason.contains("recursion"),
        "{:?}",
        listed.unreadable
    );
}

#[test]
fn plain_http_is_refused_unless_the_broker_is_this_machine() {
    for refused in [
        "http://api.workos.com",
        "http://10.0.0.8:8080",
        "ftp://localhost",
    ] {
        let error = BrokerClient::new(settings(refused, "sk")).expect_err(refused);
        assert!(error.to_string().contains("use https"), "{error}");
    }
    for allowed in [
        "https://api.workos.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        assert!(
            BrokerClient::new(settings(allowed, "sk")).is_ok(),
            "{allowed}"
        );
    }
}

#[tokio::test]
async fn a_page_of_events_with_one_nested_too_deeply_is_read_whole() {
    let nested = "[".repeat(300) + &"]".repeat(300);
    let page = format!(
        r#"{{"data":[{{"id":"event_1","event":"dsync.user.updated","data":{{"groups":{nested}}}}},{{"id":"event_2","event":"dsync.group.created","data":{{}}}}],"list_metadata":{{"after":null}}}}"#
    );
    let (_server, client) = serving_page(page);
    let page = client
        .list_events(&USER_EVENTS, &EventsFrom::Start, 100)
        .await
        .expect("the page is read, each event left to its reader");
    assert_eq!(page.data.len(), 2);
    assert!(page.data[0].get().contains(&nested));
    assert_eq!(value(&page.data[1])["id"], "event_2");
}

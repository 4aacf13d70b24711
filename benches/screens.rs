//! The admin screens on a large workspace, in headless Chromium: `rollcall serve` pulls a `rollcall
//! dev-broker` directory (100,000 users in 1,000 groups by default), 50 groups are linked to a team each
//! (two mapped to roles), and an operator opens the Members, Teams and Directory Sync screens, each from
//! a fresh page load. For each: when its first page shows (ms since the navigation began, as the page's own
//! clock says) and how many API requests the page made by then and once settled. Then searches: answered by
//! the server (the request's own time in the browser, and over plain HTTP) and shown.
//!
//! `cargo bench --bench screens` (env: BENCH_USERS, BENCH_GROUPS, BENCH_TEAMS, BENCH_BACKENDS). Needs
//! Chromium and chromedriver (the admin screens' tests need them too).

mod support;

#[allow(dead_code)]
#[path = "../tests/admin_ui/browser.rs"]
mod browser;

use browser::Browser;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{
    backends, database_url, dev_broker, env_or, free_port, link_teams_and_roles, measuring,
    operator, pull, runtime, scratch, spawn, synced_workspace, wait_until_up, OPERATOR,
};

const API_KEY: &str = "sk_test_bench";
const DIRECTORY: &str = "directory_dev";
const ORGANIZATION: &str = "org_dev";
/// Fresh page loads of each screen measured.
const LOADS: usize = 3;

/// Waits, in the page, until `arguments[0]` matches at least `arguments[1]` elements; answers the page's
/// clock then (ms since the navigation began) and the API requests it had made.
const PAINTED: &str = r#"
const [selector, least] = arguments;
const done = arguments[arguments.length - 1];
const api = () => performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/')).length;
(function check() {
  if (document.querySelectorAll(selector).length >= least) done({ painted_ms: performance.now(), requests: api() });
  else setTimeout(check, 2);
})();
"#;

/// The API requests the page has made so far.
const REQUESTS: &str = r#"
return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/')).length;
"#;

/// Types `arguments[0]` into the member search at once and waits for the list the server answers:
/// the search request's own time, and from its start until the list shows.
const SEARCHED: &str = r#"
const [needle] = arguments;
const done = arguments[arguments.length - 1];
performance.setResourceTimingBufferSize(100000);
performance.clearResourceTimings();
const shown = document.querySelector('#members table');
const input = document.querySelector('#member-search');
input.value = needle;
input.dispatchEvent(new Event('input'));
(function check() {
  const asked = performance.getEntriesByType('resource').find(e => e.name.includes('search='));
  const table = document.querySelector('#members table');
  if (asked && table && table !== shown) {
    done({ answer_ms: asked.responseEnd - asked.startTime, shown_ms: performance.now() - asked.startTime,
           caption: table.querySelector('caption').textContent });
  } else setTimeout(check, 2);
})();
"#;

/// A screen, how it is opened, and what shows that its first page has painted.
struct Screen {
    name: &'static str,
    hash: &'static str,
    painted: &'static str,
    least: usize,
}

struct Load {
    painted_ms: f64,
    requests: u64,
    settled_requests: u64,
}

struct Search {
    needle: String,
    matches: String,
    browser_answer_ms: f64,
    browser_shown_ms: f64,
    http_ms: f64,
}

struct Figures {
    backend: String,
    seeded: Duration,
    /// A resync previewed, from the request to its answer.
    previewed: Duration,
    screens: Vec<(&'static str, Vec<Load>)>,
    searches: Vec<Search>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Opens the screen from a fresh page load (a query string the page has not had) and measures it.
async fn load(browser: &Browser, screen: &Screen, n: usize) -> Load {
    browser
        .open(&format!("/admin/?load={n}{}", screen.hash))
        .await;
    let painted = browser
        .script_async(PAINTED, json!([screen.painted, screen.least]))
        .await;
    // Whatever the screen asks for after its first page (the group filter's choices).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = browser.script(REQUESTS, json!([])).await;
    Load {
        painted_ms: painted["painted_ms"].as_f64().unwrap(),
        requests: painted["requests"].as_u64().unwrap(),
        settled_requests: settled.as_u64().unwrap(),
    }
}

/// The needles searched for: a name's prefix, part of an email, and one every member matches.
fn needles(member: &Value) -> Vec<String> {
    let last = member["last_name"].as_str().unwrap_or("Smith");
    let email = member["email"].as_str().unwrap();
    let local = email.split('@').next().unwrap();
    vec![
        last.chars().take(4).collect::<String>().to_lowercase(),
        local.chars().skip(2).take(5).collect(),
        "example".to_string(),
    ]
}

/// A plain HTTP search's time, the median of five.
async fn http_search(client: &reqwest::Client, base: &str, ws: &str, needle: &str) -> f64 {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        operator(
            client,
            reqwest::Method::GET,
            format!("{base}/api/v1/workspaces/{ws}/members?limit=50&search={needle}"),
            None,
            200,
        )
        .await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    median(times)
}

fn measure(backend: &str, users: usize, groups: usize, teams: usize) -> Figures {
    let db_scratch = scratch(backend);
    let (_broker, broker_base) = dev_broker(users, groups, API_KEY);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _service = spawn(
        &["serve"],
        &[
            ("DATABASE_URL", database_url(&db_scratch.target)),
            ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
            ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
            ("WORKOS_API_KEY", API_KEY.to_string()),
            ("WORKOS_API_BASE", broker_base.clone()),
            ("WORKOS_USER_LISTING_RATE", "0".to_string()),
            ("RESYNC_INTERVAL", "0".to_string()),
        ],
    );
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        wait_until_up(&client, &format!("{broker_base}/_dev/state")).await;
        wait_until_up(&client, &format!("{base}/healthz")).await;
        let started = Instant::now();
        let ws = synced_workspace(&client, &base, ORGANIZATION).await;
        let (run, _) = pull(&client, &base, DIRECTORY).await;
        assert_eq!(
            run["counts"]["users_created"].as_u64(),
            Some(users as u64),
            "{run}"
        );
        link_teams_and_roles(&client, &base, &ws, teams).await;
        let seeded = started.elapsed();

        let browser = Browser::start(&base).await;
        browser.open("/admin/").await;
        browser.sign_in(OPERATOR).await;
        browser.wait_text("main h1", "Directory Sync").await;
        let screens = [
            Screen {
                name: "Members",
                hash: "#/members",
                painted: "#members table caption",
                least: 1,
            },
            Screen {
                name: "Teams",
                hash: "#/teams",
                painted: "section.team",
                least: teams,
            },
            Screen {
                name: "Directory Sync",
                hash: "#/directory-sync",
                painted: "tr[data-directory]",
                least: 1,
            },
        ];
        let mut measured = Vec::new();
        let mut n = 0;
        for screen in &screens {
            let mut loads = Vec::new();
            for _ in 0..LOADS {
                n += 1;
                loads.push(load(&browser, screen, n).await);
            }
            measured.push((screen.name, loads));
        }

        // Searches on the Members screen, and the same over plain HTTP.
        browser.open("/admin/?search#/members").await;
        browser
            .script_async(PAINTED, json!(["#members table caption", 1]))
            .await;
        let sample = operator(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/v1/workspaces/{ws}/members?limit=1&managed_by=directory"),
            None,
            200,
        )
        .await;
        let mut searches = Vec::new();
        for needle in needles(&sample["data"][0]) {
            let found = browser.script_async(SEARCHED, json!([needle])).await;
            let http_ms = http_search(&client, &base, &ws, &needle).await;
            searches.push(Search {
                matches: found["caption"].as_str().unwrap_or("").to_string(),
                browser_answer_ms: found["answer_ms"].as_f64().unwrap(),
                browser_shown_ms: found["shown_ms"].as_f64().unwrap(),
                http_ms,
                needle,
            });
        }
        // A resync previewed (nothing has changed at the broker): the listing and the pull's steps in a
        // transaction rolled back.
        let started = Instant::now();
        let preview = operator(
            &client,
            reqwest::Method::POST,
            format!("{base}/api/v1/directories/{DIRECTORY}/resync?dry_run=true"),
            None,
            200,
        )
        .await;
        let previewed = started.elapsed();
        assert_eq!(preview["changes"], json!({}), "{preview}");
        Figures {
            backend: backend.to_string(),
            seeded,
            previewed,
            screens: measured,
            searches,
        }
    })
}

fn main() {
    let (users, groups, teams) = if measuring() {
        (
            env_or("BENCH_USERS", 100_000),
            env_or("BENCH_GROUPS", 1_000),
            env_or("BENCH_TEAMS", 50),
        )
    } else {
        (300, 10, 5)
    };
    println!("\nAdmin screens on a workspace of {users} directory users in {groups} groups, {teams} teams linked (headless Chromium, {LOADS} fresh loads each)\n");
    let mut all = Vec::new();
    for backend in backends() {
        all.push(measure(&backend, users, groups, teams));
    }
    println!("| backend | screen | first page shown, median | slowest | API requests by then | API requests once settled |");
    println!("|---|---|---:|---:|---:|---:|");
    for f in &all {
        for (name, loads) in &f.screens {
            let painted: Vec<f64> = loads.iter().map(|l| l.painted_ms).collect();
            let slowest = painted.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {} | {name} | {:.0} ms | {:.0} ms | {} | {} |",
                f.backend,
                median(painted),
                slowest,
                loads[0].requests,
                loads.iter().map(|l| l.settled_requests).max().unwrap_or(0),
            );
        }
    }
    println!("\n| backend | search | matches | server's answer, in the browser | shown, from the request | over plain HTTP, median of 5 |");
    println!("|---|---|---|---:|---:|---:|");
    for f in &all {
        for s in &f.searches {
            println!(
                "| {} | `{}` | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
                f.backend, s.needle, s.matches, s.browser_answer_ms, s.browser_shown_ms, s.http_ms
            );
        }
    }
    println!();
    for f in &all {
        println!(
            "{}: seeding (first pull and {teams} links) took {:.1} s; a resync previewed (nothing to change) answered in {:.1} s",
            f.backend,
            f.seeded.as_secs_f64(),
            f.previewed.as_secs_f64()
        );
    }
}

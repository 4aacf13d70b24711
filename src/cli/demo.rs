//! `rollcall demo`: a dev broker with a sample directory and the service on SQLite, wired together in one
//! process, with a workspace synced and an operator token made, so a newcomer can try the API at once.

use crate::config::{LogFormat, Settings};
use crate::db::{DatabaseTarget, DbError};
use crate::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySettings, DirectorySource, FaultsUpdate,
    GenerateOptions, WebhookTarget,
};
use crate::domain::RunStatus;
use crate::startup::Application;
use anyhow::Context;
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// The organization of the sample directory and of the demo workspace.
const ORGANIZATION: &str = "org_demo";
/// The sample directory.
const DIRECTORY: &str = "directory_demo";

/// Try Rollcall in one command: a local broker with a sample directory, and the service, wired together.
///
/// Starts a dev broker (the broker's pull API and signed webhooks) holding a generated directory, and
/// the Rollcall service on a SQLite file, pointed at each other with a shared webhook secret. Then, as
/// an operator would over the API, it creates a workspace on the growth plan for the directory's
/// organization, turns directory sync on, pulls the directory in full and waits for that run. It prints
/// the service and broker URLs, a new operator token, the workspace id and commands to paste, and runs
/// until Ctrl-C or SIGTERM. Changes made at the broker (POST /_dev/random-changes) reach the service as
/// webhooks. Nothing is read from the environment but RUST_LOG.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the service listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Where the dev broker listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub broker_bind: SocketAddr,
    /// The database: a SQLite file (kept between runs) or a DATABASE_URL.
    #[arg(long, default_value = "rollcall-demo.db")]
    pub database: String,
    /// Users in the sample directory.
    #[arg(long, default_value_t = 300)]
    pub users: u32,
    /// Groups in the sample directory.
    #[arg(long, default_value_t = 8)]
    pub groups: u32,
    /// Seeds the sample directory: the same seed gives the same people.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The address itself, or with port 0 a free port on the same host.
fn concrete(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe =
        TcpListener::bind(addr).with_context(|| format!("finding a free port on {addr}"))?;
    Ok(probe.local_addr()?)
}

/// The URL to reach an address on, loopback for an unspecified one.
fn url_of(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::telemetry::init_with_default(LogFormat::Text, "warn,rollcall=info,rollcall::http=warn");
    let database =
        DatabaseTarget::parse(&args.database).map_err(|p| anyhow::anyhow!("--database: {p}"))?;
    // The broker needs the service's URL for webhooks and the service the broker's for pulls: the
    // service's port is settled first.
    let service_addr = concrete(args.bind)?;
    let service = url_of(service_addr);
    let secret = format!("whsec_demo_{:032x}", rand::random::<u128>());
    let broker = DevBroker::start(DevBrokerConfig {
        bind: args.broker_bind,
        api_key: format!("sk_test_demo_{:016x}", rand::random::<u64>()).into(),
        directory: DirectorySettings {
            id: DIRECTORY.into(),
            organization_id: ORGANIZATION.into(),
            name: "Demo Directory".into(),
            domain: "demo.example.com".into(),
            ..DirectorySettings::default()
        },
        source: DirectorySource::Generate(GenerateOptions {
            users: args.users,
            groups: args.groups,
            memberships_per_user: 2.0,
            inactive_share: 0.05,
        }),
        seed: args.seed,
        webhook: Some(WebhookTarget {
            url: format!("{service}/webhooks/workos"),
            secret: secret.clone().into(),
        }),
        ..DevBrokerConfig::default()
    })
    .await
    .context("starting the dev broker")?;

    let mut settings = Settings::from_lookup(|_| None)?;
    settings.database = database.clone();
    settings.bind = service_addr;
    settings.webhook_secrets = vec![secret.into()];
    settings.workos_api_key = Some(broker.api_key.clone().into());
    settings.workos_api_base = broker.base_url.clone();
    settings.operator_token = None;
    // The demo's product receiver listens on loopback.
    settings.outbound_allow_private = true;
    let app = Application::build(settings)?;
    let token = {
        let db = app.database().clone();
        tokio::task::spawn_blocking(move || {
            db.write(|c| {
                Ok::<_, DbError>(crate::tokens::create_token(c, None, Some("demo"), None)?)
            })
        })
        .await??
        .1
    };
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());

    let api = Api::new(&service, &token)?;
    let shown = async {
        let workspace = set_up(&api, &broker).await?;
        let deprovisioning = show_deprovisioning(&api, &broker, &workspace.id).await?;
        let role = show_role_from_directory(&api, &broker, &workspace.id).await?;
        let tail = show_tail_catching_up(&api, &broker).await?;
        let scim = show_scim(&api, &service, &workspace.id).await?;
        anyhow::Ok((workspace, tail, deprovisioning, role, scim))
    };
    match shown.await {
        Ok((workspace, tail, deprovisioning, role, scim)) => print_welcome(
            &service,
            &broker,
            &database,
            &token,
            &workspace,
            &Shown {
                tail,
                deprovisioning,
                role,
                scim,
            },
        ),
        Err(error) => {
            shutdown.stop();
            let _ = server.await;
            broker.stop().await;
            return Err(error);
        }
    }
    // The service stops on Ctrl-C or SIGTERM by itself; the broker goes with it.
    let served = server.await;
    broker.stop().await;
    served.context("the service stopped unexpectedly")??;
    Ok(())
}

/// What the demo set up.
struct Workspace {
    id: String,
    run: Value,
}

/// How the Events API tail repaired changes whose webhooks were all lost.
struct TailCatchUp {
    changes: u32,
    events: usize,
    took: Duration,
    cursor: String,
}

/// Shows the Events API tail repairing lost webhooks: the broker drops every webhook of a few random
/// changes, and the tail reads their events from the broker's `GET /events` at its next poll. Waits until
/// the tail's cursor (`GET /api/v1/event-tail`) reaches the broker's newest event, then lets webhooks
/// through again.
async fn show_tail_catching_up(api: &Api, broker: &DevBrokerHandle) -> anyhow::Result<TailCatchUp> {
    const CHANGES: u32 = 20;
    let drop_all = FaultsUpdate {
        drop: Some(1.0),
        ..FaultsUpdate::default()
    };
    let before = broker.set_faults(&drop_all)?;
    let started = Instant::now();
    let events = broker.random_changes(CHANGES);
    let newest = broker.events().last().map(|record| record.event.id.clone());
    broker.set_faults(&FaultsUpdate {
        drop: Some(before.drop),
        ..FaultsUpdate::default()
    })?;
    let newest = newest.context("the broker made no event")?;
    let deadline = started + Duration::from_secs(60);
    loop {
        let (status, tail) = api.call(Method::GET, "/event-tail", None).await?;
        anyhow::ensure!(
            status.is_success(),
            "reading the event tail: {status} {tail}"
        );
        if tail["cursor"].as_str() == Some(newest.as_str()) {
            return Ok(TailCatchUp {
                changes: CHANGES,
                events,
                took: started.elapsed(),
                cursor: newest,
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Events API tail did not reach event {newest} in 60 s: {tail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the demo showed after the first sync.
struct Shown {
    tail: TailCatchUp,
    deprovisioning: Deprovisioning,
    role: RoleFromDirectory,
    scim: ScimShown,
}

/// An identity provider provisioning straight into the workspace over SCIM.
struct ScimShown {
    directory: String,
    token: String,
    users: usize,
    took: Duration,
}

/// The users the demo's identity provider pushes over SCIM.
const SCIM_USERS: [(&str, &str, &str); 3] = [
    ("grace@scim.example", "Grace", "Hopper"),
    ("katherine@scim.example", "Katherine", "Johnson"),
    ("dorothy@scim.example", "Dorothy", "Vaughan"),
];

/// Creates a SCIM directory for the workspace and pushes a few users and a group to it, as an identity
/// provider would, then waits until the last user is a member the API lists.
async fn show_scim(api: &Api, service: &str, workspace: &str) -> anyhow::Result<ScimShown> {
    let (status, created) = api
        .call(
            Method::POST,
            format!("/workspaces/{workspace}/scim-directories"),
            Some(json!({"name": "Identity provider over SCIM"})),
        )
        .await?;
    anyhow::ensure!(status.is_success(), "creating a SCIM directory: {created}");
    let directory = created["id"].as_str().unwrap_or_default().to_string();
    let token = created["token"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base = format!("{service}/scim/v2/{directory}");
    let push = |path: &str, body: Value| {
        api.client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let started = Instant::now();
    let mut members = Vec::new();
    for (email, given, family) in SCIM_USERS {
        let answer = push(
            "/Users",
            json!({"userName": email, "name": {"givenName": given, "familyName": family}, "active": true}),
        )
        .await
        .context("pushing a user over SCIM")?;
        anyhow::ensure!(
            answer.status().is_success(),
            "pushing {email} over SCIM: {}",
            answer.status()
        );
        let user: Value = answer.json().await?;
        members.push(json!({"value": user["id"]}));
    }
    let answer = push(
        "/Groups",
        json!({"displayName": "Mission Planning", "members": members}),
    )
    .await
    .context("pushing a group over SCIM")?;
    anyhow::ensure!(
        answer.status().is_success(),
        "pushing a group over SCIM: {}",
        answer.status()
    );
    let last = SCIM_USERS[SCIM_USERS.len() - 1].0;
    api.wait_for_member(
        workspace,
        last,
        "pushed over SCIM was not a member",
        |member| member["status"] == "active",
    )
    .await?;
    Ok(ScimShown {
        directory,
        token,
        users: SCIM_USERS.len(),
        took: started.elapsed(),
    })
}

/// A role assigned at the identity provider reaching a member.
struct RoleFromDirectory {
    group: String,
    email: String,
    took: Duration,
}

/// The role slug the demo's group gives at the broker, and the role the workspace maps it to.
const DEMO_SLUG: &str = "demo-admin";

/// Shows a role arriving from the directory: the workspace takes roles from the identity provider's role
/// slugs (`demo-admin` → admin), a group at the broker starts giving that slug, and one of its members
/// becomes admin through the `dsync.user.updated` that follows.
async fn show_role_from_directory(
    api: &Api,
    broker: &DevBrokerHandle,
    workspace: &str,
) -> anyhow::Result<RoleFromDirectory> {
    let setting = json!({ "source": "directory_roles", "mappings": [{ "slug": DEMO_SLUG, "role": "admin" }] });
    let (status, body) = api
        .call(
            Method::PUT,
            format!("/workspaces/{workspace}/role-source"),
            Some(setting),
        )
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "setting the role source: {status} {body}"
    );
    let truth = broker.truth();
    let active: Vec<&str> = truth
        .users
        .iter()
        .filter(|u| u.state == "active" && u.email.is_some())
        .map(|u| u.id.as_str())
        .collect();
    let (group, user) = truth
        .memberships
        .iter()
        .find(|(_, user)| active.contains(&user.as_str()))
        .context("the sample directory has no group with an active member")?;
    let email = truth
        .users
        .iter()
        .find(|u| u.id == *user)
        .and_then(|u| u.email.clone())
        .unwrap_or_default();
    let group_name = truth
        .groups
        .iter()
        .find(|g| g.id == *group)
        .map_or_else(|| group.clone(), |g| g.name.clone());
    let started = Instant::now();
    broker
        .set_group_role(group, Some(DEMO_SLUG))
        .map_err(|why| anyhow::anyhow!("giving {group_name} a role slug at the broker: {why:?}"))?;
    api.wait_for_member(workspace, &email, "did not become admin", |member| {
        member["role"] == "admin"
    })
    .await?;
    Ok(RoleFromDirectory {
        group: group_name,
        email,
        took: started.elapsed(),
    })
}

/// A deactivation at the broker reaching the product as a signed `member.deprovisioned`.
struct Deprovisioning {
    email: String,
    endpoint: String,
    took: Duration,
}

/// A delivery the demo's product receiver verified: the change, and when it arrived.
type Verified = (Value, Instant);

/// Starts the product's side: a receiver on loopback that checks each delivery's Standard Webhooks
/// signature with `secret` (once it is known) and passes on those that verify; returns its URL.
fn product_receiver(
    secret: std::sync::Arc<std::sync::OnceLock<String>>,
    verified: tokio::sync::mpsc::UnboundedSender<Verified>,
) -> anyhow::Result<String> {
    use actix_web::{web, HttpRequest, HttpResponse};
    use subtle::ConstantTimeEq;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the product receiver")?;
    let url = format!("http://{}/hooks/rollcall", listener.local_addr()?);
    let server = actix_web::HttpServer::new(move || {
        let (secret, verified) = (secret.clone(), verified.clone());
        actix_web::App::new().default_service(web::to(
            move |request: HttpRequest, body: web::Bytes| {
                let (secret, verified) = (secret.clone(), verified.clone());
                async move {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                    };
                    let expected = secret.get().and_then(|secret| {
                        let timestamp = header("webhook-timestamp").parse().ok()?;
                        crate::outbound::signing::sign(
                            secret,
                            header("webhook-id"),
                            timestamp,
                            &body,
                        )
                    });
                    let signature = header("webhook-signature").as_bytes();
                    let valid = expected.is_some_and(|e| bool::from(e.as_bytes().ct_eq(signature)));
                    if !valid {
                        return HttpResponse::Unauthorized().finish();
                    }
                    if let Ok(change) = serde_json::from_slice::<Value>(&body) {
                        let _ = verified.send((change, Instant::now()));
                    }
                    HttpResponse::NoContent().finish()
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(url)
}

/// Shows the product hearing of a deprovisioning: registers a receiver for `member.deprovisioned`,
/// deactivates a user at the broker, and waits for the signed change to arrive. Later ones are logged
/// as they come.
async fn show_deprovisioning(
    api: &Api,
    broker: &DevBrokerHandle,
    workspace: &str,
) -> anyhow::Result<Deprovisioning> {
    let secret = std::sync::Arc::new(std::sync::OnceLock::new());
    let (verified, mut received) = tokio::sync::mpsc::unbounded_channel();
    let endpoint = product_receiver(secret.clone(), verified)?;
    let (status, created) = api
        .call(
            Method::POST,
            format!("/workspaces/{workspace}/webhook-endpoints"),
            Some(
                json!({ "url": endpoint, "event_types": ["member.deprovisioned"],
                         "description": "the demo's product receiver" }),
            ),
        )
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "registering the receiver: {status} {created}"
    );
    let _ = secret.set(created["secret"].as_str().unwrap_or_default().to_string());
    let user = broker
        .truth()
        .users
        .into_iter()
        .find(|u| u.state == "active" && u.email.is_some())
        .context("the sample directory has no active user")?;
    let email = user.email.clone().unwrap_or_default();
    let started = Instant::now();
    broker
        .deactivate_user(&user.id)
        .map_err(|why| anyhow::anyhow!("deactivating {email} at the broker: {why:?}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let took = loop {
        let (change, at) = tokio::time::timeout_at(deadline, received.recv())
            .await
            .context("no member.deprovisioned reached the product in 60 s")?
            .context("the product receiver stopped")?;
        if change["data"]["member"]["directory_user_id"] == user.id.as_str() {
            break at.duration_since(started);
        }
    };
    tokio::spawn(async move {
        while let Some((change, _)) = received.recv().await {
            tracing::info!(
                member = change["data"]["member"]["email"]
                    .as_str()
                    .unwrap_or_default(),
                "the product's receiver verified a member.deprovisioned"
            );
        }
    });
    Ok(Deprovisioning {
        email,
        endpoint,
        took,
    })
}

/// The service's API, called with the demo's operator token.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(service: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: format!("{service}/api/v1"),
            token: token.to_string(),
        })
    }

    /// Calls `path` (below `/api/v1`); the answer's status and JSON body (null when it has none).
    async fn call(
        &self,
        method: Method,
        path: impl AsRef<str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path.as_ref()))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.context("calling the service")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Reads the workspace's member with `email` every 20 ms until `wanted` holds of it; fails after
    /// 60 s, saying what it waited for.
    async fn wait_for_member(
        &self,
        workspace: &str,
        email: &str,
        waited_for: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let path = format!("/workspaces/{workspace}/members?email={email}");
            let (_, found) = self.call(Method::GET, path, None).await?;
            if wanted(&found["data"][0]) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{email} {waited_for} within 60 s: {found}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Creates (or finds) the workspace, turns directory sync on, pulls the directory and waits for the run.
async fn set_up(api: &Api, broker: &DevBrokerHandle) -> anyhow::Result<Workspace> {
    let (status, body) = api
        .call(
            Method::POST,
            "/workspaces",
            Some(json!({ "name": "Demo Co", "plan": "growth", "organization_id": ORGANIZATION })),
        )
        .await?;
    let id = match status {
        StatusCode::CREATED => body["id"].as_str().map(str::to_string),
        // The database is kept between runs: the workspace is already there.
        StatusCode::CONFLICT => {
            let (_, list) = api
                .call(Method::GET, "/workspaces?limit=1000", None)
                .await?;
            list["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["organization_id"] == ORGANIZATION)
                .and_then(|w| w["id"].as_str())
                .map(str::to_string)
        }
        _ => anyhow::bail!("creating the demo workspace: {status} {body}"),
    }
    .context("the demo workspace has no id")?;
    let (status, body) = api
        .call(
            Method::PATCH,
            format!("/workspaces/{id}"),
            Some(json!({ "plan": "growth" })),
        )
        .await?;
    anyhow::ensure!(status.is_success(), "setting the plan: {status} {body}");
    let (status, body) = api
        .call(
            Method::PUT,
            format!("/workspaces/{id}/directory-sync"),
            Some(json!({ "enabled": true })),
        )
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "turning directory sync on: {status} {body}"
    );

    // Pull the directory in full: the first pull finds it in the broker's listing.
    let deadline = Instant::now() + Duration::from_secs(300);
    let run_id = loop {
        let (status, body) = api
            .call(
                Method::POST,
                format!("/directories/{}/resync", broker.directory_id),
                None,
            )
            .await?;
        match status {
            StatusCode::ACCEPTED => {
                break body["run_id"]
                    .as_str()
                    .context("the resync named no run")?
                    .to_string()
            }
            // Turning sync on found the directory at the broker and started a pull: wait for that one.
            StatusCode::CONFLICT if body["code"] == "sync_in_progress" => {
                let (_, runs) = api
                    .call(
                        Method::GET,
                        format!("/sync-runs?directory={}&limit=1", broker.directory_id),
                        None,
                    )
                    .await?;
                if let Some(run) = runs["data"][0]["id"].as_str() {
                    break run.to_string();
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "a sync run did not end in 5 minutes"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => anyhow::bail!("starting the first sync: {status} {body}"),
        }
    };
    eprintln!(
        "pulling {} users from the dev broker…",
        broker.counts().users
    );
    let run = loop {
        let (status, run) = api
            .call(Method::GET, format!("/sync-runs/{run_id}"), None)
            .await?;
        anyhow::ensure!(status.is_success(), "reading run {run_id}: {status} {run}");
        let status = run["status"]
            .as_str()
            .and_then(|s| s.parse::<RunStatus>().ok());
        if status.is_some_and(RunStatus::has_ended) {
            break run;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "run {run_id} did not end in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(Workspace { id, run })
}

fn print_welcome(
    service: &str,
    broker: &DevBrokerHandle,
    database: &DatabaseTarget,
    token: &str,
    workspace: &Workspace,
    shown: &Shown,
) {
    let tail = &shown.tail;
    let counts = broker.counts();
    let run = &workspace.run;
    let (ws, dir) = (&workspace.id, &broker.directory_id);
    let auth = format!("-H 'authorization: Bearer {token}'");
    let created = &run["counts"]["users_created"];
    println!();
    println!("Rollcall demo is running.");
    println!();
    println!(
        "service:        {service}   (database: {})",
        database.display()
    );
    println!(
        "dev broker:     {}   (directory {dir} of {ORGANIZATION}: {} users, {} groups, {} memberships)",
        broker.base_url, counts.users, counts.groups, counts.memberships
    );
    println!("operator token: {token}");
    println!(
        "admin screens:  {service}{}   (sign in with the operator token)",
        crate::admin_ui::PATH
    );
    println!("workspace:      {ws}");
    println!(
        "first sync:     run {} {} ({} users created)",
        run["id"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?"),
        if created.is_null() {
            json!(0)
        } else {
            created.clone()
        }
    );
    if run["status"].as_str() == Some(RunStatus::Held.as_str()) {
        println!(
            "                held: it would deprovision too many members; \
             `rollcall resync --directory {dir} --force --url {service} --token …` releases it"
        );
    }
    println!(
        "events tail:    {} changes at the broker with every webhook dropped: their {} events read from \
         the broker's /events in {:.1} s (cursor {})",
        tail.changes,
        tail.events,
        tail.took.as_secs_f64(),
        tail.cursor
    );
    let deprovisioning = &shown.deprovisioning;
    println!(
        "deprovisioning: {} deactivated at the broker; the product's receiver ({}) got a signed \
         member.deprovisioned, signature verified, {} ms later",
        deprovisioning.email,
        deprovisioning.endpoint,
        deprovisioning.took.as_millis()
    );
    let role = &shown.role;
    println!(
        "roles:          the workspace takes roles from the identity provider ({DEMO_SLUG} → admin); group \
         {} started giving {DEMO_SLUG} at the broker, and {} was admin {} ms later",
        role.group,
        role.email,
        role.took.as_millis()
    );
    let scim = &shown.scim;
    println!(
        "scim:           an identity provider pushed {} users and a group to SCIM directory {} \
         ({service}/scim/v2/{}); all were members through the API {} ms after the first push",
        scim.users,
        scim.directory,
        scim.directory,
        scim.took.as_millis()
    );
    println!();
    println!("Try:");
    println!("  curl -s {auth} {service}/api/v1/workspaces/{ws}/members");
    println!("  curl -s '{service}/api/v1/workspaces/{ws}/members?search=ada&limit=5' {auth}");
    println!("  curl -s {auth} {service}/api/v1/workspaces/{ws}/directory-groups");
    println!(
        "  curl -s -X POST {auth} '{service}/api/v1/directories/{dir}/resync?dry_run=true'   # what a resync would do; applies nothing"
    );
    println!("  curl -s -X POST {auth} {service}/api/v1/directories/{dir}/resync");
    println!("  curl -s {auth} {service}/api/v1/event-tail");
    println!("  curl -s {auth} {service}/api/v1/workspaces/{ws}/changes");
    println!("  curl -s {auth} {service}/api/v1/workspaces/{ws}/role-source");
    println!("  curl -s {auth} {service}/api/v1/workspaces/{ws}/webhook-endpoints");
    let scim_auth = format!("-H 'authorization: Bearer {}'", scim.token);
    let scim_base = format!("{service}/scim/v2/{}", scim.directory);
    println!(
        "  curl -s -X POST {scim_base}/Users {scim_auth} -H 'content-type: application/scim+json' \
         -d '{{\"userName\":\"mary@scim.example\",\"name\":{{\"givenName\":\"Mary\",\"familyName\":\"Jackson\"}}}}'   # provision over SCIM"
    );
    println!("  curl -s '{scim_base}/Users?filter=userName%20sw%20%22mary%22' {scim_auth}");
    println!("  curl -s {service}/metrics");
    println!(
        "  curl -s -X POST {}/_dev/random-changes -H 'content-type: application/json' -d '{{\"count\":20}}'   # the broker sends webhooks",
        broker.base_url
    );
    println!(
        "  curl -s -X POST {}/_dev/faults -H 'content-type: application/json' -d '{{\"drop\":1.0}}'   # lose every webhook: the tail still catches up",
        broker.base_url
    );
    println!();
    println!("Press Ctrl-C to stop.");
}

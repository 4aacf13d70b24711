//! Building and running the service: database, migrations, event store, applier and HTTP server.
//!
//! Its background work (the applier, the event store's writer, the Events API tail, the schedule, the
//! lease keeper, retention and the sync runs) belongs to one [`TaskTracker`] and stops with one
//! [`CancellationToken`], which SIGTERM, SIGINT (Ctrl-C) or a [`ShutdownHandle`] cancels. The HTTP server
//! then finishes the requests in flight, runs in progress end at their next step (recorded interrupted),
//! and the service returns once every task has ended.

use crate::config::Settings;
use crate::db::{Database, InstanceLock};
use crate::event_tail::EventTail;
use crate::intake::applier::{ActivationHook, Applier, ApplierOptions, RetryPolicy, Wakeup};
use crate::intake::event_store::EventStore;
use crate::metrics::Metrics;
use crate::sync_runs::schedule;
use crate::telemetry::RequestSpan;
use crate::{api, state::AppState};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_actix_web::TracingLogger;

/// How long a client has to send its first request's headers once it has connected.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle kept-alive connection stays open for the client's next request.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a connection closed after an answer waits for the client to hang up before it is dropped.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long requests in flight have to finish once the service is stopping.
const REQUESTS_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the background work has to end once the HTTP server has stopped: runs stop at their next
/// transaction, the applier after its batch.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How outbound webhooks are delivered, from the settings.
fn outbound_delivery(settings: &Settings) -> crate::outbound::sender::Delivery {
    crate::outbound::sender::Delivery {
        reach: crate::outbound::address::Reach::of(settings),
        first_retry: settings.outbound_first_retry,
        give_up_after: settings.outbound_give_up,
        ..Default::default()
    }
}

/// A built service, bound to its port, ready to run.
pub struct Application {
    port: u16,
    server: Server,
    db: Database,
    /// On SQLite, keeps other `serve` processes off the file while this one runs.
    _instance_lock: Option<InstanceLock>,
    background: Background,
    /// Stops the applier alone (a child of the service's token; the applier wakes its workers when it is
    /// cancelled).
    applier_shutdown: CancellationToken,
}

/// The service's background work: every task and worker thread is tracked by `tasks`, and stops once
/// `shutdown` is cancelled.
struct Background {
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Background {
    /// Runs `work` as a tracked task until it ends or the service stops.
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            shutdown.run_until_cancelled_owned(work).await;
        });
    }
}

impl Application {
    /// Connects and migrates the database, starts the background work and binds the listener.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, RetryPolicy::default())
    }

    /// As [`Application::build`], with the applier's retry policy given.
    pub fn build_with(settings: Settings, retry: RetryPolicy) -> anyhow::Result<Self> {
        Self::assemble(settings, retry, None)
    }

    /// As [`Application::build_with`], serving on `listener` instead of binding `ROLLCALL_BIND`: the
    /// caller bound it (and may keep a clone, to hand the same address to the next instance).
    pub fn build_on(
        settings: Settings,
        retry: RetryPolicy,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        Self::assemble(settings, retry, Some(listener))
    }

    fn assemble(
        settings: Settings,
        retry: RetryPolicy,
        listener: Option<TcpListener>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let instance_lock = InstanceLock::acquire(&settings.database)?;
        let metrics = Metrics::default();
        let db = Database::connect(settings.database.clone(), settings.db_pool_size)
            .with_context(|| format!("opening {}", settings.database.display()))?
            .with_metrics(metrics.clone());
        let applied = db.migrate().context("migrating the database")?;
        tracing::info!(
            backend = settings.database.backend(),
            database = %settings.database.display(),
            migrations_applied = applied.len(),
            "database ready"
        );
        crate::sync_runs::end_interrupted_runs(&db)
            .context("ending sync runs a stopped process left unfinished")?;
        if settings.webhook_secrets.is_empty() {
            tracing::warn!(
                "WORKOS_WEBHOOK_SECRETS is not set: every webhook will be refused with 401"
            );
        } else {
            tracing::info!(
                secrets = settings.webhook_secrets.len(),
                "webhook secrets configured"
            );
        }
        if settings.operator_token.is_none() {
            tracing::warn!("ROLLCALL_OPERATOR_TOKEN is not set: only tokens made with `rollcall token create` can use the API");
        }
        let background = Background {
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        };
        let wakeup = Wakeup::default();
        let retry = RetryPolicy {
            max_attempts: settings.apply_max_attempts,
            ..retry
        };
        let broker = match &settings.workos_api_key {
            Some(_) => Some(
                crate::broker::BrokerClient::new(broker_settings(&settings))
                    .context("building the broker client")?
                    .with_metrics(metrics.clone()),
            ),
            None => None,
        };
        let sync_runner = match &broker {
            Some(client) => {
                tracing::info!(api = %settings.workos_api_base, user_listing_rate = settings.user_listing_rate, "full pulls enabled");
                Some(
                    crate::sync_runs::SyncRunner::new(
                        db.clone(),
                        client.clone(),
                        settings.mass_deprovision_threshold,
                    )
                    .with_automatic_pull_spacing(settings.automatic_pull_spacing)
                    .with_concurrent_pulls(settings.max_concurrent_pulls as usize)
                    .with_lifecycle(background.tasks.clone(), background.shutdown.clone()),
                )
            }
            None => {
                tracing::warn!("WORKOS_API_KEY is not set: full pulls (resync) are off");
                None
            }
        };
        let sync_runner = sync_runner.map(|runner| runner.with_metrics(metrics.clone()));
        if let Some(runner) = &sync_runner {
            background.spawn(schedule::keep_leases(runner.clone()));
        }
        let on_activated: Option<ActivationHook> = match &sync_runner {
            Some(_) if !settings.pull_on_activation => {
                tracing::info!("ROLLCALL_PULL_ON_ACTIVATION is false: activated directories and workspaces turning directory sync on are not pulled until the schedule or an operator does");
                None
            }
            Some(runner) => {
                let (activated, work) = schedule::activation_runs(runner.clone());
                background.spawn(work);
                Some(Arc::new(move |directory: &str| {
                    // The receiving task only ends with the service.
                    let _ = activated.send(directory.to_string());
                }))
            }
            None => None,
        };
        match (&sync_runner, settings.resync_interval()) {
            (None, _) => tracing::info!(
                "scheduled full pulls are off: they need WORKOS_API_KEY (RESYNC_INTERVAL is not used)"
            ),
            (Some(_), interval) if interval.is_zero() => {
                tracing::info!("scheduled full pulls are off: RESYNC_INTERVAL is 0")
            }
            (Some(runner), interval) => {
                tracing::info!(
                    interval_secs = interval.as_secs_f64(),
                    "every qualifying directory is pulled in full each RESYNC_INTERVAL"
                );
                background.spawn(schedule::run_schedule(runner.clone(), interval));
            }
        }
        if let Some(pruning) =
            crate::intake::retention::pruning(db.clone(), settings.event_retention)
        {
            background.spawn(pruning);
        }
        background.spawn(crate::outbound::sender::run(
            db.clone(),
            outbound_delivery(&settings),
            background.tasks.clone(),
            background.shutdown.clone(),
        ));
        let applier_shutdown = background.shutdown.child_token();
        let applier = Applier::start(
            db.clone(),
            ApplierOptions {
                policy: retry,
                wakeup: wakeup.clone(),
                on_activated,
                metrics: metrics.clone(),
                shutdown: applier_shutdown.clone(),
                tasks: background.tasks.clone(),
            },
        );
        let event_tail = match (&broker, &sync_runner) {
            (Some(client), Some(runner)) if settings.event_tail_enabled() => {
                tracing::info!(
                    source = settings.event_source().name(),
                    poll_interval_secs = settings.events_poll_interval.as_secs_f64(),
                    "the Events API tail is on: events are read after a stored cursor, and verified webhooks wake it"
                );
                let wakeup = wakeup.clone();
                let (tail, work) = EventTail::start(
                    db.clone(),
                    client.clone(),
                    runner.clone(),
                    settings.events_poll_interval,
                    metrics.clone(),
                    Arc::new(move || wakeup.notify()),
                );
                background.spawn(work);
                tail
            }
            _ => {
                tracing::info!("the Events API tail is off: events come from webhooks alone (ROLLCALL_EVENT_SOURCE, ROLLCALL_EVENTS_POLL_INTERVAL)");
                EventTail::off()
            }
        };
        let event_store = {
            let wakeup = wakeup.clone();
            EventStore::start(
                db.clone(),
                Arc::new(move |lanes| wakeup.notify_lanes(lanes)),
                &background.tasks,
            )
        };
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(settings.bind)
                .with_context(|| format!("binding ROLLCALL_BIND {}", settings.bind))?,
        };
        let port = listener.local_addr()?.port();
        tracing::info!(address = %listener.local_addr()?, "listening for webhooks at /webhooks/workos and the API at /api/v1");
        let max_connections = settings.max_connections;
        make_room_for_connections(max_connections);
        let scim_limiter = crate::scim::limit::ScimLimiter::new(settings.scim_rate);
        let state = web::Data::new(AppState {
            db: db.clone(),
            settings: Arc::new(settings),
            event_store,
            applier_wakeup: wakeup,
            applier: applier.health(),
            sync_runner,
            metrics,
            token_use: Default::default(),
            event_tail,
            scim_limiter,
        });
        // Listening from before the server answers: a signal sent once it does is not missed.
        let stop_on_signal = stop_on_signal(background.shutdown.clone());
        // Actix counts connections per worker thread; the setting is the whole process's.
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let connections_per_worker = (max_connections as usize).div_ceil(workers);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(api::reject_nul))
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .configure(api::configure)
                .configure(crate::admin_ui::configure)
                .default_service(web::to(api::not_found))
        })
        .workers(workers)
        .max_connections(connections_per_worker)
        // Bounds on how long a client may hold a connection without making progress: the first
        // request's headers must be in within REQUEST_HEAD_TIMEOUT, an idle kept-alive connection closes
        // after KEEP_ALIVE, and a connection closed after an answer waits at most DISCONNECT_TIMEOUT for
        // the client to hang up. A webhook's body has ROLLCALL_WEBHOOK_BODY_TIMEOUT. (Actix's
        // `max_connection_rate` limits TLS handshakes only, and TLS ends in front of Rollcall.)
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .keep_alive(KEEP_ALIVE)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .listen(listener)?
        .shutdown_timeout(REQUESTS_STOP_TIMEOUT.as_secs())
        // The service's own signal handling cancels the one token everything stops with.
        .disable_signals()
        .run();
        background.tasks.spawn(stop_on_signal);
        // The server stops with the rest: it finishes the requests in flight first.
        let handle = server.handle();
        let stopping = background.shutdown.clone();
        background.tasks.spawn(async move {
            stopping.cancelled().await;
            handle.stop(true).await;
        });
        // The applier's threads hold tracker tokens of their own; the handle is not needed.
        drop(applier);
        Ok(Self {
            port,
            server,
            db,
            _instance_lock: instance_lock,
            background,
            applier_shutdown,
        })
    }

    /// The port the service listens on (useful when bound to port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A handle that stops the service from elsewhere (tests, embedding programs).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shutdown: self.background.shutdown.clone(),
            applier: self.applier_shutdown.clone(),
        }
    }

    /// Serves until SIGTERM, SIGINT or a [`ShutdownHandle`] stops it: stops taking requests and finishes
    /// those in flight, while the background work stops (the applier after its batch, runs in progress at
    /// their next step, recorded interrupted); drains the event store, and returns once every task and
    /// worker thread has ended.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server,
            background,
            // Held until the service has stopped.
            _instance_lock,
            ..
        } = self;
        let Background { tasks, shutdown } = background;
        let served = server.await;
        // However the server ended, everything else stops with it.
        shutdown.cancel();
        tracing::info!("HTTP server stopped; finishing background work");
        // The server's handles to the event store are gone with it, so the writer drains and ends.
        tasks.close();
        if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = tasks.len(),
                "background work did not stop within {}s; stopping without it",
                BACKGROUND_STOP_TIMEOUT.as_secs()
            );
        }
        served?;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT (Ctrl-C); ends when it is cancelled otherwise. The signals
/// are listened for from the call on (not from the future's first poll), so one sent as soon as the
/// service answers is not missed.
fn stop_on_signal(shutdown: CancellationToken) -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(signals) => Some(signals),
        Err(error) => {
            tracing::warn!(%error, signal = name, "cannot listen for the signal");
            None
        }
    };
    let (terminate, interrupt) = (
        listen(SignalKind::terminate(), "SIGTERM"),
        listen(SignalKind::interrupt(), "SIGINT"),
    );
    let received = |signals: Option<tokio::signal::unix::Signal>| async move {
        match signals {
            Some(mut signals) => signals.recv().await,
            None => std::future::pending().await,
        }
    };
    async move {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = received(terminate) => tracing::info!("SIGTERM received; stopping"),
            _ = received(interrupt) => tracing::info!("SIGINT received; stopping"),
        }
        shutdown.cancel();
    }
}

/// Stops a running [`Application`] without waiting for it.
#[derive(Clone)]
pub struct ShutdownHandle {
    shutdown: CancellationToken,
    applier: CancellationToken,
}

impl ShutdownHandle {
    /// Stops the service as SIGTERM does: stops taking requests and every background task; in-flight
    /// work finishes in the background ([`Application::run_until_stopped`] returns once it has).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Stops only the applier: webhooks are still stored and acknowledged, and `/readyz` answers 503.
    pub fn stop_applier(&self) {
        self.applier.cancel();
    }
}

/// How the broker client of `settings` talks to the broker: for full pulls and the Events API tail.
pub fn broker_settings(settings: &Settings) -> crate::broker::BrokerSettings {
    crate::broker::BrokerSettings {
        base_url: settings.workos_api_base.clone(),
        api_key: settings.workos_api_key.clone().unwrap_or_default(),
        user_listing_rate_per_directory: settings.user_listing_rate,
        ..crate::broker::BrokerSettings::default()
    }
}

/// Raises the process's soft limit on open files to what `connections` need, as far as the hard limit
/// allows: each connection is a file descriptor, and the database, the logs and the listener take more.
/// Warns when the hard limit is too low.
fn make_room_for_connections(connections: u32) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    /// Files besides the connections: database connections, the SQLite file and its journal, the listener.
    const OTHER_FILES: u64 = 256;
    let wanted = u64::from(connections) + OTHER_FILES;
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let (current, maximum) = (
        limit.current.unwrap_or(u64::MAX),
        limit.maximum.unwrap_or(u64::MAX),
    );
    let mut open_files = current;
    if open_files >= wanted {
        return;
    }
    let raised = wanted.min(maximum);
    // Raising the soft limit up to the hard one needs no privilege.
    if raised > current
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        )
        .is_ok()
    {
        tracing::info!(
            from = open_files,
            to = raised,
            "raised the limit on open files for ROLLCALL_MAX_CONNECTIONS"
        );
        open_files = raised;
    }
    if open_files < wanted {
        tracing::warn!(
            open_files,
            max_connections = connections,
            "the process may open fewer files than ROLLCALL_MAX_CONNECTIONS needs; connections past the \
             limit wait to be accepted: raise the hard limit (`ulimit -Hn`) or lower ROLLCALL_MAX_CONNECTIONS"
        );
    }
}

//! Sending the change feed to the endpoints: one sender per endpoint at a time (a lease on its row, so
//! several instances share the work), changes in feed order, one message after another, the next only
//! after the one before was answered 2xx. A message carries one change, or up to the endpoint's
//! `batch_size` (a `change.batch`), so one receiver can keep up with a burst at one request per batch. A failure is tried again with exponential backoff and jitter; 410 disables the endpoint
//! at once, failing for [`Delivery::give_up_after`] (3 days) disables it with the reason.
//!
//! No database connection or lock is held while a request is out: a batch of changes is read, sent, and
//! the endpoint's cursor and the attempts are written back in one short transaction. A crash between a 2xx
//! and that write sends the change again (at least once). Each endpoint has its own task, so a slow or
//! dead receiver holds up only itself.

use super::address::{check_url, CheckedResolver, Reach};
use super::endpoints::split_types;
use super::signing::sign;
use crate::changes::feed::Change;
use crate::db::models::{ChangeRow, NewWebhookAttempt, WebhookEndpointRow};
use crate::db::schema::{changes, webhook_attempts, webhook_endpoints, workspaces};
use crate::db::{Database, DbError};
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which addresses endpoints may reach.
    pub reach: Reach,
    /// The wait after a change's first failure; it doubles with each failure after.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub longest_retry: Duration,
    /// How long a change may keep failing before the endpoint is disabled.
    pub give_up_after: Duration,
    /// How often the sender looks for endpoints with changes to send.
    pub poll: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            reach: Reach::Public,
            first_retry: Duration::from_secs(5),
            longest_retry: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(3 * 86_400),
            poll: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl Delivery {
    /// The wait before attempt `failures + 1` of a change that failed `failures` times: the first retry
    /// doubled per failure, at most the longest, with ±20% jitter.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .first_retry
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        let wait = doubled.min(self.longest_retry);
        wait.mul_f64(rand::random_range(0.8..1.2))
    }
}

/// Changes read and sent per round.
const BATCH: i64 = 200;
/// How long a sender keeps an endpoint it has caught up with, looking for new changes every
/// [`Delivery::poll`], before it gives the endpoint's lease back: a busy endpoint keeps its sender
/// instead of being claimed and released again for every few changes.
const IDLE_HOLD: Duration = Duration::from_secs(5);
/// How long a sender holds an endpoint without renewing: also how long an endpoint waits after the
/// process sending to it died. A sender renews before each request once less than [`RENEW_BELOW`] is
/// left, so a request (at most [`Delivery::request_timeout`]) always ends inside the lease.
const LEASE: Duration = Duration::from_secs(30);
const RENEW_BELOW: Duration = Duration::from_secs(20);
/// Attempts kept per endpoint.
const ATTEMPTS_KEPT: i64 = 1000;
/// The most of an answer's body kept with its attempt.
const RESPONSE_KEPT: usize = 1024;

/// Sends every workspace's change feed to its endpoints until `shutdown`; each endpoint's sending is a
/// task of `tasks`, so the service waits for it (and its lease's release) when it stops.
pub async fn run(
    db: Database,
    delivery: Delivery,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(delivery.request_timeout)
        .connect_timeout(delivery.request_timeout.min(Duration::from_secs(5)))
        .dns_resolver(Arc::new(CheckedResolver(delivery.reach)))
        .user_agent(concat!("Rollcall-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "outbound webhooks are off: the HTTP client could not be built");
            return;
        }
    };
    let sending: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tick = tokio::time::interval(delivery.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let claimed = {
            let db = db.clone();
            let busy: Vec<String> = sending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            tokio::task::spawn_blocking(move || claim_due(&db, &busy)).await
        };
        let claimed = match claimed {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(error)) => {
                tracing::warn!(%error, "looking for webhook endpoints to send to failed; trying again");
                continue;
            }
            Err(_) => continue,
        };
        for mut lease in claimed {
            sending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(lease.endpoint.clone());
            let (db, client, delivery, sending, shutdown) = (
                db.clone(),
                client.clone(),
                delivery.clone(),
                sending.clone(),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                shutdown
                    .run_until_cancelled(send_endpoint(&db, &client, &delivery, &mut lease))
                    .await;
                release(&db, &lease).await;
                sending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&lease.endpoint);
            });
        }
    }
}

/// A sender's hold on an endpoint: the token of its claim and when it ends.
#[derive(Clone)]
struct Lease {
    endpoint: String,
    holder: String,
    until: Instant,
}

/// Takes the lease of every enabled endpoint with changes to send and no wait pending (but those this
/// process already sends to).
fn claim_due(db: &Database, busy: &[String]) -> Result<Vec<Lease>, DbError> {
    let now = timestamp::now();
    let due: Vec<String> = db.read(|conn| {
        webhook_endpoints::table
            .inner_join(workspaces::table.on(workspaces::id.eq(webhook_endpoints::workspace_id)))
            .filter(webhook_endpoints::enabled.eq(true))
            .filter(workspaces::change_position.gt(webhook_endpoints::delivered_through))
            .filter(
                webhook_endpoints::next_attempt_at
                    .is_null()
                    .or(webhook_endpoints::next_attempt_at.le(now)),
            )
            .filter(
                webhook_endpoints::lease_until
                    .is_null()
                    .or(webhook_endpoints::lease_until.lt(now)),
            )
            .select(webhook_endpoints::id)
            .load::<String>(conn)
            .map_err(DbError::from)
    })?;
    let mut claimed = Vec::new();
    for id in due.into_iter().filter(|id| !busy.contains(id)) {
        let holder = crate::ids::new_id("lease");
        let until = Instant::now() + LEASE;
        let taken = db.write_redoable(|conn| {
            diesel::update(
                webhook_endpoints::table.find(&id).filter(
                    webhook_endpoints::lease_until
                        .is_null()
                        .or(webhook_endpoints::lease_until.lt(now)),
                ),
            )
            .set((
                webhook_endpoints::lease_until.eq(lease_end()),
                webhook_endpoints::lease_holder.eq(&holder),
            ))
            .execute(conn)
            .map_err(DbError::from)
        })?;
        if taken == 1 {
            claimed.push(Lease {
                endpoint: id,
                holder,
                until,
            });
        }
    }
    Ok(claimed)
}

fn lease_end() -> Timestamp {
    timestamp::now() + chrono::TimeDelta::from_std(LEASE).unwrap_or_default()
}

/// Sets the endpoint's lease (`until` `None`: releases it) if this sender still holds it; returns whether
/// it did.
fn set_lease(db: &Database, lease: &Lease, until: Option<Timestamp>) -> Result<bool, DbError> {
    let holder = until.map(|_| lease.holder.as_str());
    let changed = db.write_redoable(|conn| {
        diesel::update(
            webhook_endpoints::table
                .find(&lease.endpoint)
                .filter(webhook_endpoints::lease_holder.eq(&lease.holder)),
        )
        .set((
            webhook_endpoints::lease_until.eq(until),
            webhook_endpoints::lease_holder.eq(holder),
        ))
        .execute(conn)
        .map_err(DbError::from)
    })?;
    Ok(changed == 1)
}

/// Renews the lease once less than [`RENEW_BELOW`] is left; false when it is no longer this sender's.
async fn keep(db: &Database, lease: &mut Lease) -> bool {
    if lease.until.saturating_duration_since(Instant::now()) > RENEW_BELOW {
        return true;
    }
    let until = Instant::now() + LEASE;
    let (db, held) = (db.clone(), lease.clone());
    let renewed =
        tokio::task::spawn_blocking(move || set_lease(&db, &held, Some(lease_end()))).await;
    if matches!(renewed, Ok(Ok(true))) {
        lease.until = until;
        true
    } else {
        false
    }
}

async fn release(db: &Database, lease: &Lease) {
    let (db, held) = (db.clone(), lease.clone());
    let released = tokio::task::spawn_blocking(move || set_lease(&db, &held, None)).await;
    if !matches!(released, Ok(Ok(_))) {
        tracing::warn!(
            "a webhook endpoint's lease was not released; it ends by itself within 30 s"
        );
    }
}

/// How a round of sending ended.
enum Stop {
    /// Every change read was handed over.
    Done,
    /// A change failed: try again later.
    Failed,
    /// The endpoint must not be sent to again (410).
    Gone,
    /// Another sender holds the endpoint now.
    Lost,
    /// Changes after its cursor are gone from the feed.
    Pruned,
}

/// Why an endpoint whose cursor fell behind retention stops.
const PRUNED_BEFORE_SENT: &str =
    "changes after its cursor were pruned (ROLLCALL_EVENT_RETENTION) before they \
     were sent: list the workspace again, then replay from the oldest position kept";

/// Sends an endpoint's changes, a batch at a time, until it is caught up or a change fails.
async fn send_endpoint(
    db: &Database,
    client: &reqwest::Client,
    delivery: &Delivery,
    lease: &mut Lease,
) {
    let id = lease.endpoint.clone();
    let id = id.as_str();
    let mut idle_since: Option<Instant> = None;
    loop {
        let read = {
            let (db, id) = (db.clone(), id.to_string());
            tokio::task::spawn_blocking(move || next_batch(&db, &id)).await
        };
        let (endpoint, batch) = match read {
            Ok(Ok(Some(read))) => read,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::warn!(%error, endpoint = id, "reading changes to send failed");
                return;
            }
            Err(_) => return,
        };
        if batch.is_empty() {
            // Caught up: look again shortly, keeping the lease a while.
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_HOLD || !keep(db, lease).await {
                return;
            }
            tokio::time::sleep(delivery.poll).await;
            continue;
        }
        idle_since = None;
        let last_read = batch
            .last()
            .map_or(endpoint.delivered_through, |c| c.position);
        // Changes it never got were pruned (ROLLCALL_EVENT_RETENTION): say so rather than skip them.
        let pruned = batch[0].position > endpoint.delivered_through + 1;
        let mut stop = if pruned { Stop::Pruned } else { Stop::Done };
        let messages = if pruned {
            Vec::new()
        } else {
            messages(&endpoint, batch)
        };
        let mut through = endpoint.delivered_through;
        let mut attempts = Vec::new();
        for message in messages {
            if !keep(db, lease).await {
                stop = Stop::Lost;
                break;
            }
            let attempt = attempt(client, delivery, &endpoint, message).await;
            let answered = attempt.status_code;
            let position = attempt.position;
            // Every failure is kept, and of the successes the round's last: a busy endpoint's
            // attempts would otherwise double the database's writes.
            if attempts.last().is_some_and(|a: &NewWebhookAttempt| {
                a.status_code.is_some_and(|c| (200..300).contains(&c))
            }) {
                attempts.pop();
            }
            attempts.push(attempt);
            match answered {
                Some(code) if (200..300).contains(&code) => through = position,
                Some(410) => {
                    stop = Stop::Gone;
                    break;
                }
                _ => {
                    stop = Stop::Failed;
                    break;
                }
            }
        }
        if matches!(stop, Stop::Done) {
            // Past the changes of other types after the last message too.
            through = last_read;
        }
        let written = {
            let (db, delivery, holder) = (db.clone(), delivery.clone(), lease.holder.clone());
            let failed = matches!(stop, Stop::Failed | Stop::Gone);
            let round = Round {
                through,
                retry_through: attempts.last().filter(|_| failed).map(|a| a.position),
                failed,
                stop_for_good: match stop {
                    Stop::Gone => Some("the endpoint answered 410 Gone"),
                    Stop::Pruned => Some(PRUNED_BEFORE_SENT),
                    _ => None,
                },
            };
            tokio::task::spawn_blocking(move || {
                write_back(&db, &delivery, &endpoint, &holder, round, &attempts)
            })
            .await
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, endpoint = id, "recording sent changes failed; they will be sent again");
                return;
            }
            Err(_) => return,
        }
        if !matches!(stop, Stop::Done) {
            return;
        }
    }
}

/// The round's messages from the changes read after the cursor: those of the endpoint's types, one per
/// message or `batch_size` to a message. After a failure the changes read end where the failed message
/// ended ([`next_batch`]), so it is made again with the same changes.
fn messages(endpoint: &WebhookEndpointRow, batch: Vec<ChangeRow>) -> Vec<Vec<ChangeRow>> {
    let types = split_types(&endpoint.event_types);
    let size = usize::try_from(endpoint.batch_size).unwrap_or(1).max(1);
    let mut messages: Vec<Vec<ChangeRow>> = Vec::new();
    for change in batch {
        if !types.is_empty() && !types.contains(&change.change_type) {
            continue;
        }
        match messages.last_mut() {
            Some(message) if message.len() < size => message.push(change),
            _ => messages.push(vec![change]),
        }
    }
    messages
}

/// The endpoint (if still enabled) and the changes after its cursor (up to the end of the message that
/// failed, when one did).
fn next_batch(
    db: &Database,
    id: &str,
) -> Result<Option<(WebhookEndpointRow, Vec<ChangeRow>)>, DbError> {
    db.read(|conn| {
        let Some(endpoint) = webhook_endpoints::table
            .find(id)
            .filter(webhook_endpoints::enabled.eq(true))
            .select(WebhookEndpointRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let batch = changes::table
            .filter(changes::workspace_id.eq(&endpoint.workspace_id))
            .filter(changes::position.gt(endpoint.delivered_through))
            .filter(changes::position.le(endpoint.retry_through.unwrap_or(i64::MAX)))
            .order(changes::position)
            .limit(BATCH)
            .select(ChangeRow::as_select())
            .load(conn)?;
        Ok(Some((endpoint, batch)))
    })
}

/// The type of a message that carries several changes.
pub const BATCH_TYPE: &str = "change.batch";

/// The body of a message, `{type, timestamp, data}` as Standard Webhooks suggests: to an endpoint that
/// takes one change per message `data` is the change; else the type is [`BATCH_TYPE`] and `data.changes`
/// the changes in feed order (the timestamp the last one's).
fn payload(changes: Vec<ChangeRow>, batched: bool) -> serde_json::Value {
    let mut changes: Vec<Change> = changes.into_iter().map(Change::from).collect();
    let last = changes.last().map(|c| c.occurred_at.clone());
    if !batched && changes.len() == 1 {
        let change = changes.remove(0);
        return serde_json::json!({
            "type": change.kind,
            "timestamp": change.occurred_at,
            "data": change,
        });
    }
    serde_json::json!({
        "type": BATCH_TYPE,
        "timestamp": last,
        "data": { "changes": changes },
    })
}

/// The `webhook-id` of a message: `msg_<workspace>_<position>` for one change (the same for every
/// endpoint), `msg_<workspace>_<first>_<last>` for a batch; the same for every attempt.
fn message_id(changes: &[ChangeRow], batched: bool) -> String {
    let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
        return String::new();
    };
    if batched {
        format!(
            "msg_{}_{}_{}",
            first.workspace_id, first.position, last.position
        )
    } else {
        format!("msg_{}_{}", first.workspace_id, first.position)
    }
}

/// Sends one message once.
async fn attempt(
    client: &reqwest::Client,
    delivery: &Delivery,
    endpoint: &WebhookEndpointRow,
    changes: Vec<ChangeRow>,
) -> NewWebhookAttempt {
    let batched = endpoint.batch_size > 1;
    let message_id = message_id(&changes, batched);
    let position = changes
        .last()
        .map_or(endpoint.delivered_through, |c| c.position);
    let body = payload(changes, batched).to_string();
    let attempted_at = timestamp::now();
    let started = Instant::now();
    let result = post(client, delivery, endpoint, &message_id, body).await;
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let (status_code, response, error) = match result {
        Ok((status, response)) => (Some(status), Some(response), None),
        Err(error) => (None, None, Some(error)),
    };
    NewWebhookAttempt {
        endpoint_id: endpoint.id.clone(),
        message_id,
        position,
        attempted_at,
        status_code,
        latency_ms,
        error,
        response,
    }
}

async fn post(
    client: &reqwest::Client,
    delivery: &Delivery,
    endpoint: &WebhookEndpointRow,
    message_id: &str,
    body: String,
) -> Result<(i32, String), String> {
    let url =
        check_url(&endpoint.url, delivery.reach).map_err(|why| format!("refused: url {why}"))?;
    let now = chrono::Utc::now().timestamp();
    let signature = sign(&endpoint.secret, message_id, now, body.as_bytes())
        .ok_or_else(|| "the endpoint's secret cannot sign".to_string())?;
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    let status = i32::from(response.status().as_u16());
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < RESPONSE_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(RESPONSE_KEPT);
    Ok((status, String::from_utf8_lossy(&kept).replace('\0', "")))
}

fn describe(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How a round of sending went.
#[derive(Debug, Clone)]
struct Round {
    /// The last position handed over.
    through: i64,
    /// The last position of the message that failed.
    retry_through: Option<i64>,
    /// The round ended on a change that was not taken.
    failed: bool,
    /// Why the endpoint must not be sent to again (410, or changes it never got were pruned).
    stop_for_good: Option<&'static str>,
}

/// Records a round: the cursor moved to `through`, the attempts, and on a failure the wait before the
/// next one, or the endpoint disabled. Nothing moves if the endpoint was changed meanwhile (a replay) or
/// another sender holds it, but the attempts are kept.
fn write_back(
    db: &Database,
    delivery: &Delivery,
    endpoint: &WebhookEndpointRow,
    holder: &str,
    round: Round,
    attempts: &[NewWebhookAttempt],
) -> Result<(), DbError> {
    let Round {
        through,
        retry_through,
        failed,
        stop_for_good,
    } = round;
    let now = timestamp::now();
    db.write_redoable(|conn| {
        if !attempts.is_empty() {
            crate::on_backend!(conn, |c| diesel::insert_into(webhook_attempts::table)
                .values(attempts)
                .execute(c))?;
            let oldest_kept: Option<i64> = webhook_attempts::table
                .filter(webhook_attempts::endpoint_id.eq(&endpoint.id))
                .order(webhook_attempts::id.desc())
                .offset(ATTEMPTS_KEPT - 1)
                .select(webhook_attempts::id)
                .first(conn)
                .optional()?;
            if let Some(oldest_kept) = oldest_kept {
                diesel::delete(
                    webhook_attempts::table
                        .filter(webhook_attempts::endpoint_id.eq(&endpoint.id))
                        .filter(webhook_attempts::id.lt(oldest_kept)),
                )
                .execute(conn)?;
            }
        }
        let mine = webhook_endpoints::table
            .find(&endpoint.id)
            .filter(webhook_endpoints::delivered_through.eq(endpoint.delivered_through))
            .filter(webhook_endpoints::enabled.eq(true))
            .filter(webhook_endpoints::lease_holder.eq(holder));
        let moved = through > endpoint.delivered_through;
        let (failing_since, failures) = match (failed, moved) {
            (false, _) => (None, 0),
            // The change that failed is a new one: its failures count from now.
            (true, true) => (Some(now), 1),
            (true, false) => (
                Some(endpoint.failing_since.unwrap_or(now)),
                endpoint.failed_attempts + 1,
            ),
        };
        let last = attempts.last();
        let disabled_reason = if let Some(why) = stop_for_good {
            Some(why.to_string())
        } else {
            failing_since
                .filter(|since| {
                    now.signed_duration_since(*since).to_std().unwrap_or_default()
                        >= delivery.give_up_after
                })
                .map(|since| {
                    format!(
                        "failing since {} ({}), for longer than {}",
                        timestamp::time_json(&since),
                        last.map(answer_of).unwrap_or_default(),
                        humantime::format_duration(delivery.give_up_after)
                    )
                })
        };
        let next_attempt_at = failing_since.map(|_| {
            now + chrono::TimeDelta::from_std(delivery.backoff(failures as u32))
                .unwrap_or_default()
        });
        diesel::update(mine)
            .set((
                webhook_endpoints::delivered_through.eq(through),
                webhook_endpoints::retry_through.eq(retry_through),
                webhook_endpoints::failing_since.eq(failing_since),
                webhook_endpoints::failed_attempts.eq(failures),
                webhook_endpoints::next_attempt_at.eq(next_attempt_at),
                webhook_endpoints::enabled.eq(disabled_reason.is_none()),
                webhook_endpoints::disabled_reason.eq(&disabled_reason),
            ))
            .execute(conn)?;
        if let Some(reason) = &disabled_reason {
            tracing::warn!(endpoint = %endpoint.id, workspace = %endpoint.workspace_id, %reason, "webhook endpoint disabled; enable it again once it answers");
        }
        Ok(())
    })
}

/// How an attempt was answered, in words.
fn answer_of(attempt: &NewWebhookAttempt) -> String {
    match (&attempt.status_code, &attempt.error) {
        (Some(code), _) => format!("last answer {code}"),
        (None, Some(error)) => format!("last attempt: {error}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_longest_with_jitter() {
        let delivery = Delivery::default();
        for (failures, secs) in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 640.0), (20, 3600.0)] {
            let wait = delivery.backoff(failures).as_secs_f64();
            assert!(
                (secs * 0.8..=secs * 1.2).contains(&wait),
                "after {failures} failures: {wait} s, expected about {secs} s"
            );
        }
    }
}

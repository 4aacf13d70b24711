//! The Events API tail: reads the broker's `GET /events` after a stored cursor, in order, and feeds each
//! event into the same durable log and apply engine as webhooks (`src/intake/`), so an event lost on the
//! webhook path is applied within a poll interval instead of at the next full pull.
//!
//! The tail only stores: the applier applies, parks a poison event as `failed` and dedupes on the event
//! id, so an event that came by both paths is applied once. The cursor moves in the transaction that
//! stores the events up to it. One tail at a time reads, across instances ([`place::TailLease`]).
//! Without a cursor (a new installation, or one the broker no longer holds) the tail pulls every active
//! directory in full, then reads on from that pull's start ([`runner`]).

pub mod place;
pub mod runner;

use crate::broker::{BrokerClient, BrokerError, EventsFrom};
use crate::db::models::NewWebhookEvent;
use crate::db::{Database, DbError};
use crate::intake::event_store::Stored;
use crate::metrics::Metrics;
use crate::workos::events::{Event, APPLIED_EVENT_TYPES};
use crate::workos::timestamp::{self, Timestamp};
use place::TailLease;
use serde_json::value::RawValue;

pub use runner::{EventTail, TailState};

/// Events asked for in one request (the broker's most).
pub const PAGE_SIZE: u32 = 100;

/// How far back the broker keeps events: 30 days in one statement of its retention, 90 days read at
/// most 30 days at a time in another. The tail never asks for more than this, less an hour's margin for
/// clocks and the time a catch-up takes.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400 - 3600);

/// Why a catch-up stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The tail has never read: it starts from a full pull.
    #[error("the Events API tail has not started yet")]
    NotStarted,
    /// The tail has nowhere to read from: no cursor yet, or one the broker no longer holds. A full pull
    /// makes up for what the cursor would have read.
    #[error("the Events API tail has no usable place: {0}")]
    CursorLost(String),
    #[error(transparent)]
    Broker(BrokerError),
    #[error("the database: {0}")]
    Db(#[from] DbError),
    #[error("a catch-up step stopped unexpectedly: {0}")]
    Interrupted(String),
}

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Pages read (the last one is empty).
    pub pages: u32,
    /// Events read.
    pub fetched: u64,
    /// Of those, events no webhook had brought first, stored to be applied.
    pub stored: u64,
}

/// Reads every event after the stored place, a page at a time, storing each page and moving the cursor
/// past it in one transaction, until a page comes back empty; then records the poll. `on_page` hears
/// the totals after each page (to wake the applier, to show progress). Holding `_lease` proves this is
/// the only tail reading.
pub async fn catch_up(
    db: &Database,
    client: &BrokerClient,
    _lease: &mut TailLease,
    metrics: &Metrics,
    mut on_page: impl FnMut(&CatchUp),
) -> Result<CatchUp, TailError> {
    let mut done = CatchUp::default();
    let place = blocking(db, place::read).await??;
    let mut from = start_of(place.as_ref(), timestamp::now())?;
    // Read from the margin before the start time; if the broker no longer serves that far back (its
    // retention ends in between), from the start time itself.
    let mut without_margin = match (&from, place.as_ref().and_then(|p| p.resume_from)) {
        (EventsFrom::RangeStart(_), Some(at)) => Some(EventsFrom::RangeStart(at.and_utc())),
        _ => None,
    };
    loop {
        let listed = client
            .list_events(&APPLIED_EVENT_TYPES, &from, PAGE_SIZE)
            .await;
        if let (Err(BrokerError::CursorExpired { .. }), Some(exact)) = (&listed, &without_margin) {
            tracing::info!(from = %describe(&from), "the broker does not serve events from the margin before the tail's start time; reading from the start time itself");
            from = exact.clone();
            without_margin = None;
            continue;
        }
        without_margin = None;
        let page = listed.map_err(|e| match e {
            BrokerError::CursorExpired { message } => TailError::CursorLost(format!(
                "the broker no longer holds events from {}: {message}",
                describe(&from)
            )),
            other => TailError::Broker(other),
        })?;
        done.pages += 1;
        metrics.event_tail_page(page.data.len());
        if page.data.is_empty() {
            break;
        }
        done.fetched += page.data.len() as u64;
        let received_at = timestamp::now();
        let deliveries: Vec<NewWebhookEvent> = page
            .data
            .iter()
            .map(|event| delivery(event, received_at))
            .collect();
        let last = page.data.last().and_then(|e| event_id(e));
        let Some(cursor) = last.or(page.after) else {
            return Err(TailError::Broker(BrokerError::Decode {
                path: "/events".into(),
                message: "a page of events with no id to read on from".into(),
            }));
        };
        let cursor_event_at = deliveries.last().and_then(|d| d.event_created_at);
        let stored = {
            let cursor = cursor.clone();
            blocking(db, move |db| {
                place::store_page(db, &deliveries, &cursor, cursor_event_at)
            })
            .await??
        };
        done.stored += stored.iter().filter(|s| **s == Stored::New).count() as u64;
        on_page(&done);
        from = EventsFrom::After(cursor);
    }
    blocking(db, |db| place::record_poll(db, timestamp::now())).await??;
    Ok(done)
}

/// Where to read from: after the cursor, else from the time the tail was told to start at. A cursor or
/// start time older than [`RETENTION`] is lost (never asked for: the broker would refuse it or, worse,
/// answer from a later point and skip events silently).
fn start_of(
    place: Option<&crate::db::models::EventTailRow>,
    now: Timestamp,
) -> Result<EventsFrom, TailError> {
    let window = chrono::Duration::from_std(RETENTION).expect("the retention fits");
    let too_old = |at: Timestamp| now - at > window;
    match place {
        Some(place) => match (&place.cursor, place.cursor_event_at, place.resume_from) {
            (Some(_), Some(at), _) if too_old(at) => Err(TailError::CursorLost(format!(
                "the stored cursor's event was created at {}, outside the broker's retention",
                timestamp::time_json(&at)
            ))),
            (Some(cursor), _, _) => Ok(EventsFrom::After(cursor.clone())),
            (None, _, Some(at)) if too_old(at) => Err(TailError::CursorLost(format!(
                "the tail was to read from {}, outside the broker's retention",
                timestamp::time_json(&at)
            ))),
            (None, _, Some(at)) => Ok(EventsFrom::RangeStart((at - clock_margin()).and_utc())),
            (None, _, None) => Err(TailError::NotStarted),
        },
        None => Err(TailError::NotStarted),
    }
}

/// How far before the time it was told to start at the tail reads: that time is this host's, the events'
/// `created_at` the broker's, and the two clocks may disagree. Reading a little more is harmless: each event
/// is stored once and applied by rule 6.
pub const CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn clock_margin() -> chrono::Duration {
    chrono::Duration::from_std(CLOCK_MARGIN).expect("the margin fits")
}

fn describe(from: &EventsFrom) -> String {
    match from {
        EventsFrom::Start => "the oldest event".into(),
        EventsFrom::After(cursor) => format!("after {cursor}"),
        EventsFrom::RangeStart(at) => at.to_rfc3339(),
    }
}

/// An event from the tail as a delivery: as a webhook's would be stored, marked as the tail's. One that
/// is not an event is stored as `invalid` for operators, like a webhook's, and never stops the tail.
fn delivery(event: &RawValue, received_at: Timestamp) -> NewWebhookEvent {
    let body = event.get().as_bytes().to_vec();
    match Event::parse(&body) {
        Ok(parsed) => NewWebhookEvent::received(&parsed, body, received_at),
        Err(why) => NewWebhookEvent::invalid(body, why.0, received_at),
    }
    .from_event_tail()
}

/// An event's `id`, read without reading the rest (however deeply it nests).
fn event_id(event: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_str::<IdOnly>(event.get())
        .ok()
        .and_then(|e| e.id)
        .filter(|id| !id.is_empty())
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    db: &Database,
    work: impl FnOnce(&Database) -> T + Send + 'static,
) -> Result<T, TailError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| TailError::Interrupted(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::EventTailRow;

    fn place(
        now: Timestamp,
        cursor: Option<&str>,
        cursor_days: Option<i64>,
        resume_days: Option<i64>,
    ) -> EventTailRow {
        let ago = |days: i64| now - chrono::Duration::days(days);
        EventTailRow {
            id: 1,
            cursor: cursor.map(str::to_string),
            cursor_event_at: cursor_days.map(ago),
            resume_from: resume_days.map(ago),
            last_poll_at: None,
            events_stored: 0,
            updated_at: now,
        }
    }

    #[test]
    fn the_tail_reads_after_its_cursor_else_from_its_start_time() {
        let now = timestamp::now();
        let after = start_of(Some(&place(now, Some("event_9"), Some(2), None)), now).unwrap();
        assert_eq!(after, EventsFrom::After("event_9".into()));
        let from = start_of(Some(&place(now, None, None, Some(1))), now).unwrap();
        // A margin before it: the broker's clock may be behind this host's.
        let expected = (now - chrono::Duration::days(1) - clock_margin()).and_utc();
        assert_eq!(from, EventsFrom::RangeStart(expected));
    }

    #[test]
    fn an_event_from_the_tail_is_stored_as_a_webhook_would_be_and_one_that_is_not_is_kept_invalid()
    {
        let now = timestamp::now();
        let event = serde_json::json!({"object": "event", "id": "event_01", "event": "dsync.group.created",
            "created_at": "2026-11-30T10:00:00.000Z", "data": {"object": "directory_group",
            "id": "directory_group_1", "idp_id": "g1", "directory_id": "directory_1", "name": "Eng",
            "created_at": "2026-11-30T10:00:00.000Z", "updated_at": "2026-11-30T10:00:00.000Z"}});
        let raw = |value: &serde_json::Value| RawValue::from_string(value.to_string()).unwrap();
        let stored = delivery(&raw(&event), now);
        assert_eq!(stored.event_id.as_deref(), Some("event_01"));
        assert_eq!(
            stored
                .directory_id
                .as_ref()
                .map(crate::ids::DirectoryId::as_str),
            Some("directory_1")
        );
        assert_eq!(
            (stored.status.as_str(), stored.source.as_str()),
            ("received", "events")
        );
        // A poison body is parked for operators, as a webhook's would be; the tail reads on.
        let poison = delivery(
            &raw(&serde_json::json!({"id": "event_02", "event": 7})),
            now,
        );
        assert_eq!(
            (poison.status.as_str(), poison.source.as_str()),
            ("invalid", "events")
        );
        assert!(poison.reason.is_some());
        // Custom attributes nested deeper than a reader's recursion limit are skipped unread: the event is
        // stored to be applied. Such nesting where Rollcall reads (`groups`) makes it invalid, and its id
        // still moves the cursor on.
        let nested = "[".repeat(300) + &"]".repeat(300);
        let user = |extra: &str| {
            format!(
                r#"{{"id":"event_03","event":"dsync.user.updated","data":{{"id":"u","directory_id":"d",{extra}}}}}"#
            )
        };
        let deep = RawValue::from_string(user(&format!(r#""custom_attributes":{{"x":{nested}}}"#)))
            .unwrap();
        assert_eq!(delivery(&deep, now).status.as_str(), "received");
        let deep = RawValue::from_string(user(&format!(r#""groups":{nested}"#))).unwrap();
        let stored = delivery(&deep, now);
        assert_eq!(stored.status.as_str(), "invalid");
        assert!(stored.reason.unwrap().contains("recursion"));
        assert_eq!(event_id(&deep).as_deref(), Some("event_03"));
    }

    #[test]
    fn a_place_outside_the_retention_is_lost_and_none_at_all_is_a_start() {
        let now = timestamp::now();
        for never in [None, Some(place(now, None, None, None))] {
            assert!(matches!(
                start_of(never.as_ref(), now),
                Err(TailError::NotStarted)
            ));
        }
        for lost in [
            Some(place(now, Some("event_1"), Some(30), None)),
            Some(place(now, None, None, Some(31))),
            Some(place(now, None, None, Some(90))),
        ] {
            assert!(
                matches!(start_of(lost.as_ref(), now), Err(TailError::CursorLost(_))),
                "{lost:?}"
            );
        }
    }
}

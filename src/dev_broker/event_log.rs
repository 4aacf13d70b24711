//! The broker's log of the events it generated: what `/_dev/events` shows with each webhook delivery, and
//! what the Events API (`GET /events`) pages through, oldest first, within the retention window. Event ids
//! and times grow with the log, so a cursor or a `range_start` is found by binary search.

use super::delivery_record::{Delivery, DeliveryState};
use super::model::ModelError;
use super::objects::{format_time, parse_time, BrokerClock, BrokerEvent, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One generated event, newest last in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    pub event: BrokerEvent,
    pub delivery: Delivery,
}

impl EventRecord {
    fn created_ms(&self) -> Millis {
        parse_time(&self.event.created_at).unwrap_or(Millis::MIN)
    }
}

/// How many events a dev broker keeps unless told otherwise.
pub const DEFAULT_EVENT_LOG_LIMIT: usize = 100_000;

/// How long the Events API serves an event unless told otherwise: the broker's documented 30 days.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The latest events generated, with their deliveries: past its limit, the oldest are forgotten, so a
/// broker left running keeps its memory bounded. An event forgotten, older than the retention or expired
/// on request is no longer served by the Events API.
pub struct EventLog {
    records: Mutex<VecDeque<EventRecord>>,
    limit: usize,
    retention: Duration,
    /// Events numbered up to this one are expired on request.
    expired_through: AtomicU64,
    /// The creation time of the newest event forgotten past the limit.
    newest_forgotten_ms: AtomicI64,
    /// What "now" is for the retention window.
    clock: BrokerClock,
}

/// Which events to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventExpiry {
    /// Every event so far.
    All,
    /// Events older than this event id or time.
    Before(String),
    /// This event and every older one.
    Through(String),
}

/// Where a page of `GET /events` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsStart {
    /// The oldest event retained.
    Oldest,
    /// Just after this event id.
    After(String),
    /// The first event created at or after this time.
    RangeStart(Millis),
}

/// One request of `GET /events`.
#[derive(Debug, Clone)]
pub struct EventsRequest {
    pub start: EventsStart,
    /// Only events created before this time.
    pub range_end: Option<Millis>,
    /// Only events of these types; `None`: every type.
    pub types: Option<HashSet<String>>,
    /// Only events of this organization.
    pub organization_id: Option<String>,
    pub limit: usize,
}

/// One page of `GET /events`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    pub data: Vec<BrokerEvent>,
    /// The first event's id when the page does not start at the oldest event served.
    pub before: Option<String>,
    /// The last event's id when more may follow.
    pub after: Option<String>,
}

/// Why the Events API refused a start: it lies outside the retention window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsRefused {
    #[error(
        "The `after` cursor {0:?} names an event outside the retention window (or none at all); \
         start again with `range_start`."
    )]
    CursorExpired(String),
    #[error(
        "`range_start` {0} is before the retention window; events from then are no longer kept."
    )]
    RangeStartExpired(String),
}

/// The organization an event belongs to.
fn organization_of(event: &BrokerEvent) -> Option<&str> {
    let data = &event.data;
    [
        &data["organization_id"],
        &data["group"]["organization_id"],
        &data["user"]["organization_id"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
}

impl EventLog {
    /// A log keeping the latest `limit` events (at least one) and serving those younger than `retention`.
    pub fn new(limit: usize, retention: Duration) -> Self {
        Self {
            records: Mutex::default(),
            limit: limit.max(1),
            retention,
            expired_through: AtomicU64::new(0),
            newest_forgotten_ms: AtomicI64::new(Millis::MIN),
            clock: BrokerClock::default(),
        }
    }

    /// The log, telling the retention window's time by `clock`.
    pub fn with_clock(mut self, clock: BrokerClock) -> Self {
        self.clock = clock;
        self
    }

    /// The broker's time now.
    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    /// When the newest event was created, kept or forgotten; `None` before the first.
    pub fn newest_created_ms(&self) -> Option<Millis> {
        let kept = self.lock().back().map(EventRecord::created_ms);
        let forgotten = self.newest_forgotten_ms.load(Ordering::Relaxed);
        kept.into_iter()
            .chain((forgotten != Millis::MIN).then_some(forgotten))
            .max()
    }

    /// Moves the broker's clock (the log's, and every part sharing it) ahead by `by`.
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<EventRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the event numbered `seq` is kept, if it still is.
    fn position(records: &VecDeque<EventRecord>, seq: u64) -> Option<usize> {
        let first = records.front()?.seq;
        usize::try_from(seq.checked_sub(first)?).ok()
    }

    /// Appends events, forgetting the oldest past the limit; returns their sequence numbers.
    pub fn append(&self, events: Vec<BrokerEvent>, will_send: bool) -> Vec<u64> {
        let mut records = self.lock();
        events
            .into_iter()
            .map(|event| {
                let seq = records.back().map_or(1, |last| last.seq + 1);
                if records.len() == self.limit {
                    if let Some(forgotten) = records.pop_front() {
                        self.newest_forgotten_ms
                            .fetch_max(forgotten.created_ms(), Ordering::Relaxed);
                    }
                }
                records.push_back(EventRecord {
                    seq,
                    event,
                    delivery: Delivery::new(will_send),
                });
                seq
            })
            .collect()
    }

    /// The records after `since` still kept, oldest first.
    pub fn since(&self, since: u64) -> Vec<EventRecord> {
        let records = self.lock();
        let first = records.front().map_or(1, |r| r.seq);
        let skip = usize::try_from((since + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        records.iter().skip(skip).cloned().collect()
    }

    /// How many events are not yet delivered, dropped or failed.
    pub fn pending(&self) -> usize {
        self.lock()
            .iter()
            .filter(|r| r.delivery.state == DeliveryState::Pending)
            .count()
    }

    /// Counts by delivery state.
    pub fn summary(&self) -> EventSummary {
        let records = self.lock();
        let mut summary = EventSummary {
            total: records.back().map_or(0, |r| r.seq),
            forgotten: records.front().map_or(0, |r| r.seq - 1),
            expired: self.expired_through.load(Ordering::Relaxed),
            ..EventSummary::default()
        };
        for r in records.iter() {
            match r.delivery.state {
                DeliveryState::NotSent => summary.not_sent += 1,
                DeliveryState::Pending => summary.pending += 1,
                DeliveryState::Delivered => summary.delivered += 1,
                DeliveryState::Dropped => summary.dropped += 1,
                DeliveryState::Failed => summary.failed += 1,
            }
            if r.delivery.duplicated {
                summary.duplicated += 1;
            }
        }
        summary
    }

    pub(super) fn event(&self, seq: u64) -> Option<BrokerEvent> {
        let records = self.lock();
        let at = Self::position(&records, seq)?;
        records.get(at).map(|r| r.event.clone())
    }

    pub(super) fn update(&self, seq: u64, f: impl FnOnce(&mut Delivery)) {
        let mut records = self.lock();
        if let Some(r) = Self::position(&records, seq).and_then(|at| records.get_mut(at)) {
            f(&mut r.delivery);
        }
    }

    /// Expires events so the Events API no longer serves them (their deliveries stay in the log); returns
    /// the id of the oldest event still served, if any. An id or time that names nothing is an error.
    pub fn expire(&self, expiry: &EventExpiry) -> Result<Option<String>, ModelError> {
        let records = self.lock();
        let through = match expiry {
            EventExpiry::All => records.back().map_or(0, |r| r.seq),
            EventExpiry::Through(id) => {
                match records.binary_search_by(|r| r.event.id.as_str().cmp(id)) {
                    Ok(at) => records[at].seq,
                    Err(_) => {
                        return Err(ModelError::Invalid {
                            field: "through",
                            message: format!("no event {id:?} is kept"),
                        })
                    }
                }
            }
            EventExpiry::Before(mark) => {
                let before = if mark.starts_with("event_") {
                    records.partition_point(|r| r.event.id.as_str() < mark.as_str())
                } else {
                    let ms = parse_time(mark).ok_or_else(|| ModelError::Invalid {
                        field: "before",
                        message: format!("{mark:?} is neither an event id nor an ISO-8601 time"),
                    })?;
                    records.partition_point(|r| r.created_ms() < ms)
                };
                match before.checked_sub(1) {
                    Some(last) => records[last].seq,
                    None => records.front().map_or(0, |r| r.seq.saturating_sub(1)),
                }
            }
        };
        self.expired_through.fetch_max(through, Ordering::Relaxed);
        let now = self.clock.now_ms();
        let first = self.first_served(&records, now);
        Ok(records.get(first).map(|r| r.event.id.clone()))
    }

    /// The retention window's start: events created before it are no longer served.
    fn retention_start(&self, now: Millis) -> Millis {
        let retention = Millis::try_from(self.retention.as_millis()).unwrap_or(Millis::MAX);
        now.saturating_sub(retention)
    }

    /// The position of the oldest event served.
    fn first_served(&self, records: &VecDeque<EventRecord>, now: Millis) -> usize {
        let expired = self.expired_through.load(Ordering::Relaxed);
        let cutoff = self.retention_start(now);
        records
            .partition_point(|r| r.seq <= expired)
            .max(records.partition_point(|r| r.created_ms() < cutoff))
    }

    /// A page of the Events API at `now`: oldest first, from the request's start, filtered.
    pub fn page(&self, request: &EventsRequest, now: Millis) -> Result<EventsPage, EventsRefused> {
        let records = self.lock();
        let first = self.first_served(&records, now);
        let start = match &request.start {
            EventsStart::Oldest => first,
            EventsStart::After(id) => {
                match records.binary_search_by(|r| r.event.id.as_str().cmp(id)) {
                    Ok(at) if at >= first => at + 1,
                    _ => return Err(EventsRefused::CursorExpired(id.clone())),
                }
            }
            EventsStart::RangeStart(ms) => {
                // Every event from `ms` on must still be served: none may be forgotten or expired.
                let newest_gone = first
                    .checked_sub(1)
                    .map_or(Millis::MIN, |at| records[at].created_ms())
                    .max(self.newest_forgotten_ms.load(Ordering::Relaxed));
                if *ms < self.retention_start(now) || *ms <= newest_gone {
                    return Err(EventsRefused::RangeStartExpired(format_time(*ms)));
                }
                records.partition_point(|r| r.created_ms() < *ms).max(first)
            }
        };
        let wanted = |r: &&EventRecord| {
            request
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&r.event.event))
                && request
                    .organization_id
                    .as_deref()
                    .is_none_or(|org| organization_of(&r.event) == Some(org))
        };
        let mut data: Vec<BrokerEvent> = records
            .range(start..)
            .take_while(|r| request.range_end.is_none_or(|end| r.created_ms() < end))
            .filter(wanted)
            .take(request.limit + 1)
            .map(|r| r.event.clone())
            .collect();
        let more = data.len() > request.limit;
        data.truncate(request.limit);
        Ok(EventsPage {
            before: data.first().filter(|_| start > first).map(|e| e.id.clone()),
            after: data.last().filter(|_| more).map(|e| e.id.clone()),
            data,
        })
    }
}

/// Events by delivery state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSummary {
    /// Every event generated, forgotten ones included; the counts by state are of those still kept.
    pub total: u64,
    /// The oldest events, no longer kept once the log reached its limit.
    pub forgotten: u64,
    /// Events up to this number are expired on request: the Events API no longer serves them.
    #[serde(default)]
    pub expired: u64,
    pub not_sent: u64,
    pub pending: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub failed: u64,
    pub duplicated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const TYPES: [&str; 3] = [
        "dsync.user.created",
        "dsync.user.updated",
        "dsync.group.user_added",
    ];
    const ORGS: [&str; 2] = ["org_a", "org_b"];
    const START: Millis = 1_800_000_000_000;

    /// Events numbered from 1, `(type, organization, ms after the previous one)` each.
    fn events(specs: &[(usize, usize, i64)]) -> Vec<(BrokerEvent, Millis)> {
        let mut at = START;
        specs
            .iter()
            .enumerate()
            .map(|(i, &(kind, org, step))| {
                at += step;
                let data = if kind == 2 {
                    json!({ "group": { "organization_id": ORGS[org] } })
                } else {
                    json!({ "organization_id": ORGS[org] })
                };
                let event = BrokerEvent {
                    object: "event".into(),
                    id: format!("event_{:08}", i + 1),
                    event: TYPES[kind].into(),
                    data,
                    created_at: format_time(at),
                };
                (event, at)
            })
            .collect()
    }

    /// What a page should hold, read the slow way: every event, kept or not, filtered one by one.
    fn expected(
        all: &[(BrokerEvent, Millis)],
        served_from: usize,
        cutoff: Millis,
        request: &EventsRequest,
    ) -> Result<(Vec<String>, bool), EventsRefused> {
        let start = match &request.start {
            EventsStart::Oldest => served_from,
            EventsStart::After(id) => match all.iter().position(|(e, _)| &e.id == id) {
                Some(at) if at >= served_from => at + 1,
                _ => return Err(EventsRefused::CursorExpired(id.clone())),
            },
            EventsStart::RangeStart(ms) => {
                let newest_gone = served_from
                    .checked_sub(1)
                    .map_or(Millis::MIN, |at| all[at].1);
                if *ms < cutoff || *ms <= newest_gone {
                    return Err(EventsRefused::RangeStartExpired(format_time(*ms)));
                }
                (served_from..all.len())
                    .find(|&i| all[i].1 >= *ms)
                    .unwrap_or(all.len())
            }
        };
        let matching: Vec<String> = all[start..]
            .iter()
            .filter(|(e, at)| {
                request.range_end.is_none_or(|end| *at < end)
                    && request.types.as_ref().is_none_or(|t| t.contains(&e.event))
                    && request
                        .organization_id
                        .as_deref()
                        .is_none_or(|org| organization_of(e) == Some(org))
            })
            .map(|(e, _)| e.id.clone())
            .collect();
        let more = matching.len() > request.limit;
        Ok((matching.into_iter().take(request.limit).collect(), more))
    }

    /// A request over `n` events: (start: oldest, after or range_start; the cursor's event number; the
    /// range_start's ms after the first; range_end's; which types; which organization; the page size).
    fn request_strategy(
        n: usize,
    ) -> impl Strategy<
        Value = (
            usize,
            usize,
            i64,
            Option<i64>,
            Vec<bool>,
            Option<usize>,
            usize,
        ),
    > {
        (
            0..3usize,
            0..n.max(1) + 1,
            -2..(n as i64 * 3 + 3),
            prop::option::of(0..(n as i64 * 3 + 3)),
            prop::collection::vec(any::<bool>(), 3),
            prop::option::of(0..2usize),
            1..8usize,
        )
    }

    proptest! {
        #![proptest_config(crate::workos::proptest_config(500))]

        /// Pages found by binary search agree with a scan of every event, whatever was forgotten past the
        /// limit, expired on request or aged out of the retention window.
        #[test]
        fn a_page_is_what_a_scan_of_every_event_finds(
            specs in prop::collection::vec((0..3usize, 0..2usize, 0..3i64), 0..40),
            limit in 1..40usize,
            expired in 0..45u64,
            age in prop::option::of(0..130i64),
            requests in prop::collection::vec(request_strategy(40), 1..6),
        ) {
            let all = events(&specs);
            let newest = all.last().map_or(START, |(_, at)| *at);
            let now = newest + 1;
            let retention = age.map_or(DEFAULT_EVENT_RETENTION, |ms| Duration::from_millis(ms as u64));
            let cutoff = now - retention.as_millis() as i64;
            let log = EventLog::new(limit, retention);
            log.append(all.iter().map(|(e, _)| e.clone()).collect(), false);
            let forgotten = all.len().saturating_sub(limit);
            // Expiring through an event: refused when it is no longer kept.
            let through = (expired as usize).min(all.len());
            let expired_count = match through.checked_sub(1) {
                Some(at) => {
                    let expiry = EventExpiry::Through(all[at].0.id.clone());
                    let done = log.expire(&expiry);
                    prop_assert_eq!(done.is_ok(), at >= forgotten);
                    if at >= forgotten { through } else { 0 }
                }
                None => 0,
            };
            let served_from = (forgotten.max(expired_count)..all.len())
                .find(|&i| all[i].1 >= cutoff)
                .unwrap_or(all.len());
            for (kind, index, offset, end, types, org, page) in requests {
                let start = match kind {
                    0 => EventsStart::Oldest,
                    1 => EventsStart::After(format!("event_{index:08}")),
                    _ => EventsStart::RangeStart(START + offset),
                };
                let request = EventsRequest {
                    start,
                    range_end: end.map(|e| START + e),
                    types: Some(
                        TYPES
                            .iter()
                            .zip(&types)
                            .filter(|(_, on)| **on)
                            .map(|(t, _)| t.to_string())
                            .collect(),
                    ),
                    organization_id: org.map(|o| ORGS[o].to_string()),
                    limit: page,
                };
                let got = log
                    .page(&request, now)
                    .map(|p| (p.data.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), p.after));
                match expected(&all, served_from, cutoff, &request) {
                    Ok((ids, more)) => {
                        let (got_ids, after) = got.expect("a page");
                        prop_assert_eq!(&got_ids, &ids, "{:?}", request);
                        prop_assert_eq!(after, ids.last().filter(|_| more).cloned());
                    }
                    Err(refused) => prop_assert_eq!(got, Err(refused), "{:?}", request),
                }
            }
        }
    }
}

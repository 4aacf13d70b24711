//! The broker client: requests, retries, pagination and the listings built on them.

use super::rate_limit::RateLimiter;
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::metrics::Metrics;
use crate::secret::{ExposeSecret, SecretString};
use crate::workos::events::{Directory, DirectoryGroup, DirectoryUser};
use futures_util::TryStreamExt;
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the client talks to the broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Such as `https://api.workos.com`, without a trailing path.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: SecretString,
    /// The timeout of one HTTP request.
    pub timeout: Duration,
    /// Retries after the first attempt of a request (429, 5xx, transport errors).
    pub max_retries: u32,
    /// `/directory_users` requests per second per directory (the broker allows 4).
    pub user_listing_rate_per_directory: f64,
    /// `/events` requests per second for the API key (the broker allows 6,000 a minute).
    pub events_rate_per_key: f64,
    /// The first backoff wait (between half and all of it, with jitter); doubled for each next retry.
    pub backoff_base: Duration,
    /// The longest backoff wait.
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

/// The largest answer read from the broker: a page of 100 objects is far smaller. A larger one is
/// refused (not retried) rather than read into memory.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The Events API's limit: 6,000 requests per 60 seconds per API key.
pub const EVENTS_RATE_PER_KEY: f64 = 100.0;

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.workos.com".into(),
            api_key: SecretString::default(),
            timeout: Duration::from_secs(30),
            max_retries: 5,
            user_listing_rate_per_directory: 4.0,
            events_rate_per_key: EVENTS_RATE_PER_KEY,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

/// A complete listing: every page was read.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// HTTP requests made for it, retries included.
    pub requests: u32,
    /// Always true on `Ok`: an incomplete listing is returned as an error.
    pub complete: bool,
}

/// Users, groups and memberships of one directory.
#[derive(Debug, Clone)]
pub struct UsersWithGroups {
    pub users: Vec<DirectoryUser>,
    pub groups: Vec<DirectoryGroup>,
    /// `(group id, user id)` pairs.
    pub memberships: BTreeSet<(String, String)>,
    /// HTTP requests made, retries included.
    pub requests: u32,
    /// True when memberships came from the users' `groups[]` (no `?group=` requests).
    pub from_user_groups: bool,
    /// Records that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// One page of a directory's listing, as [`BrokerClient::stream_directory`] hands it on.
#[derive(Debug, Clone)]
pub enum ListedPage {
    /// Groups: every group comes before any user.
    Groups(Vec<DirectoryGroup>),
    /// Users, with the `(group id, user id)` memberships their `groups[]` name, where the broker filled it.
    Users {
        users: Vec<DirectoryUser>,
        memberships: Vec<(DirectoryGroupId, DirectoryUserId)>,
    },
    /// Members of one group, listed because the users' `groups[]` was empty or unusable.
    GroupMembers {
        group_id: DirectoryGroupId,
        user_ids: Vec<DirectoryUserId>,
    },
    /// Records of a page that could not be read (too deeply nested, a wrong type): the rest of the page
    /// is handed on, and these are left as they are stored.
    Unreadable(Vec<Unreadable>),
}

/// A listed record that could not be read, with its id where the broker gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// `/directory_users` or `/directory_groups`.
    pub path: &'static str,
    pub id: Option<String>,
    pub reason: String,
}

/// What a directory's listing did, besides the pages it handed on.
#[derive(Debug, Clone, Copy)]
pub struct Streamed {
    /// HTTP requests made, retries included.
    pub requests: u32,
    /// True when memberships came from the users' `groups[]` (no `?group=` requests).
    pub from_user_groups: bool,
    /// The broker's clock (its `Date` header) when the last page of the listing was answered: every record
    /// the listing lacks was gone by then.
    pub served_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a page of `GET /events` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsFrom {
    /// The oldest event the broker still serves.
    Start,
    /// Just after this event id (the last one read).
    After(String),
    /// The first event created at or after this time.
    RangeStart(chrono::DateTime<chrono::Utc>),
}

/// One page of `GET /events`: the events, oldest first, as the broker sends them (the same JSON envelope a
/// webhook body carries: `id`, `event`, `data`, `created_at`, …), and the cursor to ask for the next page.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Each event as the broker sent it, read one at a time by the caller (one that cannot be read never
    /// stops the others).
    pub data: Vec<Box<serde_json::value::RawValue>>,
    /// `None` when the broker says no more events follow for now.
    pub after: Option<String>,
}

/// Counters of one client, for metrics.
#[derive(Debug, Default)]
pub struct RequestStats {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    group_member_requests: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStatsSnapshot {
    /// HTTP requests sent (including retries).
    pub requests: u64,
    /// 429 answers seen.
    pub rate_limited: u64,
    /// Requests retried.
    pub retries: u64,
    /// `/directory_users?group=` requests sent.
    pub group_member_requests: u64,
}

impl RequestStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    pub fn group_member_requests(&self) -> u64 {
        self.group_member_requests.load(Ordering::Relaxed)
    }
    pub fn snapshot(&self) -> RequestStatsSnapshot {
        RequestStatsSnapshot {
            requests: self.requests(),
            rate_limited: self.rate_limited(),
            retries: self.retries(),
            group_member_requests: self.group_member_requests(),
        }
    }
}

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("GET {path}: {status} from the broker: the API key was refused (not retried)")]
    Unauthorized { path: String, status: u16 },
    #[error("GET {path}: 404 from the broker: not found: {body}")]
    NotFound { path: String, body: String },
    #[error("GET {path}: 422 from the broker: invalid request: {body}")]
    Invalid { path: String, body: String },
    #[error("GET {path}: {status} from the broker: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("GET {path}: the answer is not a list page: {message}")]
    Decode { path: String, message: String },
    #[error("GET {path}: the answer is larger than {limit} bytes; refused unread")]
    TooLarge { path: String, limit: usize },
    #[error("GET {path}: a page with no records still named a next cursor after {items} items in {requests} requests; the listing is incomplete")]
    EmptyPageWithCursor {
        path: String,
        items: usize,
        requests: u32,
    },
    #[error("GET {path}: gave up after {attempts} attempts; last: {last}")]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "GET {path}: cursor {cursor:?} came back twice after {items} items in {requests} requests; \
         the listing is incomplete"
    )]
    RepeatedCursor {
        path: String,
        cursor: String,
        items: usize,
        requests: u32,
    },
    #[error("listing {path} stopped after {items} items in {requests} requests, so it is incomplete: {cause}")]
    Incomplete {
        path: String,
        items: usize,
        requests: u32,
        cause: Box<BrokerError>,
    },
    /// The broker refused the cursor or `range_start` as outside its retention window; `message` names the
    /// request and the broker's reason.
    #[error(
        "the broker refused the cursor or range_start as outside its retention window: {message}"
    )]
    CursorExpired { message: String },
    #[error("building the broker client: {0}")]
    Build(String),
    #[error("the listing was abandoned: what it was handed to stopped taking pages")]
    Abandoned,
}

impl BrokerError {
    /// The error under any `Incomplete` wrapper.
    pub fn root(&self) -> &BrokerError {
        match self {
            BrokerError::Incomplete { cause, .. } => cause.root(),
            other => other,
        }
    }

    /// Items read before a listing stopped (0 when nothing is known).
    pub fn items_so_far(&self) -> usize {
        match self {
            BrokerError::Incomplete { items, .. }
            | BrokerError::RepeatedCursor { items, .. }
            | BrokerError::EmptyPageWithCursor { items, .. } => *items,
            _ => 0,
        }
    }
}

/// Groups whose members are listed at once.
const GROUPS_LISTED_AT_ONCE: usize = 4;

/// A listed user read for its id alone (a group's members): the rest of the object is skipped unread.
#[derive(Deserialize)]
struct ListedId {
    id: DirectoryUserId,
}

#[derive(Deserialize)]
struct ListMetadata {
    #[serde(default)]
    after: Option<String>,
}

/// A page as it arrives: each record kept as its JSON text, read on its own.
#[derive(Deserialize)]
struct RawPage {
    data: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default, alias = "listMetadata")]
    list_metadata: Option<ListMetadata>,
}

/// A page whose every record reads as `T`.
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct TypedPage<T> {
    data: Vec<T>,
    #[serde(default, alias = "listMetadata")]
    list_metadata: Option<ListMetadata>,
}

/// A page read: the records that could be read, and those that could not.
struct Page<T> {
    data: Vec<T>,
    unreadable: Vec<(Option<String>, String)>,
    list_metadata: Option<ListMetadata>,
    /// The broker's `Date` header.
    served_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A record's `id` alone; the rest is skipped without being read (however deeply it nests).
#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

impl<T: DeserializeOwned> Page<T> {
    /// Reads a page's body: NUL characters removed (rule 21), then the page whole; only a page holding a
    /// record that cannot be read is read again, each record on its own.
    fn read(body: &[u8]) -> Result<Self, String> {
        let body = crate::workos::text::strip_nul(body);
        if let Ok(page) = serde_json::from_slice::<TypedPage<T>>(&body) {
            return Ok(Page {
                data: page.data,
                unreadable: Vec::new(),
                list_metadata: page.list_metadata,
                served_at: None,
            });
        }
        let raw: RawPage = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut data = Vec::with_capacity(raw.data.len());
        let mut unreadable = Vec::new();
        for record in raw.data {
            match serde_json::from_str::<T>(record.get()) {
                Ok(item) => data.push(item),
                Err(error) => {
                    let id = serde_json::from_str::<IdOnly>(record.get())
                        .ok()
                        .and_then(|r| r.id);
                    unreadable.push((id, error.to_string()));
                }
            }
        }
        Ok(Page {
            data,
            unreadable,
            list_metadata: raw.list_metadata,
            served_at: None,
        })
    }
}

/// Why one attempt failed, and whether to try again.
enum Attempt {
    Fatal(BrokerError),
    Retry {
        cause: String,
        wait: Option<Duration>,
    },
}

/// A client of the broker's pull API; cheap to clone, clones share the rate limit and the counters.
#[derive(Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    settings: Arc<BrokerSettings>,
    limiter: Arc<RateLimiter>,
    /// The Events API's limit, for the whole key.
    events_limiter: Arc<RateLimiter>,
    /// No rate, only the waits a `Retry-After` asks for: the other endpoints', by endpoint and scope.
    holds: Arc<RateLimiter>,
    stats: Arc<RequestStats>,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for BrokerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClient")
            .field("base_url", &self.settings.base_url)
            .finish_non_exhaustive()
    }
}

impl BrokerClient {
    pub fn new(settings: BrokerSettings) -> Result<Self, BrokerError> {
        check_base_url(&settings.base_url)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| BrokerError::Build(e.to_string()))?;
        let mut settings = settings;
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            http,
            limiter: Arc::new(RateLimiter::new(settings.user_listing_rate_per_directory)),
            events_limiter: Arc::new(RateLimiter::new(settings.events_rate_per_key)),
            holds: Arc::new(RateLimiter::new(0.0)),
            settings: Arc::new(settings),
            stats: Arc::new(RequestStats::default()),
            metrics: None,
        })
    }

    /// The client, also counting requests by endpoint, 429s and retries into the service's metrics.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The counters of this client and its clones.
    pub fn stats(&self) -> Arc<RequestStats> {
        self.stats.clone()
    }

    /// Every directory, or those of one organization.
    pub async fn list_directories(
        &self,
        organization_id: Option<&str>,
    ) -> Result<Listing<Directory>, BrokerError> {
        let query: Vec<(&str, &str)> = organization_id
            .map(|org| vec![("organization_id", org)])
            .unwrap_or_default();
        self.list_all("/directories", &query, None).await
    }

    /// Every user of a directory.
    pub async fn list_users(
        &self,
        directory_id: &str,
    ) -> Result<Listing<DirectoryUser>, BrokerError> {
        self.list_all(
            "/directory_users",
            &[("directory", directory_id)],
            Some(directory_id),
        )
        .await
    }

    /// Every group of a directory.
    pub async fn list_groups(
        &self,
        directory_id: &str,
    ) -> Result<Listing<DirectoryGroup>, BrokerError> {
        self.list_all("/directory_groups", &[("directory", directory_id)], None)
            .await
    }

    /// Every member of a group; `directory_id` names the rate limit these requests count against.
    pub async fn list_group_members(
        &self,
        group_id: &str,
        directory_id: &str,
    ) -> Result<Listing<DirectoryUser>, BrokerError> {
        self.list_all(
            "/directory_users",
            &[("group", group_id)],
            Some(directory_id),
        )
        .await
    }

    /// One page of the Events API: `GET /events?events=<types joined by ,>&limit=<limit>&order=asc` plus
    /// `after=` or `range_start=`, with the same retries as the pull and the key's rate limit. A cursor or
    /// `range_start` the broker no longer serves is [`BrokerError::CursorExpired`].
    pub async fn list_events(
        &self,
        types: &[&str],
        from: &EventsFrom,
        limit: u32,
    ) -> Result<EventPage, BrokerError> {
        let types = types.join(",");
        let limit = limit.clamp(1, 100).to_string();
        let range_start;
        let mut query = vec![("limit", limit.as_str()), ("order", "asc")];
        if !types.is_empty() {
            query.insert(0, ("events", types.as_str()));
        }
        match from {
            EventsFrom::Start => {}
            EventsFrom::After(id) => query.push(("after", id)),
            EventsFrom::RangeStart(at) => {
                range_start = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                query.push(("range_start", &range_start));
            }
        }
        let limit = (&*self.events_limiter, "events");
        let page: Page<Box<serde_json::value::RawValue>> = self
            .get_page("/events", &query, limit, &mut 0)
            .await
            .map_err(cursor_expired)?;
        Ok(EventPage {
            data: page.data,
            after: page
                .list_metadata
                .and_then(|m| m.after)
                .filter(|cursor| !cursor.is_empty()),
        })
    }

    /// Users, groups and memberships of a directory, read whole (see [`Self::stream_directory`]).
    pub async fn users_with_groups(
        &self,
        directory_id: &str,
    ) -> Result<UsersWithGroups, BrokerError> {
        let (sender, mut pages) = tokio::sync::mpsc::channel(4);
        let mut listed = UsersWithGroups {
            users: Vec::new(),
            groups: Vec::new(),
            memberships: BTreeSet::new(),
            requests: 0,
            from_user_groups: false,
            unreadable: Vec::new(),
        };
        let collect = async {
            while let Some((page, _)) = pages.recv().await {
                match page {
                    ListedPage::Groups(groups) => listed.groups.extend(groups),
                    ListedPage::Users { users, memberships } => {
                        listed.users.extend(users);
                        listed.memberships.extend(
                            memberships
                                .into_iter()
                                .map(|(g, u)| (g.into_string(), u.into_string())),
                        );
                    }
                    ListedPage::GroupMembers { group_id, user_ids } => listed.memberships.extend(
                        user_ids
                            .into_iter()
                            .map(|u| (group_id.to_string(), u.into_string())),
                    ),
                    ListedPage::Unreadable(records) => listed.unreadable.extend(records),
                }
            }
        };
        let (streamed, ()) = tokio::join!(self.stream_directory(directory_id, sender), collect);
        let streamed = streamed?;
        (listed.requests, listed.from_user_groups) = (streamed.requests, streamed.from_user_groups);
        Ok(listed)
    }

    /// Lists a directory a page at a time, sending each page with the requests made so far: groups
    /// first, then users. Memberships come from the users' `groups[]` when the broker filled it (some
    /// user has groups and every entry names a listed group); otherwise each group's members are listed
    /// too. When the first page of users names no group at all (the broker's way since 2026-05), the
    /// groups' members are listed beside the rest of the users; otherwise only once the users' listing
    /// has shown that it must. A closed receiver stops the listing. Returns the requests made and whether
    /// the users' `groups[]` gave the memberships.
    pub async fn stream_directory(
        &self,
        directory_id: &str,
        pages: tokio::sync::mpsc::Sender<(ListedPage, u32)>,
    ) -> Result<Streamed, BrokerError> {
        let mut requests = 0u32;
        let send = |page: ListedPage, made: u32| {
            let pages = pages.clone();
            async move {
                pages
                    .send((page, made))
                    .await
                    .map_err(|_| BrokerError::Abandoned)
            }
        };
        // Records that could not be read go on as they are met, so the pull leaves them as stored.
        let send_unreadable = |pager: &mut Pager<'_>, made: u32| {
            let unreadable = std::mem::take(&mut pager.unreadable);
            async move {
                if unreadable.is_empty() {
                    return Ok(());
                }
                send(ListedPage::Unreadable(unreadable), made).await
            }
        };
        let served_until = std::sync::Mutex::new(None::<chrono::DateTime<chrono::Utc>>);
        let served = |pager: &Pager<'_>| {
            let mut latest = served_until.lock().unwrap_or_else(|e| e.into_inner());
            *latest = (*latest).max(pager.served_until);
        };
        let mut groups: Vec<DirectoryGroupId> = Vec::new();
        let mut pager = self.pager("/directory_groups", &[("directory", directory_id)], None);
        while let Some(page) = pager.next::<DirectoryGroup>(&mut requests).await? {
            groups.extend(page.iter().map(|g| g.id.clone()));
            send(ListedPage::Groups(page), requests).await?;
            send_unreadable(&mut pager, requests).await?;
        }
        served(&pager);
        let keys = GroupKeys::new(&groups);
        let made = AtomicU32::new(requests);
        let (made, send, keys, groups) = (&made, &send, &keys, &groups);
        let (send_unreadable, served) = (&send_unreadable, &served);
        // Some(true): list each group's members; decided by the users' listing.
        let (decide, mut decided) = tokio::sync::watch::channel(None::<bool>);
        let users = async move {
            let (mut some_groups, mut usable) = (false, true);
            let mut pager = self.pager(
                "/directory_users",
                &[("directory", directory_id)],
                Some(directory_id),
            );
            let mut own = 0;
            loop {
                let before = own;
                let Some(users) = pager.next::<DirectoryUser>(&mut own).await? else {
                    break;
                };
                let total = made.fetch_add(own - before, Ordering::Relaxed) + own - before;
                if before == 0 && users.iter().all(|u| u.groups.is_empty()) {
                    decide.send_replace(Some(true));
                }
                let mut memberships = Vec::new();
                for user in &users {
                    some_groups |= !user.groups.is_empty();
                    match keys.resolve(user) {
                        Some(pairs) => memberships.extend(pairs),
                        None => usable = false,
                    }
                }
                send(ListedPage::Users { users, memberships }, total).await?;
                send_unreadable(&mut pager, total).await?;
            }
            served(&pager);
            let from_user_groups = some_groups && usable;
            if decide.borrow().is_none() {
                decide.send_replace(Some(!from_user_groups));
            }
            Ok::<_, BrokerError>(from_user_groups)
        };
        let members = async move {
            let list = loop {
                if let Some(list) = *decided.borrow_and_update() {
                    break list;
                }
                if decided.changed().await.is_err() {
                    return Ok(());
                }
            };
            if !list {
                return Ok(());
            }
            // A few groups at a time: each group's pages follow one another, but while one waits for the
            // broker another's page is on its way (the rate limit still spaces every request).
            futures_util::stream::iter(groups.iter().map(Ok))
                .try_for_each_concurrent(GROUPS_LISTED_AT_ONCE, |group_id| async move {
                    let mut pager = self.pager(
                        "/directory_users",
                        &[("group", group_id.as_str())],
                        Some(directory_id),
                    );
                    let mut own = 0;
                    loop {
                        let before = own;
                        let Some(members) = pager.next::<ListedId>(&mut own).await? else {
                            served(&pager);
                            return Ok(());
                        };
                        let total = made.fetch_add(own - before, Ordering::Relaxed) + own - before;
                        let user_ids = members.into_iter().map(|u| u.id).collect();
                        let group_id = group_id.clone();
                        send(ListedPage::GroupMembers { group_id, user_ids }, total).await?;
                    }
                })
                .await
        };
        let (from_user_groups, ()) = tokio::try_join!(users, members)?;
        let served_until = *served_until.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Streamed {
            requests: made.load(Ordering::Relaxed),
            from_user_groups,
            served_until,
        })
    }

    fn describe(path: &str, query: &[(&str, &str)]) -> String {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }

    /// Reads every page of a list, oldest first.
    async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        rate_key: Option<&str>,
    ) -> Result<Listing<T>, BrokerError> {
        let mut items = Vec::new();
        let mut requests = 0u32;
        let mut pager = self.pager(path, query, rate_key);
        while let Some(page) = pager.next(&mut requests).await? {
            items.extend(page);
        }
        Ok(Listing {
            items,
            requests,
            complete: true,
        })
    }

    /// Reads a list a page at a time, oldest first.
    fn pager<'a>(
        &'a self,
        path: &'a str,
        query: &[(&'a str, &'a str)],
        rate_key: Option<&'a str>,
    ) -> Pager<'a> {
        Pager {
            client: self,
            path,
            query: query.to_vec(),
            rate_key,
            described: Self::describe(path, query),
            items: 0,
            seen: HashSet::new(),
            after: None,
            done: false,
            served_until: None,
            unreadable: Vec::new(),
        }
    }

    /// One page, with retries. `limit` spaces the requests of one key, and a `Retry-After` holds every
    /// request of that key (of every concurrent listing sharing it) until it has passed.
    ///
    /// Retries are `backon`'s exponential backoff with jitter. A `Retry-After` (on 429 or 503) replaces
    /// the backoff: the wait is placed on the key's hold, which the next attempt waits out in `acquire`
    /// with every other request of the key, so the retry itself sleeps no more.
    async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        limit: (&RateLimiter, &str),
        requests: &mut u32,
    ) -> Result<Page<T>, BrokerError> {
        use backon::Retryable;
        let described = Self::describe(path, query);
        let url = format!("{}{path}", self.settings.base_url);
        let (limiter, key) = limit;
        let group_members = path == "/directory_users" && query.iter().any(|(k, _)| *k == "group");
        let attempts = AtomicU32::new(0);
        let (url, described, attempts) = (&url, &described, &attempts);
        let attempt = || async move {
            limiter.acquire(key).await;
            attempts.fetch_add(1, Ordering::Relaxed);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if group_members {
                self.stats
                    .group_member_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            let sent = std::time::Instant::now();
            let outcome = self.attempt(url, described, query).await;
            if let Some(metrics) = &self.metrics {
                metrics.broker_request(path, sent.elapsed());
            }
            outcome
        };
        let outcome = attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|failed| matches!(failed, Attempt::Retry { .. }))
            .adjust(|failed, backoff| match failed {
                // The hold is the wait (see `notify`); `None` still ends the retries.
                Attempt::Retry { wait: Some(_), .. } => backoff.map(|_| Duration::ZERO),
                _ => backoff,
            })
            .notify(|failed, backoff| {
                let Attempt::Retry { cause, wait } = failed else {
                    return;
                };
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                if let Some(metrics) = &self.metrics {
                    metrics.broker_retry();
                }
                match wait {
                    // The broker's own wait holds every request of the key, not only this one.
                    Some(wait) => {
                        tracing::debug!(path = %described, %cause, wait_ms = wait.as_millis() as u64, "the broker asked to wait (Retry-After); holding every request of this endpoint and directory");
                        limiter.hold(key, std::time::Instant::now() + *wait);
                    }
                    None => {
                        tracing::debug!(path = %described, %cause, wait_ms = backoff.as_millis() as u64, "retrying a broker request");
                    }
                }
            })
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        *requests += attempts;
        match outcome {
            Ok(page) => Ok(page),
            Err(Attempt::Fatal(error)) => Err(error),
            Err(Attempt::Retry { cause, .. }) => Err(BrokerError::RetriesExhausted {
                path: described.clone(),
                attempts,
                last: cause,
            }),
        }
    }

    /// The backoff between attempts: `max_retries` retries, each waiting between half and all of
    /// `backoff_base * 2^n`, at most `backoff_max` (backon's jitter adds up to as much again to a wait,
    /// so it is given half of each).
    fn backoff(&self) -> backon::ExponentialBuilder {
        let settings = &self.settings;
        backon::ExponentialBuilder::default()
            .with_min_delay(settings.backoff_base / 2)
            .with_max_delay(settings.backoff_max / 2)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(settings.max_retries as usize)
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        described: &str,
        query: &[(&str, &str)],
    ) -> Result<Page<T>, Attempt> {
        let response = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(self.settings.api_key.expose_secret())
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return Err(Attempt::Retry {
                    cause: format!("transport error: {error}"),
                    wait: None,
                })
            }
        };
        let status = response.status();
        let path = described.to_owned();
        if status.is_success() {
            let served_at = response
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                .map(|at| at.with_timezone(&chrono::Utc));
            let body = read_capped(response, MAX_ANSWER_BYTES)
                .await
                .map_err(|failure| match failure {
                    ReadFailure::TooLarge => Attempt::Fatal(BrokerError::TooLarge {
                        path: path.clone(),
                        limit: MAX_ANSWER_BYTES,
                    }),
                    ReadFailure::Transport(error) => Attempt::Retry {
                        cause: format!("{status}, reading the body failed: {error}"),
                        wait: None,
                    },
                })?;
            let mut page = Page::read(&body)
                .map_err(|message| Attempt::Fatal(BrokerError::Decode { path, message }))?;
            page.served_at = served_at;
            return Ok(page);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, chrono::Utc::now(), self.settings.retry_after_cap));
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(500).collect();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(Attempt::Fatal(BrokerError::Unauthorized {
                    path,
                    status: status.as_u16(),
                }))
            }
            StatusCode::NOT_FOUND => Err(Attempt::Fatal(BrokerError::NotFound { path, body })),
            StatusCode::UNPROCESSABLE_ENTITY => {
                Err(Attempt::Fatal(BrokerError::Invalid { path, body }))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                if let Some(metrics) = &self.metrics {
                    metrics.broker_rate_limited();
                }
                Err(Attempt::Retry {
                    cause: format!("429 Too Many Requests: {body}"),
                    wait: retry_after,
                })
            }
            // A 503 may say when to come back, as a 429 does.
            s if s.is_server_error() => Err(Attempt::Retry {
                cause: format!("{s}: {body}"),
                wait: retry_after.filter(|_| s == StatusCode::SERVICE_UNAVAILABLE),
            }),
            s => Err(Attempt::Fatal(BrokerError::Status {
                path,
                status: s.as_u16(),
                body,
            })),
        }
    }
}

/// A list read a page at a time: follows `after` cursors and stops on a repeated one.
struct Pager<'a> {
    client: &'a BrokerClient,
    path: &'a str,
    query: Vec<(&'a str, &'a str)>,
    rate_key: Option<&'a str>,
    described: String,
    items: usize,
    seen: HashSet<String>,
    after: Option<String>,
    done: bool,
    /// The latest `Date` the broker answered this listing with.
    served_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Records of the listing that could not be read.
    unreadable: Vec<Unreadable>,
}

impl Pager<'_> {
    /// The limiter and key this listing's requests go through: `/directory_users` requests count against
    /// their directory's listing rate; other listings are only held by a `Retry-After`, per endpoint and
    /// scope (the path with its query, such as one directory's groups).
    fn limit(&self) -> (&RateLimiter, &str) {
        match self.rate_key {
            Some(key) => (&self.client.limiter, key),
            None => (&self.client.holds, &self.described),
        }
    }

    /// The next page, or `None` after the last; requests made are counted into `requests`.
    async fn next<T: DeserializeOwned>(
        &mut self,
        requests: &mut u32,
    ) -> Result<Option<Vec<T>>, BrokerError> {
        if self.done {
            return Ok(None);
        }
        let mut page_query = self.query.clone();
        page_query.push(("limit", "100"));
        page_query.push(("order", "asc"));
        if let Some(cursor) = &self.after {
            page_query.push(("after", cursor));
        }
        let page: Page<T> = match self
            .client
            .get_page(self.path, &page_query, self.limit(), requests)
            .await
        {
            Ok(page) => page,
            Err(cause) => {
                return Err(BrokerError::Incomplete {
                    path: self.described.clone(),
                    items: self.items,
                    requests: *requests,
                    cause: Box::new(cause),
                })
            }
        };
        let unread = page.unreadable.len();
        self.items += page.data.len() + unread;
        self.served_until = self.served_until.max(page.served_at);
        let path = self.path;
        self.unreadable
            .extend(page.unreadable.into_iter().map(|(id, reason)| Unreadable {
                path: listed_path(path),
                id,
                reason,
            }));
        match page
            .list_metadata
            .and_then(|m| m.after)
            .filter(|cursor| !cursor.is_empty())
        {
            None => self.done = true,
            Some(_) if page.data.is_empty() && unread == 0 => {
                return Err(BrokerError::EmptyPageWithCursor {
                    path: self.described.clone(),
                    items: self.items,
                    requests: *requests,
                });
            }
            Some(cursor) => {
                if !self.seen.insert(cursor.clone()) {
                    return Err(BrokerError::RepeatedCursor {
                        path: self.described.clone(),
                        cursor,
                        items: self.items,
                        requests: *requests,
                    });
                }
                self.after = Some(cursor);
            }
        }
        Ok(Some(page.data))
    }
}

/// The listing path an unreadable record came from, as [`Unreadable::path`] names it.
fn listed_path(path: &str) -> &'static str {
    match path {
        "/directory_groups" => "/directory_groups",
        "/directory_users" => "/directory_users",
        "/directories" => "/directories",
        _ => "/events",
    }
}

/// Why an answer's body was not read whole.
enum ReadFailure {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a body up to `limit` bytes, as it arrives (never allocating from what `Content-Length` claims).
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadFailure> {
    if response
        .content_length()
        .is_some_and(|n| n as usize > limit)
    {
        return Err(ReadFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadFailure::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Refuses a plain-HTTP broker address unless it is this machine: the API key would travel in clear.
fn check_base_url(base_url: &str) -> Result<(), BrokerError> {
    let url = reqwest::Url::parse(base_url).map_err(|e| {
        BrokerError::Build(format!("the broker address {base_url:?} is not a URL: {e}"))
    })?;
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(BrokerError::Build(format!(
            "the broker address {base_url} is plain http to another machine: the API key would travel in clear; use https (http is allowed to localhost only)"
        ))),
        other => Err(BrokerError::Build(format!(
            "the broker address {base_url} has scheme {other:?}; use https"
        ))),
    }
}

/// A 400 or 422 from `/events` whose message or `errors[].field` names `after` or `range_start` is the
/// broker refusing a start outside its retention window; other errors pass unchanged.
fn cursor_expired(error: BrokerError) -> BrokerError {
    let (path, body) = match &error {
        BrokerError::Invalid { path, body } => (path, body),
        BrokerError::Status {
            path,
            status: 400,
            body,
        } => (path, body),
        _ => return error,
    };
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(body) else {
        return error;
    };
    let names_a_start = |text: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == "after" || word == "range_start")
    };
    let message = answer["message"].as_str().unwrap_or_default();
    let fields = answer["errors"].as_array().into_iter().flatten();
    let named = names_a_start(message)
        || fields
            .filter_map(|e| e["field"].as_str())
            .any(|field| field == "after" || field == "range_start");
    if !named {
        return error;
    }
    let detail = answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let reason = if detail.is_empty() {
        message.to_owned()
    } else {
        format!("{message}: {detail}")
    };
    BrokerError::CursorExpired {
        message: format!("GET {path}: {reason}"),
    }
}

/// The wait a `Retry-After` value asks for, capped: seconds (fractions allowed) or an HTTP date. `None`
/// for a value that is neither; a date in the past is no wait. Never panics, whatever the header says.
fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_nan() || seconds < 0.0 {
            return None;
        }
        // Compared before converting: a huge or infinite value is the cap, not a panic.
        return Some(if seconds >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(seconds)
        });
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (at.with_timezone(&chrono::Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(cap))
}

/// Resolves the entries of users' `groups[]` (a group id, name or `idp_id`, or an object with an `id`) to
/// listed groups.
struct GroupKeys<'a> {
    ids: HashSet<&'a str>,
}

impl<'a> GroupKeys<'a> {
    /// Entries are resolved by the group's id only: names (and IdP ids) need not be unique, and a user
    /// put in the wrong one of two same-named groups would get the wrong teams and roles.
    fn new(groups: &'a [DirectoryGroupId]) -> Self {
        Self {
            ids: groups.iter().map(DirectoryGroupId::as_str).collect(),
        }
    }

    /// The user's `(group id, user id)` memberships, or `None` if an entry names no listed group.
    fn resolve(&self, user: &DirectoryUser) -> Option<Vec<(DirectoryGroupId, DirectoryUserId)>> {
        user.groups
            .iter()
            .map(|entry| {
                let key = match entry {
                    serde_json::Value::String(s) => s.as_str(),
                    serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str())?,
                    _ => return None,
                };
                let group_id = self.ids.get(key)?;
                Some((DirectoryGroupId::from(*group_id), user.id.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let settings = BrokerSettings {
            api_key: "sk_live_hidden".into(),
            ..BrokerSettings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hidden"), "{printed}");
        assert!(
            printed.contains("api_key: SecretBox<str>([REDACTED])"),
            "{printed}"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_always_capped() {
        let cap = Duration::from_secs(60);
        let now = at("2026-12-01T10:00:00Z");
        let wait = |v: &str| retry_after(v, now, cap);
        assert_eq!(wait("2"), Some(Duration::from_secs(2)));
        assert_eq!(wait(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(wait("1e300"), Some(cap));
        assert_eq!(wait("inf"), Some(cap));
        assert_eq!(wait("18446744073709551616"), Some(cap));
        assert_eq!(wait("-1"), None);
        assert_eq!(wait("NaN"), None);
        assert_eq!(wait("soon"), None);
        assert_eq!(
            wait("Tue, 01 Dec 2026 10:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(wait("Tue, 01 Dec 2026 09:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("Wed, 01 Dec 2027 10:00:00 GMT"), Some(cap));
    }

    #[test]
    fn users_groups_resolve_by_id_alone() {
        let groups = vec![
            DirectoryGroupId::from("directory_group_a"),
            DirectoryGroupId::from("directory_group_b"),
        ];
        let keys = GroupKeys::new(&groups);
        let user = |entries: serde_json::Value| -> DirectoryUser {
            serde_json::from_value(serde_json::json!({
                "id": "directory_user_1", "directory_id": "directory_1", "groups": entries,
            }))
            .unwrap()
        };
        let by_id = user(serde_json::json!([{"id": "directory_group_b", "name": "Engineering"}]));
        assert_eq!(
            keys.resolve(&by_id),
            Some(vec![(
                "directory_group_b".into(),
                "directory_user_1".into()
            )])
        );
        // Two groups may share a name: a name is not enough to tell them apart.
        assert_eq!(
            keys.resolve(&user(serde_json::json!(["Engineering"]))),
            None
        );
        let unknown = user(serde_json::json!([{"id": "directory_group_c", "name": "Engineering"}]));
        assert_eq!(keys.resolve(&unknown), None);
    }
}

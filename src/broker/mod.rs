//! A client for the broker's (WorkOS Directory Sync) pull API: complete listings of directories, users,
//! groups and group members, with cursor pagination, retries with backoff (`backon`), `Retry-After` on 429
//! and 503, and a client-side rate limit (`governor`) on `/directory_users` per directory; and for its
//! Events API (`GET /events`) a page at a time, limited per API key.

mod client;
mod rate_limit;

pub use client::{
    BrokerClient, BrokerError, BrokerSettings, EventPage, EventsFrom, ListedPage, Listing,
    RequestStats, RequestStatsSnapshot, Streamed, Unreadable, UsersWithGroups, EVENTS_RATE_PER_KEY,
    MAX_ANSWER_BYTES,
};
pub use rate_limit::RateLimiter;

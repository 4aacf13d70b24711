//! Webhook intake: deliveries are made durable in batches before they are acknowledged, then applied in
//! the background so that a slow or failing apply never holds up the broker.

pub mod applier;
pub mod deliveries;
pub mod event_store;
pub mod retention;

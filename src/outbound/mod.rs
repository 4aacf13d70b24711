//! Outbound webhooks (rule 23): each workspace's change feed sent to the endpoints its admins register,
//! signed as Standard Webhooks, at least once, in feed order per endpoint.

pub mod address;
pub mod endpoints;
pub mod sender;
pub mod signing;

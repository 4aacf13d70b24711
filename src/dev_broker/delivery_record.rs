//! What became of each event's webhook delivery: the record the event log keeps beside the event and the
//! deliverer updates as it sends.

use serde::{Deserialize, Serialize};

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// No webhook URL is configured.
    NotSent,
    /// Waiting, in flight or being retried.
    Pending,
    /// Every copy was answered 2xx.
    Delivered,
    /// Dropped on purpose.
    Dropped,
    /// A copy was still refused after the last retry.
    Failed,
}

/// An event's delivery so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub state: DeliveryState,
    /// Sent twice on purpose.
    pub duplicated: bool,
    /// Copies answered 2xx.
    pub copies_delivered: u32,
    /// POSTs made, retries included.
    pub attempts: u32,
    /// The last HTTP status received, if any.
    pub last_status: Option<u16>,
    #[serde(skip)]
    copies_pending: u32,
    #[serde(skip)]
    copy_failed: bool,
}

impl Delivery {
    /// An event's delivery before any attempt: pending when a webhook URL is configured.
    pub(super) fn new(will_send: bool) -> Self {
        Self {
            state: if will_send {
                DeliveryState::Pending
            } else {
                DeliveryState::NotSent
            },
            duplicated: false,
            copies_delivered: 0,
            attempts: 0,
            last_status: None,
            copies_pending: 0,
            copy_failed: false,
        }
    }

    /// Dropped on purpose: no copy is sent.
    pub(super) fn dropped(&mut self) {
        self.state = DeliveryState::Dropped;
    }

    /// `copies` are about to be sent (two when duplicated on purpose).
    pub(super) fn sending(&mut self, copies: u32) {
        self.duplicated = copies > 1;
        self.copies_pending = copies;
    }

    /// One POST was made, answered with `status` (none: no answer).
    pub(super) fn attempted(&mut self, status: Option<u16>) {
        self.attempts += 1;
        self.last_status = status;
    }

    /// A copy is done, delivered or failed after its last retry; once every copy is, so is the event.
    pub(super) fn copy_done(&mut self, delivered: bool) {
        self.copies_pending = self.copies_pending.saturating_sub(1);
        if delivered {
            self.copies_delivered += 1;
        } else {
            self.copy_failed = true;
        }
        if self.copies_pending == 0 {
            self.state = if self.copy_failed {
                DeliveryState::Failed
            } else {
                DeliveryState::Delivered
            };
        }
    }
}

//! The webhook deliveries of the events the broker generated: each is signed with the webhook secret
//! and posted to the webhook URL by a background task, with the configured drops, duplicates, delays and
//! reordering; a non-2xx answer is retried with backoff.

use super::delivery_record::Delivery;
use super::event_log::EventLog;
use super::faults::Faults;
use crate::secret::{ExposeSecret, SecretString};
use crate::workos::signature;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where events go and how they are signed.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: SecretString,
}

/// How failed deliveries are retried: `retries` more attempts, waiting `backoff`, then twice that, and so on.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// How long a reordering window waits for more events before it is shuffled and sent.
const REORDER_WAIT: Duration = Duration::from_millis(50);

/// Posts events to the webhook URL.
pub struct Deliverer {
    pub log: Arc<EventLog>,
    pub faults: Arc<RwLock<Faults>>,
    pub target: WebhookTarget,
    pub retry: RetryPolicy,
    pub rng: Mutex<StdRng>,
    pub client: reqwest::Client,
}

impl Deliverer {
    /// Sends the events queued on `queue` until `stop` is cancelled or the queue closes.
    pub async fn run(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<u64>,
        stop: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                next = queue.recv() => match next {
                    Some(seq) => seq,
                    None => return,
                },
            };
            let faults = self
                .faults
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut batch = vec![first];
            if faults.reorder {
                let wait = tokio::time::sleep(REORDER_WAIT);
                tokio::pin!(wait);
                while batch.len() < faults.reorder_window {
                    tokio::select! {
                        _ = &mut wait => break,
                        next = queue.recv() => match next {
                            Some(seq) => batch.push(seq),
                            None => break,
                        },
                    }
                }
                batch.shuffle(&mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()));
            }
            for seq in batch {
                self.send(seq, &faults, &stop).await;
            }
        }
    }

    async fn send(self: &Arc<Self>, seq: u64, faults: &Faults, stop: &CancellationToken) {
        let (dropped, delays) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = rng.random_bool(faults.drop);
            let copies = if rng.random_bool(faults.duplicate) {
                2
            } else {
                1
            };
            let delays: Vec<u64> = (0..copies)
                .map(|_| {
                    if faults.delay_ms > 0 {
                        rng.random_range(0..=faults.delay_ms)
                    } else {
                        0
                    }
                })
                .collect();
            (dropped, delays)
        };
        if dropped {
            self.log.update(seq, Delivery::dropped);
            return;
        }
        self.log.update(seq, |d| d.sending(delays.len() as u32));
        for delay in delays {
            if delay == 0 {
                // The first attempt goes out in order; retries happen on the side, as the broker's do.
                if !self.attempt(seq).await {
                    let me = self.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move { me.retry_copy(seq, stop).await });
                } else {
                    self.copy_done(seq, true);
                }
            } else {
                let me = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                    }
                    if me.attempt(seq).await {
                        me.copy_done(seq, true);
                    } else {
                        me.retry_copy(seq, stop).await;
                    }
                });
            }
        }
    }

    /// Retries a copy whose first attempt failed.
    async fn retry_copy(&self, seq: u64, stop: CancellationToken) {
        let mut wait = self.retry.backoff;
        for _ in 0..self.retry.retries {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.attempt(seq).await {
                self.copy_done(seq, true);
                return;
            }
            wait *= 2;
        }
        self.copy_done(seq, false);
    }

    fn copy_done(&self, seq: u64, delivered: bool) {
        self.log.update(seq, |d| d.copy_done(delivered));
    }

    /// One signed POST; true on a 2xx answer.
    async fn attempt(&self, seq: u64) -> bool {
        let Some(event) = self.log.event(seq) else {
            return false;
        };
        let body = serde_json::to_vec(&event).expect("an event serializes");
        let header = signature::sign(
            self.target.secret.expose_secret(),
            signature::now_ms(),
            &body,
        );
        let result = self
            .client
            .post(&self.target.url)
            .header("content-type", "application/json")
            .header("WorkOS-Signature", header)
            .body(body)
            .send()
            .await;
        let status = match result {
            Ok(response) => Some(response.status()),
            Err(error) => {
                tracing::debug!(%error, event = %event.id, "webhook delivery failed");
                None
            }
        };
        self.log
            .update(seq, |d| d.attempted(status.map(|s| s.as_u16())));
        status.is_some_and(|s| s.is_success())
    }
}

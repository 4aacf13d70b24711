//! The broker's state that its HTTP handlers and its handle share: the directory, the fault settings
//! and the event log, and the queue of events to deliver.

use super::event_log::EventLog;
use super::faults::{Faults, FaultsUpdate, RateWindows};
use super::model::{DirectoryModel, ModelError};
use super::objects::BrokerEvent;
use crate::secret::SecretString;
use rand::rngs::StdRng;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;

/// State shared by the HTTP handlers and the handle.
pub(crate) struct Shared {
    model: RwLock<DirectoryModel>,
    pub faults: Arc<RwLock<Faults>>,
    pub windows: RateWindows,
    pub fault_rng: Mutex<StdRng>,
    /// Injected 429s so far: every other one carries `Retry-After`.
    pub injected_429: AtomicU64,
    pub log: Arc<EventLog>,
    queue: Option<mpsc::UnboundedSender<u64>>,
    pub api_key: SecretString,
    pub fill_user_groups: bool,
}

impl Shared {
    /// The state of a broker holding `model`, whose events go to `log` and, when it sends webhooks, are
    /// queued for delivery on `queue`.
    pub fn new(
        model: DirectoryModel,
        faults: Arc<RwLock<Faults>>,
        fault_rng: StdRng,
        log: Arc<EventLog>,
        queue: Option<mpsc::UnboundedSender<u64>>,
        api_key: SecretString,
        fill_user_groups: bool,
    ) -> Self {
        Self {
            model: RwLock::new(model),
            faults,
            windows: RateWindows::default(),
            fault_rng: Mutex::new(fault_rng),
            injected_429: AtomicU64::new(0),
            log,
            queue,
            api_key,
            fill_user_groups,
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, DirectoryModel> {
        self.model.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, DirectoryModel> {
        self.model.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a change and queues its events, in the order the changes happened.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&mut DirectoryModel) -> Result<(T, Vec<BrokerEvent>), ModelError>,
    ) -> Result<(T, Vec<String>), ModelError> {
        let mut model = self.write();
        let (value, events) = f(&mut model)?;
        let ids = events.iter().map(|e| e.id.clone()).collect();
        let seqs = self.log.append(events, self.queue.is_some());
        if let Some(queue) = &self.queue {
            for seq in seqs {
                let _ = queue.send(seq);
            }
        }
        Ok((value, ids))
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_faults(&self, update: &FaultsUpdate) -> Result<Faults, ModelError> {
        let mut faults = self.faults.write().unwrap_or_else(|e| e.into_inner());
        faults
            .apply(update)
            .map_err(|(field, message)| ModelError::Invalid { field, message })?;
        Ok(faults.clone())
    }

    /// Applies `count` random changes; returns how many events they produced.
    pub fn random_changes(&self, count: u32) -> usize {
        let mut events = 0;
        for _ in 0..count {
            if let Ok(((), ids)) = self.change(|m| Ok(((), m.random_change()))) {
                events += ids.len();
            }
        }
        events
    }
}

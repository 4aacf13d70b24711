//! How many pulls run at once, and whose turn is next (SPEC rule 18): a pull holds a slot from its start to
//! its end, including while it waits for the broker, and a freed slot goes to the waiting workspace with
//! the fewest pulls running, then the one served longest ago (workspaces take turns), then the
//! longest-waiting pull; so one workspace's hundred queued directories cannot keep another's single pull
//! waiting for more than one slot's turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The default of `ROLLCALL_MAX_CONCURRENT_PULLS`.
pub const DEFAULT_CONCURRENT_PULLS: usize = 3;

/// Slots for pulls, handed out fairly across workspaces.
#[derive(Debug)]
pub struct PullSlots {
    most: usize,
    state: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    running: usize,
    by_workspace: HashMap<String, usize>,
    /// When each workspace with pulls waiting or running was last given a slot (a count of grants).
    served: HashMap<String, u64>,
    grants: u64,
    waiting: Vec<Waiter>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    workspace: String,
    granted: oneshot::Sender<()>,
}

/// A pull's slot, given back when dropped.
#[derive(Debug)]
pub struct PullSlot {
    slots: Arc<PullSlots>,
    workspace: String,
}

impl PullSlots {
    /// Slots for `most` pulls at once (at least one).
    pub fn new(most: usize) -> Arc<Self> {
        Arc::new(Self {
            most: most.max(1),
            state: Mutex::default(),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot for a pull of `workspace`'s.
    pub async fn acquire(self: &Arc<Self>, workspace: &str) -> PullSlot {
        let granted = {
            let mut slots = self.slots();
            let ticket = slots.next_ticket;
            slots.next_ticket += 1;
            let (granted, wait) = oneshot::channel();
            slots.waiting.push(Waiter {
                ticket,
                workspace: workspace.to_string(),
                granted,
            });
            self.hand_out(&mut slots);
            wait
        };
        // The sender lives in `waiting` until it is granted; a dropped one means the slots are gone, and
        // the pull may as well go on.
        let _ = granted.await;
        PullSlot {
            slots: self.clone(),
            workspace: workspace.to_string(),
        }
    }

    /// Pulls running now, and waiting for a slot.
    pub fn counts(&self) -> (usize, usize) {
        let slots = self.slots();
        (slots.running, slots.waiting.len())
    }

    /// Gives free slots to waiters: to the workspace with the fewest pulls running, then the one served
    /// longest ago, then the longest-waiting pull.
    fn hand_out(&self, slots: &mut Slots) {
        while slots.running < self.most {
            let next = slots
                .waiting
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| {
                    let running = slots.by_workspace.get(&w.workspace).copied().unwrap_or(0);
                    let served = slots.served.get(&w.workspace).copied().unwrap_or(0);
                    (running, served, w.ticket)
                })
                .map(|(i, _)| i);
            let Some(next) = next else {
                break;
            };
            let waiter = slots.waiting.remove(next);
            if waiter.granted.send(()).is_ok() {
                slots.running += 1;
                slots.grants += 1;
                let grant = slots.grants;
                slots.served.insert(waiter.workspace.clone(), grant);
                *slots.by_workspace.entry(waiter.workspace).or_default() += 1;
            }
        }
        // Forget the turns of workspaces with nothing waiting or running.
        let Slots {
            served,
            by_workspace,
            waiting,
            ..
        } = slots;
        served.retain(|ws, _| {
            by_workspace.contains_key(ws) || waiting.iter().any(|w| w.workspace == *ws)
        });
    }

    fn release(&self, workspace: &str) {
        let mut slots = self.slots();
        slots.running -= 1;
        if let Some(count) = slots.by_workspace.get_mut(workspace) {
            *count -= 1;
            if *count == 0 {
                slots.by_workspace.remove(workspace);
            }
        }
        self.hand_out(&mut slots);
    }
}

impl Drop for PullSlot {
    fn drop(&mut self) {
        self.slots.release(&self.workspace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// With one slot busy, a workspace with many queued pulls and one with a single pull alternate.
    #[tokio::test]
    async fn a_freed_slot_goes_to_the_workspace_running_fewest() {
        let slots = PullSlots::new(1);
        let first = slots.acquire("busy").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (i, workspace) in ["busy", "busy", "busy", "quiet"].into_iter().enumerate() {
            let (waiter, order) = (slots.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let slot = waiter.acquire(workspace).await;
                order.lock().unwrap().push(format!("{workspace}{i}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            while slots.counts().1 <= i {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(slots.counts(), (1, 4));
        drop(first);
        for task in waiting {
            task.await.unwrap();
        }
        // "quiet" asked last but runs first: "busy" just had its turn (the first slot).
        let order = order.lock().unwrap().clone();
        assert_eq!(order, ["quiet3", "busy0", "busy1", "busy2"]);
        assert_eq!(slots.counts(), (0, 0));
    }

    #[tokio::test]
    async fn no_more_than_the_most_run_at_once() {
        let slots = PullSlots::new(2);
        let a = slots.acquire("a").await;
        let b = slots.acquire("b").await;
        let third = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("c").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.counts(), (2, 1));
        drop(a);
        let c = third.await.unwrap();
        assert_eq!(slots.counts(), (2, 0));
        drop((b, c));
        assert_eq!(slots.counts(), (0, 0));
    }
}

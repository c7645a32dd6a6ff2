//! Per-destination concurrency without holding workers: a delivery to a
//! remote destination (a domain, a relay hop, an LMTP server, a fax
//! engine) needs one of the destination's slots. When all are taken — a
//! destination that is slow or silent —, the message does not wait for one
//! while it holds a worker (which would let one bad destination take
//! every worker and stop the others); it is *parked*: taken out of the
//! schedule and woken, first in first out, when a delivery to that
//! destination ends. A parked message that nobody wakes is due again after
//! [`PARK_LIMIT`] seconds anyway (the index, not the disk, holds the park).
//!
//! A woken message may be delivered by someone else — another node of a
//! shared queue takes whatever is due —, and then this node's slot stays
//! free with messages still parked and no delivery of its own left to
//! wake them: so an ending delivery wakes as many as there are free
//! slots, and the scheduler sweeps ([`Destinations::wake_idle`]) every
//! time it looks for work.

use faxmta_queue::{now_unix, QueueId, Store};
use faxmta_transport::NextHop;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest a parked message stays out of the schedule.
pub const PARK_LIMIT: u64 = 300;

/// Between two sweeps of [`Destinations::wake_idle`].
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Forget the semaphores of idle destinations beyond this many.
const KEEP_DESTINATIONS: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The destinations' slots and the messages parked for them.
pub struct Destinations {
    limit: usize,
    store: Store,
    slots: Mutex<HashMap<NextHop, Arc<Semaphore>>>,
    parked: Mutex<HashMap<NextHop, Line>>,
    /// When [`Destinations::wake_idle`] last swept.
    swept: Mutex<Option<Instant>>,
}

/// The messages parked for one destination, first in first out; a
/// message is in it at most once (a set beside the order: 100,000
/// messages of one ETRN release may park at once).
#[derive(Default)]
struct Line {
    order: VecDeque<QueueId>,
    members: HashSet<QueueId>,
}

/// One delivery's hold on a destination; ending it wakes a parked message.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    hop: NextHop,
    owner: Arc<Destinations>,
}

impl Drop for Slot {
    /// Free the slot first, then wake: a message parking meanwhile either
    /// is in the line when we look, or sees the free slot (see `park`).
    fn drop(&mut self) {
        self.permit.take();
        self.owner.wake_free(&self.hop);
    }
}

/// What [`Destinations::try_slot`] found.
pub enum Taken {
    /// Local delivery: limited by the global concurrency only.
    Unlimited,
    Slot(Slot),
    /// Every slot of the destination is in use.
    Busy,
}

impl Destinations {
    pub fn new(store: Store, limit: usize) -> Arc<Destinations> {
        Arc::new(Destinations {
            limit: limit.max(1),
            store,
            slots: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            swept: Mutex::new(None),
        })
    }

    /// A slot for one delivery to `hop`, without waiting.
    pub fn try_slot(self: &Arc<Self>, hop: &NextHop) -> Taken {
        if *hop == NextHop::Local {
            return Taken::Unlimited;
        }
        let semaphore = {
            let mut map = lock(&self.slots);
            if map.len() > KEEP_DESTINATIONS {
                let limit = self.limit;
                map.retain(|_, s| s.available_permits() < limit);
            }
            map.entry(hop.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        match semaphore.try_acquire_owned() {
            Ok(permit) => Taken::Slot(Slot {
                permit: Some(permit),
                hop: hop.clone(),
                owner: self.clone(),
            }),
            Err(_) => Taken::Busy,
        }
    }

    /// Take message `id` out of the schedule until a delivery to `hop`
    /// ends (or [`PARK_LIMIT`] passes). Call after its results were
    /// recorded (recording sets its due time again).
    pub fn park(&self, id: &str, hop: &NextHop) {
        self.store.postpone(id, now_unix() + PARK_LIMIT);
        {
            let mut parked = lock(&self.parked);
            let line = parked.entry(hop.clone()).or_default();
            if line.members.insert(id.to_string()) {
                line.order.push_back(id.to_string());
            }
        }
        // A delivery that ended since `try_slot` said busy found nobody
        // to wake: without this the message would wait out PARK_LIMIT
        // (and a whole ETRN release stall once every delivery ended so).
        let free = lock(&self.slots)
            .get(hop)
            .is_some_and(|s| s.available_permits() > 0);
        if free {
            self.wake_free(hop);
        }
    }

    /// Wake as many messages parked for `hop` as it has free slots.
    fn wake_free(&self, hop: &NextHop) {
        let free = lock(&self.slots)
            .get(hop)
            .map_or(self.limit, |s| s.available_permits());
        for _ in 0..free {
            if !self.wake_one(hop) {
                return;
            }
        }
    }

    /// For every destination with parked messages and free slots, wake
    /// as many as it has free slots: the woken ones may have gone to
    /// another node, leaving this one idle with a line. At most once a
    /// second ([`SWEEP_EVERY`]): the scheduler looks for work after every
    /// change of the queue, and the lines may be many.
    pub fn wake_idle(&self) {
        {
            let mut swept = lock(&self.swept);
            if swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
            *swept = Some(Instant::now());
        }
        let hops: Vec<NextHop> = lock(&self.parked).keys().cloned().collect();
        for hop in hops {
            self.wake_free(&hop);
        }
    }

    /// Make the first message parked for `hop` due now; whether one was. A parked message
    /// may have left the queue meanwhile (an ETRN release or any update
    /// makes it due again, and it may be delivered while still in the
    /// line): waking it would wake nobody, and once every delivery to
    /// the destination ended so, the rest would wait out PARK_LIMIT. So
    /// the next one is woken instead.
    fn wake_one(&self, hop: &NextHop) -> bool {
        loop {
            let id = {
                let mut parked = lock(&self.parked);
                let Some(line) = parked.get_mut(hop) else {
                    return false;
                };
                let id = line.order.pop_front();
                if let Some(id) = &id {
                    line.members.remove(id);
                }
                if line.order.is_empty() {
                    parked.remove(hop);
                }
                id
            };
            match id {
                Some(id) if !self.store.postpone(&id, now_unix()) => continue,
                Some(_) => return true,
                None => return false,
            }
        }
    }

    /// Messages parked now, for all destinations.
    #[cfg(test)]
    pub fn parked(&self) -> usize {
        lock(&self.parked).values().map(|l| l.order.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::{NewMessage, NewRecipient};

    /// A store with `n` messages for r@slow.example; one slot per
    /// destination; the hop of slow.example.
    async fn setup(
        n: usize,
    ) -> (
        tempfile::TempDir,
        Store,
        Vec<QueueId>,
        Arc<Destinations>,
        NextHop,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = store.new_id().unwrap();
            let msg = NewMessage {
                sender: "s@x".into(),
                recipients: vec![NewRecipient::new("r@slow.example")],
                ..Default::default()
            };
            store.enqueue(id.clone(), msg, b"x").await.unwrap();
            ids.push(id);
        }
        let d = Destinations::new(store.clone(), 1);
        let hop = NextHop::Mx {
            domain: "slow.example".into(),
        };
        (dir, store, ids, d, hop)
    }

    #[tokio::test]
    async fn a_busy_destination_parks_and_a_finished_delivery_wakes() {
        let (_dir, store, ids, d, hop) = setup(2).await;
        assert!(matches!(d.try_slot(&NextHop::Local), Taken::Unlimited));
        let Taken::Slot(slot) = d.try_slot(&hop) else {
            panic!("the first delivery gets the slot");
        };
        assert!(matches!(d.try_slot(&hop), Taken::Busy));
        let other = NextHop::Mx {
            domain: "fast.example".into(),
        };
        assert!(matches!(d.try_slot(&other), Taken::Slot(_)), "others flow");
        d.park(&ids[1], &hop);
        d.park(&ids[1], &hop);
        assert_eq!(d.parked(), 1, "parked once");
        let now = now_unix();
        assert_eq!(
            store.due(now, 10),
            vec![ids[0].clone()],
            "out of the schedule"
        );
        drop(slot);
        assert_eq!(d.parked(), 0);
        assert_eq!(store.due(now_unix(), 10).len(), 2, "woken");
        assert!(
            matches!(d.try_slot(&hop), Taken::Slot(_)),
            "slot free again"
        );
    }

    /// A delivery that ends between "busy" and the park must not leave
    /// the message parked for PARK_LIMIT (a lost wake-up).
    #[tokio::test]
    async fn a_slot_freed_before_the_park_wakes_the_message_at_once() {
        let (_dir, store, ids, d, hop) = setup(1).await;
        let id = ids[0].clone();
        let Taken::Slot(slot) = d.try_slot(&hop) else {
            panic!("the first delivery gets the slot");
        };
        assert!(matches!(d.try_slot(&hop), Taken::Busy));
        drop(slot); // the other delivery ends: nobody parked yet
        d.park(&id, &hop);
        assert_eq!(store.due(now_unix(), 10), vec![id], "due again at once");
        assert_eq!(d.parked(), 0);
    }

    /// A parked message that left the queue meanwhile does not swallow
    /// the wake-up: the next one in the line is woken.
    #[tokio::test]
    async fn a_wake_up_skips_messages_gone_from_the_queue() {
        let (_dir, store, ids, d, hop) = setup(2).await;
        let Taken::Slot(slot) = d.try_slot(&hop) else {
            panic!("the first delivery gets the slot");
        };
        d.park(&ids[0], &hop);
        d.park(&ids[1], &hop);
        // The first one was delivered by other means (e.g. after an ETRN
        // release made it due again) while still in the line.
        assert!(store.remove(&ids[0]).unwrap());
        assert!(store.due(now_unix(), 10).is_empty());
        drop(slot);
        assert_eq!(store.due(now_unix(), 10), vec![ids[1].clone()]);
        assert_eq!(d.parked(), 0);
    }

    /// A woken message that another node delivers takes no slot here:
    /// the rest of the line is woken by the sweep, not after PARK_LIMIT.
    #[tokio::test]
    async fn a_line_whose_woken_message_went_elsewhere_is_woken_by_the_sweep() {
        let (_dir, store, ids, d, hop) = setup(3).await;
        let Taken::Slot(slot) = d.try_slot(&hop) else {
            panic!("the first delivery gets the slot");
        };
        d.park(&ids[1], &hop);
        d.park(&ids[2], &hop);
        drop(slot);
        assert_eq!(d.parked(), 1, "one woken for the one free slot");
        // Another node delivers the woken message; nothing ends here.
        assert!(store.remove(&ids[1]).unwrap());
        let now = now_unix();
        assert_eq!(store.due(now, 10), vec![ids[0].clone()]);
        d.wake_idle();
        assert_eq!(d.parked(), 0);
        assert_eq!(store.due(now_unix(), 10).len(), 2, "the rest is due");
    }
}

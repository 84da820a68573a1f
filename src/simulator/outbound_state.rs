//! Outbound Message configuration and bookkeeping: per-object rules (which fields each action
//! sends), the destination, the delivery mode, the queue of notifications and the deliverer's
//! counters. The deliverer itself is in `outbound.rs`.
//!
//! The queue hands out one message's notifications at a time (see [`OutboundState::next_message`]):
//! up to 100 of one object, once that many are ready or the oldest has waited the batch
//! window. In order, a message takes the oldest notifications of the object that has waited
//! longest; out of order, an object is drawn at random (weighted by what it has ready) and the
//! message's notifications at random among its oldest [`SHUFFLE_SPAN`]. A notification whose
//! delivery failed waits out its back-off apart and then joins the back of its object's queue.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::SliceRandom as _;

use serde::{Deserialize, Serialize};

use super::config::SimulatorConfig;
use super::standard::default_outbound_fields;
use crate::domain::SalesforceId;

/// How messages are delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryMode {
    /// Deliver every acknowledged message a second time.
    pub duplicate: bool,
    /// Send notifications out of queue order: each message draws its object at random and its
    /// notifications at random among the oldest 1,000 of that object.
    pub out_of_order: bool,
}

/// Counters of the deliverer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundStats {
    /// Notifications queued since start.
    pub notifications_queued: u64,
    /// Notifications whose message was acknowledged.
    pub notifications_acked: u64,
    /// Notifications waiting (queued or being retried).
    pub pending: u64,
    /// SOAP messages POSTed (duplicates included).
    pub messages_sent: u64,
    /// Messages answered 200 with `<Ack>true</Ack>`.
    pub messages_acked: u64,
    /// Messages that failed (refused, nacked, not 200, unreachable) and will be retried.
    pub messages_failed: u64,
}

/// At most this many notifications travel in one message.
pub(crate) const MAX_PER_MESSAGE: usize = 100;

/// Out of order, a message's notifications are drawn among this many of its object's oldest.
pub(crate) const SHUFFLE_SPAN: usize = 1_000;

/// A notification waiting for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: SalesforceId,
    pub(crate) object: String,
    pub(crate) record_id: SalesforceId,
    pub(crate) attempts: u32,
    /// When it joined its object's queue (queued, or its back-off over).
    pub(crate) ready_at: Instant,
}

/// What the queue has for the deliverer.
#[derive(Debug)]
pub(crate) enum Next {
    /// One message's notifications, all of one object.
    Message(Vec<Pending>),
    /// Nothing to send before this moment (`None`: nothing queued at all).
    Wait(Option<Instant>),
}

/// Rules, destination, mode, queue and counters.
#[derive(Debug)]
pub(crate) struct OutboundState {
    pub(crate) url: Option<String>,
    pub(crate) rules: BTreeMap<String, Vec<String>>,
    pub(crate) mode: DeliveryMode,
    pub(crate) stats: OutboundStats,
    pub(crate) in_flight: u64,
    /// Notifications ready to go, per object, oldest first.
    ready: BTreeMap<String, VecDeque<Pending>>,
    ready_len: usize,
    /// Notifications backing off after a failed delivery, by when they may go again (and a
    /// tie-breaking number).
    retrying: BTreeMap<(Instant, u64), Pending>,
    retries: u64,
    action_ids: BTreeMap<String, SalesforceId>,
}

impl OutboundState {
    /// The default rules (Account, Contact, Lead, Opportunity) and the configured URL.
    pub(crate) fn new(config: &SimulatorConfig) -> Self {
        let rules = ["Account", "Contact", "Lead", "Opportunity"]
            .into_iter()
            .filter_map(|o| {
                let fields = default_outbound_fields(o)?;
                Some((
                    o.to_string(),
                    fields.iter().map(|f| (*f).to_string()).collect(),
                ))
            })
            .collect();
        Self {
            url: config.outbound_url.clone(),
            rules,
            mode: DeliveryMode::default(),
            stats: OutboundStats::default(),
            in_flight: 0,
            ready: BTreeMap::new(),
            ready_len: 0,
            retrying: BTreeMap::new(),
            retries: 0,
            action_ids: BTreeMap::new(),
        }
    }

    /// Queues one notification at the back of its object's queue.
    pub(crate) fn enqueue(&mut self, id: SalesforceId, object: &str, record_id: SalesforceId) {
        self.push_ready(Pending {
            id,
            object: object.to_string(),
            record_id,
            attempts: 0,
            ready_at: Instant::now(),
        });
        self.stats.notifications_queued += 1;
    }

    fn push_ready(&mut self, p: Pending) {
        self.ready.entry(p.object.clone()).or_default().push_back(p);
        self.ready_len += 1;
    }

    /// Puts a notification whose delivery failed aside until `due`.
    pub(crate) fn retry_at(&mut self, p: Pending, due: Instant) {
        self.retries += 1;
        self.retrying.insert((due, self.retries), p);
    }

    /// The next message's notifications, taken off the queue, or how long nothing is due:
    /// an object's notifications go once [`MAX_PER_MESSAGE`] are ready or its oldest has waited
    /// `window`.
    pub(crate) fn next_message(
        &mut self,
        now: Instant,
        window: Duration,
        rng: &mut impl Rng,
    ) -> Next {
        while let Some(entry) = self.retrying.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let mut p = entry.remove();
            p.ready_at = now.checked_sub(window).unwrap_or(now);
            self.push_ready(p);
        }
        let sendable = |q: &VecDeque<Pending>| {
            q.len() >= MAX_PER_MESSAGE || q.front().is_some_and(|p| p.ready_at + window <= now)
        };
        let eligible: Vec<(&String, usize)> = self
            .ready
            .iter()
            .filter(|(_, q)| sendable(q))
            .map(|(o, q)| (o, q.len()))
            .collect();
        let Some(object) = self.pick_object(&eligible, rng) else {
            let ready_due = self
                .ready
                .values()
                .filter_map(|q| q.front())
                .map(|p| p.ready_at + window);
            let retry_due = self.retrying.keys().next().map(|(due, _)| *due);
            return Next::Wait(ready_due.chain(retry_due).min());
        };
        let Some(queue) = self.ready.get_mut(&object) else {
            return Next::Wait(None);
        };
        let taken = if self.mode.out_of_order {
            take_shuffled(queue, rng)
        } else {
            let n = queue.len().min(MAX_PER_MESSAGE);
            queue.drain(..n).collect()
        };
        if queue.is_empty() {
            self.ready.remove(&object);
        }
        self.ready_len -= taken.len();
        Next::Message(taken)
    }

    /// The object of the next message among the sendable ones `(object, ready)`: in order, the
    /// one whose oldest notification is oldest; out of order, one at random, weighted by how
    /// many it has ready.
    fn pick_object(&self, eligible: &[(&String, usize)], rng: &mut impl Rng) -> Option<String> {
        if self.mode.out_of_order {
            let total: usize = eligible.iter().map(|(_, n)| n).sum();
            if total == 0 {
                return None;
            }
            let mut at = rng.random_range(0..total);
            for (object, n) in eligible {
                if at < *n {
                    return Some((*object).clone());
                }
                at -= n;
            }
            return None;
        }
        eligible
            .iter()
            .filter_map(|(o, _)| Some((self.ready.get(*o)?.front()?.ready_at, *o)))
            .min()
            .map(|(_, o)| o.clone())
    }

    /// Notifications queued or backing off.
    pub(crate) fn queued(&self) -> usize {
        self.ready_len + self.retrying.len()
    }

    /// The id of the Outbound Message action of `object` (one per object, `04k…`).
    pub(crate) fn action_id(&mut self, object: &str) -> SalesforceId {
        let n = self.action_ids.len() as u64 + 1;
        self.action_ids
            .entry(object.to_string())
            .or_insert_with(|| SalesforceId::mint("04k", "5g", n))
            .clone()
    }

    /// Counters, with the pending count filled in.
    pub(crate) fn stats(&self) -> OutboundStats {
        OutboundStats {
            pending: self.queued() as u64 + self.in_flight,
            ..self.stats.clone()
        }
    }
}

/// Up to [`MAX_PER_MESSAGE`] notifications drawn at random among the oldest [`SHUFFLE_SPAN`] of
/// `queue`, in random order; the others stay in queue order.
fn take_shuffled(queue: &mut VecDeque<Pending>, rng: &mut impl Rng) -> Vec<Pending> {
    let span = queue.len().min(SHUFFLE_SPAN);
    let n = span.min(MAX_PER_MESSAGE);
    let mut chosen = vec![false; span];
    for i in rand::seq::index::sample(rng, span, n) {
        chosen[i] = true;
    }
    let mut taken = Vec::with_capacity(n);
    let mut kept = Vec::with_capacity(span - n);
    for (p, c) in queue.drain(..span).zip(chosen) {
        if c {
            taken.push(p);
        } else {
            kept.push(p);
        }
    }
    for p in kept.into_iter().rev() {
        queue.push_front(p);
    }
    taken.shuffle(rng);
    taken
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn queue(accounts: usize, contacts: usize, out_of_order: bool) -> OutboundState {
        let mut q = OutboundState::new(&SimulatorConfig::default());
        q.mode.out_of_order = out_of_order;
        let id = |p: &str, k: usize| SalesforceId::mint(p, "5g", k as u64);
        for n in 0..accounts {
            q.enqueue(id("04l", n), "Account", id("001", n));
        }
        for n in 0..contacts {
            q.enqueue(id("04l", 100_000 + n), "Contact", id("003", n));
        }
        q
    }

    fn message(next: Next) -> Vec<Pending> {
        match next {
            Next::Message(items) => items,
            Next::Wait(until) => panic!("no message, wait until {until:?}"),
        }
    }

    #[test]
    fn a_message_waits_the_window_unless_it_is_full() {
        let window = Duration::from_millis(20);
        let mut rng = StdRng::seed_from_u64(1);
        let mut q = queue(150, 3, false);
        let now = Instant::now();
        let first = message(q.next_message(now, window, &mut rng));
        assert_eq!(first.len(), 100);
        assert!(first.iter().all(|p| p.object == "Account"));
        let Next::Wait(Some(until)) = q.next_message(now, window, &mut rng) else {
            panic!("50 Accounts and 3 Contacts wait for the window");
        };
        assert!(until > now);
        let later = until + Duration::from_millis(1);
        let oldest_first = message(q.next_message(later, window, &mut rng));
        assert_eq!(oldest_first.len(), 50, "the Accounts were queued first");
        assert_eq!(message(q.next_message(later, window, &mut rng)).len(), 3);
        assert!(matches!(
            q.next_message(later, window, &mut rng),
            Next::Wait(None)
        ));
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn in_order_a_message_takes_the_oldest_notifications() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut q = queue(250, 0, false);
        let items = message(q.next_message(Instant::now(), Duration::ZERO, &mut rng));
        let ids: Vec<_> = items.iter().map(|p| p.id.clone()).collect();
        let expected: Vec<_> = (0..100)
            .map(|n| SalesforceId::mint("04l", "5g", n))
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn out_of_order_a_message_draws_among_the_oldest_of_its_object() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut q = queue(5_000, 0, true);
        let items = message(q.next_message(Instant::now(), Duration::ZERO, &mut rng));
        assert_eq!(items.len(), 100);
        let mut numbers: Vec<u64> = items
            .iter()
            .map(|p| {
                (0..5_000u64)
                    .find(|n| SalesforceId::mint("04l", "5g", *n) == p.id)
                    .unwrap_or(u64::MAX)
            })
            .collect();
        assert!(
            numbers.iter().all(|n| *n < SHUFFLE_SPAN as u64),
            "{numbers:?}"
        );
        let sent = numbers.clone();
        numbers.sort_unstable();
        assert_ne!(sent, numbers, "not in queue order");
        assert_eq!(q.queued(), 4_900);
    }

    #[test]
    fn a_failed_notification_waits_its_back_off_then_goes_again() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut q = queue(1, 0, false);
        let now = Instant::now();
        let items = message(q.next_message(now, Duration::ZERO, &mut rng));
        let due = now + Duration::from_secs(1);
        q.retry_at(items[0].clone(), due);
        assert_eq!(q.queued(), 1);
        assert!(
            matches!(q.next_message(now, Duration::ZERO, &mut rng), Next::Wait(Some(d)) if d == due)
        );
        let again = message(q.next_message(due, Duration::from_millis(20), &mut rng));
        assert_eq!(again[0].id, items[0].id);
    }
}

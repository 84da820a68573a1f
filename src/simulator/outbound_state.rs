//! Outbound Message configuration and bookkeeping: per-object rules (which fields each action
//! sends), the destination, the delivery mode, the queue of notifications and the deliverer's
//! counters. The deliverer itself is in `outbound.rs`.

use std::collections::BTreeMap;
use std::time::Instant;

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
    /// Shuffle notifications and messages instead of sending them in queue order.
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

/// A notification waiting for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: SalesforceId,
    pub(crate) object: String,
    pub(crate) record_id: SalesforceId,
    pub(crate) attempts: u32,
    pub(crate) due: Instant,
}

/// Rules, destination, mode, queue and counters.
#[derive(Debug)]
pub(crate) struct OutboundState {
    pub(crate) url: Option<String>,
    pub(crate) rules: BTreeMap<String, Vec<String>>,
    pub(crate) mode: DeliveryMode,
    pub(crate) queue: Vec<Pending>,
    pub(crate) stats: OutboundStats,
    pub(crate) in_flight: u64,
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
            queue: Vec::new(),
            stats: OutboundStats::default(),
            in_flight: 0,
            action_ids: BTreeMap::new(),
        }
    }

    /// Queues one notification, due now.
    pub(crate) fn enqueue(&mut self, id: SalesforceId, object: &str, record_id: SalesforceId) {
        self.queue.push(Pending {
            id,
            object: object.to_string(),
            record_id,
            attempts: 0,
            due: Instant::now(),
        });
        self.stats.notifications_queued += 1;
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
            pending: self.queue.len() as u64 + self.in_flight,
            ..self.stats.clone()
        }
    }
}

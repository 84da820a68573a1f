//! The commands beside the engine, kept apart from it: nothing in the engine depends on them.
//!
//! - [`demo`]: `sfsync demo`, a simulated org and the service, both directions, explained.
//! - [`bench`]: `sfsync bench …`, the figures the README reports.
//! - [`replay`]: `sfsync replay`, fixtures posted as Salesforce would send them.
//! - [`app_receiver`]: an app on loopback that verifies and records sfsync's webhooks.
//! - [`commands`]: `doctor`, `import`, `outbox`, `status`: clients of a running service's API.

pub mod app_receiver;
pub mod bench;
pub mod commands;
pub mod demo;
pub mod replay;

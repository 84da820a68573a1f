//! sfsync keeps a sales application's Companies, Contacts, pipeline and activities in agreement
//! with each customer's Salesforce org.
//!
//! The pipeline, left to right:
//!
//! ```text
//! Salesforce ──SOAP/signed JSON──▶ http::webhook ──verify, parse──▶ store: dedupe + pending ──fsync──▶ Ack
//! pending ──worker::inbox──▶ salesforce: batched retrieve ──▶ sync::pull (match, policy) ──▶ store
//! app ──/api/v1──▶ store: record + outbox entry ──worker::outbox──▶ salesforce: collections ──▶ store
//! ```
//!
//! Modules:
//! - [`config`]: the TOML file and its env overrides, validated at load; the only reader of env.
//! - [`app`]: the composition root that wires config, store and HTTP together.
//! - [`http`]: the router, the webhook endpoints, the local API and the operator console.
//! - [`domain`]: entities and ids, no I/O.
//! - [`store`]: the only module that names sled.
//! - [`salesforce`]: the Salesforce client (reqwest): OAuth, REST, composite, errors, limits.
//! - [`simulator`]: a Salesforce org on loopback for tests, the demo and benchmarks.
//! - [`sync`]: the pull and push rules; [`worker`]: the inbox and outbox workers, and the
//!   deliveries of the change log to the app's webhooks.
//! - [`app_webhooks`]: the app's side: each local change signed and POSTed to the app's
//!   webhooks (the one module besides `salesforce` that makes HTTP calls).
//! - [`telemetry`]: each app's Prometheus metrics and the recent errors the console lists.
//! - [`tools`]: the demo, the benchmarks, fixture replay and the API clients (`doctor`,
//!   `import`, `outbox`, `status`), apart from the engine.

pub mod app;
pub mod app_webhooks;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod salesforce;
pub mod simulator;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tools;
pub mod worker;

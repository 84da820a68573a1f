//! The push side's pair: a simulated org and the service not connected to it, with an outbox
//! worker on the service's store that tests step directly. Built on [`crate::support::env`].

use sfsync::domain::PushAs;
use sfsync::simulator::Simulator;
use sfsync::store::Store;
use sfsync::worker::outbox::OutboxWorker;

pub use crate::support::env::{SyncEnv, assert_no_duplicates, drain, outbox_config};
pub use crate::support::org::{client_for, connecting_client};

/// A [`SyncEnv`] and the outbox worker a test steps.
pub struct PushEnv {
    pub env: SyncEnv,
    pub worker: OutboxWorker,
}

impl std::ops::Deref for PushEnv {
    type Target = SyncEnv;

    fn deref(&self) -> &SyncEnv {
        &self.env
    }
}

/// The pair with contacts pushed as Contacts.
pub async fn push_env() -> PushEnv {
    push_env_as(PushAs::Contact).await
}

/// The pair with contacts pushed as `push_as`.
pub async fn push_env_as(push_as: PushAs) -> PushEnv {
    push_env_with(|c| c.sync.push_as = push_as).await
}

/// The pair with the service's config `adjust`ed; the worker follows its `[sync]` rules.
pub async fn push_env_with(adjust: impl FnOnce(&mut sfsync::config::Config)) -> PushEnv {
    let env = crate::support::env::start_detached(adjust).await;
    let worker = env.outbox_worker();
    PushEnv { env, worker }
}

/// An outbox worker on `store` with its own connection to `sim`'s org.
pub fn worker_on(sim: &Simulator, store: &Store) -> OutboxWorker {
    OutboxWorker::new(
        store.clone(),
        client_for(sim, store),
        outbox_config(),
        PushAs::Contact,
    )
}

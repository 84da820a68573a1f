//! Workers: each a struct with `step()` (one bounded unit of work, driven directly by tests) and
//! `run(token)` (the loop the service runs until shutdown). Both report a step as an
//! [`Outcome`] and retry failed calls on one [`Backoff`] schedule.

pub mod app_webhooks;
pub mod inbox;
pub mod outbox;
mod retry;

pub use retry::Backoff;

/// What one step did; `R` is the worker's report of the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// Nothing was due (or nothing due could go out yet): `run` waits a little.
    Idle,
    /// Some work was done: `run` steps again at once.
    Worked(R),
    /// Work is waiting, but every org that has some is paused (its API budget, or a connection
    /// that needs re-authorization): `run` waits a little.
    Paused,
}

impl<R: Default> Outcome<R> {
    /// The report of the work done; an empty one when the step was idle or paused.
    pub fn into_report(self) -> R {
        match self {
            Self::Worked(r) => r,
            Self::Idle | Self::Paused => R::default(),
        }
    }
}

impl<R> Outcome<R> {
    /// Whether `run` should step again at once.
    pub fn worked(&self) -> bool {
        matches!(self, Self::Worked(_))
    }
}

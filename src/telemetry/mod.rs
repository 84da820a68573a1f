//! What the service tells its operators about itself: Prometheus metrics ([`Metrics`], served at
//! `GET /metrics`) and the recent errors the console lists ([`RecentErrors`]).
//!
//! One [`Telemetry`] belongs to one `App`: tests run several apps in one process, so nothing
//! here is global. It is handed to the places that record (the webhook intake, the Salesforce
//! client, the workers, the sweep, the setup check); each records with one call.

pub mod errors;
pub mod metrics;

use std::sync::Arc;

pub use errors::{ErrorSource, RecentError, RecentErrors};
pub use metrics::{Gauges, Metrics, OrgGauges};

/// The app's metrics and its recent errors; cheap to clone.
#[derive(Clone, Default)]
pub struct Telemetry {
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The bounded list of recent errors.
    pub errors: Arc<RecentErrors>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry whose per-org series start at zero for `orgs`, so that every series an alert
    /// reads exists before its first event.
    pub fn for_orgs<'a>(orgs: impl IntoIterator<Item = &'a crate::domain::OrgId>) -> Self {
        Self {
            metrics: Arc::new(Metrics::for_orgs(orgs)),
            errors: Arc::default(),
        }
    }
}

//! The console's part of the app's state: its settings, its sessions and its login guard.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::session::Sessions;
use crate::config::ConsoleConfig;

/// The console's settings and its sessions; one per app.
pub struct Console {
    pub(super) enabled: bool,
    pub(super) behind_tls_proxy: bool,
    pub(super) limit_share: f64,
    pub(super) sessions: Sessions,
    pub(super) guard: LoginGuard,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console as `[console]` configures it; `limit_share` (`[outbox] limit_share`) is the
    /// share of an org's API budget past which its budget shows as over.
    pub fn new(config: &ConsoleConfig, limit_share: f64) -> Self {
        Self {
            enabled: config.enabled,
            behind_tls_proxy: config.behind_tls_proxy,
            limit_share,
            sessions: Sessions::new(Duration::from_secs(config.session_ttl_s)),
            guard: LoginGuard::default(),
        }
    }
}

/// Wrong tokens allowed per address in [`FAILURE_WINDOW`].
pub(super) const MAX_FAILURES: u32 = 10;
/// The window over which wrong tokens are counted.
pub(super) const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most addresses remembered at once.
const MAX_ADDRESSES: usize = 10_000;

/// Failed sign-ins per client address.
#[derive(Default)]
pub(super) struct LoginGuard {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginGuard {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `addr` has used up its wrong tokens for now.
    pub(super) fn blocked(&self, addr: IpAddr) -> bool {
        self.map()
            .get(&addr)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
    }

    /// Counts a wrong token from `addr`.
    pub(super) fn failed(&self, addr: IpAddr) {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        if map.len() >= MAX_ADDRESSES {
            let oldest = map.iter().min_by_key(|(_, (_, s))| *s).map(|(a, _)| *a);
            if let Some(a) = oldest {
                map.remove(&a);
            }
        }
        let slot = map.entry(addr).or_insert((0, now));
        if now.duration_since(slot.1) >= FAILURE_WINDOW {
            *slot = (0, now);
        }
        slot.0 += 1;
    }

    /// Forgets `addr`'s failures (it signed in).
    pub(super) fn succeeded(&self, addr: IpAddr) {
        self.map().remove(&addr);
    }
}

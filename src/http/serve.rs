//! The HTTP server loop, hardened for a public webhook URL.
//!
//! - HTTP/1.1 only (Salesforce and the app speak it; no h2c), one task per connection.
//! - A client must send a complete request head within `header_read_timeout` of connecting or of
//!   its previous response, or the connection is closed: a partial head, or a keep-alive
//!   connection left idle, holds a socket no longer than that.
//! - At most `max_connections` are open at once. A connection that arrives when all are taken
//!   closes the one that has been idle longest (no request in flight: a keep-alive connection
//!   between requests, or one still sending its head), so idle sockets cannot lock the service
//!   out; when none is idle it waits for one to finish.
//! - When `accept` fails for want of resources (out of file descriptors, `EMFILE`), the idle
//!   connection of longest standing is closed to free a descriptor and accepting backs off
//!   (10 ms doubling to 1 s) while the open connections keep being served; the failure is logged
//!   once per burst, not once per attempt.
//! - On shutdown the listener closes at once, in-flight requests get `shutdown_grace` to finish
//!   (idle keep-alive connections close immediately), then every connection still open is
//!   dropped, whatever its client does.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The limits the server loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Time allowed for a complete request head, from connect or the previous response.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Time in-flight requests get after shutdown begins.
    pub shutdown_grace: Duration,
}

/// The longest pause between accept attempts while the process is out of resources.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains within the grace.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let stream = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    if backoff.failed(&e).await {
                        registry.evict_longest_idle();
                    }
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                registry.evict_longest_idle();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let state = registry.register();
        connections.spawn(connection(
            stream,
            router.clone(),
            limits.header_read_timeout,
            Stop {
                graceful: shutdown.clone(),
                hard: hard_stop.clone(),
            },
            Slot {
                registry: registry.clone(),
                state,
                _permit: permit,
            },
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            grace_s = limits.shutdown_grace.as_secs(),
            "shutdown grace is over; closing the connections still open"
        );
        hard_stop.cancel();
        connections.wait().await;
    }
}

/// The two stop signals a connection obeys: finish the request in flight, then close now.
struct Stop {
    graceful: CancellationToken,
    hard: CancellationToken,
}

/// A connection's place: its permit and its entry in the registry, both given back on drop.
struct Slot {
    registry: Arc<Registry>,
    state: Arc<ConnState>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.state.id);
    }
}

async fn connection(
    stream: TcpStream,
    router: Router,
    header_read_timeout: Duration,
    stop: Stop,
    slot: Slot,
) {
    // Small responses (acks) go out at once.
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let (busy, idle) = (slot.state.clone(), slot.state.clone());
    let service = router
        .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            busy.set_busy();
            if let Some(peer) = peer {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
            req
        })
        .map_response(move |resp: axum::response::Response| {
            // The connection is idle again once the response body has been sent.
            resp.map(|body| {
                Body::new(IdleWhenSent {
                    inner: body,
                    state: idle.clone(),
                })
            })
        });
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = slot.state.evict.cancelled() => Ok(()),
        _ = stop.graceful.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.hard.cancelled() => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// A response body that marks its connection idle when it is dropped (sent or abandoned).
struct IdleWhenSent {
    inner: Body,
    state: Arc<ConnState>,
}

impl Drop for IdleWhenSent {
    fn drop(&mut self) {
        self.state.set_idle(self.state.registry_now());
    }
}

impl http_body::Body for IdleWhenSent {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One open connection as the registry sees it.
struct ConnState {
    id: u64,
    /// Milliseconds since the registry's epoch, plus one, when it last became idle; 0 while a
    /// request is in flight.
    idle_since: AtomicU64,
    epoch: Instant,
    evict: CancellationToken,
}

impl ConnState {
    fn registry_now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
    fn set_busy(&self) {
        self.idle_since.store(0, Ordering::Relaxed);
    }
    fn set_idle(&self, now: u64) {
        self.idle_since.store(now, Ordering::Relaxed);
    }
}

/// The open connections, so that the one idle longest can be closed when room is needed.
struct Registry {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::default(),
        }
    }
}

impl Registry {
    fn register(&self) -> Arc<ConnState> {
        let state = Arc::new(ConnState {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            idle_since: AtomicU64::new(0),
            epoch: self.epoch,
            evict: CancellationToken::new(),
        });
        // A new connection is idle until its first request head is complete.
        state.set_idle(state.registry_now());
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(state.id, state.clone());
        state
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Closes the connection that has been idle longest; false when every one is busy.
    fn evict_longest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let longest = open
            .values()
            .filter(|c| !c.evict.is_cancelled())
            .filter_map(|c| {
                let since = c.idle_since.load(Ordering::Relaxed);
                (since > 0).then_some((since, c))
            })
            .min_by_key(|(since, _)| *since);
        match longest {
            Some((_, c)) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Backs accepting off while it fails, and logs the failures at most once per
/// [`LOG_EVERY`] with how many there were.
#[derive(Default)]
struct AcceptBackoff {
    delay: Duration,
    unlogged: u64,
    last_logged: Option<Instant>,
}

/// The least time between two log lines about failing accepts.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    /// Waits before the next attempt; true when the failure is for want of resources.
    async fn failed(&mut self, e: &std::io::Error) -> bool {
        use std::io::ErrorKind;
        // A client that gave up before we accepted it costs nothing; try the next one.
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return false;
        }
        self.unlogged += 1;
        if self.last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                "accept failed; backing off while the open connections are served"
            );
            self.unlogged = 0;
            self.last_logged = Some(Instant::now());
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
        tokio::time::sleep(self.delay).await;
        true
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// The connection cap when none is configured: three quarters of the process's open-file limit
/// (the rest is left for the store, the log and outgoing calls), at most 10,000; 768 where the
/// limit cannot be read.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        });
    match soft {
        Some(limit) => (limit / 4 * 3).clamp(16, 10_000),
        None => 768,
    }
}

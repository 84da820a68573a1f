//! The composition root: config in, a running service out. Tests, the demo and the benchmarks
//! build the same [`App`] on `127.0.0.1:0` with a temporary store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::http::webhook::outbound_message::XmlLimits;
use crate::http::{AppState, Connections, Counters};
use crate::store::Store;
pub use crate::sync::tokens::StoreTokens;
use crate::telemetry::{ErrorSource, Telemetry};

/// How often expired dedupe keys are removed.
const EXPIRY_EVERY: Duration = Duration::from_secs(3600);
/// How often the change log is compacted past its retention.
const COMPACT_EVERY: Duration = Duration::from_secs(600);
/// Entries removed per atomic batch of a compaction.
const COMPACT_BATCH: usize = 1000;
/// How often recorded histogram samples are drained into their buckets between scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(10);

/// Choices that are not configuration: they exist for the benchmarks, the demo and the tests.
#[derive(Default)]
pub struct AppOptions {
    /// Acknowledge webhooks without storing them (the HTTP floor of `sfsync bench ingest`).
    pub skip_store: bool,
}

/// A built, bound, not yet running service.
pub struct App {
    state: AppState,
    listener: TcpListener,
    timeouts: crate::http::RequestTimeouts,
    limits: crate::http::serve::ServeLimits,
    dedupe_ttl: Duration,
    /// Pull side: time between catch-up sweeps (zero: none, not even at start-up).
    sweep_interval: Duration,
    /// Push side: delivery settings of the outbox workers.
    outbox: crate::config::OutboxConfig,
    /// Push side: where activities go.
    activities: Arc<crate::config::ActivityTarget>,
    /// Pull side: the inbox worker's pace, budget share and retry schedule.
    inbox: crate::worker::inbox::InboxSettings,
    /// The app's side: the change log's retention and its deliveries.
    changes: crate::config::ChangesConfig,
}

impl App {
    /// Opens the store, binds the listener and wires the router.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with(config, AppOptions::default()).await
    }

    /// [`App::build`] with options.
    pub async fn build_with(config: &Config, options: AppOptions) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        Self::build_on(config, listener, options).await
    }

    /// [`App::build_with`] on a listener already bound (`server.listen` is then not used): the
    /// caller knows the address before the service is built, e.g. for the OAuth callback URL.
    pub async fn build_on(
        config: &Config,
        listener: TcpListener,
        options: AppOptions,
    ) -> anyhow::Result<Self> {
        let store = Store::open(&config.store.path)
            .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
        let oauth = config.oauth().map(|(settings, key)| {
            Arc::new(crate::http::oauth::OAuthFlow::new(
                settings,
                Arc::new(crate::salesforce::TokenVault::new(key)),
                Arc::new(StoreTokens(store.clone())),
                Duration::from_secs(config.salesforce.request_timeout_s),
            ))
        });
        if let Err(reason) = &oauth {
            if !config.connections.is_empty() {
                tracing::warn!(
                    %reason,
                    "salesforce connected app not configured: no org can connect until it is"
                );
            }
        }
        let state = app_state(config, store, oauth.map_err(|r| Arc::from(r.0)), options);
        let app = Self {
            state,
            listener,
            timeouts: crate::http::RequestTimeouts {
                request: Duration::from_secs(config.server.request_timeout_s),
                body_read: Duration::from_secs(config.server.body_read_timeout_s),
            },
            limits: crate::http::serve::ServeLimits {
                header_read_timeout: Duration::from_secs(config.server.header_read_timeout_s),
                max_connections: match config.server.max_connections {
                    0 => crate::http::serve::default_max_connections(),
                    n => n,
                },
                shutdown_grace: Duration::from_secs(config.server.shutdown_grace_s),
            },
            dedupe_ttl: config.dedupe_ttl(),
            sweep_interval: Duration::from_secs(config.sync.sweep_interval_s),
            outbox: config.outbox.clone(),
            activities: Arc::new(config.activity_target()),
            inbox: crate::worker::inbox::InboxSettings {
                limit_share: config.sync.limit_share,
                backoff: crate::worker::Backoff::from_config(&config.outbox),
                ..Default::default()
            },
            changes: config.changes.clone(),
        };
        app.connect_stored_orgs(config);
        Ok(app)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The shared state (tests read counters and the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests and flushes.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        let store = self.state.store.clone();
        let ttl = self.dedupe_ttl;
        every(&tracker, EXPIRY_EVERY, &shutdown, move || {
            match store.expire_dedupe(chrono::Utc::now(), ttl) {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired dedupe keys"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "dedupe expiry failed"),
            }
        });
        let metrics = self.state.telemetry.metrics.clone();
        every(&tracker, METRICS_UPKEEP_EVERY, &shutdown, move || {
            metrics.upkeep()
        });
        self.spawn_pull_workers(&tracker, &shutdown);
        self.spawn_app_side(&tracker, &shutdown);
        // Push side: one outbox worker per connected org (also for orgs that connect later).
        let settings = crate::worker::outbox::WorkerSettings {
            outbox: self.outbox.clone(),
            push_as: self.state.push_as,
            rules: self.state.pull.rules.clone(),
            setup: self.state.setup.clone(),
            activities: self.activities.clone(),
        };
        crate::worker::outbox::spawn_workers(
            &tracker,
            self.state.store.clone(),
            self.state.pull.orgs.clone(),
            settings,
            shutdown.clone(),
        );
        tracing::info!(
            addr = %self.local_addr(),
            max_connections = self.limits.max_connections,
            "listening"
        );
        let router = crate::http::router(self.state.clone(), self.timeouts);
        crate::http::serve::serve(self.listener, router, self.limits, shutdown.clone()).await;
        tracker.close();
        tracker.wait().await;
        self.state
            .store
            .make_durable()
            .await
            .context("final flush")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The state every handler shares, as `config` sets it up; one [`Telemetry`] for the whole app.
fn app_state(
    config: &Config,
    store: Store,
    oauth: Result<Arc<crate::http::oauth::OAuthFlow>, Arc<str>>,
    options: AppOptions,
) -> AppState {
    let telemetry = Telemetry::for_orgs(config.connections.iter().map(|c| &c.org_id));
    telemetry.metrics.configured(
        config.outbox.limit_share,
        config.sync.limit_share,
        Duration::from_secs(config.sync.sweep_interval_s),
    );
    for org in config.connections.iter().map(|c| &c.org_id) {
        if let Ok(Some(at)) = store.last_sweep(org) {
            telemetry.metrics.sweep_succeeded_at(org, at);
        }
    }
    let rules = crate::sync::pull::Rules::from_config(&config.sync);
    let pull = crate::sync::orgs::PullContext::with_telemetry(rules, telemetry.clone());
    AppState {
        oauth,
        store,
        connections: Arc::new(Connections::new(config.connections.clone())),
        counters: Arc::new(Counters::new(
            telemetry.metrics.clone(),
            pull.echoes.clone(),
        )),
        api_token: Arc::new(config.server.api_token.clone()),
        max_body: config.intake.max_body_bytes,
        timestamp_tolerance_s: config.intake.timestamp_tolerance_s,
        xml_limits: XmlLimits::default(),
        skip_store: options.skip_store,
        pull,
        push_as: config.sync.push_as,
        setup: Arc::new(crate::sync::setup::Setup::new(
            config.salesforce.api_version.clone(),
            &config.outbox.marker_field,
            &config.activity_target(),
            telemetry.errors.clone(),
        )),
        app_webhooks: crate::app_webhooks::hooks(&config.app_webhooks),
        feed_wait: crate::http::api::longest_wait(Duration::from_secs(
            config.server.request_timeout_s,
        )),
        console: Arc::new(crate::http::Console::new(
            &config.console,
            config.outbox.limit_share,
        )),
        telemetry,
    }
}

// ---------------------------------------------------------------- pull side (inbox worker and
// catch-up sweep): connections per org, and the two background tasks.
impl App {
    /// Connects an org: its inbox is pulled and swept through `client` from now on.
    pub fn connect_salesforce(&self, client: crate::salesforce::Client) {
        tracing::info!(org = %client.org_id(), "salesforce connection added");
        self.state.pull.orgs.insert(client);
    }

    /// Connects every configured org that has a stored refresh token, when the connected app's
    /// settings and the token key are in the environment. The first call refreshes the session,
    /// which also gives the instance URL.
    fn connect_stored_orgs(&self, config: &Config) {
        let Ok(flow) = self.state.oauth.clone() else {
            return;
        };
        let (settings, vault, tokens) = (flow.settings().clone(), flow.vault(), flow.tokens());
        for conn in &config.connections {
            if !matches!(
                self.state.store.load_sealed_token(&conn.org_id),
                Ok(Some(_))
            ) {
                continue;
            }
            let client = crate::salesforce::Client::new(
                settings.clone(),
                conn.org_id.clone(),
                config.salesforce.login_url.clone(),
                vault.clone(),
                tokens.clone(),
            );
            match client {
                Ok(c) => {
                    let c =
                        c.with_timeout(Duration::from_secs(config.salesforce.request_timeout_s));
                    // The org is checked again at every start: its admin may have changed it.
                    self.state.setup.run_in_background(c.clone());
                    self.connect_salesforce(c);
                }
                Err(e) => tracing::error!(org = %conn.org_id, error = %e, "salesforce client"),
            }
        }
        for conn in &config.connections {
            self.connect_stored_users(config, &flow, &conn.org_id);
        }
    }

    /// Connects the application users who connected their own Salesforce user to `org`: each
    /// first call refreshes their session.
    fn connect_stored_users(
        &self,
        config: &Config,
        flow: &crate::http::oauth::OAuthFlow,
        org: &crate::domain::OrgId,
    ) {
        let users = match self.state.store.connected_users(org) {
            Ok(users) => users,
            Err(e) => {
                tracing::error!(org = %org, error = %e, "reading the user connections");
                return;
            }
        };
        for user in users {
            let tokens = Arc::new(crate::sync::tokens::UserTokens::new(
                self.state.store.clone(),
                user.clone(),
            ));
            match crate::salesforce::Client::new(
                flow.settings().clone(),
                org.clone(),
                config.salesforce.login_url.clone(),
                flow.vault(),
                tokens,
            ) {
                Ok(c) => {
                    let timeout = Duration::from_secs(config.salesforce.request_timeout_s);
                    tracing::info!(org = %org, user = %user, "salesforce user connection added");
                    self.state.pull.orgs.insert_user(c.with_timeout(timeout));
                }
                Err(e) => {
                    tracing::error!(org = %org, user = %user, error = %e, "salesforce client")
                }
            }
        }
    }

    fn spawn_pull_workers(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let worker = crate::worker::inbox::InboxWorker::new(
            self.state.store.clone(),
            self.state.pull.clone(),
            self.inbox.clone(),
        );
        tracker.spawn(worker.run(shutdown.clone()));
        if self.sweep_interval.is_zero() {
            return;
        }
        let (store, ctx, every, token) = (
            self.state.store.clone(),
            self.state.pull.clone(),
            self.sweep_interval,
            shutdown.clone(),
        );
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {
                        for client in ctx.orgs.all() {
                            let (org, telemetry) = (client.org_id(), ctx.orgs.telemetry());
                            match crate::sync::sweep::sweep_org(&store, &client).await {
                                Ok(_) => telemetry.metrics.sweep_succeeded(org),
                                Err(e) => {
                                    tracing::warn!(org = %org, error = %e, "sweep failed; it runs again on schedule");
                                    telemetry.errors.record(org, ErrorSource::Sweep, &e);
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------- the app's side: deliveries of
// the change log to the app's webhooks, and its compaction.
impl App {
    fn spawn_app_side(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let c = &self.changes;
        crate::worker::app_webhooks::spawn_all(
            tracker,
            &self.state.store,
            &self.state.app_webhooks,
            &crate::worker::app_webhooks::DeliverySettings::from_config(
                c,
                self.limits.shutdown_grace,
            ),
            Duration::from_secs(c.delivery_timeout_s),
            shutdown,
        );
        let store = self.state.store.clone();
        let retention = Duration::from_secs(c.retention_hours * 3600);
        every(tracker, COMPACT_EVERY, shutdown, move || {
            let cutoff = chrono::Utc::now() - retention;
            match store.compact_changes(cutoff, COMPACT_BATCH) {
                Ok(n) if n > 0 => tracing::info!(removed = n, "change log compacted"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "change log compaction failed"),
            }
        });
    }
}

/// Runs `task` at start and then every `period` until `shutdown`.
fn every(
    tracker: &TaskTracker,
    period: Duration,
    shutdown: &CancellationToken,
    mut task: impl FnMut() + Send + 'static,
) {
    let token = shutdown.clone();
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => task(),
            }
        }
    });
}

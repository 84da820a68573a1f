//! The command line: `sfsync serve | replay | bench | simulator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sfsync: keeps a sales application in sync with Salesforce.
#[derive(Debug, Parser)]
#[command(name = "sfsync", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text (`SFSYNC_LOG_JSON` takes 1/0, true/false, yes/no).
    #[arg(
        long,
        global = true,
        env = "SFSYNC_LOG_JSON",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: webhooks, local API, workers.
    Serve(ServeArgs),
    /// Post fixture files to a running service: `.xml` as Outbound Messages, `.json` as signed
    /// events. Prints one result line per file.
    Replay(ReplayArgs),
    /// Measure a figure; prints one summary line last.
    Bench(BenchArgs),
    /// Run a Salesforce org on loopback; prints one JSON line with its credentials.
    Simulator(SimulatorArgs),
    /// Simulator, service, real notifications and pushes, then a summary. No setup needed.
    Demo(DemoArgs),
    /// Import from Salesforce through a running service, with a progress bar.
    Import(ImportArgs),
    /// List, retry or discard outbox entries of a running service.
    Outbox(OutboxArgs),
    /// Print a running service's status: connections, inbox, outbox, API usage.
    Status(ServiceArgs),
    /// Check an org's Salesforce setup through a running service (marker field, field and object
    /// access, API version); exits non-zero when anything is missing.
    Doctor(ServiceOrgArgs),
    /// Print a running service's change feed, one line per change; with --follow, as it happens.
    Changes(ChangesArgs),
}

/// `sfsync changes`.
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// The running service.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Start after this sequence number (default: from the oldest change kept).
    #[arg(long)]
    pub after: Option<u64>,
    /// Only these types, comma-separated: kind.what or kind.* (e.g. contact.*,company.pushed).
    #[arg(long)]
    pub types: Option<String>,
    /// Keep printing changes as they happen, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Print each change as its JSON entry instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// A running service to call: `sfsync status`, and part of the other client commands.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Base URL of the running service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API bearer token.
    #[arg(long, env = "SFSYNC_API_TOKEN")]
    pub token: String,
}

impl ServiceArgs {
    /// The URL of `path` under the service's `/api/v1`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url.trim_end_matches('/'))
    }
}

/// A running service and, optionally, one of its orgs: `sfsync doctor`, and part of `outbox`.
#[derive(Debug, Args)]
pub struct ServiceOrgArgs {
    /// The running service.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The org (needed when the service has several).
    #[arg(long)]
    pub org: Option<String>,
}

/// `sfsync simulator`.
#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Where to send Outbound Messages (the service's outbound webhook URL).
    #[arg(long)]
    pub outbound_url: Option<String>,
    /// Seed for ids, credentials and faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The exactly-once marker field the org has on Account, Contact, Lead, Opportunity, Task
    /// and Event (sfsync's `outbox.marker_field`).
    #[arg(long, default_value = "Sfsync_Id__c")]
    pub marker_field: String,
    /// Start an org without the marker field, as before an admin sets it up.
    #[arg(long)]
    pub without_marker_field: bool,
}

/// `sfsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Accounts in the seeded org.
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
    /// Seed for the simulated org.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `sfsync import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Base URL of the running service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API bearer token.
    #[arg(long, env = "SFSYNC_API_TOKEN")]
    pub token: String,
    /// The org to import into.
    #[arg(long)]
    pub org: String,
    /// What to import.
    #[command(subcommand)]
    pub what: ImportWhat,
}

/// What `sfsync import` brings in.
#[derive(Debug, Subcommand)]
pub enum ImportWhat {
    /// Accounts matching a SOQL WHERE clause (empty: all).
    Accounts {
        /// The WHERE clause, e.g. "Industry = 'Energy'".
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Contacts and Leads of an Account.
    Contacts {
        /// The Account id.
        #[arg(long)]
        account: String,
    },
    /// Opportunities of an Account.
    Opportunities {
        /// The Account id.
        #[arg(long)]
        account: String,
    },
    /// The records of one list view of an object.
    ListView {
        /// Account, Contact, Lead or Opportunity.
        #[arg(long)]
        object: String,
        /// The list view's id (00B…), as `sfsync import list-views` prints it.
        #[arg(long)]
        id: String,
    },
    /// Lists an object's list views (nothing is imported).
    ListViews {
        /// Account, Contact, Lead or Opportunity.
        #[arg(long)]
        object: String,
    },
}

/// `sfsync outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// The running service and the org.
    #[command(flatten)]
    pub target: ServiceOrgArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: OutboxAction,
}

/// `sfsync outbox` actions.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// List entries, optionally by state (pending or dead; delivered entries are removed).
    List {
        /// Only this state.
        #[arg(long)]
        state: Option<String>,
    },
    /// Retry a dead entry now.
    Retry {
        /// The entry id.
        id: u64,
    },
    /// Discard a dead entry.
    Discard {
        /// The entry id.
        id: u64,
    },
}

/// `sfsync serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML config file (see deploy/sfsync.example.toml).
    #[arg(long, short, env = "SFSYNC_CONFIG")]
    pub config: PathBuf,
}

/// `sfsync replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Base URL of the service, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// The connection's webhook key (last path segment).
    #[arg(long)]
    pub key: String,
    /// A Standard Webhooks secret (`whsec_…`) to sign `.json` files with.
    #[arg(long, env = "SFSYNC_REPLAY_SECRET")]
    pub secret: Option<String>,
    /// Fixture files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `sfsync bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable acked notifications per second against the HTTP floor.
    Ingest(IngestBenchArgs),
    /// API calls per record and change-to-local-write latency of the pull side.
    Pull(PullBenchArgs),
    /// API calls per record and drain rate of the push side.
    Push(PushBenchArgs),
    /// Time from a change in Salesforce to the app holding its verified, signed event.
    Feed(FeedBenchArgs),
    /// RSS per remembered notification id.
    Dedupe(DedupeBenchArgs),
    /// The service (its own process) holding many records over many orgs: peak RSS, store
    /// bytes per record, start-up time, pull and read p99.
    Scale(ScaleBenchArgs),
    /// Mixed load under faults with the service SIGKILLed every minute, then the store compared
    /// with the org (not run in CI).
    Soak(SoakBenchArgs),
}

/// `sfsync bench scale`.
#[derive(Debug, Args)]
pub struct ScaleBenchArgs {
    /// Records in all, half Accounts and half Contacts, spread evenly over the orgs.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Simulated orgs, each connected to the one service.
    #[arg(long, default_value_t = 100)]
    pub orgs: usize,
    /// Single-record pulls and API reads timed at the end (each).
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
    /// Orgs importing at the same time.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Where to put the temporary store (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `sfsync bench soak`.
#[derive(Debug, Args)]
pub struct SoakBenchArgs {
    /// How long the load runs; the service is SIGKILLed once in every minute of it.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Seed for the kill moments and the load's choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `sfsync bench feed`.
#[derive(Debug, Args)]
pub struct FeedBenchArgs {
    /// Distinct records changed, once each.
    #[arg(long, default_value_t = 2_000)]
    pub records: usize,
    /// Simulated Salesforce API latency in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
}

/// `sfsync bench pull`.
#[derive(Debug, Args)]
pub struct PullBenchArgs {
    /// Distinct records changed.
    #[arg(long, default_value_t = 10_000)]
    pub records: usize,
    /// Notifications per record, delivered out of order.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Simulated Salesforce API latency in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Outbound Messages the simulated org has in flight at once.
    #[arg(long, default_value_t = 1)]
    pub outbound_concurrency: usize,
    /// The fields each Account notification carries: `setup`, the four the Salesforce setup
    /// guide (deploy/salesforce/README.md) asks for, or `all`, the simulated org's default
    /// action (15 fields).
    #[arg(long, value_enum, default_value_t = MessageFields::Setup)]
    pub message_fields: MessageFields,
}

/// Which fields a benchmark's Outbound Messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFields {
    /// `Id`, `SystemModstamp`, `LastModifiedById` and `LastModifiedDate`.
    Setup,
    /// Every field of the simulated org's default Account action.
    All,
}

/// `sfsync bench push`.
#[derive(Debug, Args)]
pub struct PushBenchArgs {
    /// Local changes of mixed kinds.
    #[arg(long, default_value_t = 10_000)]
    pub records: usize,
    /// Simulated Salesforce API latency in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
}

/// `sfsync bench dedupe`.
#[derive(Debug, Args)]
pub struct DedupeBenchArgs {
    /// Unique notification ids to store.
    #[arg(long, default_value_t = 1_000_000)]
    pub ids: u64,
    /// Notifications per message.
    #[arg(long, default_value_t = 100)]
    pub per_message: u64,
    /// Concurrent senders.
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Distinct records the notifications name (the pending queue's size).
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// `has_seen` calls timed after the ingest.
    #[arg(long, default_value_t = 20_000)]
    pub lookups: u64,
    /// Where to put the temporary store (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `sfsync bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Concurrent senders.
    #[arg(long, default_value_t = 32)]
    pub senders: usize,
    /// Notifications per message.
    #[arg(long, default_value_t = 10)]
    pub per_message: usize,
    /// Messages per run.
    #[arg(long, default_value_t = 4000)]
    pub messages: usize,
    /// How many floor/durable pairs to run; the pair with the median ratio is reported.
    #[arg(long, default_value_t = 5)]
    pub pairs: usize,
    /// Where to put the temporary store (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Listen address for the servers under test.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

//! The command line: `sfsync serve | replay | bench | simulator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sfsync: keeps a sales application in sync with Salesforce.
#[derive(Debug, Parser)]
#[command(name = "sfsync", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "SFSYNC_LOG_JSON")]
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
    /// Messages per run (each of the two runs).
    #[arg(long, default_value_t = 4000)]
    pub messages: usize,
    /// Where to put the temporary store (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Listen address for the servers under test.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

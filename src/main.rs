//! The `sfsync` binary: parse the command line, load config, start telemetry, hand over.

use anyhow::Context;
use clap::Parser;
use sfsync::cli::{BenchCommand, Cli, Command};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The allocator: jemalloc, with the defaults `.cargo/config.toml` builds in (a background
/// thread returns freed memory about a second after a burst). The system allocator kept what a
/// burst of small allocations spread over the worker threads' arenas: a million ids arriving at
/// once left about 100 MiB resident after they were freed.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_tracing(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Cancels the token on SIGINT or SIGTERM.
fn shutdown_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
        token.cancel();
    });
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo and the benchmarks print their own report; their logs stay quiet unless asked.
    let default_level = match cli.command {
        Command::Demo(_) | Command::Bench(_) => "warn",
        _ => "info",
    };
    init_tracing(cli.log_json, default_level);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes joined, no backtrace: what an operator reads first.
            eprintln!("sfsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = sfsync::config::Config::load(&args.config)?;
            let app = sfsync::app::App::build(&config)
                .await
                .context("starting sfsync")?;
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone());
            app.run_until(token).await
        }
        Command::Replay(args) => {
            let failed = sfsync::tools::replay::run(&args).await?;
            if failed > 0 {
                anyhow::bail!("{failed} file(s) were not accepted");
            }
            Ok(())
        }
        Command::Bench(args) => match args.which {
            BenchCommand::Ingest(a) => sfsync::tools::bench::ingest::run(&a).await,
            BenchCommand::Pull(a) => sfsync::tools::bench::pull::run(&a).await,
            BenchCommand::Push(a) => sfsync::tools::bench::push::run(&a).await,
            BenchCommand::Feed(a) => sfsync::tools::bench::feed::run(&a).await,
            BenchCommand::Dedupe(a) => sfsync::tools::bench::dedupe::run(&a).await,
            BenchCommand::Scale(a) => sfsync::tools::bench::scale::run(&a).await,
            BenchCommand::Soak(a) => sfsync::tools::bench::soak::run(&a).await,
        },
        Command::Simulator(a) => {
            let config = sfsync::simulator::SimulatorConfig {
                seed: a.seed,
                outbound_url: a.outbound_url,
                marker_field: (!a.without_marker_field).then_some(a.marker_field),
                ..Default::default()
            };
            sfsync::simulator::run_cli(a.listen, config).await
        }
        Command::Demo(a) => sfsync::tools::demo::run(&a).await,
        Command::Import(a) => sfsync::tools::commands::import(&a).await,
        Command::Outbox(a) => sfsync::tools::commands::outbox(&a).await,
        Command::Status(a) => sfsync::tools::commands::status(&a).await,
        Command::Doctor(a) => sfsync::tools::commands::doctor(&a).await,
        Command::Changes(a) => sfsync::tools::commands::changes(&a).await,
    }
}

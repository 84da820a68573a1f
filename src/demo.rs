//! `sfsync demo` (being written).

/// Runs the demo.
pub async fn run(_args: &crate::cli::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("sfsync demo is not available in this build yet")
}

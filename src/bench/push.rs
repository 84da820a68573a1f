//! `sfsync bench push` (being written).

/// Runs `bench push`.
pub async fn run(_args: &crate::cli::PushBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("sfsync bench push is not available in this build yet")
}

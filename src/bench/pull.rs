//! `sfsync bench pull` (being written).

/// Runs `bench pull`.
pub async fn run(_args: &crate::cli::PullBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("sfsync bench pull is not available in this build yet")
}

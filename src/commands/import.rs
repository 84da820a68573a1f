//! `sfsync import` (being written).

/// Starts an import on a running service and shows its progress.
pub async fn import(_args: &crate::cli::ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("sfsync import is not available in this build yet")
}

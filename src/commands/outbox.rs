//! `sfsync outbox` (being written).

/// Lists, retries or discards outbox entries on a running service.
pub async fn outbox(_args: &crate::cli::OutboxArgs) -> anyhow::Result<()> {
    anyhow::bail!("sfsync outbox is not available in this build yet")
}

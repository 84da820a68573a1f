//! The org's setup checked now, on request (`GET /api/v1/setup`, `sfsync doctor`).

use crate::domain::OrgId;
use crate::sync::orgs::PullContext;
use crate::sync::setup::{Setup, SetupReport};

use super::{LocalError, LocalResult};

/// Reads the connected org's describe and reports what is missing for sync to work.
pub async fn check(ctx: &PullContext, setup: &Setup, org: OrgId) -> LocalResult<SetupReport> {
    let client = ctx
        .orgs
        .get(&org)
        .ok_or_else(|| LocalError::NotConnected(org.clone()))?;
    Ok(setup.run(&client).await?)
}

//! Kept while branches written before the single harness are merged; everything is in
//! [`crate::support`], and this module goes once they are in.
#![allow(dead_code, unused_imports)]

pub use crate::support::*;

/// The two intake orgs as a config file (see [`two_org_config_file`]).
pub fn config_toml(store: &std::path::Path, secrets: &[&str]) -> String {
    two_org_config_file(store, secrets, "")
}

//! sfsync's integration tests: one binary, the real server on 127.0.0.1:0 with a temporary store.

#![allow(unreachable_pub, missing_docs)]

mod config_cli;
mod crash;
mod deploy_kit;
mod deploy_kubernetes;
mod helpers;
mod history_api;
mod hostile_clients;
mod intake_hostile;
mod intake_outbound;
mod intake_signed;
mod oauth_connect;
mod operator_env;
mod operator_path;
mod paging_api;
mod processes;
mod properties;
mod pull_api;
mod pull_e2e;
mod pull_rules;
mod pull_storm;
mod pull_sweep;
mod pull_worker;
mod push_api;
mod push_echo;
mod push_faults;
mod push_rules;
mod push_support;
mod salesforce_client;
mod setup_check;
mod simulator;
mod status_api;
mod store_records;
mod support;

//! One integration-test binary: the real server, real HTTP, a real database per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod browser;
mod bulk;
mod cli;
mod crash_safety;
mod discovery;
mod downstream;
mod errors;
mod events;
mod filters;
mod groups;
mod http_fuzz_regressions;
mod idp_entra;
mod idp_okta;
mod instances;
mod license_changes;
mod licensing;
mod metrics;
mod operator_api;
mod rate_limits;
mod seat_counters;
mod seat_mappings;
mod security;
mod shutdown;
mod storage;
mod tokens;
mod users;

//! seatbridge: a multi-tenant SCIM 2.0 provisioning bridge that enforces software licenses at
//! the moment identities are provisioned.
//!
//! Layout: [`scim`] (protocol), [`provisioning`] (the write path), [`store`] (database),
//! [`auth`] (SCIM bearer tokens), [`admin`] (OIDC login, roles, web UI), [`api`] (admin and
//! product JSON API), [`app`] (routes), [`cli`], [`config`], [`telemetry`].

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod entitlements;
pub mod events;
pub mod license;
pub mod licensing;
pub mod metrics;
pub mod provisioning;
pub mod rate_limit;
pub mod scim;
pub mod store;
pub mod telemetry;

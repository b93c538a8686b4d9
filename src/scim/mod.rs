//! The SCIM 2.0 protocol (RFC 7643/7644): schemas, resources, filters, PATCH, list parameters,
//! projection, errors and the HTTP handlers. No database types in here: handlers call
//! `provisioning`.

pub mod bulk;
pub mod client;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod http;
pub mod json_out;
pub mod list;
pub mod patch;
pub mod projection;
pub mod render;
pub mod resource;
pub mod schema;

/// The SCIM media type (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

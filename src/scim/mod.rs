//! The SCIM 2.0 protocol (RFC 7643/7644): schemas, resources, filters, PATCH, list parameters,
//! errors and the HTTP handlers. No database types in here: handlers call `provisioning`.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;

/// The SCIM media type (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

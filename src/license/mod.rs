//! The license engine: plans, licenses and the seat/tier decision. Pure domain logic — no HTTP
//! and no database types; `provisioning` loads the facts, asks here, and writes the verdict in
//! the same transaction.

pub mod decision;
pub mod model;
pub mod token;

pub use decision::{admit, effective_status, limit_of, rebalance, AdmitError, Rebalance, SeatHolder, SeatRequest};
pub use model::{EntitlementReason, License, LicenseStatus, Plan, Policy, DEFAULT_SEAT_TYPE};

pub mod scim;
pub mod store;

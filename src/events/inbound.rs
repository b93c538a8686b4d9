//! Inbound billing webhooks (to be completed).

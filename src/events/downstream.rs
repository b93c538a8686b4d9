//! The downstream SCIM connector: mirrors a tenant's users with access, and its groups, to the
//! product's own SCIM endpoint. (Being built.)

use super::relay::RelaySettings;
use crate::store::events::Claimed;

/// Applies one event to the downstream SCIM service.
pub async fn deliver(_client: &reqwest::Client, _settings: &RelaySettings, c: &Claimed) -> Result<(), String> {
    Err(format!(
        "downstream SCIM delivery of {} is not available yet",
        c.event_type
    ))
}

//! Plans (tiers), licenses and the vocabulary of entitlement decisions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// The pool a user occupies when neither the IdP nor a group mapping says otherwise. Its size
/// is the license's `seats`.
pub const DEFAULT_SEAT_TYPE: &str = "default";

/// A plan (tier) from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    /// Entitlements such as `scim.groups`, `scim.enterprise`, `sso`.
    pub features: Vec<String>,
    /// Seats a new license on this plan gets when none are given.
    pub seats_default: i64,
    /// Extra seat pools by seat type; `None` means unlimited.
    pub seat_pools: BTreeMap<String, Option<i64>>,
    pub grace_days: i64,
    /// Overage allowance: 1.0 = none, 1.25 = a quarter more than licensed.
    pub overage: f64,
}

impl Plan {
    /// Does the plan include this feature?
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Lifecycle state of a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LicenseStatus {
    /// Seats may be assigned.
    Active,
    /// Past `expires_at`, inside the grace days: existing users keep access, no new seats.
    Grace,
    /// Past the grace days: nobody is entitled.
    Expired,
    /// Suspended by an operator or billing (e.g. payment failed): nobody is entitled.
    Suspended,
}

impl LicenseStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Active => "active",
            LicenseStatus::Grace => "grace",
            LicenseStatus::Expired => "expired",
            LicenseStatus::Suspended => "suspended",
        }
    }

    /// True when users may hold seats at all.
    pub fn allows_access(self) -> bool {
        matches!(self, LicenseStatus::Active | LicenseStatus::Grace)
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LicenseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(LicenseStatus::Active),
            "grace" => Ok(LicenseStatus::Grace),
            "expired" => Ok(LicenseStatus::Expired),
            "suspended" => Ok(LicenseStatus::Suspended),
            other => Err(format!("unknown license status '{other}'")),
        }
    }
}

/// What happens to entitled users when seats shrink or the plan is downgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Keep everyone who is entitled; refuse new seats until usage is under the limit.
    BlockNew,
    /// The most recently entitled users lose their entitlement until usage fits.
    DeactivateNewest,
}

impl Policy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::BlockNew => "block_new",
            Policy::DeactivateNewest => "deactivate_newest",
        }
    }
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block_new" => Ok(Policy::BlockNew),
            "deactivate_newest" => Ok(Policy::DeactivateNewest),
            other => Err(format!("unknown policy '{other}' (use block_new or deactivate_newest)")),
        }
    }
}

/// A tenant's license.
#[derive(Debug, Clone, PartialEq)]
pub struct License {
    pub plan: String,
    /// Size of the default pool.
    pub seats: i64,
    pub starts_at: DateTime<Utc>,
    /// `None` = perpetual.
    pub expires_at: Option<DateTime<Utc>>,
    /// The stored status (`suspended` is only ever set explicitly).
    pub status: LicenseStatus,
    pub policy: Policy,
    pub version: i64,
    /// Usage-capped licenses: provisioning operations allowed per period.
    pub usage_cap: Option<i64>,
    /// `day` or `month`.
    pub usage_period: Option<String>,
}

/// Why a user is or is not entitled (published as `entitlementReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntitlementReason {
    /// Holds a seat.
    SeatAssigned,
    /// The IdP deactivated the user; no seat is held.
    Inactive,
    /// Active, but waiting for a free seat.
    SeatLimit,
    /// The license expired.
    LicenseExpired,
    /// The license is suspended.
    LicenseSuspended,
    /// Lost the seat when the plan was downgraded.
    PlanDowngrade,
    /// Lost the seat when the seat count was reduced.
    SeatReduction,
    /// An admin took the seat away (and holds it until they release it).
    Manual,
    /// The user's seat type names no pool of the plan.
    UnknownSeatType,
}

impl EntitlementReason {
    /// The published name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementReason::SeatAssigned => "seat_assigned",
            EntitlementReason::Inactive => "inactive",
            EntitlementReason::SeatLimit => "seat_limit",
            EntitlementReason::LicenseExpired => "license_expired",
            EntitlementReason::LicenseSuspended => "license_suspended",
            EntitlementReason::PlanDowngrade => "plan_downgrade",
            EntitlementReason::SeatReduction => "seat_reduction",
            EntitlementReason::Manual => "manual",
            EntitlementReason::UnknownSeatType => "unknown_seat_type",
        }
    }
}

impl fmt::Display for EntitlementReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            LicenseStatus::Active,
            LicenseStatus::Grace,
            LicenseStatus::Expired,
            LicenseStatus::Suspended,
        ] {
            assert_eq!(s.as_str().parse::<LicenseStatus>(), Ok(s));
        }
        for p in [Policy::BlockNew, Policy::DeactivateNewest] {
            assert_eq!(p.as_str().parse::<Policy>(), Ok(p));
        }
        assert!("nope".parse::<Policy>().is_err());
    }
}

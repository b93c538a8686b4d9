//! The decisions: what status a license is in now, how big a pool is, whether a user may take
//! a seat, and who gains or loses a seat when the license changes.

use chrono::{DateTime, Duration, Utc};

use super::model::{EntitlementReason, License, LicenseStatus, Plan, Policy, DEFAULT_SEAT_TYPE};

/// The status a license has at `now`, from its dates and the plan's grace days. A stored
/// `suspended` wins; otherwise time decides, so a missed sweeper run never grants extra access.
pub fn effective_status(license: &License, plan: &Plan, now: DateTime<Utc>) -> LicenseStatus {
    if license.status == LicenseStatus::Suspended {
        return LicenseStatus::Suspended;
    }
    match license.expires_at {
        None => LicenseStatus::Active,
        Some(expires) if now < expires => LicenseStatus::Active,
        Some(expires) if now < expires + Duration::days(plan.grace_days.max(0)) => LicenseStatus::Grace,
        Some(_) => LicenseStatus::Expired,
    }
}

/// The number of users that may be entitled in a pool (`None` = unlimited), including the
/// plan's overage allowance. `Err` lists the seat types that exist.
pub fn limit_of(plan: &Plan, license: &License, seat_type: &str) -> Result<Option<i64>, Vec<String>> {
    let base = if seat_type == DEFAULT_SEAT_TYPE {
        Some(license.seats)
    } else {
        match plan.seat_pools.get(seat_type) {
            Some(limit) => *limit,
            None => return Err(seat_types(plan)),
        }
    };
    Ok(base.map(|seats| with_overage(seats, plan.overage)))
}

/// Every seat type a plan offers, the default first.
pub fn seat_types(plan: &Plan) -> Vec<String> {
    std::iter::once(DEFAULT_SEAT_TYPE.to_string())
        .chain(
            plan.seat_pools
                .keys()
                .filter(|k| k.as_str() != DEFAULT_SEAT_TYPE)
                .cloned(),
        )
        .collect()
}

fn with_overage(seats: i64, overage: f64) -> i64 {
    if !(overage.is_finite() && overage >= 1.0) {
        return seats;
    }
    // Float precision: 20 × 1.25 must be exactly 25, not 24.999….
    ((seats as f64) * overage + 1e-9).floor() as i64
}

/// A request for a seat: the pool and how many other users hold one there.
#[derive(Debug, Clone, Copy)]
pub struct SeatRequest<'a> {
    pub seat_type: &'a str,
    pub in_use: i64,
}

/// Why a seat was refused. Each variant has a stable code and an admin-facing explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("seat limit reached: {in_use} of {limit} {pool}seats in use on plan {plan}; remove or deactivate a user, or raise the seat count")]
    SeatLimit {
        plan: String,
        pool: String,
        in_use: i64,
        limit: i64,
    },
    #[error("the license on plan {plan} expired; no seats can be assigned until it is renewed")]
    Expired { plan: String },
    #[error("the license on plan {plan} is in its grace period after expiry; existing users keep access but no new seats can be assigned until it is renewed")]
    Grace { plan: String },
    #[error("the license on plan {plan} is suspended; no seats can be assigned until it is reinstated")]
    Suspended { plan: String },
    #[error("seat type '{seat_type}' does not exist on plan {plan}; known seat types: {known}")]
    UnknownSeatType {
        plan: String,
        seat_type: String,
        known: String,
    },
}

impl AdmitError {
    /// Stable, greppable code for clients, logs and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::SeatLimit { .. } => "SEAT_LIMIT_REACHED",
            AdmitError::Expired { .. } => "LICENSE_EXPIRED",
            AdmitError::Grace { .. } => "LICENSE_IN_GRACE",
            AdmitError::Suspended { .. } => "LICENSE_SUSPENDED",
            AdmitError::UnknownSeatType { .. } => "UNKNOWN_SEAT_TYPE",
        }
    }
}

/// May one more user take a seat in `request.seat_type`?
pub fn admit(
    plan: &Plan,
    license: &License,
    status: LicenseStatus,
    request: SeatRequest<'_>,
) -> Result<(), AdmitError> {
    let name = || plan.name.clone();
    match status {
        LicenseStatus::Active => {}
        LicenseStatus::Grace => return Err(AdmitError::Grace { plan: name() }),
        LicenseStatus::Expired => return Err(AdmitError::Expired { plan: name() }),
        LicenseStatus::Suspended => return Err(AdmitError::Suspended { plan: name() }),
    }
    let limit = limit_of(plan, license, request.seat_type).map_err(|known| AdmitError::UnknownSeatType {
        plan: name(),
        seat_type: request.seat_type.to_string(),
        known: known.join(", "),
    })?;
    match limit {
        Some(limit) if request.in_use >= limit => Err(AdmitError::SeatLimit {
            plan: name(),
            pool: if request.seat_type == DEFAULT_SEAT_TYPE {
                String::new()
            } else {
                format!("'{}' ", request.seat_type)
            },
            in_use: request.in_use,
            limit,
        }),
        _ => Ok(()),
    }
}

/// A user as the rebalancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatHolder {
    pub id: String,
    pub seat_type: String,
    pub active: bool,
    pub entitled: bool,
    /// Ordering key: when the user got its seat (entitled) or started waiting (not entitled).
    /// Ties are broken by id (UUIDv7, creation order).
    pub since: DateTime<Utc>,
}

/// Seat changes that bring a tenant in line with its license.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebalance {
    /// Users losing their seat, with the reason.
    pub revoke: Vec<(String, EntitlementReason)>,
    /// Users gaining a seat.
    pub grant: Vec<String>,
}

impl Rebalance {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.revoke.is_empty() && self.grant.is_empty()
    }
}

/// Computes who gains and who loses a seat under `license` at `status`.
///
/// * Expired/suspended: every entitled user loses the seat.
/// * A pool over its limit: under `deactivate_newest` the most recently seated users lose their
///   seat (`shrink_reason`); under `block_new` everyone keeps theirs.
/// * A pool under its limit, license active: waiting users (active, not entitled) get seats,
///   oldest first. In grace nobody new gets a seat.
pub fn rebalance(
    plan: &Plan,
    license: &License,
    status: LicenseStatus,
    users: &[SeatHolder],
    shrink_reason: EntitlementReason,
) -> Rebalance {
    let mut out = Rebalance::default();
    if !status.allows_access() {
        let reason = if status == LicenseStatus::Suspended {
            EntitlementReason::LicenseSuspended
        } else {
            EntitlementReason::LicenseExpired
        };
        out.revoke = users
            .iter()
            .filter(|u| u.entitled)
            .map(|u| (u.id.clone(), reason))
            .collect();
        return out;
    }
    let mut pools: Vec<&str> = users.iter().map(|u| u.seat_type.as_str()).collect();
    pools.sort_unstable();
    pools.dedup();
    for pool in pools {
        // A pool the plan no longer has holds no seats.
        let limit = limit_of(plan, license, pool).unwrap_or(Some(0));
        let by_age = |a: &&SeatHolder, b: &&SeatHolder| a.since.cmp(&b.since).then_with(|| a.id.cmp(&b.id));
        let mut holders: Vec<&SeatHolder> = users.iter().filter(|u| u.seat_type == pool && u.entitled).collect();
        holders.sort_by(by_age);
        let mut waiting: Vec<&SeatHolder> = users
            .iter()
            .filter(|u| u.seat_type == pool && u.active && !u.entitled)
            .collect();
        waiting.sort_by(by_age);
        let Some(limit) = limit else {
            if status == LicenseStatus::Active {
                out.grant.extend(waiting.iter().map(|u| u.id.clone()));
            }
            continue;
        };
        let held = i64::try_from(holders.len()).unwrap_or(i64::MAX);
        if held > limit {
            if license.policy == Policy::DeactivateNewest {
                let excess = usize::try_from(held - limit).unwrap_or(0);
                out.revoke
                    .extend(holders.iter().rev().take(excess).map(|u| (u.id.clone(), shrink_reason)));
            }
        } else if status == LicenseStatus::Active {
            let free = usize::try_from(limit - held).unwrap_or(0);
            out.grant.extend(waiting.iter().take(free).map(|u| u.id.clone()));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn plan(pools: &[(&str, Option<i64>)], overage: f64) -> Plan {
        Plan {
            name: "team".into(),
            features: vec!["scim.users".into()],
            seats_default: 5,
            seat_pools: pools
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            grace_days: 7,
            overage,
        }
    }

    fn license(seats: i64, expires: Option<DateTime<Utc>>, policy: Policy) -> License {
        License {
            plan: "team".into(),
            seats,
            starts_at: Utc::now(),
            expires_at: expires,
            status: LicenseStatus::Active,
            policy,
            version: 1,
            usage_cap: None,
            usage_period: None,
        }
    }

    #[test]
    fn status_follows_expiry_and_grace() {
        let p = plan(&[], 1.0);
        let now = Utc::now();
        assert_eq!(
            effective_status(&license(1, None, Policy::BlockNew), &p, now),
            LicenseStatus::Active
        );
        let l = license(1, Some(now - Duration::days(1)), Policy::BlockNew);
        assert_eq!(effective_status(&l, &p, now), LicenseStatus::Grace);
        let l = license(1, Some(now - Duration::days(8)), Policy::BlockNew);
        assert_eq!(effective_status(&l, &p, now), LicenseStatus::Expired);
        let mut l = license(1, None, Policy::BlockNew);
        l.status = LicenseStatus::Suspended;
        assert_eq!(effective_status(&l, &p, now), LicenseStatus::Suspended);
    }

    #[test]
    fn overage_raises_the_limit() {
        let l = license(20, None, Policy::BlockNew);
        assert_eq!(limit_of(&plan(&[], 1.25), &l, DEFAULT_SEAT_TYPE), Ok(Some(25)));
        assert_eq!(limit_of(&plan(&[], 1.0), &l, DEFAULT_SEAT_TYPE), Ok(Some(20)));
        assert_eq!(limit_of(&plan(&[("viewer", None)], 1.5), &l, "viewer"), Ok(None));
        assert!(limit_of(&plan(&[], 1.0), &l, "viewer").is_err());
    }

    #[test]
    fn admission_refuses_at_the_limit_with_an_actionable_message() {
        let p = plan(&[], 1.0);
        let l = license(25, None, Policy::BlockNew);
        assert!(admit(
            &p,
            &l,
            LicenseStatus::Active,
            SeatRequest {
                seat_type: DEFAULT_SEAT_TYPE,
                in_use: 24
            }
        )
        .is_ok());
        let err = admit(
            &p,
            &l,
            LicenseStatus::Active,
            SeatRequest {
                seat_type: DEFAULT_SEAT_TYPE,
                in_use: 25,
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), "SEAT_LIMIT_REACHED");
        assert_eq!(
            err.to_string(),
            "seat limit reached: 25 of 25 seats in use on plan team; remove or deactivate a user, or raise the seat count"
        );
    }

    #[test]
    fn no_new_seats_outside_active() {
        let p = plan(&[], 1.0);
        let l = license(25, None, Policy::BlockNew);
        for (status, code) in [
            (LicenseStatus::Grace, "LICENSE_IN_GRACE"),
            (LicenseStatus::Expired, "LICENSE_EXPIRED"),
            (LicenseStatus::Suspended, "LICENSE_SUSPENDED"),
        ] {
            let err = admit(
                &p,
                &l,
                status,
                SeatRequest {
                    seat_type: DEFAULT_SEAT_TYPE,
                    in_use: 0,
                },
            )
            .unwrap_err();
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn pools_are_separate() {
        let p = plan(&[("viewer", Some(2))], 1.0);
        let l = license(1, None, Policy::BlockNew);
        assert!(admit(
            &p,
            &l,
            LicenseStatus::Active,
            SeatRequest {
                seat_type: "viewer",
                in_use: 1
            }
        )
        .is_ok());
        let err = admit(
            &p,
            &l,
            LicenseStatus::Active,
            SeatRequest {
                seat_type: "viewer",
                in_use: 2,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("2 of 2 'viewer' seats"), "{err}");
        let err = admit(
            &p,
            &l,
            LicenseStatus::Active,
            SeatRequest {
                seat_type: "admin",
                in_use: 0,
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), "UNKNOWN_SEAT_TYPE");
        assert!(err.to_string().contains("default, viewer"), "{err}");
    }

    fn holder(id: u32, pool: &str, active: bool, entitled: bool) -> SeatHolder {
        SeatHolder {
            id: format!("u{id:03}"),
            seat_type: pool.into(),
            active,
            entitled,
            since: DateTime::from_timestamp(i64::from(id), 0).unwrap(),
        }
    }

    #[test]
    fn expiry_revokes_everyone_and_renewal_reseats_oldest_first() {
        let p = plan(&[], 1.0);
        let users: Vec<SeatHolder> = (0..4).map(|i| holder(i, DEFAULT_SEAT_TYPE, true, true)).collect();
        let r = rebalance(
            &p,
            &license(4, None, Policy::BlockNew),
            LicenseStatus::Expired,
            &users,
            EntitlementReason::SeatReduction,
        );
        assert_eq!(r.revoke.len(), 4);
        assert!(r
            .revoke
            .iter()
            .all(|(_, why)| *why == EntitlementReason::LicenseExpired));
        let waiting: Vec<SeatHolder> = (0..4).map(|i| holder(i, DEFAULT_SEAT_TYPE, true, false)).collect();
        let r = rebalance(
            &p,
            &license(2, None, Policy::BlockNew),
            LicenseStatus::Active,
            &waiting,
            EntitlementReason::SeatReduction,
        );
        assert_eq!(r.grant, vec!["u000", "u001"]);
    }

    #[test]
    fn seat_reduction_follows_policy() {
        let p = plan(&[], 1.0);
        let users: Vec<SeatHolder> = (0..5).map(|i| holder(i, DEFAULT_SEAT_TYPE, true, true)).collect();
        let r = rebalance(
            &p,
            &license(3, None, Policy::BlockNew),
            LicenseStatus::Active,
            &users,
            EntitlementReason::SeatReduction,
        );
        assert!(r.is_empty());
        let r = rebalance(
            &p,
            &license(3, None, Policy::DeactivateNewest),
            LicenseStatus::Active,
            &users,
            EntitlementReason::SeatReduction,
        );
        let ids: Vec<&str> = r.revoke.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, vec!["u004", "u003"]);
    }

    #[test]
    fn grace_keeps_holders_but_seats_nobody_new() {
        let p = plan(&[], 1.0);
        let users = vec![
            holder(0, DEFAULT_SEAT_TYPE, true, true),
            holder(1, DEFAULT_SEAT_TYPE, true, false),
        ];
        let r = rebalance(
            &p,
            &license(5, None, Policy::BlockNew),
            LicenseStatus::Grace,
            &users,
            EntitlementReason::SeatReduction,
        );
        assert!(r.is_empty());
    }

    /// One step of a simulated tenant.
    #[derive(Debug, Clone)]
    enum Step {
        Create { pool: bool, active: bool },
        SetActive { user: usize, active: bool },
        Delete { user: usize },
        Move { user: usize },
        SetSeats { seats: i64, viewer: i64 },
        Expire,
        Renew,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (any::<bool>(), any::<bool>()).prop_map(|(pool, active)| Step::Create { pool, active }),
            (0usize..40, any::<bool>()).prop_map(|(user, active)| Step::SetActive { user, active }),
            (0usize..40).prop_map(|user| Step::Delete { user }),
            (0usize..40).prop_map(|user| Step::Move { user }),
            (0i64..8, 0i64..5).prop_map(|(seats, viewer)| Step::SetSeats { seats, viewer }),
            Just(Step::Expire),
            Just(Step::Renew),
        ]
    }

    /// Applies the engine the way provisioning does: admissions through `admit`, and a
    /// `rebalance` after every change that can free or shrink seats.
    fn simulate(steps: &[Step], policy: Policy) -> Result<(), TestCaseError> {
        let mut p = plan(&[("viewer", Some(2))], 1.0);
        let mut l = license(3, None, policy);
        let mut status = LicenseStatus::Active;
        let mut users: Vec<SeatHolder> = Vec::new();
        let mut clock = 0u32;
        let apply = |users: &mut Vec<SeatHolder>, r: Rebalance| {
            for (id, _) in r.revoke {
                if let Some(u) = users.iter_mut().find(|u| u.id == id) {
                    u.entitled = false;
                }
            }
            for id in r.grant {
                if let Some(u) = users.iter_mut().find(|u| u.id == id) {
                    u.entitled = true;
                }
            }
        };
        let in_use = |users: &[SeatHolder], pool: &str, except: Option<&str>| {
            users
                .iter()
                .filter(|u| u.entitled && u.seat_type == pool && Some(u.id.as_str()) != except)
                .count() as i64
        };
        for s in steps {
            clock += 1;
            let before: Vec<i64> = [DEFAULT_SEAT_TYPE, "viewer"]
                .iter()
                .map(|pool| in_use(&users, pool, None))
                .collect();
            match s.clone() {
                Step::Create { pool, active } => {
                    let pool = if pool { "viewer" } else { DEFAULT_SEAT_TYPE };
                    let mut u = holder(clock, pool, active, false);
                    if active {
                        let req = SeatRequest {
                            seat_type: pool,
                            in_use: in_use(&users, pool, None),
                        };
                        if admit(&p, &l, status, req).is_err() {
                            continue; // refused: nothing written
                        }
                        u.entitled = true;
                    }
                    users.push(u);
                }
                Step::SetActive { user, active } => {
                    let Some(idx) = (!users.is_empty()).then(|| user % users.len()) else {
                        continue;
                    };
                    let was = users[idx].clone();
                    if active && !was.active {
                        let req = SeatRequest {
                            seat_type: &was.seat_type,
                            in_use: in_use(&users, &was.seat_type, Some(&was.id)),
                        };
                        if admit(&p, &l, status, req).is_err() {
                            continue;
                        }
                        users[idx].entitled = true;
                    }
                    users[idx].active = active;
                    if !active {
                        users[idx].entitled = false;
                    }
                }
                Step::Delete { user } => {
                    if !users.is_empty() {
                        let idx = user % users.len();
                        users.remove(idx);
                    }
                }
                Step::Move { user } => {
                    let Some(idx) = (!users.is_empty()).then(|| user % users.len()) else {
                        continue;
                    };
                    let target = if users[idx].seat_type == "viewer" {
                        DEFAULT_SEAT_TYPE
                    } else {
                        "viewer"
                    };
                    if users[idx].entitled {
                        let req = SeatRequest {
                            seat_type: target,
                            in_use: in_use(&users, target, None),
                        };
                        if admit(&p, &l, status, req).is_err() {
                            continue;
                        }
                    }
                    users[idx].seat_type = target.to_string();
                }
                Step::SetSeats { seats, viewer } => {
                    l.seats = seats;
                    p.seat_pools.insert("viewer".into(), Some(viewer));
                }
                Step::Expire => status = LicenseStatus::Expired,
                Step::Renew => status = LicenseStatus::Active,
            }
            let r = rebalance(&p, &l, status, &users, EntitlementReason::SeatReduction);
            apply(&mut users, r);

            for (i, pool) in [DEFAULT_SEAT_TYPE, "viewer"].into_iter().enumerate() {
                let limit = limit_of(&p, &l, pool).unwrap().unwrap();
                let held = in_use(&users, pool, None);
                let waiting = users.iter().any(|u| u.seat_type == pool && u.active && !u.entitled);
                // block_new may leave a pool over a reduced limit, but never grows it past it.
                let ceiling = if policy == Policy::BlockNew {
                    limit.max(before[i])
                } else {
                    limit
                };
                prop_assert!(held <= ceiling, "pool {pool}: {held} entitled > {ceiling}");
                if status == LicenseStatus::Active {
                    prop_assert!(
                        !(waiting && held < limit),
                        "pool {pool}: someone waits while {held} < {limit}"
                    );
                } else {
                    prop_assert_eq!(held, 0);
                }
            }
            prop_assert!(
                users.iter().all(|u| u.active || !u.entitled),
                "an inactive user holds a seat"
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn seats_never_exceed_limits_and_nobody_waits_beside_a_free_seat(steps in proptest::collection::vec(step(), 0..60)) {
            simulate(&steps, Policy::DeactivateNewest)?;
        }

        #[test]
        fn block_new_never_admits_over_the_limit(steps in proptest::collection::vec(step(), 0..60)) {
            simulate(&steps, Policy::BlockNew)?;
        }
    }
}

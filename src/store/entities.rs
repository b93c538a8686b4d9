//! sea-orm entities, one module per table (see `migrations/` for the schema and its indexes).

/// A tenant: one customer organisation, addressed by SCIM tokens.
pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub slug: String,
        pub name: String,
        pub created_at: DateTimeUtc,
        /// Bumped by every change of the tenant's entitlements that is not a SCIM write (see
        /// `entitlements::notify_change`).
        pub entitlement_epoch: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A plan (tier) in the catalog.
pub mod plan {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "plans")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// JSON array of feature names.
        pub features: String,
        pub seats_default: i64,
        /// JSON object: seat type → seat count.
        pub seat_pools: String,
        pub grace_days: i32,
        pub overage: f64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A tenant's license.
pub mod license {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "licenses")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub plan_name: String,
        pub seats: i64,
        pub starts_at: DateTimeUtc,
        pub expires_at: Option<DateTimeUtc>,
        pub status: String,
        pub policy: String,
        pub version: i64,
        pub updated_at: DateTimeUtc,
        /// Usage-capped licenses: provisioning operations allowed per period.
        pub usage_cap: Option<i64>,
        /// `day` or `month`.
        pub usage_period: Option<String>,
        /// Time of the newest billing event applied (older ones are recorded and ignored).
        pub billing_event_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A SCIM bearer token; only its SHA-256 hash is stored.
pub mod scim_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub token_hash: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
        /// The `User-Agent` of the last client that used the token.
        pub last_user_agent: Option<String>,
        /// The IdP detected from that client (`okta`, `entra`, `onelogin`, `jumpcloud`, `other`).
        pub last_idp: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A SCIM User.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub user_name: String,
        pub user_name_norm: String,
        pub external_id: Option<String>,
        pub display_name: Option<String>,
        pub display_name_norm: Option<String>,
        pub active: bool,
        /// The canonical SCIM document (see `scim::resource`).
        #[sea_orm(column_type = "Text")]
        pub doc: String,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// The license verdict: holds a seat (access needs `active` too).
        pub entitled: bool,
        pub seat_type: String,
        pub entitlement_reason: String,
        pub entitlement_updated: Option<DateTimeUtc>,
        /// When the user got its seat, or started waiting for one: the order of
        /// `deactivate_newest` and of re-seating.
        pub seat_since: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One email of a user, kept in step with the document so email filters use an index.
pub mod user_email {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_emails")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub position: i32,
        pub tenant_id: String,
        pub value_norm: String,
        pub kind: Option<String>,
        pub is_primary: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A SCIM Group (its members are rows of `group_member`).
pub mod group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub display_name: String,
        pub display_name_norm: String,
        pub external_id: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub doc: String,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One membership of a user or group in a group.
pub mod group_member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub tenant_id: String,
        pub member_type: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One entry of the hash-chained audit log.
pub mod audit_entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub at: DateTimeUtc,
        pub actor: String,
        pub action: String,
        pub target: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub before: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub after: Option<String>,
        pub request_id: Option<String>,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A group whose members get a seat type.
pub mod seat_type_mapping {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "seat_type_mappings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        pub seat_type: String,
        /// Higher wins when a user is in several mapped groups.
        pub priority: i32,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A role granted in the database (beside roles from the ID-token claim).
pub mod admin_grant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "admin_grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Lower-cased e-mail address or OIDC subject.
        pub principal: String,
        /// `operator` or `tenant_admin`.
        pub role: String,
        /// The tenant of a `tenant_admin` grant.
        pub tenant_id: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Seat usage of one pool on one day (the day's latest numbers).
pub mod seat_snapshot {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "seat_snapshots")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// `YYYY-MM-DD` in UTC.
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seat_type: String,
        pub in_use: i64,
        pub waiting: i64,
        /// `None` is unlimited.
        pub seat_limit: Option<i64>,
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

//! Seeds the default plan catalog so `tenant create --plan team` works on a fresh database.
//! Operators change plans at run time with `seatbridge plan set`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PLANS: [(&str, &str, i64, i32); 3] = [
    ("free", r#"["scim.users"]"#, 5, 0),
    ("team", r#"["scim.users","scim.groups"]"#, 25, 7),
    (
        "enterprise",
        r#"["scim.users","scim.groups","scim.enterprise","sso","audit.export"]"#,
        1000,
        30,
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let now = "2026-11-25T00:00:00+00:00";
        for (name, features, seats, grace) in PLANS {
            let stmt = Query::insert()
                .into_table(Alias::new("plans"))
                .columns(
                    [
                        "name",
                        "features",
                        "seats_default",
                        "seat_pools",
                        "grace_days",
                        "overage",
                        "created_at",
                        "updated_at",
                    ]
                    .map(Alias::new),
                )
                .values_panic([
                    name.into(),
                    features.into(),
                    seats.into(),
                    "{}".into(),
                    grace.into(),
                    1.0f64.into(),
                    Expr::cust(timestamp_literal(m, now)),
                    Expr::cust(timestamp_literal(m, now)),
                ])
                .to_owned();
            m.exec_stmt(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let stmt = Query::delete()
            .from_table(Alias::new("plans"))
            .and_where(Expr::col(Alias::new("name")).is_in(PLANS.map(|p| p.0)))
            .to_owned();
        m.exec_stmt(stmt).await
    }
}

fn timestamp_literal(m: &SchemaManager, value: &str) -> String {
    match m.get_database_backend() {
        sea_orm_migration::sea_orm::DbBackend::Postgres => format!("'{value}'::timestamptz"),
        _ => format!("'{value}'"),
    }
}

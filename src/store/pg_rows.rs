//! PostgreSQL rows decoded as an entity's models by column position, each column's type checked
//! once per statement instead of once per value.
//!
//! sea-orm's `FromQueryResult` finds every column by name (a hash of the name) and sqlx checks
//! the column's type against the Rust type on every value (`compatible`, comparing type infos):
//! 21 % of seatbridge's instructions for a list page of 100 users on PostgreSQL (callgrind,
//! `bench/RESULTS.md`). A [`PgPlan`] does both once, from the statement's first row, and then
//! reads each value unchecked. The SQLite point reads do the same (`point_reads::models`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ColumnType, Value};
use sea_orm::sqlx::postgres::{PgRow, PgTypeInfo, Postgres};
use sea_orm::sqlx::{Column as _, Row as _, Type};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, IdenStatic, Iterable, TryIntoModel};

/// Where an entity's columns are in a statement's rows, and how each is decoded.
pub(super) struct PgPlan {
    /// For each of the entity's columns, in `Column::iter` order: its position and kind.
    columns: Vec<(usize, Kind)>,
    /// The position of the `extra` text column, if the statement reads one.
    extra: Option<usize>,
}

/// The Rust types the entities' columns decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    I32,
    I64,
    F64,
    Text,
    Timestamp,
}

impl Kind {
    fn of(ty: &ColumnType) -> Option<Kind> {
        Some(match ty {
            ColumnType::Boolean => Kind::Bool,
            ColumnType::Integer => Kind::I32,
            ColumnType::BigInteger => Kind::I64,
            ColumnType::Double => Kind::F64,
            ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => Kind::Text,
            ColumnType::TimestampWithTimeZone => Kind::Timestamp,
            _ => return None,
        })
    }

    /// Whether a column of PostgreSQL type `info` decodes as this kind (sqlx's own check).
    fn compatible(self, info: &PgTypeInfo) -> bool {
        match self {
            Kind::Bool => <bool as Type<Postgres>>::compatible(info),
            Kind::I32 => <i32 as Type<Postgres>>::compatible(info),
            Kind::I64 => <i64 as Type<Postgres>>::compatible(info),
            Kind::F64 => <f64 as Type<Postgres>>::compatible(info),
            Kind::Text => <String as Type<Postgres>>::compatible(info),
            Kind::Timestamp => <DateTime<Utc> as Type<Postgres>>::compatible(info),
        }
    }

    /// Column `i` of `row` as a sea-orm value; its type was checked by [`PgPlan::new`].
    fn decode(self, row: &PgRow, i: usize) -> Result<Value, sea_orm::sqlx::Error> {
        Ok(match self {
            Kind::Bool => Value::Bool(row.try_get_unchecked(i)?),
            Kind::I32 => Value::Int(row.try_get_unchecked(i)?),
            Kind::I64 => Value::BigInt(row.try_get_unchecked(i)?),
            Kind::F64 => Value::Double(row.try_get_unchecked(i)?),
            Kind::Text => Value::String(row.try_get_unchecked(i)?),
            Kind::Timestamp => Value::ChronoDateTimeUtc(row.try_get_unchecked(i)?),
        })
    }
}

impl PgPlan {
    /// The plan for `E`'s columns in rows shaped like `row`; `None` when a column is missing
    /// or of a type `E` does not declare, and the caller decodes by name, checked.
    pub(super) fn new<E: EntityTrait>(row: &PgRow) -> Option<PgPlan> {
        let columns = row.columns();
        let position = |name: &str| columns.iter().position(|c| c.name() == name);
        let planned = E::Column::iter()
            .map(|c| {
                let i = position(c.as_str())?;
                let kind = Kind::of(c.def().get_column_type())?;
                kind.compatible(columns[i].type_info()).then_some((i, kind))
            })
            .collect::<Option<Vec<_>>>()?;
        let extra = match position("extra") {
            Some(i) if Kind::Text.compatible(columns[i].type_info()) => Some(i),
            Some(_) => return None,
            None => None,
        };
        Some(PgPlan {
            columns: planned,
            extra,
        })
    }

    /// `row` as `E`'s model, and its `extra` column (`None` if the statement has none).
    pub(super) fn model<E>(&self, row: &PgRow) -> Result<(E::Model, Option<String>), DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        let mut model = E::ActiveModel::default();
        for (column, &(i, kind)) in E::Column::iter().zip(&self.columns) {
            let value = kind
                .decode(row, i)
                .map_err(|e| DbErr::Type(format!("column {}: {e}", column.as_str())))?;
            model.try_set(column, value)?;
        }
        let extra = match self.extra {
            Some(i) => row
                .try_get_unchecked(i)
                .map_err(|e| DbErr::Type(format!("column extra: {e}")))?,
            None => None,
        };
        Ok((model.try_into_model()?, extra))
    }
}

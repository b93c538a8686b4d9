//! Point reads: statements that read one indexed row, served without the pool's thread hop on
//! SQLite.
//!
//! sqlx runs every SQLite statement on the connection's own thread and hands the rows back
//! through a channel. For a read that costs SQLite a few microseconds, that hand-off (two thread
//! wake-ups per statement) was the largest cost of the request: under `GET /Users/{id}` load,
//! 44 % of the server's CPU samples were in `finish_task_switch` and `try_to_wake_up`, called from
//! sqlx's channel (perf, `bench/RESULTS.md`). [`PointReads::Direct`] runs such reads through
//! `rusqlite` on a connection owned by the calling thread (one per actix worker). The store's
//! read functions take any [`Reader`], so the SQL is shared with the pool, and rows are decoded
//! by the column types the entity declares, as sea-orm decodes them.
//!
//! Only reads that cannot scan belong here: the worker thread waits for them, and a slow one
//! would stall every request on that worker. Anything else (other filters, deep pages, counts)
//! stays on the pool. On PostgreSQL, and on an in-memory SQLite database (which a second
//! connection could not see), point reads use the pool.
//!
//! The connection is `query_only`. It sees every write committed before the read began: in a
//! request it reads through a snapshot held as long as nothing commits (`store::read_snapshots`),
//! elsewhere each statement runs in a read transaction of its own (WAL).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use sea_orm::sea_query::{ColumnType, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, Statement, TryIntoModel,
};

use super::read_snapshots::ReadConnection;
use super::DbSettings;

/// One row read as an entity's model, with the text of its `extra` column when asked for (an
/// expression read beside the row, such as a user's groups).
pub type Row<M> = (M, Option<String>);

/// What the store's read functions need of a connection: rows decoded as an entity's models,
/// and a count. Every sea-orm connection and transaction is one; so are [`PointReads`].
#[async_trait::async_trait]
pub trait Reader: Sync {
    /// The dialect to build this reader's statements in.
    fn backend(&self) -> DbBackend;

    /// The rows of `stmt` as `E`'s models, with the `extra` column when `extra` is set.
    async fn models<E>(&self, stmt: Statement, extra: bool) -> Result<Vec<Row<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromQueryResult + Send + Sync,
        E::ActiveModel: TryIntoModel<E::Model> + Send;

    /// The integer column `n` of `stmt`'s first row (0 without a row).
    async fn count(&self, stmt: Statement) -> Result<i64, DbErr>;

    /// The rows of `stmt`, read by column index with [`RawRow::get`].
    async fn rows(&self, stmt: Statement) -> Result<Vec<RawRow>, DbErr>;

    /// Whether another process has the database open, which could write it unheard (an SQLite
    /// file; PostgreSQL's writers notify).
    fn other_process_attached(&self) -> bool {
        false
    }
}

/// One row of a statement that is not an entity's (a count, an id list, a join).
#[derive(Debug)]
pub enum RawRow {
    /// Read through a sea-orm connection.
    Pool(sea_orm::QueryResult),
    /// Read directly, on SQLite.
    Direct(Vec<SqlValue>),
}

impl RawRow {
    /// Column `index` as a `T`.
    pub fn get<T: Cell>(&self, index: usize) -> Result<T, DbErr> {
        match self {
            RawRow::Pool(row) => row.try_get_by_index::<T>(index),
            RawRow::Direct(values) => values
                .get(index)
                .ok_or_else(|| DbErr::Type(format!("no column {index}")))
                .and_then(|v| T::from_sqlite(v).map_err(|why| DbErr::Type(format!("column {index}: {why}")))),
        }
    }
}

/// A value [`RawRow::get`] can read: from sea-orm's rows, or from SQLite's as sqlx decodes it.
pub trait Cell: sea_orm::TryGetable + Sized {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String>;
}

impl Cell for i64 {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        match v {
            SqlValue::Integer(i) => Ok(*i),
            other => Err(format!("expected an integer, found {:?}", other.data_type())),
        }
    }
}

impl Cell for i32 {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        i32::try_from(i64::from_sqlite(v)?).map_err(|e| e.to_string())
    }
}

impl Cell for f64 {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        match v {
            SqlValue::Real(f) => Ok(*f),
            SqlValue::Integer(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {:?}", other.data_type())),
        }
    }
}

impl Cell for bool {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        Ok(i64::from_sqlite(v)? != 0)
    }
}

impl Cell for String {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        match v {
            SqlValue::Text(t) => Ok(t.clone()),
            other => Err(format!("expected text, found {:?}", other.data_type())),
        }
    }
}

impl Cell for DateTime<Utc> {
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        parse_timestamp(&String::from_sqlite(v)?)
    }
}

impl<T: Cell> Cell for Option<T>
where
    Option<T>: sea_orm::TryGetable,
{
    fn from_sqlite(v: &SqlValue) -> Result<Self, String> {
        match v {
            SqlValue::Null => Ok(None),
            v => T::from_sqlite(v).map(Some),
        }
    }
}

#[async_trait::async_trait]
impl<C: ConnectionTrait> Reader for C {
    fn backend(&self) -> DbBackend {
        self.get_database_backend()
    }

    async fn models<E>(&self, stmt: Statement, extra: bool) -> Result<Vec<Row<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromQueryResult + Send + Sync,
        E::ActiveModel: TryIntoModel<E::Model> + Send,
    {
        let rows = self.query_all_raw(stmt).await?;
        // PostgreSQL rows by position (see `pg_rows`); anything else by name, as sea-orm reads them.
        let plan = rows
            .first()
            .and_then(sea_orm::QueryResult::try_as_pg_row)
            .and_then(super::pg_rows::PgPlan::new::<E>);
        if let Some(plan) = plan {
            return rows
                .iter()
                .map(|row| match row.try_as_pg_row() {
                    Some(pg) => plan.model::<E>(pg),
                    None => Err(DbErr::Type(
                        "a PostgreSQL statement returned a row of another database".into(),
                    )),
                })
                .collect();
        }
        rows.iter()
            .map(|row| {
                let model = E::Model::from_query_result(row, "")?;
                let extra = if extra {
                    row.try_get::<Option<String>>("", "extra")?
                } else {
                    None
                };
                Ok((model, extra))
            })
            .collect()
    }

    async fn count(&self, stmt: Statement) -> Result<i64, DbErr> {
        Ok(self
            .query_one_raw(stmt)
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    async fn rows(&self, stmt: Statement) -> Result<Vec<RawRow>, DbErr> {
        Ok(self.query_all_raw(stmt).await?.into_iter().map(RawRow::Pool).collect())
    }
}

/// Where point reads run: the pool, or (SQLite on a file) the calling thread's own connection.
#[derive(Debug, Clone)]
pub enum PointReads {
    /// PostgreSQL, or SQLite in memory: the pool.
    Pool(DatabaseConnection),
    /// SQLite on a file: each thread's own read-only connection.
    Direct(DirectSqlite),
}

impl PointReads {
    /// Point reads for `db`: direct on an SQLite file, the pool otherwise.
    pub async fn new(db: &DatabaseConnection, settings: &DbSettings) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(PointReads::Pool(db.clone()));
        }
        // Ask SQLite which file the pool opened: URL forms vary, and an in-memory database has
        // no file (an empty name) that a second connection could open.
        let file = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
            ))
            .await?
            .map(|row| row.try_get::<String>("", "file"))
            .transpose()?
            .unwrap_or_default();
        if file.is_empty() {
            return Ok(PointReads::Pool(db.clone()));
        }
        let path = PathBuf::from(file);
        Ok(PointReads::Direct(DirectSqlite {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            writer: super::write_tx::DirectWriter::new(path.clone(), settings.busy_timeout, settings.sqlite_cache_kib),
            path,
            busy_timeout: settings.busy_timeout.min(POINT_READ_BUSY_TIMEOUT),
            cache_kib: settings.sqlite_cache_kib,
        }))
    }

    /// True when reads bypass the pool (SQLite on a file).
    pub fn is_direct(&self) -> bool {
        matches!(self, PointReads::Direct(_))
    }

    /// On an SQLite file, what the writer connection has done so far (see
    /// `store::write_tx::DirectWriter`).
    pub fn write_counts(&self) -> Option<super::write_tx::WriteCounts> {
        match self {
            PointReads::Direct(d) => Some(d.writer.counts()),
            PointReads::Pool(_) => None,
        }
    }
}

#[async_trait::async_trait]
impl Reader for PointReads {
    fn backend(&self) -> DbBackend {
        match self {
            PointReads::Pool(db) => db.get_database_backend(),
            PointReads::Direct(_) => DbBackend::Sqlite,
        }
    }

    fn other_process_attached(&self) -> bool {
        match self {
            PointReads::Pool(_) => false,
            PointReads::Direct(d) => super::read_snapshots::other_process_attached(&d.path),
        }
    }

    async fn models<E>(&self, stmt: Statement, extra: bool) -> Result<Vec<Row<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromQueryResult + Send + Sync,
        E::ActiveModel: TryIntoModel<E::Model> + Send,
    {
        match self {
            PointReads::Pool(db) => db.models::<E>(stmt, extra).await,
            PointReads::Direct(d) => d.with_connection(|conn| models::<E>(conn, &stmt, extra)),
        }
    }

    async fn count(&self, stmt: Statement) -> Result<i64, DbErr> {
        match self {
            PointReads::Pool(db) => db.count(stmt).await,
            PointReads::Direct(d) => d.with_connection(|conn| count(conn, &stmt)),
        }
    }

    async fn rows(&self, stmt: Statement) -> Result<Vec<RawRow>, DbErr> {
        match self {
            PointReads::Pool(db) => db.rows(stmt).await,
            PointReads::Direct(d) => d.with_connection(|conn| raw_rows(conn, &stmt)),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connections, by [`DirectSqlite::id`] (a process can serve several
    /// databases: the integration tests run many servers in one process).
    static CONNECTIONS: RefCell<HashMap<u64, ReadConnection>> = RefCell::new(HashMap::new());
}

/// Whether any of this thread's point-read connections holds a read snapshot.
pub(super) fn holds_snapshots() -> bool {
    CONNECTIONS.with(|cell| {
        cell.try_borrow()
            .map_or(true, |c| c.values().any(ReadConnection::holds_snapshot))
    })
}

/// Gives up this thread's held read snapshots that are `age` old or older (see
/// [`super::read_snapshots`]).
pub(super) fn release_snapshots(age: Duration) {
    CONNECTIONS.with(|cell| {
        // Never borrowed across an await: a timer cannot fire in the middle of a read.
        if let Ok(mut conns) = cell.try_borrow_mut() {
            conns.values_mut().for_each(|c| c.release_if_older(age));
        }
    });
}

/// The longest a point read waits for a locked database. In WAL mode readers are not blocked by
/// writers, only by rare exclusive locks (WAL recovery after a crash, another process's
/// exclusive locking mode); while one lasts, a point read fails with "database is locked" (503,
/// retry) instead of stalling every request on its worker thread for the pool's busy timeout.
pub const POINT_READ_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Prepared statements kept per connection: the point reads are a handful of statements.
const STATEMENT_CACHE: usize = 64;

/// An SQLite database file read on each calling thread's own connection.
#[derive(Debug, Clone)]
pub struct DirectSqlite {
    id: u64,
    /// The connection writes run on (see `store::write_tx`).
    pub(super) writer: super::write_tx::DirectWriter,
    path: PathBuf,
    busy_timeout: Duration,
    cache_kib: u32,
}

impl DirectSqlite {
    /// Runs `f` on this thread's connection to the file, opening it on first use.
    fn with_connection<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Result<T, DbErr> {
        CONNECTIONS.with(|cell| {
            let mut conns = cell.borrow_mut();
            let conn = match conns.entry(self.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(ReadConnection::new(self.open().map_err(db_err)?, &self.path))
                }
            };
            f(conn.for_read(|| self.writer.wake_checkpointer())).map_err(db_err)
        })
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        // Read-write without create: a read-only open of a WAL database can fail to map its
        // shared-memory index; `query_only` refuses writes instead.
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", format!("-{}", self.cache_kib))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }
}

/// Reads `stmt`'s rows as `E`'s models: each column is decoded by the type the entity declares
/// for it, as sea-orm's own decoding does.
pub(super) fn models<E>(
    conn: &rusqlite::Connection,
    stmt: &Statement,
    extra: bool,
) -> rusqlite::Result<Vec<Row<E::Model>>>
where
    E: EntityTrait,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    let plan = column_plan::<E>(&prepared, &stmt.sql)?;
    let columns = E::Column::iter().zip(plan.columns.iter());
    let extra = match (extra, plan.extra) {
        (false, _) => None,
        (true, Some(i)) => Some(i),
        (true, None) => return Err(rusqlite::Error::InvalidColumnName("extra".into())),
    };
    let mut rows = prepared.query(rusqlite::params_from_iter(params(stmt)?))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut model = E::ActiveModel::default();
        for (column, (index, ty)) in columns.clone() {
            let value = decode(ty, row.get_ref(*index)?).map_err(|e| conversion(*index, e))?;
            model
                .try_set(column, value)
                .map_err(|e| conversion(*index, e.to_string()))?;
        }
        let model = model.try_into_model().map_err(|e| conversion(0, e.to_string()))?;
        let extra = match extra {
            Some(i) => row.get::<_, Option<String>>(i)?,
            None => None,
        };
        out.push((model, extra));
    }
    Ok(out)
}

/// Where a statement's columns are, for decoding its rows as an entity's models: for each of the
/// entity's columns (in `Column::iter` order) its index and declared type, and the index of
/// `extra`, if the statement reads one.
#[derive(Debug)]
struct ColumnPlan {
    columns: Vec<(usize, ColumnType)>,
    extra: Option<usize>,
}

/// Statements whose column plans a thread keeps before it starts over (list pages write their
/// bounds as literals, so the statements a process sees are not a fixed set).
const MAX_COLUMN_PLANS: usize = 256;

thread_local! {
    /// Column plans by entity (its type name) and SQL text. Working one out asks SQLite for
    /// every column's name and builds each column's definition: for a user row that was 9 % of
    /// the instructions of a `GET /Users/{id}` (callgrind, `bench/RESULTS.md`).
    static COLUMN_PLANS: RefCell<HashMap<&'static str, HashMap<String, Rc<ColumnPlan>>>> = RefCell::new(HashMap::new());
}

/// `E`'s column plan for the prepared statement `sql`, worked out on its first use on a thread.
fn column_plan<E: EntityTrait>(prepared: &rusqlite::Statement<'_>, sql: &str) -> rusqlite::Result<Rc<ColumnPlan>> {
    let entity = std::any::type_name::<E>();
    if let Some(plan) = COLUMN_PLANS.with(|c| c.borrow().get(entity).and_then(|m| m.get(sql)).cloned()) {
        return Ok(plan);
    }
    let names = prepared.column_names();
    let index = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
    let columns = E::Column::iter()
        .map(|c| {
            let i = index(c.as_str()).ok_or_else(|| rusqlite::Error::InvalidColumnName(c.as_str().to_string()))?;
            Ok((i, c.def().get_column_type().clone()))
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let plan = Rc::new(ColumnPlan {
        columns,
        extra: index("extra"),
    });
    COLUMN_PLANS.with(|c| {
        let mut plans = c.borrow_mut();
        if plans.values().map(HashMap::len).sum::<usize>() >= MAX_COLUMN_PLANS {
            plans.clear();
        }
        plans.entry(entity).or_default().insert(sql.to_string(), plan.clone());
    });
    Ok(plan)
}

/// The integer column `n` of `stmt`'s first row (0 without a row).
pub(super) fn count(conn: &rusqlite::Connection, stmt: &Statement) -> rusqlite::Result<i64> {
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    let mut rows = prepared.query(rusqlite::params_from_iter(params(stmt)?))?;
    match rows.next()? {
        Some(row) => row.get::<_, i64>("n"),
        None => Ok(0),
    }
}

/// Every row of `stmt`, as SQLite stored it.
pub(super) fn raw_rows(conn: &rusqlite::Connection, stmt: &Statement) -> rusqlite::Result<Vec<RawRow>> {
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    let width = prepared.column_count();
    let mut rows = prepared.query(rusqlite::params_from_iter(params(stmt)?))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(RawRow::Direct(
            (0..width)
                .map(|i| row.get::<_, SqlValue>(i))
                .collect::<rusqlite::Result<_>>()?,
        ));
    }
    Ok(out)
}

/// A stored value as the sea-orm value of a column of type `ty`.
fn decode(ty: &ColumnType, v: ValueRef<'_>) -> Result<Value, String> {
    let text = |t: &[u8]| std::str::from_utf8(t).map(str::to_string).map_err(|e| e.to_string());
    let null = matches!(v, ValueRef::Null);
    Ok(match (ty, v) {
        (ColumnType::Boolean, ValueRef::Integer(i)) => Value::Bool(Some(i != 0)),
        (ColumnType::Boolean, _) if null => Value::Bool(None),
        (ColumnType::Integer, ValueRef::Integer(i)) => Value::Int(Some(i32::try_from(i).map_err(|e| e.to_string())?)),
        (ColumnType::Integer, _) if null => Value::Int(None),
        (ColumnType::BigInteger, ValueRef::Integer(i)) => Value::BigInt(Some(i)),
        (ColumnType::BigInteger, _) if null => Value::BigInt(None),
        (ColumnType::Double, ValueRef::Real(f)) => Value::Double(Some(f)),
        (ColumnType::Double, ValueRef::Integer(i)) => Value::Double(Some(i as f64)),
        (ColumnType::Double, _) if null => Value::Double(None),
        (ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_), ValueRef::Text(t)) => {
            Value::String(Some(text(t)?))
        }
        (ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_), _) if null => Value::String(None),
        (ColumnType::TimestampWithTimeZone, ValueRef::Text(t)) => Value::ChronoDateTimeUtc(Some(parse_timestamp(
            std::str::from_utf8(t).map_err(|e| e.to_string())?,
        )?)),
        (ColumnType::TimestampWithTimeZone, _) if null => Value::ChronoDateTimeUtc(None),
        (ty, v) => return Err(format!("a {ty:?} column holds {:?}", v.data_type())),
    })
}

fn conversion(index: usize, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Null, why.into())
}

/// Timestamps as sqlx writes them (RFC 3339) and in the other forms its decoder accepts.
fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Some(t) = parse_utc_timestamp(text) {
        return Ok(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%F %T%.f%:z", "%F %T%.f", "%FT%T%.f", "%F %R"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Ok(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    Err(format!("not a timestamp: {text:?}"))
}

/// The forms this server writes, `2026-11-26T06:24:51.215+00:00` (or with a space, `Z` or no
/// zone), read without chrono's general parser: a user row holds three timestamps, and parsing
/// them was 1.4 % of a `GET /Users/{id}` (callgrind). `None` for anything else, leap seconds and
/// other zones included, which [`parse_timestamp`] then hands to chrono.
fn parse_utc_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| {
        b.get(from..to)?
            .iter()
            .try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) || !matches!(b.get(10), Some(b'T' | b' ')) {
        return None;
    }
    let mut end = 19;
    let mut nanos = 0;
    if b.get(end) == Some(&b'.') {
        let digits = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = number(end + 1, end + 1 + digits)? * 10u32.pow(9 - digits as u32);
        end += 1 + digits;
    }
    if !matches!(b.get(end..), Some(b"" | b"Z" | b"+00:00")) {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(number(0, 4)?).ok()?, number(5, 7)?, number(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, nanos)?;
    Some(date.and_time(time).and_utc())
}

pub(super) fn params(stmt: &Statement) -> rusqlite::Result<Vec<SqlValue>> {
    stmt.values
        .as_ref()
        .map_or(Ok(Vec::new()), |v| v.0.iter().map(bind_value).collect())
}

/// A bound value, encoded as sqlx encodes it for SQLite (so it compares equal to what was written).
fn bind_value(v: &Value) -> rusqlite::Result<SqlValue> {
    Ok(match v {
        Value::Bool(b) => b.map_or(SqlValue::Null, |b| SqlValue::Integer(i64::from(b))),
        Value::Int(i) => i.map_or(SqlValue::Null, |i| SqlValue::Integer(i64::from(i))),
        Value::BigInt(i) => i.map_or(SqlValue::Null, SqlValue::Integer),
        Value::Double(f) => f.map_or(SqlValue::Null, SqlValue::Real),
        Value::String(s) => s.as_ref().map_or(SqlValue::Null, |s| SqlValue::Text(s.clone())),
        Value::ChronoDateTimeUtc(t) => t.map_or(SqlValue::Null, |t| {
            SqlValue::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("point reads cannot bind {other:?}").into(),
            ))
        }
    })
}

/// The driver's error as sea-orm's. The text keeps SQLite's words, so that
/// [`super::StoreError`] still tells a locked database (retry) from a failure.
fn db_err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("sqlite point read: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_the_forms_sqlite_and_sqlx_write() {
        let want = DateTime::parse_from_rfc3339("2026-11-26T06:24:51.215Z")
            .unwrap()
            .with_timezone(&Utc);
        for text in [
            "2026-11-26T06:24:51.215+00:00",
            "2026-11-26T06:24:51.215Z",
            "2026-11-26 06:24:51.215+00:00",
            "2026-11-26 06:24:51.215",
        ] {
            assert_eq!(parse_timestamp(text).unwrap(), want, "{text}");
        }
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn timestamps_read_without_chrono_equal_chronos_reading() {
        for text in [
            "2026-11-26T06:24:51+00:00",
            "2026-11-26T06:24:51.2Z",
            "2026-11-26 06:24:51.123456789",
            "1999-01-01T00:00:00.000000001+00:00",
        ] {
            let chrono = DateTime::parse_from_rfc3339(&text.replace(' ', "T"))
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%F %T%.f").map(|t| t.and_utc()))
                .unwrap();
            assert_eq!(parse_utc_timestamp(text), Some(chrono), "{text}");
        }
        // Left to chrono: other zones, leap seconds, impossible dates, short or odd forms.
        for text in [
            "2026-11-26T06:24:51.215+01:00",
            "2016-12-31T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2026-11-26 06:24",
            "2026-11-26T06:24:51.Z",
            "2026-11-26T06:24:51.1234567890Z",
            "2026-11-26T06:24:5",
            "2026-11-26T06:24:",
            "+2026-11-26T06:24:51Z",
        ] {
            assert_eq!(parse_utc_timestamp(text), None, "{text}");
        }
        assert_eq!(
            parse_timestamp("2026-11-26T07:24:51.215+01:00").unwrap(),
            parse_timestamp("2026-11-26T06:24:51.215Z").unwrap()
        );
    }

    proptest::proptest! {
        /// Never panics, and what it reads is what chrono reads from the same text.
        #[test]
        fn any_text_reads_as_chrono_reads_it_or_not_at_all(text in "[0-9]{4}-[0-1][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?(Z|\\+00:00|\\+01:00)?|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]{0,18}|.{0,30}") {
            if let Some(t) = parse_utc_timestamp(&text) {
                let chrono = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| NaiveDateTime::parse_from_str(&text, "%F %T%.f").map(|t| t.and_utc()))
                    .or_else(|_| NaiveDateTime::parse_from_str(&text, "%FT%T%.f").map(|t| t.and_utc()));
                proptest::prop_assert_eq!(Ok(t), chrono, "{}", text);
            }
        }
    }

    #[test]
    fn timestamps_bind_as_sqlx_writes_them() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T06:24:51.215Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            bind_value(&Value::ChronoDateTimeUtc(Some(t))).unwrap(),
            SqlValue::Text("2026-11-26T06:24:51.215+00:00".into())
        );
    }

    #[test]
    fn values_decode_by_the_entity_column_type() {
        assert_eq!(
            decode(&ColumnType::Integer, ValueRef::Integer(7)).unwrap(),
            Value::Int(Some(7))
        );
        assert_eq!(
            decode(&ColumnType::BigInteger, ValueRef::Integer(7)).unwrap(),
            Value::BigInt(Some(7))
        );
        assert_eq!(
            decode(&ColumnType::Boolean, ValueRef::Integer(1)).unwrap(),
            Value::Bool(Some(true))
        );
        assert_eq!(
            decode(&ColumnType::BigInteger, ValueRef::Null).unwrap(),
            Value::BigInt(None)
        );
        assert!(decode(&ColumnType::Integer, ValueRef::Integer(i64::MAX)).is_err());
        assert!(decode(&ColumnType::Boolean, ValueRef::Text(b"yes")).is_err());
    }
}

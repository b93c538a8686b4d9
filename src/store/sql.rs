//! A small SQL text builder that numbers placeholders for the backend (`?` on SQLite, `$n` on
//! PostgreSQL). Values are always bound, never spliced into the text, with one exception:
//! [`SqlBuilder::limit`] writes its integer as a literal (see there why).

use sea_orm::sea_query::{
    MysqlQueryBuilder, PostgresQueryBuilder, QueryBuilder, QueryStatementWriter, SqlWriter, SqliteQueryBuilder,
};
use sea_orm::{DbBackend, Statement, Value};

/// Accumulates SQL text and bound values.
#[derive(Debug)]
pub struct SqlBuilder {
    backend: DbBackend,
    sql: String,
    values: Vec<Value>,
}

impl SqlBuilder {
    /// Starts an empty statement for a backend.
    pub fn new(backend: DbBackend) -> Self {
        SqlBuilder {
            backend,
            sql: String::with_capacity(256),
            values: Vec::new(),
        }
    }

    /// Appends ` LIMIT n` (and ` OFFSET m` when non-zero) as integer literals. SQLite re-prepares
    /// a statement whose LIMIT is a bound parameter each time that parameter is bound (the
    /// planner may use its value), which took about 15 % of the CPU of a GET in profiles; an
    /// integer cannot inject anything.
    pub fn limit(&mut self, limit: i64, offset: i64) -> &mut Self {
        self.sql.push_str(&format!(" LIMIT {}", limit.max(0)));
        if offset > 0 {
            self.sql.push_str(&format!(" OFFSET {offset}"));
        }
        self
    }

    /// Appends SQL text. Callers pass only text they wrote themselves, never client input.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                self.sql.push('$');
                self.sql.push_str(&self.values.len().to_string());
            }
            _ => self.sql.push('?'),
        }
        self
    }

    /// Appends `(?, ?, …)` for a list of values.
    pub fn bind_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    /// Appends a statement sea-query built (an entity's insert, say), its placeholders numbered
    /// after the ones before it: several such statements can then run as one (on PostgreSQL,
    /// as data-modifying `WITH` clauses of one statement, one round trip).
    pub fn query(&mut self, stmt: &impl QueryStatementWriter) -> &mut Self {
        match self.backend {
            DbBackend::Postgres => stmt.build_collect_any_into(&PostgresQueryBuilder, self),
            DbBackend::MySql => stmt.build_collect_any_into(&MysqlQueryBuilder, self),
            _ => stmt.build_collect_any_into(&SqliteQueryBuilder, self),
        }
        self
    }

    /// Finishes the statement.
    pub fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.sql, self.values)
    }

    /// The SQL text so far (for tests).
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// Lets sea-query write into the builder ([`SqlBuilder::query`]): its values are bound like
/// any other.
impl SqlWriter for SqlBuilder {
    fn push_param<T: QueryBuilder>(&mut self, value: Value, _: &T) {
        self.bind(value);
    }

    fn as_writer(&mut self) -> &mut dyn std::fmt::Write {
        self as _
    }
}

impl std::fmt::Write for SqlBuilder {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.sql.push_str(s);
        Ok(())
    }
}

impl std::fmt::Display for SqlBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_per_backend() {
        let mut pg = SqlBuilder::new(DbBackend::Postgres);
        pg.push("a = ").bind(1).push(" AND b IN ").bind_list(["x", "y"]);
        assert_eq!(pg.sql(), "a = $1 AND b IN ($2, $3)");
        let mut lite = SqlBuilder::new(DbBackend::Sqlite);
        lite.push("a = ").bind(1);
        assert_eq!(lite.sql(), "a = ?");
    }

    #[test]
    fn numbers_the_placeholders_of_appended_statements_after_its_own() {
        use sea_orm::sea_query::{Alias, Query};
        let insert = |table: &str, v: i32| {
            Query::insert()
                .into_table(Alias::new(table))
                .columns([Alias::new("v")])
                .values_panic([v.into()])
                .to_owned()
        };
        let mut b = SqlBuilder::new(DbBackend::Postgres);
        b.push("WITH a AS (")
            .query(&insert("a", 1))
            .push(") ")
            .query(&insert("b", 2));
        assert_eq!(
            b.sql(),
            r#"WITH a AS (INSERT INTO "a" ("v") VALUES ($1)) INSERT INTO "b" ("v") VALUES ($2)"#
        );
        let stmt = b.build();
        assert_eq!(stmt.values.map(|v| v.0.len()), Some(2));
    }
}

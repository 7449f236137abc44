//! The one query layer under the store: a statement is written once, with
//! `$n` placeholders, and runs on SQLite or PostgreSQL (both take `$n`,
//! `RETURNING`, `ON CONFLICT` and partial indexes). Values are bound as
//! [`Arg`]s and handed to the database's own sqlx arguments only when the
//! statement runs, so the store's SQL reads as ordinary functions instead
//! of being generic over `sqlx::Database` (whose bounds would outweigh the
//! code) or expanded per database by a macro.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Decode, FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection};
use sqlx::{SqlitePool, Type};

/// A database the store runs on.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// SQLite's connections: one writes, the others read. SQLite lets one
/// connection write at a time; connections that compete for it sleep in
/// its busy handler (1, 2, 5, 10… ms) and miss the moment it is free,
/// which under a burst left a third of the CPU idle. Waiting for the one
/// writer is sqlx's pool queue instead: woken at once, first come first
/// served. Readers never wait in WAL mode.
#[derive(Clone, Debug)]
pub struct SqlitePools {
    /// For statements that only read (`SELECT …`).
    pub read: SqlitePool,
    /// For every other statement and every transaction; one connection.
    pub write: SqlitePool,
}

impl SqlitePools {
    /// The pool a statement runs on.
    fn for_sql(&self, sql: &str) -> &SqlitePool {
        if reads_only(sql) {
            &self.read
        } else {
            &self.write
        }
    }
}

/// Whether a statement only reads: it starts with `SELECT`. (A `WITH` may
/// write, so it goes to the writer, which is always safe.)
fn reads_only(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

impl Db {
    /// Which database this is ("sqlite" or "postgres").
    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Starts a transaction; it rolls back when dropped uncommitted.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.write.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

/// An open transaction on either database.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }
}

/// Where a statement runs: a pool, or inside a transaction.
pub enum On<'c> {
    SqlitePool(&'c SqlitePools),
    PostgresPool(&'c PgPool),
    SqliteTx(&'c mut SqliteConnection),
    PostgresTx(&'c mut PgConnection),
}

impl<'c> From<&'c Db> for On<'c> {
    fn from(db: &'c Db) -> Self {
        match db {
            Db::Sqlite(p) => On::SqlitePool(p),
            Db::Postgres(p) => On::PostgresPool(p),
        }
    }
}

impl<'c> From<&'c mut Tx> for On<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        match tx {
            Tx::Sqlite(t) => On::SqliteTx(t),
            Tx::Postgres(t) => On::PostgresTx(t),
        }
    }
}

/// A value bound to a placeholder. `None` binds a typed NULL (PostgreSQL
/// needs the type, e.g. for `$2 IS NULL OR … = $2`).
#[derive(Debug, Clone)]
pub enum Arg<'q> {
    BigInt(Option<i64>),
    Int(Option<i32>),
    Bool(Option<bool>),
    Text(Option<&'q str>),
    OwnedText(Option<String>),
    Time(Option<DateTime<Utc>>),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident $(, $conv:expr)?;)*) => {
        $(
            impl<'q> From<$t> for Arg<'q> {
                fn from(v: $t) -> Self {
                    Arg::$variant(arg_from!(@conv v $(, $conv)?))
                }
            }
        )*
    };
    (@conv $v:ident) => { Some($v) };
    (@conv $v:ident, $conv:expr) => { $conv($v) };
}

arg_from! {
    i64 => BigInt;
    i32 => Int;
    bool => Bool;
    &'q str => Text;
    String => OwnedText;
    DateTime<Utc> => Time;
    &'q String => Text, |v: &'q String| Some(v.as_str());
    &'q i64 => BigInt, |v: &'q i64| Some(*v);
    Option<i64> => BigInt, |v| v;
    Option<i32> => Int, |v| v;
    Option<bool> => Bool, |v| v;
    Option<&'q str> => Text, |v| v;
    Option<String> => OwnedText, |v| v;
    Option<DateTime<Utc>> => Time, |v| v;
    &'q Option<String> => Text, |v: &'q Option<String>| v.as_deref();
}

fn sqlite_args<'q>(args: Vec<Arg<'q>>) -> sqlx::Result<SqliteArguments<'q>> {
    let mut out = SqliteArguments::default();
    for arg in args {
        match arg {
            Arg::BigInt(v) => out.add(v),
            Arg::Int(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::OwnedText(v) => out.add(v),
            Arg::Time(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

fn postgres_args(args: Vec<Arg<'_>>) -> sqlx::Result<PgArguments> {
    let mut out = PgArguments::default();
    for arg in args {
        match arg {
            Arg::BigInt(v) => out.add(v),
            Arg::Int(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::OwnedText(v) => out.add(v),
            Arg::Time(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// A row type both databases can decode.
pub trait FromEitherRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> FromEitherRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A column value both databases can decode.
pub trait DecodeEither:
    Type<Sqlite>
    + for<'r> Decode<'r, Sqlite>
    + Type<Postgres>
    + for<'r> Decode<'r, Postgres>
    + Send
    + Unpin
{
}
impl<T> DecodeEither for T where
    T: Type<Sqlite>
        + for<'r> Decode<'r, Sqlite>
        + Type<Postgres>
        + for<'r> Decode<'r, Postgres>
        + Send
        + Unpin
{
}

/// What a statement returns: nothing (its effect), rows of `R`, or the
/// first column as `T`.
pub struct Effect;
pub struct Rows<R>(PhantomData<fn() -> R>);
pub struct Scalar<T>(PhantomData<fn() -> T>);

/// One SQL statement and its bound values.
#[must_use = "a statement does nothing until it runs"]
pub struct Stmt<'q, O> {
    sql: &'q str,
    args: Vec<Arg<'q>>,
    /// Prepared once per connection and its plan cached (sqlx's default).
    persistent: bool,
    out: PhantomData<O>,
}

/// The `VALUES` list of a multi-row insert, `($1, $2), ($3, $4)` for two
/// rows of two columns: one statement (one round trip) for a step's
/// messages or events instead of one each.
pub fn values_list(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * columns + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// A statement run for its effect.
pub fn query(sql: &str) -> Stmt<'_, Effect> {
    Stmt {
        sql,
        args: Vec::new(),
        persistent: true,
        out: PhantomData,
    }
}

/// A statement whose rows decode as `R`.
pub fn query_as<R: FromEitherRow>(sql: &str) -> Stmt<'_, Rows<R>> {
    Stmt {
        sql,
        args: Vec::new(),
        persistent: true,
        out: PhantomData,
    }
}

/// A statement whose first column decodes as `T`.
pub fn query_scalar<T: DecodeEither>(sql: &str) -> Stmt<'_, Scalar<T>> {
    Stmt {
        sql,
        args: Vec::new(),
        persistent: true,
        out: PhantomData,
    }
}

impl<'q, O> Stmt<'q, O> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Planned with its values on every call: not prepared and cached,
    /// where PostgreSQL would switch after five calls to a generic plan
    /// that cannot see the values (a text search: the trigram indexes'
    /// cost depends on the text, and the generic plan is twice as slow
    /// for a rare one).
    pub fn planned_per_call(mut self) -> Self {
        self.persistent = false;
        self
    }

    /// Binds the next placeholder if there is a value (for an optional
    /// clause whose placeholder exists only with it).
    pub fn bind_some(self, value: Option<impl Into<Arg<'q>>>) -> Self {
        match value {
            Some(v) => self.bind(v),
            None => self,
        }
    }
}

/// Runs one sqlx call on whichever database `$on` is, with the statement's
/// arguments converted for it.
macro_rules! run {
    ($stmt:expr, $on:expr, |$make:ident| $call:ident) => {{
        let Stmt { sql, args, persistent, .. } = $stmt;
        match $on.into() {
            On::SqlitePool(p) => run!(@sqlite sql, args, $make).persistent(persistent).$call(p.for_sql(sql)).await,
            On::SqliteTx(c) => run!(@sqlite sql, args, $make).persistent(persistent).$call(c).await,
            On::PostgresPool(p) => run!(@postgres sql, args, $make).persistent(persistent).$call(p).await,
            On::PostgresTx(c) => run!(@postgres sql, args, $make).persistent(persistent).$call(c).await,
        }
    }};
    (@sqlite $sql:ident, $args:ident, $make:ident) => {
        sqlx::$make::<Sqlite, _, _>($sql, sqlite_args($args)?)
    };
    (@postgres $sql:ident, $args:ident, $make:ident) => {
        sqlx::$make::<Postgres, _, _>($sql, postgres_args($args)?)
    };
}

/// What a statement run for its effect did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

impl<'q> Stmt<'q, Effect> {
    pub async fn execute<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<Done> {
        let Stmt {
            sql,
            args,
            persistent,
            ..
        } = self;
        let rows_affected = match on.into() {
            On::SqlitePool(p) => sqlx::query_with(sql, sqlite_args(args)?)
                .persistent(persistent)
                .execute(p.for_sql(sql))
                .await?
                .rows_affected(),
            On::SqliteTx(c) => sqlx::query_with(sql, sqlite_args(args)?)
                .persistent(persistent)
                .execute(c)
                .await?
                .rows_affected(),
            On::PostgresPool(p) => sqlx::query_with(sql, postgres_args(args)?)
                .persistent(persistent)
                .execute(p)
                .await?
                .rows_affected(),
            On::PostgresTx(c) => sqlx::query_with(sql, postgres_args(args)?)
                .persistent(persistent)
                .execute(c)
                .await?
                .rows_affected(),
        };
        Ok(Done { rows_affected })
    }
}

impl<'q, R: FromEitherRow> Stmt<'q, Rows<R>> {
    pub async fn fetch_one<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<R> {
        run!(self, on, |query_as_with| fetch_one)
    }

    pub async fn fetch_optional<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<Option<R>> {
        run!(self, on, |query_as_with| fetch_optional)
    }

    pub async fn fetch_all<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<Vec<R>> {
        run!(self, on, |query_as_with| fetch_all)
    }
}

impl<'q, T: DecodeEither> Stmt<'q, Scalar<T>> {
    pub async fn fetch_one<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<T> {
        run!(self, on, |query_scalar_with| fetch_one)
    }

    pub async fn fetch_optional<'c>(self, on: impl Into<On<'c>>) -> sqlx::Result<Option<T>> {
        run!(self, on, |query_scalar_with| fetch_optional)
    }
}

#[cfg(test)]
mod tests {
    use super::{reads_only, values_list};

    #[test]
    fn a_values_list_numbers_every_row_and_column() {
        assert_eq!(values_list(1, 1), "($1)");
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn only_a_select_goes_to_the_readers() {
        assert!(reads_only("SELECT 1"));
        assert!(reads_only("\n  select id FROM executions"));
        for writes in [
            "INSERT INTO events VALUES (1)",
            "UPDATE executions SET status = 'running' RETURNING id",
            "DELETE FROM queue_jobs WHERE id = $1",
            "WITH x AS (SELECT 1) DELETE FROM queue_jobs",
            "SEL",
            "",
        ] {
            assert!(!reads_only(writes), "{writes}");
        }
    }
}

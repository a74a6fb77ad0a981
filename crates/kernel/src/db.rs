//! Database connection and transaction helpers for SQLite (embedded) and PostgreSQL.
//!
//! Write transactions go through [`Db::begin_write`]: on SQLite they are begun IMMEDIATE and
//! serialized in-process (SQLite has one writer anyway, and this keeps a deferred transaction from
//! failing to upgrade its lock); on PostgreSQL they are ordinary READ COMMITTED transactions whose
//! callers lock rows in a fixed order or use conditional updates. [`Db::with_retry`] runs a whole
//! transaction function again on serialization failures, deadlocks and busy errors.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::ServiceError;

/// Pool and timeout settings.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Upper bound of pooled connections. SQLite needs more than one so that readers never wait
    /// behind the writer and a transaction never waits on a connection it holds itself.
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection before failing UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`.
    pub statement_timeout: Duration,
    /// SQLite `busy_timeout`, for writers in other processes (the CLI while the server runs).
    pub busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A shared handle on the database.
#[derive(Clone)]
pub struct Db {
    connection: DatabaseConnection,
    /// Serializes write transactions on SQLite; `None` on PostgreSQL.
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

/// How many times [`Db::with_retry`] runs a transaction function before giving up.
const MAX_ATTEMPTS: u32 = 10;

impl Db {
    /// Connects to `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Db, DbErr> {
        let mut connect_options = ConnectOptions::new(url.to_owned());
        connect_options
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        let busy_timeout = options.busy_timeout;
        connect_options.map_sqlx_sqlite_opts(move |sqlite| {
            sqlite
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
        });
        let statement_timeout = format!("{}ms", options.statement_timeout.as_millis());
        connect_options.map_sqlx_postgres_opts(move |postgres| {
            postgres.options([("statement_timeout", statement_timeout.as_str())])
        });
        let connection = sea_orm::Database::connect(connect_options).await?;
        let sqlite_writer = match connection.get_database_backend() {
            DbBackend::Sqlite => Some(Arc::new(Mutex::new(()))),
            _ => None,
        };
        Ok(Db {
            connection,
            sqlite_writer,
        })
    }

    /// The connection pool, for reads outside a transaction.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    pub fn backend(&self) -> DbBackend {
        self.connection.get_database_backend()
    }

    /// Begins a write transaction (IMMEDIATE and serialized on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTxn, ServiceError> {
        match &self.sqlite_writer {
            Some(writer) => {
                let guard = writer.clone().lock_owned().await;
                let options = TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                };
                let transaction = self.connection.begin_with_options(options).await?;
                Ok(WriteTxn {
                    transaction,
                    _writer: Some(guard),
                })
            }
            None => Ok(WriteTxn {
                transaction: self.connection.begin().await?,
                _writer: None,
            }),
        }
    }

    /// Runs `operation` (which begins and commits its own transaction) until it succeeds, fails
    /// with a non-retryable error, or has been tried [`MAX_ATTEMPTS`] times.
    pub async fn with_retry<T, Fut, F>(&self, mut operation: F) -> Result<T, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Err(error) if error.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, %error, "retrying transaction");
                    let jitter = rand::random_range(0..=(1u64 << attempt.min(6)));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    pub async fn close(self) -> Result<(), DbErr> {
        self.connection.close().await
    }
}

/// A write transaction; dropping it without [`WriteTxn::commit`] rolls it back.
pub struct WriteTxn {
    transaction: DatabaseTransaction,
    /// Held until commit or rollback so that only one SQLite write transaction is open at a time.
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), ServiceError> {
        self.transaction.commit().await?;
        Ok(())
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.transaction
    }
}

/// Creates database `name` afresh (dropping any old one) on the PostgreSQL server behind
/// `admin_url` and returns a URL for it, keeping the admin URL's query parameters. Used by the
/// test suites and benchmarks, which each want a database of their own.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, DbErr> {
    let admin = sea_orm::Database::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

/// The database a test (or benchmark) should use, fresh: a new PostgreSQL database named
/// `test_<uuid>` when `PROMO_TEST_DATABASE_URL` names a server, else a SQLite file `file` in `dir`.
/// A server that is named but unusable is an error, never a silent fall-back to SQLite.
pub async fn fresh_test_database_url(dir: &std::path::Path, file: &str) -> Result<String, DbErr> {
    match std::env::var("PROMO_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            create_postgres_database(&admin_url, &name).await
        }
        _ => Ok(format!("sqlite://{}?mode=rwc", dir.join(file).display())),
    }
}

/// `sql` written with `?` placeholders, numbered (`$1`, `$2`, …) for PostgreSQL.
pub fn placeholders_for(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    for c in sql.chars() {
        if c == '?' {
            count += 1;
            numbered.push_str(&format!("${count}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}

/// What a database error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Serialization failure, deadlock, or a busy/locked SQLite database: run the transaction again.
    Retryable,
    UniqueViolation,
    /// The database cannot be reached, a pooled connection was not available in time, or a
    /// statement timed out.
    Unavailable,
    Other,
}

/// Classifies a database error by SQLSTATE (PostgreSQL) or result code (SQLite).
pub fn classify(error: &DbErr) -> DbErrorKind {
    let runtime = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return DbErrorKind::Unavailable,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return DbErrorKind::Other,
    };
    let RuntimeErr::SqlxError(sqlx_error) = runtime else {
        return DbErrorKind::Other;
    };
    match sqlx_error.as_ref() {
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().unwrap_or_default();
            classify_code(&code)
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            DbErrorKind::Unavailable
        }
        _ => DbErrorKind::Other,
    }
}

fn classify_code(code: &str) -> DbErrorKind {
    match code {
        // serialization_failure, deadlock_detected
        "40001" | "40P01" => DbErrorKind::Retryable,
        // unique_violation
        "23505" => DbErrorKind::UniqueViolation,
        // query_canceled (statement_timeout), admin_shutdown, cannot_connect_now
        "57014" | "57P01" | "57P03" => DbErrorKind::Unavailable,
        _ => match code.parse::<i32>() {
            // SQLite: the primary result code is the low byte of the extended one.
            Ok(sqlite_code) => match sqlite_code & 0xff {
                5 | 6 => DbErrorKind::Retryable,
                19 if sqlite_code == 2067 || sqlite_code == 1555 => DbErrorKind::UniqueViolation,
                _ => DbErrorKind::Other,
            },
            Err(_) => DbErrorKind::Other,
        },
    }
}

/// Inserts one row of any table. Callers check uniqueness in their transaction first, so a
/// unique violation means a concurrent insert committed: the transaction is run again (and then
/// sees that row).
pub async fn insert<A, C>(connection: &C, row: A) -> Result<(), ServiceError>
where
    A: sea_orm::ActiveModelTrait + Send,
    C: ConnectionTrait,
{
    use sea_orm::EntityTrait;
    match <A::Entity as EntityTrait>::insert(row)
        .exec_without_returning(connection)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is_unique_violation(&error) => Err(ServiceError::retryable_conflict(error)),
        Err(error) => Err(error.into()),
    }
}

/// Stores the changed fields of one row (its key must be set).
pub async fn update<A, C>(connection: &C, row: A) -> Result<(), ServiceError>
where
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    C: ConnectionTrait,
{
    use sea_orm::EntityTrait;
    <A::Entity as EntityTrait>::update(row)
        .exec(connection)
        .await?;
    Ok(())
}

/// True when `error` is a unique-key violation.
pub fn is_unique_violation(error: &DbErr) -> bool {
    classify(error) == DbErrorKind::UniqueViolation
}

/// Per-workspace version counters: a table `(workspace_id PRIMARY KEY, version BIGINT)` that a
/// domain whose replicas cache a workspace's data (selection, pricing) bumps in the transaction of
/// every change; each replica's refresher reloads what it caches when the counter moves.
pub async fn bump_workspace_version<C: ConnectionTrait>(
    connection: &C,
    table: &'static str,
    workspace_id: uuid::Uuid,
) -> Result<(), ServiceError> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
    let statement = Query::insert()
        .into_table(Alias::new(table))
        .columns([Alias::new("workspace_id"), Alias::new("version")])
        .values([workspace_id.into(), 1i64.into()])
        .map_err(ServiceError::internal)?
        .on_conflict(
            OnConflict::column(Alias::new("workspace_id"))
                .value(
                    Alias::new("version"),
                    Expr::col((Alias::new(table), Alias::new("version"))).add(1),
                )
                .to_owned(),
        )
        .to_owned();
    let backend = connection.get_database_backend();
    connection.execute_raw(backend.build(&statement)).await?;
    Ok(())
}

/// A workspace's version counter in `table` (0 before its first change).
pub async fn workspace_version<C: ConnectionTrait>(
    connection: &C,
    table: &'static str,
    workspace_id: uuid::Uuid,
) -> Result<i64, ServiceError> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let statement = Query::select()
        .column(Alias::new("version"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace_id))
        .to_owned();
    let backend = connection.get_database_backend();
    match connection.query_one_raw(backend.build(&statement)).await? {
        Some(row) => Ok(row.try_get_by_index::<i64>(0)?),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgresql_only() {
        let sql = "UPDATE t SET a = ? WHERE b = ?";
        assert_eq!(
            placeholders_for(DbBackend::Postgres, sql),
            "UPDATE t SET a = $1 WHERE b = $2"
        );
        assert_eq!(placeholders_for(DbBackend::Sqlite, sql), sql);
    }

    #[test]
    fn sqlstate_and_sqlite_codes_are_classified() {
        assert_eq!(classify_code("40001"), DbErrorKind::Retryable);
        assert_eq!(classify_code("40P01"), DbErrorKind::Retryable);
        assert_eq!(classify_code("23505"), DbErrorKind::UniqueViolation);
        assert_eq!(classify_code("5"), DbErrorKind::Retryable);
        assert_eq!(classify_code("517"), DbErrorKind::Retryable);
        assert_eq!(classify_code("2067"), DbErrorKind::UniqueViolation);
        assert_eq!(classify_code("787"), DbErrorKind::Other);
        assert_eq!(classify_code("22P02"), DbErrorKind::Other);
    }
}

/// Parses a JSON column of one row. A value that does not parse is an error naming the table,
/// the row and the column (an operator can find and repair it), never a silent empty value.
pub fn json_column<T: serde::de::DeserializeOwned>(
    table: &str,
    row: impl std::fmt::Display,
    column: &str,
    text: &str,
) -> Result<T, ServiceError> {
    serde_json::from_str(text).map_err(|error| {
        ServiceError::internal(format!(
            "{table} row {row}: column {column} does not hold the JSON it should: {error}"
        ))
    })
}

/// The JSON text of a value for a JSON column.
pub fn to_json_column<T: serde::Serialize>(value: &T) -> Result<String, ServiceError> {
    serde_json::to_string(value)
        .map_err(|error| ServiceError::internal(format!("a JSON column value: {error}")))
}

#[cfg(test)]
mod json_column_tests {
    use super::*;

    #[test]
    fn corrupt_json_names_its_row_and_column() {
        let ok: Vec<String> = json_column("t", "r1", "tags", r#"["a"]"#).expect("parses");
        assert_eq!(ok, ["a"]);
        let error = json_column::<Vec<String>>("promo_material", "(w, m)", "tags", "[\"a\"")
            .expect_err("truncated");
        let detail = format!("{error:?}");
        assert!(
            detail.contains("promo_material row (w, m): column tags"),
            "{detail}"
        );
        assert_eq!(error.message(), "internal error");
    }
}

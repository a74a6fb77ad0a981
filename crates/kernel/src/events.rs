//! Domain events through a transactional outbox.
//!
//! A domain that changes something others care about appends an [`Event`] with [`append`] inside
//! the write transaction that makes the change: the event exists exactly when the change
//! committed. Consumers (notifications, webhooks, analytics, a NATS publisher) read events in
//! order through a cursor of their own and are told of each event **at least once**: a consumer
//! that fails or dies before it acknowledges sees the same events again, so every consumer is
//! idempotent by event id.
//!
//! # The envelope (a contract: consumers outside this process depend on it)
//! - `id`: UUID v7, unique per workspace; the idempotency key of every effect of the event.
//! - `workspace_id`: the tenant the event belongs to. A consumer acts within that workspace only.
//! - `event_type`: `<domain>.<what happened>` in lower snake case, past tense or state reached,
//!   e.g. `promotion.exhausted`, `promotion.completed`, `promotion.refunded`. A type's payload
//!   only gains fields; a change that would remove or retype one is a new type.
//! - `subject`: the resource it is about, as a relative resource name: `promotions/{id}`.
//! - `occurred_at`: when the causing transaction ran (the server clock, UTC).
//! - `payload`: a JSON object the type documents where it is appended.
//! - `position`: the event's place in the one total order every consumer reads in, given after
//!   commit by the sequencer (positions increase in commit order and are never reused).
//!
//! # How it stays correct with several gateway replicas
//! - Positions: a transaction's events are committed without a position. [`sequence`] (run by
//!   every replica, serialized by a row lock on PostgreSQL and the single writer on SQLite) gives
//!   positions to committed events only, so a consumer that has read up to position `p` can never
//!   later find an event below `p` (a gap a slow transaction would leave with an autoincrement).
//! - Consumers: each consumer name has one cursor and a lease. [`claim`] takes or renews the lease
//!   and returns the events after the cursor; only the lease holder can [`acknowledge`]. A replica
//!   that stops renewing loses the lease when it expires and another replica takes over from the
//!   last acknowledged position.
//! - Retention: [`prune`] deletes events every consumer has acknowledged once they are older
//!   than the retention the operator configured.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::clock::{from_micros, to_micros};
use crate::context::Context;
use crate::db::placeholders_for;
use crate::error::ServiceError;

/// Longest consumer name.
pub const MAX_CONSUMER_NAME: usize = 64;

/// An event as a domain appends it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub workspace_id: Uuid,
    /// `<domain>.<what happened>`, e.g. `promotion.exhausted`.
    pub event_type: &'static str,
    /// The resource it is about, e.g. `promotions/{id}`.
    pub subject: String,
    /// A JSON object; its fields are documented where the event type is appended.
    pub payload: serde_json::Value,
}

/// An event as a consumer reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub position: i64,
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub subject: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, placeholders_for(backend, sql), values)
}

/// Appends one event of `event_type` about `subject` in the open transaction, at `now`
/// (microseconds): the short form every domain's events use.
pub async fn emit(
    txn: &crate::db::WriteTxn,
    workspace_id: Uuid,
    event_type: &'static str,
    subject: String,
    payload: serde_json::Value,
    now: i64,
) -> Result<(), ServiceError> {
    append(
        &**txn,
        NewEvent {
            workspace_id,
            event_type,
            subject,
            payload,
        },
        from_micros(now),
    )
    .await?;
    Ok(())
}

/// Appends `event` in the caller's transaction (`connection` is the caller's write
/// transaction); returns its id.
pub async fn append<C: ConnectionTrait>(
    connection: &C,
    event: NewEvent,
    now: DateTime<Utc>,
) -> Result<Uuid, ServiceError> {
    debug_assert!(
        event.payload.is_object(),
        "an event payload is a JSON object"
    );
    let id = Uuid::now_v7();
    connection
        .execute_raw(statement(
            connection.get_database_backend(),
            "INSERT INTO kernel_event (workspace_id, id, position, event_type, subject, occurred_at, payload) \
             VALUES (?, ?, NULL, ?, ?, ?, ?)",
            vec![
                event.workspace_id.into(),
                id.into(),
                event.event_type.into(),
                event.subject.into(),
                to_micros(now).into(),
                event.payload.to_string().into(),
            ],
        ))
        .await?;
    Ok(id)
}

/// Appends many events in the caller's transaction with multi-row inserts (what a batch of
/// payouts emits at once); the sequencer gives them positions after commit, as for [`append`].
pub async fn append_many<C: ConnectionTrait>(
    connection: &C,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    /// Rows per statement: 6 parameters each stays far below every parameter limit.
    const ROWS: usize = 500;
    let backend = connection.get_database_backend();
    let occurred_at = to_micros(now);
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let mut values = Vec::with_capacity(ROWS * 6);
        let mut rows = Vec::with_capacity(ROWS);
        for event in events.by_ref().take(ROWS) {
            debug_assert!(
                event.payload.is_object(),
                "an event payload is a JSON object"
            );
            rows.push("(?, ?, NULL, ?, ?, ?, ?)");
            values.extend([
                event.workspace_id.into(),
                Uuid::now_v7().into(),
                event.event_type.into(),
                event.subject.into(),
                occurred_at.into(),
                event.payload.to_string().into(),
            ]);
        }
        connection
            .execute_raw(statement(
                backend,
                &format!(
                    "INSERT INTO kernel_event (workspace_id, id, position, event_type, subject, occurred_at, payload) VALUES {}",
                    rows.join(", ")
                ),
                values,
            ))
            .await?;
    }
    Ok(())
}

/// Gives positions to up to `limit` committed events that have none, in one transaction;
/// returns how many it sequenced. Cheap when there is nothing to do (one indexed read).
pub async fn sequence(context: &Context, limit: u64) -> Result<usize, ServiceError> {
    let connection = context.db.connection();
    let backend = connection.get_database_backend();
    let waiting = connection
        .query_one_raw(statement(
            backend,
            "SELECT 1 FROM kernel_event WHERE position IS NULL LIMIT 1",
            vec![],
        ))
        .await?;
    if waiting.is_none() {
        return Ok(0);
    }
    context
        .write(|txn| async move {
            let lock = match backend {
                DbBackend::Postgres => {
                    "SELECT last_position FROM kernel_event_sequence WHERE id = 1 FOR UPDATE"
                }
                // The transaction is IMMEDIATE: SQLite has one writer at a time already.
                _ => "SELECT last_position FROM kernel_event_sequence WHERE id = 1",
            };
            let last: i64 = match txn.query_one_raw(statement(backend, lock, vec![])).await? {
                Some(row) => row.try_get_by_index(0)?,
                None => {
                    return Err(ServiceError::internal(
                        "kernel_event_sequence has no row 1 (migration missing?)",
                    ));
                }
            };
            let rows = txn
                .query_all_raw(statement(
                    backend,
                    "SELECT workspace_id, id FROM kernel_event WHERE position IS NULL \
                     ORDER BY occurred_at, id LIMIT ?",
                    vec![(limit as i64).into()],
                ))
                .await?;
            let mut position = last;
            for row in &rows {
                let workspace_id: Uuid = row.try_get_by_index(0)?;
                let id: Uuid = row.try_get_by_index(1)?;
                position += 1;
                txn.execute_raw(statement(
                    backend,
                    "UPDATE kernel_event SET position = ? WHERE workspace_id = ? AND id = ?",
                    vec![position.into(), workspace_id.into(), id.into()],
                ))
                .await?;
            }
            txn.execute_raw(statement(
                backend,
                "UPDATE kernel_event_sequence SET last_position = ? WHERE id = 1",
                vec![position.into()],
            ))
            .await?;
            Ok((txn, rows.len()))
        })
        .await
}

fn check_consumer_name(name: &str) {
    debug_assert!(
        !name.is_empty()
            && name.len() <= MAX_CONSUMER_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "consumer names are short lower-case constants"
    );
}

/// Takes (or renews) `consumer`'s lease for `owner` for `lease`, and returns up to `limit`
/// sequenced events after its cursor; `None` while another owner holds an unexpired lease. A
/// consumer seen for the first time starts at the oldest event still retained.
pub async fn claim(
    context: &Context,
    consumer: &str,
    owner: Uuid,
    lease: Duration,
    limit: u64,
) -> Result<Option<Vec<Event>>, ServiceError> {
    check_consumer_name(consumer);
    let now = to_micros(context.clock.now());
    let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    let backend = context.db.backend();
    let position = context
        .write(|txn| async move {
            txn.execute_raw(statement(
                backend,
                "INSERT INTO kernel_event_consumer (name, position, lease_owner, lease_until, updated_at) \
                 VALUES (?, 0, NULL, 0, ?) ON CONFLICT (name) DO NOTHING",
                vec![consumer.into(), now.into()],
            ))
            .await?;
            let taken = txn
                .execute_raw(statement(
                    backend,
                    "UPDATE kernel_event_consumer SET lease_owner = ?, lease_until = ? \
                     WHERE name = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                    vec![
                        owner.into(),
                        until.into(),
                        consumer.into(),
                        owner.into(),
                        now.into(),
                    ],
                ))
                .await?
                .rows_affected();
            if taken == 0 {
                return Ok((txn, None));
            }
            let row = txn
                .query_one_raw(statement(
                    backend,
                    "SELECT position FROM kernel_event_consumer WHERE name = ?",
                    vec![consumer.into()],
                ))
                .await?;
            let position: i64 = match row {
                Some(row) => row.try_get_by_index(0)?,
                None => 0,
            };
            Ok((txn, Some(position)))
        })
        .await?;
    let Some(position) = position else {
        return Ok(None);
    };
    read_after(context.db.connection(), position, limit)
        .await
        .map(Some)
}

/// Up to `limit` sequenced events after `position`, in order.
pub async fn read_after<C: ConnectionTrait>(
    connection: &C,
    position: i64,
    limit: u64,
) -> Result<Vec<Event>, ServiceError> {
    let rows = connection
        .query_all_raw(statement(
            connection.get_database_backend(),
            "SELECT position, id, workspace_id, event_type, subject, occurred_at, payload \
             FROM kernel_event WHERE position > ? ORDER BY position LIMIT ?",
            vec![position.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get_by_index(1)?;
            let workspace_id: Uuid = row.try_get_by_index(2)?;
            let payload: String = row.try_get_by_index(6)?;
            let payload = serde_json::from_str(&payload).map_err(|error| {
                ServiceError::internal(format!(
                    "kernel_event row ({workspace_id}, {id}): payload is not JSON: {error}"
                ))
            })?;
            Ok(Event {
                position: row.try_get_by_index(0)?,
                id,
                workspace_id,
                event_type: row.try_get_by_index(3)?,
                subject: row.try_get_by_index(4)?,
                occurred_at: from_micros(row.try_get_by_index(5)?),
                payload,
            })
        })
        .collect()
}

/// Moves `consumer`'s cursor to `position` (the last event it handled) if `owner` still holds
/// the lease; `false` when it lost the lease meanwhile (another replica will deliver again from
/// the last acknowledged position). Never moves a cursor back.
pub async fn acknowledge(
    context: &Context,
    consumer: &str,
    owner: Uuid,
    position: i64,
) -> Result<bool, ServiceError> {
    check_consumer_name(consumer);
    let now = to_micros(context.clock.now());
    let backend = context.db.backend();
    context
        .write(|txn| async move {
            let moved = txn
                .execute_raw(statement(
                    backend,
                    "UPDATE kernel_event_consumer SET position = CASE WHEN position < ? THEN ? ELSE position END, \
                     updated_at = ? WHERE name = ? AND lease_owner = ? AND lease_until >= ?",
                    vec![
                        position.into(),
                        position.into(),
                        now.into(),
                        consumer.into(),
                        owner.into(),
                        now.into(),
                    ],
                ))
                .await?
                .rows_affected();
            Ok((txn, moved == 1))
        })
        .await
}

/// Gives up `consumer`'s lease (on shutdown), so another replica takes over at once.
pub async fn release(context: &Context, consumer: &str, owner: Uuid) -> Result<(), ServiceError> {
    let backend = context.db.backend();
    context
        .write(|txn| async move {
            txn.execute_raw(statement(
                backend,
                "UPDATE kernel_event_consumer SET lease_owner = NULL, lease_until = 0 \
                 WHERE name = ? AND lease_owner = ?",
                vec![consumer.into(), owner.into()],
            ))
            .await?;
            Ok((txn, ()))
        })
        .await
}

/// Deletes sequenced events older than `keep` that every consumer has acknowledged; returns how
/// many.
pub async fn prune(context: &Context, keep: Duration) -> Result<u64, ServiceError> {
    let cutoff = to_micros(context.clock.now())
        .saturating_sub(i64::try_from(keep.as_micros()).unwrap_or(i64::MAX));
    let backend = context.db.backend();
    context
        .write(|txn| async move {
            let deleted = txn
                .execute_raw(statement(
                    backend,
                    "DELETE FROM kernel_event WHERE position IS NOT NULL AND occurred_at < ? \
                     AND position <= COALESCE((SELECT MIN(position) FROM kernel_event_consumer), \
                     (SELECT last_position FROM kernel_event_sequence WHERE id = 1))",
                    vec![cutoff.into()],
                ))
                .await?
                .rows_affected();
            Ok((txn, deleted))
        })
        .await
}

/// What an operator sees of the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxStatus {
    /// The last position given.
    pub last_position: i64,
    /// Events committed but not yet sequenced.
    pub unsequenced: i64,
    /// `(name, acknowledged position, lease owner while leased)` of every consumer.
    pub consumers: Vec<(String, i64, Option<Uuid>)>,
}

pub async fn status(context: &Context) -> Result<OutboxStatus, ServiceError> {
    let connection = context.db.connection();
    let backend = connection.get_database_backend();
    let now = to_micros(context.clock.now());
    let one = |sql: &'static str| async move {
        let row = connection
            .query_one_raw(statement(backend, sql, vec![]))
            .await?;
        Ok::<i64, ServiceError>(match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        })
    };
    let last_position = one("SELECT last_position FROM kernel_event_sequence WHERE id = 1").await?;
    let unsequenced = one("SELECT COUNT(*) FROM kernel_event WHERE position IS NULL").await?;
    let rows = connection
        .query_all_raw(statement(
            backend,
            "SELECT name, position, lease_owner, lease_until FROM kernel_event_consumer ORDER BY name",
            vec![],
        ))
        .await?;
    let mut consumers = Vec::with_capacity(rows.len());
    for row in rows {
        let lease_owner: Option<Uuid> = row.try_get_by_index(2)?;
        let lease_until: i64 = row.try_get_by_index(3)?;
        consumers.push((
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            lease_owner.filter(|_| lease_until >= now),
        ));
    }
    Ok(OutboxStatus {
        last_position,
        unsequenced,
        consumers,
    })
}

/// Runs the sequencer and retention for as long as the task lives: every `period` it sequences
/// what committed, and about hourly it prunes what every consumer has passed and is older than
/// `keep`. Failures are logged and counted (`promo_background_failures_total{job="events"}`) and
/// retried next period.
pub async fn run_sequencer(context: Context, period: Duration, keep: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = (3_600_000 / period.as_millis().max(1) as u64).max(1);
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        ticks += 1;
        loop {
            match sequence(&context, 1000).await {
                Ok(1000) => continue,
                Ok(_) => break,
                Err(error) => {
                    metrics::counter!("promo_background_failures_total", "job" => "events")
                        .increment(1);
                    tracing::warn!(%error, "sequencing events failed; retrying");
                    break;
                }
            }
        }
        if ticks.is_multiple_of(prune_every) {
            match prune(&context, keep).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "pruned delivered events"),
                Err(error) => {
                    metrics::counter!("promo_background_failures_total", "job" => "events")
                        .increment(1);
                    tracing::warn!(%error, "pruning events failed");
                }
            }
        }
    }
}

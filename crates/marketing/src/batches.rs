//! Coupon batches: GenerateCoupons's job, run chunk by chunk in the background, resumable after a
//! stop, never adding a code twice or more codes than asked.

use std::sync::Arc;

use kernel::ServiceError;
use kernel::clock::micros_to_timestamp;
use proto::marketing::v1 as pb;
use sea_orm::ActiveValue::Set;
use uuid::Uuid;

use crate::DOMAIN;
use crate::codes::Pattern;
use crate::coupons::Terms;
use crate::model::CouponDef;
use crate::state::Marketing;
use crate::store::{self, DayCounts, batch, coupon};

/// Batch statuses (the proto enum's numbers).
pub const BATCH_RUNNING: i32 = 1;
pub const BATCH_SUCCEEDED: i32 = 2;
pub const BATCH_FAILED: i32 = 3;
/// A running batch without progress for this long was left by a stopped server and is resumed.
pub const BATCH_STALL_MICROS: i64 = 30_000_000;
/// Codes per transaction, and per INSERT statement within it.
const CHUNK: usize = 100_000;
const ROWS_PER_STATEMENT: usize = 5_000;
/// Chunks in a row that may add no code before a batch gives up (its pattern is used up by
/// codes that already exist).
const MAX_BARREN_CHUNKS: u32 = 3;
/// Why a worker's chunk was rolled back (internal: never reaches a client).
const BATCH_ADVANCED_ELSEWHERE: &str = "BATCH_ADVANCED_ELSEWHERE";

pub(crate) fn batch_to_proto(row: &batch::Model) -> pb::CouponBatch {
    pb::CouponBatch {
        id: row.id.to_string(),
        status: row.status,
        requested: row.requested,
        generated: row.generated,
        pattern: row.pattern.clone(),
        prefix: row.prefix.clone(),
        error: row.error.clone(),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    }
}

/// Runs a batch in the background until it is done.
pub(crate) fn spawn_batch(core: Arc<Marketing>, workspace_id: Uuid, id: Uuid) {
    tokio::spawn(async move {
        if let Err(error) = run_batch(&core, workspace_id, id).await {
            tracing::warn!(%error, batch_id = %id, "coupon batch failed; the sweeper resumes it");
        }
    });
}

/// Generates a batch's codes chunk by chunk: each chunk's coupons and the batch's progress
/// commit together, and only while the progress is what this worker last saw, so two workers
/// (a resumed batch) never both add codes.
pub async fn run_batch(core: &Marketing, workspace_id: Uuid, id: Uuid) -> Result<(), ServiceError> {
    let connection = core.context.db.connection();
    let mut barren = 0;
    // Whether this replica's snapshot received every coupon of the batch as it went in (not so
    // after a restart, or when a chunk skipped codes already taken): then the end needs no
    // rebuild of the snapshot.
    let mut recorded_all = match store::get_batch(connection, workspace_id, id).await? {
        Some(row) => row.generated == 0,
        None => return Ok(()),
    };
    loop {
        let Some(row) = store::get_batch(connection, workspace_id, id).await? else {
            return Ok(());
        };
        if row.status != BATCH_RUNNING {
            return Ok(());
        }
        let now = core.now();
        if row.generated >= row.requested {
            finish_batch(core, &row, BATCH_SUCCEEDED, "", recorded_all).await?;
            return Ok(());
        }
        let terms: Terms =
            kernel::db::json_column("mkt_coupon_batch", id, "template", &row.template)?;
        let pattern = Pattern::new(&row.prefix, &row.pattern, !row.allow_ambiguous)
            .map_err(ServiceError::internal)?;
        let wanted = usize::try_from(row.requested - row.generated)
            .unwrap_or(CHUNK)
            .min(CHUNK);
        let mut codes = pattern
            .generate_unique(&mut rand::rng(), wanted, |_| false)
            .map_err(ServiceError::internal)?;
        // In order, the chunk walks the code index once instead of landing on random pages.
        codes.sort_unstable();
        let rows: Vec<coupon::Model> = codes
            .into_iter()
            .map(|code| terms.row(workspace_id, code, Some(id), None, now))
            .collect();
        let (terms, rows_ref, expected) = (&terms, &rows, row.generated);
        let advanced = core
            .context
            .write(|txn| async move {
                let mut inserted = 0;
                for part in rows_ref.chunks(ROWS_PER_STATEMENT) {
                    inserted += store::insert_new_coupons(&*txn, part).await?;
                }
                let inserted = i64::try_from(inserted).unwrap_or(0);
                if !store::advance_batch(&*txn, workspace_id, id, expected, inserted, now).await? {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        BATCH_ADVANCED_ELSEWHERE,
                        format!("coupon_batches/{id}"),
                        "another worker advanced the batch",
                    ));
                }
                if let Some(campaign_id) = terms.campaign_id {
                    let day = crate::redemptions::local_day(&*txn, workspace_id, now).await?;
                    let counts = DayCounts {
                        coupons_generated: inserted,
                        ..DayCounts::default()
                    };
                    store::add_to_day(&*txn, workspace_id, campaign_id, &day, "", counts).await?;
                }
                Ok((txn, Some(inserted)))
            })
            .await;
        match &advanced {
            Ok(Some(inserted)) if usize::try_from(*inserted).ok() == Some(rows.len()) => {
                let coupons = rows.iter().map(CouponDef::from_row).collect();
                core.record_new_coupons(workspace_id, coupons).await;
            }
            _ => recorded_all = false,
        }
        let advanced = match advanced {
            Ok(inserted) => inserted,
            Err(error) if error.reason() == BATCH_ADVANCED_ELSEWHERE => None,
            Err(error) => return Err(error),
        };
        match advanced {
            // Another worker advanced it first: read where it stands and go on from there.
            None => {}
            Some(0) => {
                barren += 1;
                if barren >= MAX_BARREN_CHUNKS {
                    let error = "the pattern has no free codes left in this workspace";
                    finish_batch(core, &row, BATCH_FAILED, error, recorded_all).await?;
                    return Ok(());
                }
            }
            Some(_) => barren = 0,
        }
    }
}

async fn finish_batch(
    core: &Marketing,
    row: &batch::Model,
    status: i32,
    error: &str,
    recorded_all: bool,
) -> Result<(), ServiceError> {
    let now = core.now();
    let (workspace_id, id) = (row.workspace_id, row.id);
    core.context
        .write(|txn| async move {
            store::update(
                &*txn,
                batch::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    status: Set(status),
                    error: Set(error.to_owned()),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            store::bump_version(&*txn, workspace_id).await?;
            Ok((txn, ()))
        })
        .await?;
    tracing::info!(batch_id = %id, generated = row.generated, status, "coupon batch finished");
    if recorded_all {
        core.cover_own_change(workspace_id).await;
    } else {
        core.refresh(workspace_id).await;
    }
    Ok(())
}

/// Claims a stalled batch for this server (only one server wins), before resuming it.
pub(crate) async fn claim_stalled(
    core: &Marketing,
    row: &batch::Model,
) -> Result<bool, ServiceError> {
    let now = core.now();
    let (workspace_id, id, seen) = (row.workspace_id, row.id, row.generated);
    core.context
        .write(|txn| async move {
            let claimed = store::advance_batch(&*txn, workspace_id, id, seen, 0, now).await?;
            Ok((txn, claimed))
        })
        .await
}

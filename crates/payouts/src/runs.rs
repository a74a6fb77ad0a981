//! Payout runs: each walks every wallet of a currency once, in pages of [`RUN_PAGE`] wallets, one
//! transaction each. A wallet whose available balance reaches the minimum is paid (a payout,
//! APPROVED, and the money moved to the in-flight account in the same transaction) unless the
//! promoter was paid in that period already; a smaller balance is carried forward; a promoter
//! without a payout-enabled account is held. A run remembers the last wallet it passed, so a retry
//! with the same request id (after a crash, say) carries on where it stopped; another run of the
//! same period pays only those the earlier ones did not (a promoter who connected an account
//! since), and the unique key `(workspace, period, currency, promoter)` makes a second payout
//! impossible even when runs overlap.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use credits_ledger::accounts::ensure_system_account;
use credits_ledger::queries::wallets_after;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::settings::of_workspace;
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::payouts::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::convert::{self, money, time};
use crate::entity::{account, carry, payout, run};
use crate::escrow::CODE_PAYOUT;
use crate::settings::PayoutsSettings;
use crate::state::{Payouts, local_month};
use crate::{DOMAIN, dispatch};

/// Rows per insert statement (17 parameters a payout row stays below SQLite's 32,766).
const INSERT_ROWS: usize = 1000;

/// How long the sweeper leaves a new payout to the run that approved it.
const SWEEPER_GRACE_MICROS: i64 = 60_000_000;

/// Wallets one transaction of a run takes on.
pub const RUN_PAGE: u64 = 4000;

/// INVALID_ARGUMENT unless `period` is a month, `YYYY-MM`.
pub(crate) fn check_period(period: &str) -> Result<(), ServiceError> {
    let valid = period.len() == 7
        && chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").is_ok();
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid_field(
            DOMAIN,
            "period",
            "must be a month, YYYY-MM",
        ))
    }
}

fn run_to_proto(row: &run::Model) -> pb::PayoutRun {
    pb::PayoutRun {
        id: row.id.to_string(),
        period: row.period.clone(),
        currency: row.currency.clone(),
        status: row.status,
        payouts: row.payouts,
        total: money(&row.currency, row.total),
        skipped_below_minimum: row.skipped_below_minimum,
        held: row.held,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

/// RunPayouts: starts a run of the period and currency (a retry with the same request id resumes
/// it), walks every wallet and sends what it approved to the provider; answers the run as it
/// ended.
pub(crate) async fn run(
    core: &Arc<Payouts>,
    principal: &Principal,
    body: &pb::RunPayoutsRequest,
) -> Result<pb::PayoutRun, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "RunPayouts", body)?;
    check_period(&body.period)?;
    let currency = convert::currency("currency", &body.currency)?.code;
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let period = body.period.as_str();
    let started = core
        .context
        .idempotent(&key, |txn| async move {
            if period > local_month(&*txn, workspace_id, now).await?.as_str() {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "period",
                    "must not be a month that has not begun",
                ));
            }
            let row = run::Model {
                workspace_id,
                id: Uuid::now_v7(),
                period: period.to_owned(),
                currency: currency.to_owned(),
                status: pb::PayoutRunStatus::Running as i32,
                payouts: 0,
                total: 0,
                skipped_below_minimum: 0,
                held: 0,
                cursor: None,
                created_at: now,
                updated_at: now,
            };
            kernel::db::insert(&*txn, run::ActiveModel::from(row.clone())).await?;
            Ok((txn, run_to_proto(&row)))
        })
        .await?;
    let run_id = kernel::ids::parse_uuid(DOMAIN, "id", &started.id)?;
    let mut pages = 0u64;
    loop {
        pages += 1;
        if pages.is_multiple_of(ANALYZE_EVERY_PAGES) {
            refresh_statistics(core).await;
        }
        let (finished, approved) = run_page(core, workspace_id, run_id).await?;
        if !approved.is_empty() {
            // What the provider could not take now stays APPROVED; the sweeper sends it again.
            if let Err(error) = dispatch::send_many(core, workspace_id, approved).await {
                tracing::warn!(%error, %run_id, "sending a page of payouts failed; the sweeper retries");
            }
        }
        if finished {
            break;
        }
    }
    let row = run::Entity::find_by_id((workspace_id, run_id))
        .one(core.context.db.connection())
        .await?
        .ok_or_else(|| ServiceError::internal("a payout run vanished"))?;
    Ok(run_to_proto(&row))
}

/// Pages between two statistics refreshes on PostgreSQL.
const ANALYZE_EVERY_PAGES: u64 = 4;

/// Refreshes PostgreSQL's statistics of the tables a run grows. Autovacuum analyzes them only
/// minutes after they have grown, and until then the planner believes them small and looks rows
/// up through an index led by `workspace_id` alone (a scan of the tenant's rows per lookup) instead
/// of the primary key. A failure is logged and the run goes on.
async fn refresh_statistics(core: &Payouts) {
    let connection = core.context.db.connection();
    if connection.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    if let Err(error) = connection
        .execute_unprepared("ANALYZE ledger_transfer, ledger_account, payout_payout, kernel_event")
        .await
    {
        tracing::warn!(%error, "refreshing statistics during a payout run failed");
    }
}

/// What one page of a run decided.
#[derive(Default)]
struct Page {
    payouts: Vec<payout::Model>,
    transfers: Vec<NewTransfer>,
    carried: Vec<carry::ActiveModel>,
    skipped: i64,
    held: i64,
}

/// One page of wallets in one transaction; returns whether the run is finished and the payouts
/// it approved.
async fn run_page(
    core: &Payouts,
    workspace_id: Uuid,
    run_id: Uuid,
) -> Result<(bool, Vec<payout::Model>), ServiceError> {
    core.context
        .write(|txn| async move {
            let now = core.now();
            let mut row = run::Entity::find_by_id((workspace_id, run_id))
                .lock_exclusive()
                .one(&*txn)
                .await?
                .ok_or_else(|| ServiceError::internal("a payout run vanished"))?;
            if row.status == pb::PayoutRunStatus::Completed as i32 {
                return Ok((txn, (true, Vec::new())));
            }
            let wallets =
                wallets_after(&*txn, workspace_id, &row.currency, row.cursor, RUN_PAGE).await?;
            let Some(last) = wallets.last().map(|wallet| wallet.owner_id) else {
                row.status = pb::PayoutRunStatus::Completed as i32;
                save_run(&*txn, &row, now).await?;
                return Ok((txn, (true, Vec::new())));
            };
            let owners: Vec<Uuid> = wallets.iter().map(|wallet| wallet.owner_id).collect();
            let accounts: HashMap<Uuid, account::Model> = account::Entity::find()
                .filter(account::Column::WorkspaceId.eq(workspace_id))
                .filter(account::Column::PromoterId.is_in(owners.iter().copied()))
                .filter(account::Column::PayoutsEnabled.eq(true))
                .all(&*txn)
                .await?
                .into_iter()
                .map(|account| (account.promoter_id, account))
                .collect();
            let paid_already: HashSet<Uuid> = payout::Entity::find()
                .select_only()
                .column(payout::Column::PromoterId)
                .filter(payout::Column::WorkspaceId.eq(workspace_id))
                .filter(payout::Column::Period.eq(row.period.as_str()))
                .filter(payout::Column::Currency.eq(row.currency.as_str()))
                .filter(payout::Column::PromoterId.is_in(owners.iter().copied()))
                .into_tuple::<Uuid>()
                .all(&*txn)
                .await?
                .into_iter()
                .collect();
            let minimum = of_workspace::<PayoutsSettings, _>(&*txn, workspace_id)
                .await?
                .minimum_payout;
            let in_flight = ensure_system_account(
                &*txn,
                workspace_id,
                &SystemAccount::PayoutsInFlight,
                &row.currency,
                now,
            )
            .await?;
            let mut page = Page::default();
            for wallet in &wallets {
                let available = wallet.available();
                if paid_already.contains(&wallet.owner_id) || available <= 0 {
                    continue;
                }
                if available < minimum {
                    page.skipped += 1;
                    page.carried.push(carry::ActiveModel {
                        workspace_id: Set(workspace_id),
                        currency: Set(row.currency.clone()),
                        promoter_id: Set(wallet.owner_id),
                        period: Set(row.period.clone()),
                        amount: Set(available),
                        updated_at: Set(now),
                    });
                    continue;
                }
                let Some(account) = accounts.get(&wallet.owner_id) else {
                    page.held += 1;
                    continue;
                };
                let id = Uuid::now_v7();
                page.transfers.push(NewTransfer {
                    id: Uuid::now_v7(),
                    debit_account_id: wallet.account_id,
                    credit_account_id: in_flight,
                    amount: available,
                    code: CODE_PAYOUT.to_owned(),
                    reference: id.to_string(),
                    pending_id: None,
                    timeout_seconds: 0,
                    flags: 0,
                    metadata: Default::default(),
                });
                page.payouts.push(payout::Model {
                    workspace_id,
                    id,
                    run_id,
                    promoter_id: wallet.owner_id,
                    period: row.period.clone(),
                    currency: row.currency.clone(),
                    amount: available,
                    status: pb::PayoutStatus::Approved as i32,
                    failure_reason: String::new(),
                    provider: account.provider.clone(),
                    provider_account_id: account.provider_account_id.clone(),
                    provider_reference: String::new(),
                    attempts: 0,
                    // The run sends it right after this page commits; the sweeper takes over
                    // only if that did not happen within a minute.
                    next_attempt_at: now + SWEEPER_GRACE_MICROS,
                    provider_event_at: 0,
                    created_at: now,
                    updated_at: now,
                });
            }
            store_page(&*txn, workspace_id, &page, now).await?;
            row.payouts += page.payouts.len() as i64;
            row.total += page.payouts.iter().map(|payout| payout.amount).sum::<i64>();
            row.skipped_below_minimum += page.skipped;
            row.held += page.held;
            row.cursor = Some(last);
            save_run(&*txn, &row, now).await?;
            Ok((txn, (false, page.payouts)))
        })
        .await
}

/// Moves the page's payouts out of their wallets and stores the payouts and carried balances.
async fn store_page<C: sea_orm::ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    page: &Page,
    now: i64,
) -> Result<(), ServiceError> {
    if !page.transfers.is_empty() {
        let results = Ledger::apply_in(txn, workspace_id, &page.transfers, now).await?;
        match results
            .iter()
            .find(|result| **result != TransferResult::Created)
        {
            None => {}
            // An overlapping run moved the money first (the page read the wallet before the
            // ledger locked it): the page runs again and sees that run's payout.
            Some(TransferResult::ExceedsCredits) => {
                return Err(ServiceError::retryable_conflict(
                    "a wallet changed under a payout run",
                ));
            }
            Some(refused) => {
                return Err(ServiceError::internal(format!(
                    "the ledger refused a payout out of a wallet: {refused:?}"
                )));
            }
        }
        for chunk in page.payouts.chunks(INSERT_ROWS) {
            payout::Entity::insert_many(
                chunk
                    .iter()
                    .map(|payout| payout::ActiveModel::from(payout.clone())),
            )
            .exec_without_returning(txn)
            .await
            // An overlapping run paid one of these promoters first: the page runs again and
            // sees it.
            .map_err(|error| {
                if kernel::db::is_unique_violation(&error) {
                    ServiceError::retryable_conflict(error)
                } else {
                    error.into()
                }
            })?;
        }
    }
    for chunk in page.carried.chunks(INSERT_ROWS) {
        carry::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::columns([
                    carry::Column::WorkspaceId,
                    carry::Column::Currency,
                    carry::Column::PromoterId,
                ])
                .update_columns([
                    carry::Column::Period,
                    carry::Column::Amount,
                    carry::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

async fn save_run<C: sea_orm::ConnectionTrait>(
    txn: &C,
    row: &run::Model,
    now: i64,
) -> Result<(), ServiceError> {
    kernel::db::update(
        txn,
        run::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            status: Set(row.status),
            payouts: Set(row.payouts),
            total: Set(row.total),
            skipped_below_minimum: Set(row.skipped_below_minimum),
            held: Set(row.held),
            cursor: Set(row.cursor),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await
}

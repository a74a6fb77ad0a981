//! How payouts moves money through the ledger, each inside the caller's transaction: funding
//! into a campaign's escrow, earnings out of it (the promoter's part and the platform's fee as
//! one linked chain, pending while held), refunds on close, and payouts through the in-flight
//! account. The escrow account's no-overdraft limit is the backstop that keeps a campaign from
//! spending more than it holds, whatever the number of gateway replicas.

use std::collections::BTreeMap;

use credits_ledger::accounts::ensure_system_account;
use credits_ledger::domain::{LINKED, PENDING, POST_PENDING_TRANSFER, VOID_PENDING_TRANSFER};
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::ServiceError;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::DOMAIN;
use crate::domain::Split;

pub const CODE_FUNDING: &str = "PAYOUTS_FUNDING";
pub const CODE_EARNING: &str = "PAYOUTS_EARNING";
pub const CODE_FEE: &str = "PAYOUTS_PLATFORM_FEE";
pub const CODE_REFUND: &str = "PAYOUTS_REFUND";
pub const CODE_PAYOUT: &str = "PAYOUT";
pub const CODE_SETTLED: &str = "PAYOUT_SETTLED";
pub const CODE_RETURNED: &str = "PAYOUT_RETURNED";

/// A campaign's escrow account.
pub fn escrow(campaign_id: Uuid) -> SystemAccount {
    SystemAccount::Escrow(format!("payouts:campaign:{campaign_id}"))
}

/// What the ledger refused, as the caller's error: escrow or a wallet would be overdrawn
/// (FAILED_PRECONDITION `reason`), or something that must not happen (internal).
pub fn refused(result: TransferResult, reason: &'static str, what: &str) -> ServiceError {
    match result {
        TransferResult::ExceedsCredits => {
            ServiceError::failed_precondition(DOMAIN, reason, what.to_owned(), what.to_owned())
        }
        other => {
            ServiceError::internal(format!("the ledger refused a payouts transfer: {other:?}"))
        }
    }
}

/// Moves `amount` between two accounts the payouts domain manages; refused transfers become
/// `reason`.
#[allow(clippy::too_many_arguments)]
pub async fn transfer<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    from: &SystemAccount,
    to: &SystemAccount,
    currency: &str,
    amount: i64,
    (code, reference): (&str, String),
    refusal: (&'static str, &str),
    now: i64,
) -> Result<Uuid, ServiceError> {
    Ledger::move_in(
        txn,
        workspace_id,
        from,
        to,
        currency,
        amount,
        code,
        reference,
        now,
    )
    .await?
    .map_err(|result| refused(result, refusal.0, refusal.1))
}

/// The transfer ids of one credited earning (a part of zero moves nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credited {
    pub wallet_transfer_id: Option<Uuid>,
    pub fee_transfer_id: Option<Uuid>,
}

fn earning_transfer(
    debit_account_id: Uuid,
    credit_account_id: Uuid,
    amount: i64,
    code: &str,
    reference: &str,
    flags: u32,
) -> NewTransfer {
    NewTransfer {
        id: Uuid::now_v7(),
        debit_account_id,
        credit_account_id,
        amount,
        code: code.to_owned(),
        reference: reference.to_owned(),
        pending_id: None,
        timeout_seconds: 0,
        flags,
        metadata: BTreeMap::new(),
    }
}

/// Credits one earning from a campaign's escrow: the promoter's part into its wallet and the fee
/// into platform revenue, linked (both or neither), pending when `held`. Escrow that cannot pay
/// it is FAILED_PRECONDITION ESCROW_INSUFFICIENT.
#[allow(clippy::too_many_arguments)]
pub async fn credit<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    campaign_id: Uuid,
    promoter_id: Uuid,
    currency: &str,
    split: Split,
    held: bool,
    reference: String,
    now: i64,
) -> Result<Credited, ServiceError> {
    let escrow =
        ensure_system_account(txn, workspace_id, &escrow(campaign_id), currency, now).await?;
    let flags = if held { PENDING } else { 0 };
    let mut wallet_transfer = None;
    let mut fee_transfer = None;
    if split.promoter > 0 {
        let wallet = ensure_system_account(
            txn,
            workspace_id,
            &SystemAccount::Wallet(promoter_id),
            currency,
            now,
        )
        .await?;
        wallet_transfer = Some(earning_transfer(
            escrow,
            wallet,
            split.promoter,
            CODE_EARNING,
            &reference,
            flags,
        ));
    }
    if split.fee > 0 {
        let revenue = ensure_system_account(
            txn,
            workspace_id,
            &SystemAccount::PlatformRevenue,
            currency,
            now,
        )
        .await?;
        fee_transfer = Some(earning_transfer(
            escrow, revenue, split.fee, CODE_FEE, &reference, flags,
        ));
    }
    let credited = Credited {
        wallet_transfer_id: wallet_transfer.as_ref().map(|transfer| transfer.id),
        fee_transfer_id: fee_transfer.as_ref().map(|transfer| transfer.id),
    };
    let transfers = linked(
        [wallet_transfer, fee_transfer]
            .into_iter()
            .flatten()
            .collect(),
    );
    if !transfers.is_empty() {
        apply(txn, workspace_id, &transfers, now, "ESCROW_INSUFFICIENT").await?;
    }
    Ok(credited)
}

/// Links every transfer of `transfers` to the next (the last closes the chain).
fn linked(mut transfers: Vec<NewTransfer>) -> Vec<NewTransfer> {
    let count = transfers.len();
    for transfer in transfers.iter_mut().take(count.saturating_sub(1)) {
        transfer.flags |= LINKED;
    }
    transfers
}

/// Posts (`post`) or voids a held earning's pending transfers, linked.
pub async fn resolve_held<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    credited: Credited,
    post: bool,
    now: i64,
) -> Result<(), ServiceError> {
    let flag = if post {
        POST_PENDING_TRANSFER
    } else {
        VOID_PENDING_TRANSFER
    };
    let resolution = |pending_id: Uuid| NewTransfer {
        id: Uuid::now_v7(),
        debit_account_id: Uuid::nil(),
        credit_account_id: Uuid::nil(),
        amount: 0,
        code: CODE_EARNING.to_owned(),
        reference: pending_id.to_string(),
        pending_id: Some(pending_id),
        timeout_seconds: 0,
        flags: flag,
        metadata: BTreeMap::new(),
    };
    let transfers = linked(
        [credited.wallet_transfer_id, credited.fee_transfer_id]
            .into_iter()
            .flatten()
            .map(resolution)
            .collect(),
    );
    if transfers.is_empty() {
        return Ok(());
    }
    apply(txn, workspace_id, &transfers, now, "EARNING_NOT_PENDING").await
}

async fn apply<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    transfers: &[NewTransfer],
    now: i64,
    reason: &'static str,
) -> Result<(), ServiceError> {
    let results = Ledger::apply_in(txn, workspace_id, transfers, now).await?;
    // A linked chain fails as a whole: the first refusal that is not "a linked one failed" says why.
    match results.iter().find(|result| {
        !matches!(
            result,
            TransferResult::Created | TransferResult::LinkedEventFailed
        )
    }) {
        None if results.len() == transfers.len() => Ok(()),
        None => Err(ServiceError::internal(
            "the ledger answered too few results",
        )),
        Some(result) => Err(refused(
            *result,
            reason,
            "the campaign's escrow cannot pay this",
        )),
    }
}

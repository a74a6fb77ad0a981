//! promo.ledger.v1 messages ↔ the ledger's types: what the API shows of accounts and transfers,
//! and the parsing of requests into accounts and transfers (every malformed field named).

use kernel::ServiceError;
use kernel::clock::micros_to_timestamp;
use kernel::ids::{parse_optional_uuid, parse_uuid};
use proto::ledger::v1 as pb;
use uuid::Uuid;

use crate::DOMAIN;
use crate::accounts::NewAccount;
use crate::domain::{self, Account, MAX_BATCH, NewTransfer};
use crate::store::StoredTransfer;

pub(crate) fn account_to_proto(account: &Account) -> pb::Account {
    pb::Account {
        id: account.id.to_string(),
        owner_id: account
            .owner_id
            .map(|owner| owner.to_string())
            .unwrap_or_default(),
        asset: account.asset.clone(),
        code: account.code.clone(),
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: account.flags & domain::DEBITS_MUST_NOT_EXCEED_CREDITS
                != 0,
            credits_must_not_exceed_debits: account.flags & domain::CREDITS_MUST_NOT_EXCEED_DEBITS
                != 0,
            managed_by_domain: account.is_managed(),
        }),
        debits_posted: account.debits_posted,
        credits_posted: account.credits_posted,
        debits_pending: account.debits_pending,
        credits_pending: account.credits_pending,
        balance: account.balance(),
        metadata: account.metadata.clone(),
        create_time: Some(micros_to_timestamp(account.created_at)),
    }
}

pub(crate) fn transfer_flags_to_proto(flags: u32) -> pb::TransferFlags {
    pb::TransferFlags {
        linked: flags & domain::LINKED != 0,
        pending: flags & domain::PENDING != 0,
        post_pending_transfer: flags & domain::POST_PENDING_TRANSFER != 0,
        void_pending_transfer: flags & domain::VOID_PENDING_TRANSFER != 0,
        balancing_debit: flags & domain::BALANCING_DEBIT != 0,
        balancing_credit: flags & domain::BALANCING_CREDIT != 0,
    }
}

pub(crate) fn transfer_flags_from_proto(flags: Option<&pb::TransferFlags>) -> u32 {
    let Some(flags) = flags else {
        return 0;
    };
    [
        (flags.linked, domain::LINKED),
        (flags.pending, domain::PENDING),
        (flags.post_pending_transfer, domain::POST_PENDING_TRANSFER),
        (flags.void_pending_transfer, domain::VOID_PENDING_TRANSFER),
        (flags.balancing_debit, domain::BALANCING_DEBIT),
        (flags.balancing_credit, domain::BALANCING_CREDIT),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |acc, (_, bit)| acc | bit)
}

/// The stored transfer as the API shows it.
pub fn transfer_to_proto(stored: &StoredTransfer) -> pb::Transfer {
    let transfer = &stored.transfer;
    pb::Transfer {
        id: transfer.id.to_string(),
        debit_account_id: transfer.debit_account_id.to_string(),
        credit_account_id: transfer.credit_account_id.to_string(),
        amount: transfer.amount,
        code: transfer.code.clone(),
        reference: transfer.reference.clone(),
        pending_id: transfer
            .pending_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        timeout_seconds: transfer.timeout_seconds,
        flags: Some(transfer_flags_to_proto(transfer.flags)),
        metadata: transfer.metadata.clone(),
        create_time: Some(micros_to_timestamp(transfer.created_at)),
    }
}

/// Parses every transfer, collecting a field violation for each malformed id.
pub(crate) fn parse_transfers(
    transfers: &[pb::Transfer],
) -> Result<Vec<NewTransfer>, ServiceError> {
    if transfers.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "transfers",
            "is required",
        ));
    }
    if transfers.len() > MAX_BATCH {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "transfers",
            format!("must hold at most {MAX_BATCH} transfers"),
        ));
    }
    let mut violations = kernel::Violations::new(DOMAIN);
    let mut parsed = Vec::with_capacity(transfers.len());
    // A field that may be empty (a pending transfer's resolution names no accounts) is nil then.
    let mut uuid_or_nil = |index: usize, field: &str, value: &str, required: bool| -> Uuid {
        if value.is_empty() && !required {
            return Uuid::nil();
        }
        violations
            .uuid(&format!("transfers[{index}].{field}"), value)
            .unwrap_or_else(Uuid::nil)
    };
    for (index, transfer) in transfers.iter().enumerate() {
        let flags = transfer_flags_from_proto(transfer.flags.as_ref());
        let resolution =
            flags & (domain::POST_PENDING_TRANSFER | domain::VOID_PENDING_TRANSFER) != 0;
        let id = uuid_or_nil(index, "id", &transfer.id, true);
        let debit = uuid_or_nil(
            index,
            "debit_account_id",
            &transfer.debit_account_id,
            !resolution,
        );
        let credit = uuid_or_nil(
            index,
            "credit_account_id",
            &transfer.credit_account_id,
            !resolution,
        );
        let pending_id = if transfer.pending_id.is_empty() {
            None
        } else {
            Some(uuid_or_nil(index, "pending_id", &transfer.pending_id, true))
        };
        parsed.push(NewTransfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: transfer.amount,
            code: transfer.code.clone(),
            reference: transfer.reference.clone(),
            pending_id,
            timeout_seconds: transfer.timeout_seconds,
            flags,
            metadata: transfer.metadata.clone(),
        });
    }
    violations.result(parsed)
}

pub(crate) fn parse_accounts(
    accounts: &[pb::Account],
) -> Result<Vec<(NewAccount, bool)>, ServiceError> {
    if accounts.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "accounts",
            "is required",
        ));
    }
    if accounts.len() > MAX_BATCH {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "accounts",
            format!("must hold at most {MAX_BATCH} accounts"),
        ));
    }
    let mut parsed = Vec::with_capacity(accounts.len());
    for (index, account) in accounts.iter().enumerate() {
        let id = parse_uuid(DOMAIN, &format!("accounts[{index}].id"), &account.id)?;
        let owner_id = parse_optional_uuid(
            DOMAIN,
            &format!("accounts[{index}].owner_id"),
            &account.owner_id,
        )?;
        let flags = account.flags.map_or(0, |flags| {
            let mut bits = 0;
            if flags.debits_must_not_exceed_credits {
                bits |= domain::DEBITS_MUST_NOT_EXCEED_CREDITS;
            }
            if flags.credits_must_not_exceed_debits {
                bits |= domain::CREDITS_MUST_NOT_EXCEED_DEBITS;
            }
            bits
        });
        if account.flags.is_some_and(|flags| flags.managed_by_domain) {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                &format!("accounts[{index}].flags.managed_by_domain"),
                "is set by the platform for the accounts its domains manage",
            ));
        }
        // Balances are the ledger's to compute; a request that presets them is refused outright.
        let presets_balances = account.debits_posted != 0
            || account.credits_posted != 0
            || account.debits_pending != 0
            || account.credits_pending != 0
            || account.balance != 0;
        parsed.push((
            NewAccount {
                id,
                owner_id,
                asset: account.asset.clone(),
                code: account.code.clone(),
                flags,
                metadata: account.metadata.clone(),
            },
            presets_balances,
        ));
    }
    if let Some(index) = parsed.iter().position(|(_, presets)| *presets) {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            &format!("accounts[{index}].balance"),
            "balances are computed by the ledger and must be left empty",
        ));
    }
    Ok(parsed)
}

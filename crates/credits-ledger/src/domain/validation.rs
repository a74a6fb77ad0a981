//! What can be checked of a transfer from the request alone, and how a retry compares with what
//! was stored.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_text(text: &str, max_chars: usize) -> bool {
    text.chars().count() <= max_chars && !text.chars().any(char::is_control)
}

/// Checks a metadata map's size and contents.
pub fn valid_metadata(metadata: &BTreeMap<String, String>) -> bool {
    metadata.len() <= MAX_METADATA_ENTRIES
        && metadata.iter().all(|(key, value)| {
            !key.is_empty()
                && valid_text(key, MAX_METADATA_KEY_CHARS)
                && valid_text(value, MAX_METADATA_VALUE_CHARS)
        })
}

/// Account codes follow the same rule as transfer codes: 1..=64 of [A-Z0-9_].
pub fn valid_account_code(code: &str) -> bool {
    valid_code(code)
}

/// Checks what can be checked from the request alone.
pub fn validate(transfer: &NewTransfer) -> Result<(), TransferResult> {
    use TransferResult::*;
    if transfer.id.is_nil() || transfer.id.is_max() {
        return Err(InvalidId);
    }
    let flags = transfer.flags;
    let exclusive = [PENDING, POST_PENDING_TRANSFER, VOID_PENDING_TRANSFER];
    let kinds = exclusive.iter().filter(|flag| flags & **flag != 0).count();
    let balancing = flags & (BALANCING_DEBIT | BALANCING_CREDIT) != 0;
    let two_phase_resolution = flags & (POST_PENDING_TRANSFER | VOID_PENDING_TRANSFER) != 0;
    if kinds > 1 || (balancing && two_phase_resolution) || flags >= 64 {
        return Err(FlagsAreMutuallyExclusive);
    }
    if two_phase_resolution {
        if transfer.pending_id.is_none() {
            return Err(PendingIdRequired);
        }
    } else if transfer.pending_id.is_some() {
        return Err(PendingIdMustBeEmpty);
    }
    if transfer.timeout_seconds != 0 {
        if flags & PENDING == 0 {
            return Err(TimeoutReservedForPendingTransfer);
        }
        if !(0..=MAX_TIMEOUT_SECONDS).contains(&transfer.timeout_seconds) {
            return Err(InvalidTimeout);
        }
    }
    let bounded = transfer.amount <= MAX_AMOUNT || balancing;
    if two_phase_resolution {
        if transfer.amount < 0 || !bounded {
            return Err(InvalidAmount);
        }
    } else {
        if transfer.amount <= 0 || !bounded {
            return Err(InvalidAmount);
        }
        if transfer.debit_account_id == transfer.credit_account_id {
            return Err(AccountsMustBeDifferent);
        }
        if transfer.debit_account_id.is_nil() {
            return Err(DebitAccountNotFound);
        }
        if transfer.credit_account_id.is_nil() {
            return Err(CreditAccountNotFound);
        }
    }
    if !valid_code(&transfer.code) {
        return Err(InvalidCode);
    }
    if !valid_text(&transfer.reference, MAX_REFERENCE_CHARS) {
        return Err(InvalidReference);
    }
    if !valid_metadata(&transfer.metadata) {
        return Err(InvalidMetadata);
    }
    Ok(())
}

/// Compares a retry with what was stored, field by field, in a fixed order.
pub(super) fn compare_existing(existing: &Transfer, retry: &NewTransfer) -> TransferResult {
    use TransferResult::*;
    if existing.flags != retry.flags {
        return ExistsWithDifferentFlags;
    }
    if existing.pending_id != retry.pending_id {
        return ExistsWithDifferentPendingId;
    }
    if existing.timeout_seconds != retry.timeout_seconds {
        return ExistsWithDifferentTimeout;
    }
    // A post or void may leave its accounts empty, meaning the pending transfer's.
    let resolution = existing.kind() == TransferKind::Post || existing.kind() == TransferKind::Void;
    let same_account =
        |stored: Uuid, asked: Uuid| stored == asked || (resolution && asked.is_nil());
    if !same_account(existing.debit_account_id, retry.debit_account_id) {
        return ExistsWithDifferentDebitAccountId;
    }
    if !same_account(existing.credit_account_id, retry.credit_account_id) {
        return ExistsWithDifferentCreditAccountId;
    }
    if existing.requested_amount != retry.amount {
        return ExistsWithDifferentAmount;
    }
    if existing.code != retry.code {
        return ExistsWithDifferentCode;
    }
    if existing.reference != retry.reference {
        return ExistsWithDifferentReference;
    }
    if existing.metadata != retry.metadata {
        return ExistsWithDifferentMetadata;
    }
    Exists
}

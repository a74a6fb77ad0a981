//! The engine: a batch's accounts and transfers in memory, requests applied in order, linked
//! chains undone together, and a record of what changed for the store to persist.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::validation::compare_existing;
use super::*;

/// A change that a failed linked chain must undo.
enum Undo {
    Account(Account),
    Inserted(Key),
    PendingState {
        key: Key,
        state: PendingState,
        resolved_at: Option<i64>,
    },
}

/// Everything one batch may read or change, and the record of what it changed. Every map is keyed
/// by `(workspace_id, id)`, so one batch may hold equal ids of different workspaces.
#[derive(Default)]
pub struct WorkingSet {
    /// Accounts the batch may touch.
    pub accounts: HashMap<Key, Account>,
    /// Stored transfers the batch refers to, plus those it creates.
    pub transfers: HashMap<Key, Transfer>,
    /// Ids whose first attempt failed, with that failure.
    pub failed: HashMap<Key, TransferResult>,
    /// New transfers, in the order they were applied.
    pub created: Vec<Key>,
    pub touched_accounts: BTreeSet<Key>,
    /// Pending transfers whose state changed.
    pub resolved: BTreeSet<Key>,
    /// Newly failed ids with their workspace and result.
    pub new_failures: Vec<(Uuid, Uuid, TransferResult)>,
    undo: Vec<Undo>,
}

impl WorkingSet {
    /// Applies one request's transfers in order; linked chains succeed or fail together.
    pub fn apply(
        &mut self,
        workspace_id: Uuid,
        now: i64,
        transfers: &[NewTransfer],
        origin: Origin,
    ) -> Vec<TransferResult> {
        let mut results = vec![TransferResult::Created; transfers.len()];
        let mut start = 0;
        while start < transfers.len() {
            let mut end = start;
            while end < transfers.len() && transfers[end].flags & LINKED != 0 {
                end += 1;
            }
            if end == transfers.len() {
                // The last transfer says "linked" but nothing follows: the chain is open.
                for result in &mut results[start..] {
                    *result = TransferResult::LinkedEventFailed;
                }
                results[transfers.len() - 1] = TransferResult::LinkedEventChainOpen;
                break;
            }
            self.apply_chain(
                workspace_id,
                now,
                origin,
                &transfers[start..=end],
                &mut results[start..=end],
            );
            start = end + 1;
        }
        results
    }

    fn apply_chain(
        &mut self,
        workspace_id: Uuid,
        now: i64,
        origin: Origin,
        chain: &[NewTransfer],
        results: &mut [TransferResult],
    ) {
        let mark = self.undo.len();
        let failure = chain.iter().enumerate().find_map(|(index, transfer)| {
            match self.apply_one(workspace_id, now, origin, transfer) {
                Ok(result) => {
                    results[index] = result;
                    None
                }
                Err(result) => Some((index, result)),
            }
        });
        let Some((failed_index, failure)) = failure else {
            self.undo.truncate(mark);
            return;
        };
        self.rollback(mark);
        for (index, result) in results.iter_mut().enumerate() {
            *result = if index == failed_index {
                failure
            } else {
                TransferResult::LinkedEventFailed
            };
        }
        if failure.is_transient() {
            for (index, transfer) in chain.iter().enumerate() {
                // An id that already exists keeps answering EXISTS; only new ids are marked failed.
                let key = (workspace_id, transfer.id);
                if results[index] == TransferResult::Exists || self.transfers.contains_key(&key) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(entry) = self.failed.entry(key) {
                    entry.insert(results[index]);
                    self.new_failures
                        .push((transfer.id, workspace_id, results[index]));
                }
            }
        }
    }

    fn rollback(&mut self, mark: usize) {
        while self.undo.len() > mark {
            match self.undo.pop() {
                Some(Undo::Account(before)) => {
                    self.accounts.insert(before.key(), before);
                }
                Some(Undo::Inserted(key)) => {
                    self.transfers.remove(&key);
                    if self.created.last() == Some(&key) {
                        self.created.pop();
                    }
                }
                Some(Undo::PendingState {
                    key,
                    state,
                    resolved_at,
                }) => {
                    if let Some(transfer) = self.transfers.get_mut(&key) {
                        transfer.pending_state = state;
                        transfer.resolved_at = resolved_at;
                    }
                }
                None => break,
            }
        }
    }

    fn account_in(&self, workspace_id: Uuid, id: Uuid) -> Option<&Account> {
        self.accounts.get(&(workspace_id, id))
    }

    /// Copies of the two accounts a transfer moves, if both exist in the workspace and `origin`
    /// may move them (a client may not move accounts a domain manages).
    fn movable_accounts(
        &self,
        workspace_id: Uuid,
        origin: Origin,
        debit_id: Uuid,
        credit_id: Uuid,
    ) -> Result<(Account, Account), TransferResult> {
        let debit = self
            .account_in(workspace_id, debit_id)
            .cloned()
            .ok_or(TransferResult::DebitAccountNotFound)?;
        let credit = self
            .account_in(workspace_id, credit_id)
            .cloned()
            .ok_or(TransferResult::CreditAccountNotFound)?;
        if origin == Origin::Client && (debit.is_managed() || credit.is_managed()) {
            return Err(TransferResult::AccountManagedByDomain);
        }
        Ok((debit, credit))
    }

    fn save_account(&mut self, account: Account) {
        let key = account.key();
        if let Some(before) = self.accounts.insert(key, account) {
            self.undo.push(Undo::Account(before));
        }
        self.touched_accounts.insert(key);
    }

    fn insert_transfer(&mut self, transfer: Transfer) {
        let key = transfer.key();
        self.undo.push(Undo::Inserted(key));
        self.created.push(key);
        self.transfers.insert(key, transfer);
    }

    fn set_pending_state(&mut self, key: Key, state: PendingState, resolved_at: i64) {
        if let Some(transfer) = self.transfers.get_mut(&key) {
            self.undo.push(Undo::PendingState {
                key,
                state: transfer.pending_state,
                resolved_at: transfer.resolved_at,
            });
            transfer.pending_state = state;
            transfer.resolved_at = Some(resolved_at);
            self.resolved.insert(key);
        }
    }

    fn apply_one(
        &mut self,
        workspace_id: Uuid,
        now: i64,
        origin: Origin,
        transfer: &NewTransfer,
    ) -> Result<TransferResult, TransferResult> {
        validate(transfer)?;
        // Checked before anything is looked up, so that a derived id answers the same whether or
        // not the platform has used it yet.
        if origin == Origin::Client && kernel::ids::is_reserved(&transfer.id) {
            return Err(TransferResult::IdReserved);
        }
        let key = (workspace_id, transfer.id);
        // An existing transfer wins over a failure record: should two replicas ever race on one id
        // with different accounts, the created transfer is what every retry reports.
        if let Some(existing) = self.transfers.get(&key) {
            return match compare_existing(existing, transfer) {
                TransferResult::Exists => Ok(TransferResult::Exists),
                different => Err(different),
            };
        }
        if self.failed.contains_key(&key) {
            return Err(TransferResult::IdAlreadyFailed);
        }
        match TransferKind::of_flags(transfer.flags) {
            TransferKind::Single | TransferKind::Pending => {
                self.apply_movement(workspace_id, now, origin, transfer)
            }
            TransferKind::Post | TransferKind::Void => {
                self.apply_resolution(workspace_id, now, origin, transfer)
            }
        }
    }

    fn apply_movement(
        &mut self,
        workspace_id: Uuid,
        now: i64,
        origin: Origin,
        transfer: &NewTransfer,
    ) -> Result<TransferResult, TransferResult> {
        use TransferResult::*;
        let (mut debit, mut credit) = self.movable_accounts(
            workspace_id,
            origin,
            transfer.debit_account_id,
            transfer.credit_account_id,
        )?;
        if debit.asset != credit.asset {
            return Err(AssetMismatch);
        }
        let mut amount = transfer.amount;
        if transfer.flags & BALANCING_DEBIT != 0
            && debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS != 0
        {
            let available = debit.credits_posted - debit.debits_posted - debit.debits_pending;
            amount = amount.min(available.max(0));
        }
        if transfer.flags & BALANCING_CREDIT != 0
            && credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS != 0
        {
            let available = credit.debits_posted - credit.credits_posted - credit.credits_pending;
            amount = amount.min(available.max(0));
        }
        if amount == 0 {
            return Err(if transfer.flags & BALANCING_DEBIT != 0 {
                ExceedsCredits
            } else {
                ExceedsDebits
            });
        }
        if amount > MAX_AMOUNT {
            return Err(InvalidAmount);
        }
        let pending = transfer.flags & PENDING != 0;
        if pending {
            debit.debits_pending = debit.debits_pending.checked_add(amount).ok_or(Overflows)?;
            credit.credits_pending = credit
                .credits_pending
                .checked_add(amount)
                .ok_or(Overflows)?;
        } else {
            debit.debits_posted = debit.debits_posted.checked_add(amount).ok_or(Overflows)?;
            credit.credits_posted = credit.credits_posted.checked_add(amount).ok_or(Overflows)?;
        }
        let debit_total = debit
            .debits_posted
            .checked_add(debit.debits_pending)
            .ok_or(Overflows)?;
        let credit_total = credit
            .credits_posted
            .checked_add(credit.credits_pending)
            .ok_or(Overflows)?;
        if debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS != 0 && debit_total > debit.credits_posted {
            return Err(ExceedsCredits);
        }
        if credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS != 0 && credit_total > credit.debits_posted
        {
            return Err(ExceedsDebits);
        }
        let expires_at = if pending && transfer.timeout_seconds > 0 {
            Some(now.saturating_add(transfer.timeout_seconds.saturating_mul(1_000_000)))
        } else {
            None
        };
        self.save_account(debit);
        self.save_account(credit);
        self.insert_transfer(Transfer {
            id: transfer.id,
            workspace_id,
            debit_account_id: transfer.debit_account_id,
            credit_account_id: transfer.credit_account_id,
            amount,
            requested_amount: transfer.amount,
            code: transfer.code.clone(),
            reference: transfer.reference.clone(),
            pending_id: None,
            timeout_seconds: transfer.timeout_seconds,
            flags: transfer.flags,
            metadata: transfer.metadata.clone(),
            pending_state: if pending {
                PendingState::Pending
            } else {
                PendingState::None
            },
            expires_at,
            resolved_at: None,
            created_at: now,
        });
        Ok(Created)
    }

    fn apply_resolution(
        &mut self,
        workspace_id: Uuid,
        now: i64,
        origin: Origin,
        transfer: &NewTransfer,
    ) -> Result<TransferResult, TransferResult> {
        use TransferResult::*;
        let pending_id = transfer.pending_id.ok_or(PendingIdRequired)?;
        let pending_key = (workspace_id, pending_id);
        let pending = self
            .transfers
            .get(&pending_key)
            .cloned()
            .ok_or(PendingTransferNotFound)?;
        if pending.kind() != TransferKind::Pending {
            return Err(PendingTransferNotPending);
        }
        if !transfer.debit_account_id.is_nil()
            && transfer.debit_account_id != pending.debit_account_id
        {
            return Err(PendingTransferHasDifferentDebitAccountId);
        }
        if !transfer.credit_account_id.is_nil()
            && transfer.credit_account_id != pending.credit_account_id
        {
            return Err(PendingTransferHasDifferentCreditAccountId);
        }
        match pending.pending_state {
            PendingState::Posted => return Err(PendingTransferAlreadyPosted),
            PendingState::Voided => return Err(PendingTransferAlreadyVoided),
            PendingState::Expired => return Err(PendingTransferExpired),
            PendingState::Pending | PendingState::None => {}
        }
        if pending
            .expires_at
            .is_some_and(|expires_at| now >= expires_at)
        {
            return Err(PendingTransferExpired);
        }
        let post = transfer.flags & POST_PENDING_TRANSFER != 0;
        let amount = match transfer.amount {
            0 => pending.amount,
            requested if requested > pending.amount => return Err(ExceedsPendingTransferAmount),
            requested if !post && requested != pending.amount => {
                return Err(ExceedsPendingTransferAmount);
            }
            requested => requested,
        };
        let (mut debit, mut credit) = self.movable_accounts(
            workspace_id,
            origin,
            pending.debit_account_id,
            pending.credit_account_id,
        )?;
        debit.debits_pending -= pending.amount;
        credit.credits_pending -= pending.amount;
        if post {
            debit.debits_posted = debit.debits_posted.checked_add(amount).ok_or(Overflows)?;
            credit.credits_posted = credit.credits_posted.checked_add(amount).ok_or(Overflows)?;
        }
        debug_assert!(debit.debits_pending >= 0 && credit.credits_pending >= 0);
        self.save_account(debit);
        self.save_account(credit);
        self.set_pending_state(
            pending_key,
            if post {
                PendingState::Posted
            } else {
                PendingState::Voided
            },
            now,
        );
        self.insert_transfer(Transfer {
            id: transfer.id,
            workspace_id,
            debit_account_id: pending.debit_account_id,
            credit_account_id: pending.credit_account_id,
            amount,
            requested_amount: transfer.amount,
            code: transfer.code.clone(),
            reference: transfer.reference.clone(),
            pending_id: Some(pending_id),
            timeout_seconds: 0,
            flags: transfer.flags,
            metadata: transfer.metadata.clone(),
            pending_state: PendingState::None,
            expires_at: None,
            resolved_at: None,
            created_at: now,
        });
        Ok(Created)
    }

    /// Voids a pending transfer whose timeout has passed, releasing its reservation. Returns
    /// false when it is no longer pending (posted or voided meanwhile).
    pub fn expire(&mut self, pending_key: Key) -> bool {
        let Some(pending) = self.transfers.get(&pending_key).cloned() else {
            return false;
        };
        let Some(expires_at) = pending.expires_at else {
            return false;
        };
        if pending.pending_state != PendingState::Pending {
            return false;
        }
        let (Some(mut debit), Some(mut credit)) = (
            self.account_in(pending.workspace_id, pending.debit_account_id)
                .cloned(),
            self.account_in(pending.workspace_id, pending.credit_account_id)
                .cloned(),
        ) else {
            return false;
        };
        debit.debits_pending -= pending.amount;
        credit.credits_pending -= pending.amount;
        self.save_account(debit);
        self.save_account(credit);
        self.set_pending_state(pending_key, PendingState::Expired, expires_at);
        self.undo.clear();
        true
    }
}

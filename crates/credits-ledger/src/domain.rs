//! The ledger's rules, without I/O: validating transfers, applying them to account balances,
//! two-phase posting and voiding, linked chains, balancing transfers and idempotent retries.
//!
//! [`WorkingSet`] holds every account and transfer a batch touches (loaded by the store), applies
//! requests in order, and records what changed so the store can persist exactly that.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Accounts whose debits (posted + pending) may never exceed their posted credits: no overdraft.
pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u32 = 1;
/// Accounts whose credits (posted + pending) may never exceed their posted debits.
pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u32 = 2;
/// Accounts a domain manages (system accounts, wallets, budgets, escrow): only that domain's own
/// operations move them, never a generic client transfer. Set only by the platform.
pub const MANAGED_BY_DOMAIN: u32 = 1 << 15;

pub const LINKED: u32 = 1;
pub const PENDING: u32 = 2;
pub const POST_PENDING_TRANSFER: u32 = 4;
pub const VOID_PENDING_TRANSFER: u32 = 8;
pub const BALANCING_DEBIT: u32 = 16;
pub const BALANCING_CREDIT: u32 = 32;

/// Most transfers (or accounts) one call may carry.
pub const MAX_BATCH: usize = 8000;
/// Largest amount one transfer may move (10^15 minor units: ten trillion dollars in cents), so that
/// no sum of transfers a workspace could plausibly make overflows an account's `i64` totals. A
/// balancing transfer may ask for more; what it actually moves is held to this bound too.
pub const MAX_AMOUNT: i64 = kernel::money::MAX_AMOUNT;
/// Longest a pending transfer may wait before it voids itself.
pub const MAX_TIMEOUT_SECONDS: i64 = 366 * 86_400;
pub const MAX_CODE_CHARS: usize = 64;
pub const MAX_REFERENCE_CHARS: usize = 128;
pub const MAX_METADATA_ENTRIES: usize = 16;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 256;

/// The outcome of one transfer; numbered as `promo.ledger.v1.TransferResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum TransferResult {
    Created = 1,
    Exists = 2,
    InvalidId = 3,
    InvalidAmount = 4,
    AccountsMustBeDifferent = 5,
    DebitAccountNotFound = 6,
    CreditAccountNotFound = 7,
    AssetMismatch = 8,
    ExceedsCredits = 9,
    ExceedsDebits = 10,
    Overflows = 11,
    ExistsWithDifferentAmount = 12,
    ExistsWithDifferentDebitAccountId = 13,
    ExistsWithDifferentCreditAccountId = 14,
    ExistsWithDifferentFlags = 15,
    ExistsWithDifferentCode = 16,
    ExistsWithDifferentReference = 17,
    ExistsWithDifferentPendingId = 18,
    ExistsWithDifferentTimeout = 19,
    ExistsWithDifferentMetadata = 20,
    IdAlreadyFailed = 21,
    LinkedEventFailed = 22,
    LinkedEventChainOpen = 23,
    FlagsAreMutuallyExclusive = 24,
    PendingIdRequired = 25,
    PendingIdMustBeEmpty = 26,
    PendingTransferNotFound = 27,
    PendingTransferNotPending = 28,
    PendingTransferAlreadyPosted = 29,
    PendingTransferAlreadyVoided = 30,
    PendingTransferExpired = 31,
    ExceedsPendingTransferAmount = 32,
    TimeoutReservedForPendingTransfer = 33,
    InvalidTimeout = 34,
    InvalidCode = 35,
    InvalidReference = 36,
    InvalidMetadata = 37,
    PendingTransferHasDifferentDebitAccountId = 38,
    PendingTransferHasDifferentCreditAccountId = 39,
    /// The id is a version-5 UUID, the namespace of ids the platform derives.
    IdReserved = 40,
    /// A debit or credit account is managed by a domain and moves only through its operations.
    AccountManagedByDomain = 41,
}

impl TransferResult {
    pub fn is_success(self) -> bool {
        matches!(self, TransferResult::Created | TransferResult::Exists)
    }

    /// A retry of an existing id whose fields differ from the stored transfer.
    pub fn is_exists_with_different_fields(self) -> bool {
        use TransferResult::*;
        matches!(
            self,
            ExistsWithDifferentAmount
                | ExistsWithDifferentDebitAccountId
                | ExistsWithDifferentCreditAccountId
                | ExistsWithDifferentFlags
                | ExistsWithDifferentCode
                | ExistsWithDifferentReference
                | ExistsWithDifferentPendingId
                | ExistsWithDifferentTimeout
                | ExistsWithDifferentMetadata
        )
    }

    /// Failures that depend on ledger state rather than on the request alone. Their ids are
    /// remembered, so that a retry answers ID_ALREADY_FAILED instead of possibly succeeding later.
    pub fn is_transient(self) -> bool {
        use TransferResult::*;
        matches!(
            self,
            DebitAccountNotFound
                | CreditAccountNotFound
                | AssetMismatch
                | ExceedsCredits
                | ExceedsDebits
                | Overflows
                | PendingTransferNotFound
                | PendingTransferNotPending
                | PendingTransferAlreadyPosted
                | PendingTransferAlreadyVoided
                | PendingTransferExpired
                | ExceedsPendingTransferAmount
                | PendingTransferHasDifferentDebitAccountId
                | PendingTransferHasDifferentCreditAccountId
        )
    }

    pub fn from_i32(value: i32) -> Option<TransferResult> {
        ALL_RESULTS
            .iter()
            .copied()
            .find(|result| *result as i32 == value)
    }
}

const ALL_RESULTS: [TransferResult; 41] = {
    use TransferResult::*;
    [
        Created,
        Exists,
        InvalidId,
        InvalidAmount,
        AccountsMustBeDifferent,
        DebitAccountNotFound,
        CreditAccountNotFound,
        AssetMismatch,
        ExceedsCredits,
        ExceedsDebits,
        Overflows,
        ExistsWithDifferentAmount,
        ExistsWithDifferentDebitAccountId,
        ExistsWithDifferentCreditAccountId,
        ExistsWithDifferentFlags,
        ExistsWithDifferentCode,
        ExistsWithDifferentReference,
        ExistsWithDifferentPendingId,
        ExistsWithDifferentTimeout,
        ExistsWithDifferentMetadata,
        IdAlreadyFailed,
        LinkedEventFailed,
        LinkedEventChainOpen,
        FlagsAreMutuallyExclusive,
        PendingIdRequired,
        PendingIdMustBeEmpty,
        PendingTransferNotFound,
        PendingTransferNotPending,
        PendingTransferAlreadyPosted,
        PendingTransferAlreadyVoided,
        PendingTransferExpired,
        ExceedsPendingTransferAmount,
        TimeoutReservedForPendingTransfer,
        InvalidTimeout,
        InvalidCode,
        InvalidReference,
        InvalidMetadata,
        PendingTransferHasDifferentDebitAccountId,
        PendingTransferHasDifferentCreditAccountId,
        IdReserved,
        AccountManagedByDomain,
    ]
};

/// Who asks for a batch of transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of the generic ledger API: it may not use reserved ids nor move managed accounts.
    Client,
    /// A domain's own operation (a purchase, a charge, a refund), inside its transaction.
    Domain,
}

/// Accounts and transfers are keyed by `(workspace_id, id)`: an id is unique per workspace only.
pub type Key = (Uuid, Uuid);

/// What a pending transfer has become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i16)]
pub enum PendingState {
    /// Not a pending transfer.
    None = 0,
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

impl PendingState {
    pub fn from_i16(value: i16) -> PendingState {
        match value {
            1 => PendingState::Pending,
            2 => PendingState::Posted,
            3 => PendingState::Voided,
            4 => PendingState::Expired,
            _ => PendingState::None,
        }
    }
}

/// How a transfer moves value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i16)]
pub enum TransferKind {
    /// Posted at once.
    Single = 0,
    /// Reserves: counts against limits, moves nothing until posted.
    Pending = 1,
    Post = 2,
    Void = 3,
}

impl TransferKind {
    pub fn of_flags(flags: u32) -> TransferKind {
        if flags & PENDING != 0 {
            TransferKind::Pending
        } else if flags & POST_PENDING_TRANSFER != 0 {
            TransferKind::Post
        } else if flags & VOID_PENDING_TRANSFER != 0 {
            TransferKind::Void
        } else {
            TransferKind::Single
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub owner_id: Option<Uuid>,
    pub asset: String,
    pub code: String,
    pub flags: u32,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub metadata: BTreeMap<String, String>,
    pub created_at: i64,
}

impl Account {
    /// Posted credits minus posted debits.
    pub fn balance(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }

    pub fn key(&self) -> Key {
        (self.workspace_id, self.id)
    }

    /// Whether a domain manages this account (see [`MANAGED_BY_DOMAIN`]).
    pub fn is_managed(&self) -> bool {
        self.flags & MANAGED_BY_DOMAIN != 0
    }
}

/// A transfer as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    pub id: Uuid,
    /// Nil on post/void means "the pending transfer's".
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    /// For post: 0 means the whole pending amount. For balancing: the most to move.
    pub amount: i64,
    pub code: String,
    pub reference: String,
    pub pending_id: Option<Uuid>,
    pub timeout_seconds: i64,
    pub flags: u32,
    pub metadata: BTreeMap<String, String>,
}

/// A committed (or about to be committed) transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    /// What actually moved (or was reserved).
    pub amount: i64,
    /// What the request asked for, compared on retries.
    pub requested_amount: i64,
    pub code: String,
    pub reference: String,
    pub pending_id: Option<Uuid>,
    pub timeout_seconds: i64,
    pub flags: u32,
    pub metadata: BTreeMap<String, String>,
    pub pending_state: PendingState,
    pub expires_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub created_at: i64,
}

impl Transfer {
    pub fn kind(&self) -> TransferKind {
        TransferKind::of_flags(self.flags)
    }

    pub fn key(&self) -> Key {
        (self.workspace_id, self.id)
    }
}

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
fn compare_existing(existing: &Transfer, retry: &NewTransfer) -> TransferResult {
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
        let mut debit = self
            .account_in(workspace_id, transfer.debit_account_id)
            .cloned()
            .ok_or(DebitAccountNotFound)?;
        let mut credit = self
            .account_in(workspace_id, transfer.credit_account_id)
            .cloned()
            .ok_or(CreditAccountNotFound)?;
        if origin == Origin::Client && (debit.is_managed() || credit.is_managed()) {
            return Err(AccountManagedByDomain);
        }
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
        let mut debit = self
            .account_in(workspace_id, pending.debit_account_id)
            .cloned()
            .ok_or(DebitAccountNotFound)?;
        let mut credit = self
            .account_in(workspace_id, pending.credit_account_id)
            .cloned()
            .ok_or(CreditAccountNotFound)?;
        if origin == Origin::Client && (debit.is_managed() || credit.is_managed()) {
            return Err(AccountManagedByDomain);
        }
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

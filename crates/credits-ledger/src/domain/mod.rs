//! The ledger's rules, without I/O: validating transfers, applying them to account balances,
//! two-phase posting and voiding, linked chains, balancing transfers and idempotent retries.
//!
//! [`WorkingSet`] holds every account and transfer a batch touches (loaded by the store), applies
//! requests in order, and records what changed so the store can persist exactly that.

use std::collections::BTreeMap;

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

mod results;
mod validation;
mod working_set;

pub use results::TransferResult;
pub use validation::{valid_account_code, valid_metadata, validate};
pub use working_set::WorkingSet;

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

//! The outcome of each transfer, as the ledger reports it.

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

//! Payout providers: what actually moves money to a promoter's bank. The trait is what runs and
//! the dispatcher call; the built-in provider is the embedded default.

use async_trait::async_trait;

/// One payout as a provider is asked to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderPayout {
    /// The payout's id: the provider's idempotency key, so a resend never pays twice.
    pub payout_id: String,
    /// Sent along as metadata, so the provider's events lead back to the payout.
    pub workspace_id: String,
    pub provider_account_id: String,
    pub currency: String,
    pub amount: i64,
}

/// What a provider said about a payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// Paid; nothing more will come. `reference` is the provider's id of it (empty when the
    /// provider has none of its own).
    Paid { reference: String },
    /// Accepted; its confirmation (paid or failed) arrives later as a provider event.
    Processing { reference: String },
    /// Refused for good, with the provider's reason: the money goes back to the wallet.
    Failed { reason: String },
    /// Could not be asked (network, provider outage): the dispatcher tries again later.
    Retry { reason: String },
}

#[async_trait]
pub trait PayoutProvider: Send + Sync {
    /// The name stored with payout accounts and payouts ("builtin", "stripe").
    fn name(&self) -> &'static str;

    /// Whether a newly connected account can be paid at once (the built-in provider), or only
    /// once the provider says so.
    fn enables_on_connect(&self) -> bool;

    async fn send(&self, payout: &ProviderPayout) -> ProviderOutcome;
}

/// The embedded default: it settles every payout the moment it is sent and reports it paid. No
/// money leaves the platform through it; it exists so that a single-machine installation runs
/// the whole flow, and its payouts say provider "builtin" so nobody mistakes them for bank
/// transfers.
pub struct BuiltInProvider;

#[async_trait]
impl PayoutProvider for BuiltInProvider {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn enables_on_connect(&self) -> bool {
        true
    }

    /// Paid at once; it has no reference of its own (the payout's id is the only one).
    async fn send(&self, _payout: &ProviderPayout) -> ProviderOutcome {
        ProviderOutcome::Paid {
            reference: String::new(),
        }
    }
}

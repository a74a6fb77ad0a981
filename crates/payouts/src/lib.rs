//! Payouts: advertisers fund campaigns into escrow; promoters earn from them by unique views and
//! approved work, with the platform's fee split off in the same ledger chain; wallets (ledger
//! accounts) accumulate; payout runs pay every wallet above the minimum once per period through
//! a payout provider.
//!
//! Where things are: `domain` the arithmetic (budgets, fees, view earnings) with its property
//! tests; `entity` the tables; `escrow` every ledger movement; `earnings` recording, holding and releasing what promoters earn; `provider` the payout providers (`stripe` the Stripe Connect adapter, `signature` its event
//! signatures, `webhooks` its events);
//! `settings` and `events` the module's settings section and domain events; `state` the shared
//! state and background work; `campaigns` (with `funding`), `participation` (with `work`), `performance` (with `sales`) and
//! `wallets` the gRPC services; `runs` payout runs and `dispatch` sending payouts to the provider.
#![forbid(unsafe_code)]

pub mod billing;
pub mod campaigns;
pub mod convert;
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod earnings;
pub mod entity;
pub mod escrow;
pub mod events;
pub mod funding;
pub mod participation;
pub mod performance;
pub mod provider;
pub mod runs;
pub mod sales;
pub mod settings;
pub mod signature;
pub mod state;
pub mod stripe;
pub mod wallets;
pub mod webhooks;
pub mod work;

pub use crate::state::Payouts;

/// The ErrorInfo domain of payouts errors.
pub const DOMAIN: &str = "promo.payouts";

//! Growth: referral programs with credit or coupon rewards, affiliates whose commissions wait
//! out a holding period and then land in their wallets (refunds reduce or claw back), channels
//! and trackable links with honest click counting and conversion attribution, and badges and
//! leaderboards fed by all of them.
//!
//! Where things are: `entity` the tables; `codes` the random codes; `convert` wire helpers;
//! `rewards` credits and coupons handed out (ledger and marketing); `clicks` the click writer and its caches; `commissions` the commission
//! arithmetic, crediting and clawbacks; `metrics` period totals and badge awards; `settings` and
//! `events` the module's settings section and domain events; `state` the shared state and
//! sweeper; `conversions` referral conversions and their rewards; `sales` affiliate sales and refunds; `link_input` what a link is made of; `referrals`, `affiliates`, `links` and `gamification`
//! the gRPC services.
#![forbid(unsafe_code)]

pub mod affiliates;
pub mod clicks;
pub mod codes;
pub mod commissions;
pub mod conversions;
pub mod convert;
pub mod entity;
pub mod events;
pub mod gamification;
pub mod link_input;
pub mod links;
pub mod metrics;
pub mod referrals;
pub mod rewards;
pub mod sales;
pub mod settings;
pub mod state;

pub use crate::state::Growth;

/// The ErrorInfo domain of growth errors.
pub const DOMAIN: &str = "promo.growth";

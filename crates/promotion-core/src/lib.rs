//! Material promotion, the first product on the platform: the materials knowledge base, factory
//! promotions paid in credits through the ledger, the generator's selection API served from
//! in-memory snapshots, usage and impression charges, and analytics.
#![forbid(unsafe_code)]

pub mod core;
pub mod domain;
pub mod snapshot;
pub mod store;

pub use crate::core::PromotionCore;

/// The ErrorInfo domain of promotion errors.
pub const DOMAIN: &str = "promo.promotion";
pub mod materials;
pub mod promotions;
pub mod selection;

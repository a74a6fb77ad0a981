//! Material promotion, the first product on the platform: the materials knowledge base, factory
//! promotions paid in credits through the ledger, the generator's selection API served from
//! in-memory snapshots, usage and impression charges, and analytics.
//!
//! Where things are: `domain` and `taxonomy` hold the rules without I/O; `store` every query;
//! `settings` the module's workspace settings; `events` the domain events it appends; `lifecycle` creating, funding and completing promotions; `charging` how uses and impressions
//! are charged; `impressions` the batched impression writer; `snapshot` what selection serves
//! from; `state` the module's shared state and background work; `materials`, `promotions` and
//! `selection` the gRPC services.
#![forbid(unsafe_code)]

pub mod charging;
pub mod domain;
pub mod events;
pub mod impressions;
pub mod lifecycle;
pub mod materials;
pub mod promotions;
pub mod selection;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod taxonomy;

pub use crate::state::PromotionCore;

/// The ErrorInfo domain of promotion errors.
pub const DOMAIN: &str = "promo.promotion";

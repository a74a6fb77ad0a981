//! Shop promotions: campaigns, reusable discount rules, coupons (single and generated in bulk),
//! exact cart pricing served from memory, two-phase redemption that never over-redeems, campaign
//! participation, storefront displays and daily campaign analytics.
//!
//! Where things are: `api` what other domains call inside their transactions; `pricing` is the pure pricing engine and `codes` coupon codes (no I/O);
//! `model` the resources as pricing sees them and `offer` what a cart is offered; `convert`
//! the wire format; `store` every query; `snapshot` what EvaluateCart serves from; `loaded` what
//! redemption and validation read in their transaction; `holds` what a reservation holds and how it
//! is released; `batches` the coupon generation job; `campaign_input` CreateCampaign's checks and `campaign_update` UpdateCampaign; `promo_codes` RedeemPromoCode; `analytics` daily campaign rows and their export;
//! `settings` and `events` the module's settings section and domain events; `state` the shared
//! state and background work; `campaigns`, `rules`, `coupons`, `redemptions`, `participation` and
//! `displays` the gRPC services.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod api;
pub mod batches;
pub mod campaign_input;
pub mod campaign_update;
pub mod campaigns;
pub mod codes;
pub mod convert;
pub mod coupons;
pub mod displays;
pub mod events;
pub mod holds;
pub mod loaded;
pub mod model;
pub mod offer;
pub mod participation;
pub mod pricing;
pub mod promo_codes;
pub mod redemptions;
pub mod rules;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod store;

pub use crate::state::Marketing;

/// The ErrorInfo domain of marketing errors.
pub const DOMAIN: &str = "promo.marketing";

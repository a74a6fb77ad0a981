//! Integration tests over real gRPC on loopback: one binary, a module per area.

mod access_table;
mod admin;
mod auth;
mod background;
mod cli;
mod events;
mod helpers;
mod isolation;
mod ledger;
mod limits;
mod marketing;
mod marketing_campaigns;
mod marketing_promo_codes;
mod marketing_redemption;
mod marketing_storefront;
mod marketing_support;
mod promotion;
mod promotion_support;
mod reflection;
mod robustness;
mod selection;
mod taxonomy;

//! Marketing: the shop-facing promotion engine (campaigns, discount rules, coupons, pricing,
//! redemption, participation, displays). This crate is being built in steps; today it holds coupon codes
//! (`codes`: normal form, patterns, CSPRNG generation) and the pricing engine (`pricing`): the declared, exact semantics of every discount kind, stacking and
//! exclusivity and budgets, as a pure function the storefront's EvaluateCart will run on an
//! in-memory snapshot.
#![forbid(unsafe_code)]

pub mod codes;
pub mod pricing;

/// The ErrorInfo domain of marketing errors.
pub const DOMAIN: &str = "promo.marketing";

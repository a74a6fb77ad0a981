//! The promo gateway: configuration, authentication, limits, health, reflection, metrics and
//! tracing around every domain service, plus the ops CLI.
#![forbid(unsafe_code)]

pub mod access;
pub mod access_payouts;
pub mod admin;
pub mod config;
pub mod demo;
pub mod demo_growth;
pub mod demo_shop;
pub mod directory;
pub mod http;
pub mod layer;
pub mod ratelimit;
pub mod server;
pub mod telemetry;
pub mod token;

pub use config::Config;
pub use server::{App, build};

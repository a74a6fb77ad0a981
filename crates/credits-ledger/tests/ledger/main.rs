//! Ledger tests against the Rust API: the pure engine and the database-backed ledger both agree
//! with an independent reference model; concurrency, history, expiry and tamper evidence.

mod behaviour;
mod concurrency;
mod model;
mod properties;
mod scenario;
mod support;

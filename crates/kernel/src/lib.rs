//! What every domain shares and nothing domain-specific: errors, ids, time, principals,
//! pagination, idempotency, workspaces and database helpers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod background;
pub mod clock;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod pagination;
pub mod settings;
pub mod validation;
pub mod workspace;

pub use auth::{Principal, Role};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::Context;
pub use db::{Db, DbOptions, WriteTxn};
pub use error::{ErrorCode, ServiceError};
pub use idempotency::IdempotencyKey;
pub use validation::Violations;
pub use workspace::Module;

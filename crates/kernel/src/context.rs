//! What a domain service needs from its surroundings.

use std::sync::Arc;

use crate::clock::Clock;
use crate::db::Db;

/// Shared handles every domain service is built from.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
}

impl Context {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Context {
        Context { db, clock }
    }
}

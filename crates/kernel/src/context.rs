//! What a domain service needs from its surroundings.

use std::sync::Arc;

use crate::clock::Clock;
use crate::db::{Db, WriteTxn};
use crate::error::ServiceError;

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

    /// Runs `operation` in one write transaction and commits, running it whole again on a
    /// serialization failure, deadlock or busy database.
    pub async fn write<T, F, Fut>(&self, operation: F) -> Result<T, ServiceError>
    where
        F: Fn(WriteTxn) -> Fut,
        Fut: std::future::Future<Output = Result<(WriteTxn, T), ServiceError>>,
    {
        let operation = &operation;
        self.db
            .with_retry(|| async move {
                let txn = self.db.begin_write().await?;
                let (txn, value) = operation(txn).await?;
                txn.commit().await?;
                Ok(value)
            })
            .await
    }
}

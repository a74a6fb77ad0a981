//! AIP-155 request idempotency for mutating RPCs.
//!
//! A mutating RPC's `request_id` is stored with a fingerprint of the decoded request and the
//! encoded response, in the same transaction as the effect. A retry returns the stored response;
//! the same id with a different request is FAILED_PRECONDITION `REQUEST_ID_REUSED`. Two concurrent
//! first attempts race on the primary key: the loser's transaction fails with a unique violation,
//! is retried whole, and then finds the winner's response.
//!
//! Request ids belong to the principal that sent them (the key is workspace, principal, request
//! id): another principal reusing the same id starts a request of its own and never sees the first
//! principal's response.

use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::clock::to_micros;
use crate::context::Context;
use crate::db::WriteTxn;
use crate::db::is_unique_violation;
use crate::error::{KERNEL_DOMAIN, ServiceError};

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "kernel_idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub principal_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: Uuid,
        pub method: String,
        pub fingerprint: String,
        pub response: Vec<u8>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Identifies one logical request: workspace, principal, request id, method and what was asked.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    workspace_id: Uuid,
    /// The caller's `sub`: request ids are a per-principal namespace.
    principal_id: Uuid,
    request_id: Uuid,
    method: &'static str,
    fingerprint: String,
}

impl IdempotencyKey {
    /// Parses `request_id` (a required UUID) and fingerprints the decoded request; the key lives in
    /// the caller's workspace and belongs to the caller.
    pub fn new<M: Message>(
        domain: &str,
        principal: &Principal,
        request_id: &str,
        method: &'static str,
        request: &M,
    ) -> Result<IdempotencyKey, ServiceError> {
        let request_id = crate::ids::parse_uuid(domain, "request_id", request_id)?;
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update([0]);
        hasher.update(request.encode_to_vec());
        Ok(IdempotencyKey {
            workspace_id: principal.workspace_id,
            principal_id: principal.subject,
            request_id,
            method,
            fingerprint: hex::encode(hasher.finalize()),
        })
    }

    pub fn request_id(&self) -> Uuid {
        self.request_id
    }

    /// Starts the request inside its transaction: returns the stored response of an earlier
    /// attempt (REQUEST_ID_REUSED if that attempt asked for something else), or claims the id so
    /// that a concurrent first attempt waits on this one and then retries into the stored answer.
    pub async fn begin<C: ConnectionTrait, R: Message + Default>(
        &self,
        connection: &C,
        now: DateTime<Utc>,
    ) -> Result<Option<R>, ServiceError> {
        let stored =
            entity::Entity::find_by_id((self.workspace_id, self.principal_id, self.request_id))
                .one(connection)
                .await?;
        if let Some(stored) = stored {
            if stored.method != self.method || stored.fingerprint != self.fingerprint {
                return Err(ServiceError::failed_precondition(
                    KERNEL_DOMAIN,
                    "REQUEST_ID_REUSED",
                    format!("request_id:{}", self.request_id),
                    "request_id was already used for a different request",
                ));
            }
            return R::decode(stored.response.as_slice())
                .map(Some)
                .map_err(|error| {
                    ServiceError::internal(format!("stored response does not decode: {error}"))
                });
        }
        let claim = entity::ActiveModel {
            workspace_id: Set(self.workspace_id),
            principal_id: Set(self.principal_id),
            request_id: Set(self.request_id),
            method: Set(self.method.to_owned()),
            fingerprint: Set(self.fingerprint.clone()),
            response: Set(Vec::new()),
            created_at: Set(to_micros(now)),
        };
        match entity::Entity::insert(claim)
            .exec_without_returning(connection)
            .await
        {
            Ok(_) => Ok(None),
            // A concurrent first attempt committed the same id: retry the whole transaction.
            Err(error) if is_unique_violation(&error) => {
                Err(ServiceError::retryable_conflict(error))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Stores the response of a claimed request; call before commit, in the same transaction.
    pub async fn finish<C: ConnectionTrait, R: Message>(
        &self,
        connection: &C,
        response: &R,
    ) -> Result<(), ServiceError> {
        let result = entity::Entity::update_many()
            .col_expr(
                entity::Column::Response,
                Expr::value(response.encode_to_vec()),
            )
            .filter(entity::Column::WorkspaceId.eq(self.workspace_id))
            .filter(entity::Column::PrincipalId.eq(self.principal_id))
            .filter(entity::Column::RequestId.eq(self.request_id))
            .exec(connection)
            .await?;
        if result.rows_affected != 1 {
            return Err(ServiceError::internal(
                "idempotency claim vanished before finish",
            ));
        }
        Ok(())
    }
}

impl Context {
    /// Runs one idempotent mutating RPC: in one write transaction, claims `key` (or returns the
    /// response an earlier attempt stored), runs `effect`, stores its response and commits; the
    /// whole function runs again on a serialization failure, deadlock or busy database.
    ///
    /// `effect` takes the open transaction and hands it back with the response, so it may use it
    /// across awaits: `context.idempotent(&key, |txn| async move { …; Ok((txn, response)) })`.
    pub async fn idempotent<R, F, Fut>(
        &self,
        key: &IdempotencyKey,
        effect: F,
    ) -> Result<R, ServiceError>
    where
        R: Message + Default,
        F: Fn(WriteTxn) -> Fut,
        Fut: std::future::Future<Output = Result<(WriteTxn, R), ServiceError>>,
    {
        let effect = &effect;
        self.db
            .with_retry(|| async move {
                let txn = self.db.begin_write().await?;
                if let Some(stored) = key.begin::<_, R>(&*txn, self.clock.now()).await? {
                    return Ok(stored);
                }
                let (txn, response) = effect(txn).await?;
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                Ok(response)
            })
            .await
    }
}

/// Deletes records older than `cutoff`; returns how many went.
pub async fn sweep<C: ConnectionTrait>(
    connection: &C,
    cutoff: DateTime<Utc>,
) -> Result<u64, ServiceError> {
    let result = entity::Entity::delete_many()
        .filter(entity::Column::CreatedAt.lt(to_micros(cutoff)))
        .exec(connection)
        .await?;
    Ok(result.rows_affected)
}

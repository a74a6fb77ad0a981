//! PayoutService: payout accounts, wallets read from the ledger, payout runs (`runs`), the
//! payouts they made, and billing summaries and platform fees (`billing`).

use std::sync::Arc;

use credits_ledger::SystemAccount;
use credits_ledger::queries::system_balances;
use kernel::ids::{check_text, parse_optional_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::payouts::v1 as pb;
use proto::payouts::v1::payout_service_server::{PayoutService, PayoutServiceServer};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::campaigns::is_operator;
use crate::convert::{self, money, time};
use crate::entity::{account, carry, payout, run};
use crate::state::Payouts;
use crate::{DOMAIN, billing, runs};

pub struct PayoutGrpc {
    pub(crate) core: Arc<Payouts>,
}

pub fn grpc(core: Arc<Payouts>) -> PayoutServiceServer<PayoutGrpc> {
    PayoutServiceServer::new(PayoutGrpc { core })
}

/// The promoter a call is about: operators name any (required); a promoter token means its own
/// and is refused (PROMOTER_MISMATCH) for anyone else.
fn acting_promoter(principal: &Principal, requested: &str) -> Result<Uuid, ServiceError> {
    let requested = parse_optional_uuid(DOMAIN, "promoter_id", requested)?;
    if is_operator(principal) {
        return requested
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "promoter_id", "is required"));
    }
    match requested {
        None => Ok(principal.subject),
        Some(id) if id == principal.subject => Ok(id),
        Some(_) => Err(ServiceError::permission_denied(
            DOMAIN,
            "PROMOTER_MISMATCH",
            "a promoter token acts for its own promoter only (promoter_id)",
        )),
    }
}

pub(crate) fn payout_to_proto(row: &payout::Model) -> pb::Payout {
    pb::Payout {
        id: row.id.to_string(),
        promoter_id: row.promoter_id.to_string(),
        amount: money(&row.currency, row.amount),
        status: row.status,
        period: row.period.clone(),
        failure_reason: row.failure_reason.clone(),
        run_id: row.run_id.to_string(),
        provider: row.provider.clone(),
        provider_reference: row.provider_reference.clone(),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

fn account_to_proto(row: &account::Model) -> pb::PayoutAccount {
    pb::PayoutAccount {
        promoter_id: row.promoter_id.to_string(),
        provider: row.provider.clone(),
        provider_account_id: row.provider_account_id.clone(),
        payouts_enabled: row.payouts_enabled,
        update_time: time(row.updated_at),
    }
}

/// The sum of a promoter's payouts in `currency` with one of `statuses`.
async fn payouts_total(
    connection: &impl sea_orm::ConnectionTrait,
    workspace_id: Uuid,
    promoter_id: Uuid,
    currency: &str,
    statuses: &[pb::PayoutStatus],
) -> Result<i64, ServiceError> {
    let total: Option<i64> = payout::Entity::find()
        .select_only()
        .column_as(billing::sum("amount"), "total")
        .filter(payout::Column::WorkspaceId.eq(workspace_id))
        .filter(payout::Column::PromoterId.eq(promoter_id))
        .filter(payout::Column::Currency.eq(currency))
        .filter(payout::Column::Status.is_in(statuses.iter().map(|status| *status as i32)))
        .into_tuple()
        .one(connection)
        .await?;
    Ok(total.unwrap_or(0))
}

#[tonic::async_trait]
impl PayoutService for PayoutGrpc {
    async fn connect_payout_account(
        &self,
        request: Request<pb::ConnectPayoutAccountRequest>,
    ) -> Result<Response<pb::PayoutAccount>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "ConnectPayoutAccount",
            body,
        )?;
        let promoter_id = acting_promoter(&principal, &body.promoter_id)?;
        let provider_account_id = body.provider_account_id.trim().to_owned();
        check_text(
            DOMAIN,
            "provider_account_id",
            &provider_account_id,
            255,
            false,
        )?;
        let row = account::Model {
            workspace_id: principal.workspace_id,
            promoter_id,
            provider: self.core.provider.name().to_owned(),
            provider_account_id,
            payouts_enabled: self.core.provider.enables_on_connect(),
            created_at: self.core.now(),
            updated_at: self.core.now(),
        };
        let row = &row;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                account::Entity::insert(account::ActiveModel::from(row.clone()))
                    .on_conflict(
                        OnConflict::columns([
                            account::Column::WorkspaceId,
                            account::Column::PromoterId,
                        ])
                        .update_columns([
                            account::Column::Provider,
                            account::Column::ProviderAccountId,
                            account::Column::PayoutsEnabled,
                            account::Column::UpdatedAt,
                        ])
                        .to_owned(),
                    )
                    .exec_without_returning(&*txn)
                    .await?;
                Ok((txn, account_to_proto(row)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_wallet(
        &self,
        request: Request<pb::GetWalletRequest>,
    ) -> Result<Response<pb::Wallet>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let promoter_id = acting_promoter(principal, &body.promoter_id)?;
        let currency = convert::currency("currency", &body.currency)?.code;
        let workspace_id = principal.workspace_id;
        let connection = self.core.context.db.connection();
        let balances = system_balances(
            connection,
            workspace_id,
            &SystemAccount::Wallet(promoter_id),
            currency,
        )
        .await?;
        let paid = payouts_total(
            connection,
            workspace_id,
            promoter_id,
            currency,
            &[pb::PayoutStatus::Paid],
        )
        .await?;
        let in_flight = payouts_total(
            connection,
            workspace_id,
            promoter_id,
            currency,
            &[pb::PayoutStatus::Approved, pb::PayoutStatus::Processing],
        )
        .await?;
        // What the last run of this currency left behind because it was below the minimum.
        let last_period: Option<String> = run::Entity::find()
            .select_only()
            .column(run::Column::Period)
            .filter(run::Column::WorkspaceId.eq(workspace_id))
            .filter(run::Column::Currency.eq(currency))
            .order_by_desc(run::Column::Period)
            .into_tuple()
            .one(connection)
            .await
            .map_err(ServiceError::from)?;
        let carried_forward = match last_period {
            Some(period) => {
                carry::Entity::find_by_id((workspace_id, currency.to_owned(), promoter_id))
                    .one(connection)
                    .await
                    .map_err(ServiceError::from)?
                    .filter(|row| row.period == period)
                    .map_or(0, |row| row.amount)
            }
            None => 0,
        };
        Ok(Response::new(pb::Wallet {
            promoter_id: promoter_id.to_string(),
            available: money(currency, balances.balance() - balances.debits_pending),
            pending: money(currency, balances.credits_pending),
            paid: money(currency, paid),
            carried_forward: money(currency, carried_forward),
            in_flight: money(currency, in_flight),
        }))
    }

    async fn run_payouts(
        &self,
        request: Request<pb::RunPayoutsRequest>,
    ) -> Result<Response<pb::PayoutRun>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(
            runs::run(&self.core, &principal, request.get_ref()).await?,
        ))
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let promoter_id = if is_operator(principal) {
            parse_optional_uuid(DOMAIN, "promoter_id", &body.promoter_id)?
        } else {
            Some(acting_promoter(principal, &body.promoter_id)?)
        };
        if !body.period.is_empty() {
            runs::check_period(&body.period)?;
        }
        let digest = PageToken::query_digest(&[
            &promoter_id.map(|id| id.to_string()).unwrap_or_default(),
            &body.period,
            &body.status.to_string(),
        ]);
        let before = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let mut query = payout::Entity::find()
            .filter(payout::Column::WorkspaceId.eq(principal.workspace_id))
            .order_by_desc(payout::Column::Id)
            .limit(limit + 1);
        if let Some(promoter_id) = promoter_id {
            query = query.filter(payout::Column::PromoterId.eq(promoter_id));
        }
        if !body.period.is_empty() {
            query = query.filter(payout::Column::Period.eq(body.period.as_str()));
        }
        if body.status != 0 {
            query = query.filter(payout::Column::Status.eq(body.status));
        }
        if let Some(before) = before {
            query = query.filter(payout::Column::Id.lt(before));
        }
        let mut rows = query
            .all(self.core.context.db.connection())
            .await
            .map_err(ServiceError::from)?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        Ok(Response::new(pb::ListPayoutsResponse {
            payouts: rows.iter().map(payout_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_billing_summary(
        &self,
        request: Request<pb::GetBillingSummaryRequest>,
    ) -> Result<Response<pb::BillingSummary>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let summary = billing::summary(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(summary))
    }

    async fn list_platform_fees(
        &self,
        request: Request<pb::ListPlatformFeesRequest>,
    ) -> Result<Response<pb::ListPlatformFeesResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let fees = billing::platform_fees(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(fees))
    }
}

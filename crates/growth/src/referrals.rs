//! ReferralService: programs with a reward for each side, one stable REF code per customer and
//! program whose link expires (and renews when asked for again), referrals tracked once per
//! referee and program, and conversions that reward both sides exactly once.
//!
//! Exactly once: a conversion moves the referral from PENDING with a conditional update, so of
//! two concurrent conversions (any orders) only one rewards; a second call for the same order
//! answers ALREADY_REWARDED. The referrer's count against the program's maximum moves with a
//! conditional update too, so concurrent tracks never exceed it.

use std::sync::Arc;

use credits_ledger::{Ledger, SystemAccount};
use kernel::ids::check_text;
use kernel::money::CREDITS;
use kernel::{ErrorCode, IdempotencyKey, Principal, ServiceError, Violations};
use proto::growth::v1 as pb;
use proto::growth::v1::referral_service_server::{ReferralService, ReferralServiceServer};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::convert::{days, money, money_to_proto, not_found, time};
use crate::entity::{program, referral, referral_code};
use crate::rewards::{Issued, RewardDef};
use crate::settings::GrowthSettings;
use crate::state::Growth;
use crate::{DOMAIN, codes, events};

pub struct ReferralGrpc {
    core: Arc<Growth>,
}

pub fn grpc(core: Arc<Growth>) -> ReferralServiceServer<ReferralGrpc> {
    ReferralServiceServer::new(ReferralGrpc { core })
}

fn program_to_proto(row: &program::Model) -> Result<pb::ReferralProgram, ServiceError> {
    let reward = |column: &str, text: &str| -> Result<pb::Reward, ServiceError> {
        Ok(
            kernel::db::json_column::<RewardDef>("growth_referral_program", row.id, column, text)?
                .to_proto(),
        )
    };
    Ok(pb::ReferralProgram {
        id: row.id.to_string(),
        name: row.name.clone(),
        referrer_reward: Some(reward("referrer_reward", &row.referrer_reward)?),
        referee_reward: Some(reward("referee_reward", &row.referee_reward)?),
        min_referee_purchase: (!row.min_currency.is_empty())
            .then(|| money_to_proto(&row.min_currency, row.min_amount))
            .flatten(),
        max_referrals_per_referrer: row.max_referrals,
        link_ttl_days: row.link_ttl_days,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    })
}

fn issued(row: &referral::Model, column: &str, text: &str) -> Result<Option<Issued>, ServiceError> {
    if text.is_empty() {
        return Ok(None);
    }
    kernel::db::json_column("growth_referral", row.id, column, text).map(Some)
}

pub(crate) fn referral_to_proto(row: &referral::Model) -> Result<pb::Referral, ServiceError> {
    Ok(pb::Referral {
        id: row.id.to_string(),
        program_id: row.program_id.to_string(),
        referrer_id: row.referrer_id.to_string(),
        referee_id: row.referee_id.to_string(),
        code: row.code.clone(),
        status: row.status,
        order_id: row.order_id.clone().unwrap_or_default(),
        order_amount: row
            .order_id
            .as_ref()
            .and_then(|_| money_to_proto(&row.order_currency, row.order_amount)),
        referrer_reward: issued(row, "referrer_issued", &row.referrer_issued)?
            .map(|issued| issued.to_proto()),
        referee_reward: issued(row, "referee_issued", &row.referee_issued)?
            .map(|issued| issued.to_proto()),
        expire_time: time(row.expire_at),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    })
}

pub(crate) async fn get_program<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<program::Model, ServiceError> {
    program::Entity::find_by_id((workspace_id, id))
        .one(connection)
        .await?
        .ok_or_else(|| not_found("REFERRAL_PROGRAM_NOT_FOUND", "referral program"))
}

/// The program's link time to live in days (its own, or the workspace's).
async fn ttl_days<C: ConnectionTrait>(
    connection: &C,
    program: &program::Model,
) -> Result<i64, ServiceError> {
    if program.link_ttl_days > 0 {
        return Ok(program.link_ttl_days);
    }
    Ok(
        kernel::settings::of_workspace::<GrowthSettings, _>(connection, program.workspace_id)
            .await?
            .referral_link_ttl_days,
    )
}

/// Expires referrals that waited for their order past their time; returns how many.
pub(crate) async fn expire_due(core: &Growth, now: i64) -> Result<usize, ServiceError> {
    let result = referral::Entity::update_many()
        .col_expr(
            referral::Column::Status,
            Expr::value(pb::ReferralStatus::Expired as i32),
        )
        .col_expr(referral::Column::UpdatedAt, Expr::value(now))
        .filter(referral::Column::Status.eq(pb::ReferralStatus::Pending as i32))
        .filter(referral::Column::ExpireAt.lte(now))
        .exec(core.context.db.connection())
        .await?;
    Ok(result.rows_affected as usize)
}

#[tonic::async_trait]
impl ReferralService for ReferralGrpc {
    async fn create_referral_program(
        &self,
        request: Request<pb::CreateReferralProgramRequest>,
    ) -> Result<Response<pb::ReferralProgram>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "CreateReferralProgram",
            body,
        )?;
        let input = body.program.clone().unwrap_or_default();
        let mut violations = Violations::new(DOMAIN);
        violations.take(
            "program.name",
            check_text(DOMAIN, "program.name", &input.name, 200, false),
        );
        let referrer = RewardDef::read(
            &mut violations,
            "program.referrer_reward",
            input.referrer_reward.as_ref(),
        );
        let referee = RewardDef::read(
            &mut violations,
            "program.referee_reward",
            input.referee_reward.as_ref(),
        );
        violations.check(
            !(referrer.is_none() && referee.is_none()),
            "program.referrer_reward",
            "at least one side of a referral must be rewarded",
        );
        let minimum = match input.min_referee_purchase.as_ref() {
            Some(value) if value.amount != 0 || !value.currency.is_empty() => violations.take(
                "program.min_referee_purchase",
                money("program.min_referee_purchase", Some(value), true),
            ),
            _ => None,
        };
        violations.check(
            input.max_referrals_per_referrer >= 0,
            "program.max_referrals_per_referrer",
            "must be 0 (unlimited) or more",
        );
        violations.check(
            (0..=365).contains(&input.link_ttl_days),
            "program.link_ttl_days",
            "must be between 0 (the workspace's default) and 365",
        );
        violations.finish()?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let core = &self.core;
        let (input, referrer, referee) = (&input, &referrer, &referee);
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let mut sides = [referrer.clone(), referee.clone()];
                for (side, field) in sides
                    .iter_mut()
                    .zip(["program.referrer_reward", "program.referee_reward"])
                {
                    side.prepare(core, &txn, workspace_id, field, &input.name, now)
                        .await?;
                }
                let row = program::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    name: input.name.clone(),
                    referrer_reward: kernel::db::to_json_column(&sides[0])?,
                    referee_reward: kernel::db::to_json_column(&sides[1])?,
                    min_currency: minimum.map(|m| m.asset.code.to_owned()).unwrap_or_default(),
                    min_amount: minimum.map_or(0, |m| m.amount),
                    max_referrals: input.max_referrals_per_referrer,
                    link_ttl_days: input.link_ttl_days,
                    created_at: now,
                    updated_at: now,
                };
                kernel::db::insert(&*txn, program::ActiveModel::from(row.clone())).await?;
                Ok((txn, program_to_proto(&row)?))
            })
            .await?;
        tracing::info!(program_id = %response.id, "referral program created");
        Ok(Response::new(response))
    }

    async fn get_referral_program(
        &self,
        request: Request<pb::GetReferralProgramRequest>,
    ) -> Result<Response<pb::ReferralProgram>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = kernel::ids::parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let row = get_program(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?;
        Ok(Response::new(program_to_proto(&row)?))
    }

    async fn get_referral_code(
        &self,
        request: Request<pb::GetReferralCodeRequest>,
    ) -> Result<Response<pb::ReferralCode>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let program_id = kernel::ids::parse_uuid(DOMAIN, "program_id", &body.program_id)?;
        let customer_id = principal
            .acting_customer(DOMAIN, "customer_id", &body.customer_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "customer_id", "is required"))?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let row = self
            .core
            .context
            .write(|txn| async move {
                let program = get_program(&*txn, workspace_id, program_id).await?;
                let expire_at = now + days(ttl_days(&*txn, &program).await?);
                let existing = referral_code::Entity::find()
                    .filter(referral_code::Column::WorkspaceId.eq(workspace_id))
                    .filter(referral_code::Column::ProgramId.eq(program_id))
                    .filter(referral_code::Column::CustomerId.eq(customer_id))
                    .one(&*txn)
                    .await?;
                let row = match existing {
                    Some(row) if row.expire_at > now => row,
                    Some(mut row) => {
                        row.expire_at = expire_at;
                        row.updated_at = now;
                        kernel::db::update(
                            &*txn,
                            referral_code::ActiveModel {
                                workspace_id: Set(workspace_id),
                                id: Set(row.id),
                                expire_at: Set(expire_at),
                                updated_at: Set(now),
                                ..Default::default()
                            },
                        )
                        .await?;
                        row
                    }
                    None => {
                        let mut code = codes::person_code("REF");
                        for _ in 0..8 {
                            if code_row(&*txn, workspace_id, &code).await?.is_none() {
                                break;
                            }
                            code = codes::person_code("REF");
                        }
                        let row = referral_code::Model {
                            workspace_id,
                            id: Uuid::now_v7(),
                            program_id,
                            customer_id,
                            code,
                            expire_at,
                            referral_count: 0,
                            created_at: now,
                            updated_at: now,
                        };
                        kernel::db::insert(&*txn, referral_code::ActiveModel::from(row.clone()))
                            .await?;
                        row
                    }
                };
                Ok((txn, row))
            })
            .await?;
        Ok(Response::new(pb::ReferralCode {
            code: row.code,
            program_id: row.program_id.to_string(),
            customer_id: row.customer_id.to_string(),
            expire_time: time(row.expire_at),
            referral_count: row.referral_count,
        }))
    }

    async fn track_referral(
        &self,
        request: Request<pb::TrackReferralRequest>,
    ) -> Result<Response<pb::Referral>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "TrackReferral", body)?;
        let referee_id = principal
            .acting_customer(DOMAIN, "referee_id", &body.referee_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "referee_id", "is required"))?;
        let code = codes::normalize(&body.code).ok_or_else(|| {
            ServiceError::invalid_field(DOMAIN, "code", "must be 3 to 32 letters or digits")
        })?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let code = &code;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let owner = code_row(&*txn, workspace_id, code)
                    .await?
                    .ok_or_else(|| not_found("REFERRAL_CODE_NOT_FOUND", "referral code"))?;
                if owner.expire_at <= now {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        "REFERRAL_CODE_EXPIRED",
                        format!("referral-codes/{code}"),
                        "this referral link has expired; the referrer can get it renewed",
                    ));
                }
                if owner.customer_id == referee_id {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidArgument,
                        DOMAIN,
                        "SELF_REFERRAL",
                        "a customer cannot refer themselves",
                    ));
                }
                let already = referral::Entity::find()
                    .filter(referral::Column::WorkspaceId.eq(workspace_id))
                    .filter(referral::Column::ProgramId.eq(owner.program_id))
                    .filter(referral::Column::RefereeId.eq(referee_id))
                    .one(&*txn)
                    .await?;
                if already.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::AlreadyExists,
                        DOMAIN,
                        "REFEREE_ALREADY_REFERRED",
                        "this customer has already been referred in this program",
                    ));
                }
                let program = get_program(&*txn, workspace_id, owner.program_id).await?;
                let mut counted = referral_code::Entity::update_many()
                    .col_expr(
                        referral_code::Column::ReferralCount,
                        Expr::col(referral_code::Column::ReferralCount).add(1),
                    )
                    .filter(referral_code::Column::WorkspaceId.eq(workspace_id))
                    .filter(referral_code::Column::Id.eq(owner.id));
                if program.max_referrals > 0 {
                    counted = counted
                        .filter(referral_code::Column::ReferralCount.lt(program.max_referrals));
                }
                if counted.exec(&*txn).await?.rows_affected == 0 {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        "REFERRAL_LIMIT_REACHED",
                        format!("referral-codes/{code}"),
                        format!(
                            "this referrer has made the program's maximum of {} referrals",
                            program.max_referrals
                        ),
                    ));
                }
                let row = referral::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    program_id: program.id,
                    referrer_id: owner.customer_id,
                    referee_id,
                    code: code.clone(),
                    status: pb::ReferralStatus::Pending as i32,
                    order_id: None,
                    order_currency: String::new(),
                    order_amount: 0,
                    referrer_issued: String::new(),
                    referee_issued: String::new(),
                    expire_at: now + days(ttl_days(&*txn, &program).await?),
                    created_at: now,
                    updated_at: now,
                };
                kernel::db::insert(&*txn, referral::ActiveModel::from(row.clone())).await?;
                events::emit(
                    &txn,
                    workspace_id,
                    events::REFERRAL_TRACKED,
                    format!("referrals/{}", row.id),
                    json!({
                        "referral_id": row.id.to_string(),
                        "program_id": row.program_id.to_string(),
                        "referrer_id": row.referrer_id.to_string(),
                        "referee_id": referee_id.to_string(),
                    }),
                    now,
                )
                .await?;
                Ok((txn, referral_to_proto(&row)?))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn record_referral_conversion(
        &self,
        request: Request<pb::RecordReferralConversionRequest>,
    ) -> Result<Response<pb::RecordReferralConversionResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let response =
            crate::conversions::record_conversion(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(response))
    }

    async fn get_referral_stats(
        &self,
        request: Request<pb::GetReferralStatsRequest>,
    ) -> Result<Response<pb::ReferralStats>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let customer_id = principal
            .acting_customer(DOMAIN, "customer_id", &request.get_ref().customer_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "customer_id", "is required"))?;
        let workspace_id = principal.workspace_id;
        let connection = self.core.context.db.connection();
        let rows = referral::Entity::find()
            .filter(referral::Column::WorkspaceId.eq(workspace_id))
            .filter(
                Condition::any()
                    .add(referral::Column::ReferrerId.eq(customer_id))
                    .add(referral::Column::RefereeId.eq(customer_id)),
            )
            .all(connection)
            .await
            .map_err(ServiceError::from)?;
        let mut stats = pb::ReferralStats {
            customer_id: customer_id.to_string(),
            ..pb::ReferralStats::default()
        };
        for row in &rows {
            if row.referrer_id == customer_id {
                match pb::ReferralStatus::try_from(row.status) {
                    Ok(pb::ReferralStatus::Pending) => stats.pending += 1,
                    Ok(pb::ReferralStatus::Completed) => stats.completed += 1,
                    Ok(pb::ReferralStatus::Rewarded) => stats.rewarded += 1,
                    Ok(pb::ReferralStatus::Expired) => stats.expired += 1,
                    _ => {}
                }
            }
            let mine = if row.referrer_id == customer_id {
                ("referrer_issued", &row.referrer_issued)
            } else {
                ("referee_issued", &row.referee_issued)
            };
            if let Some(issued) = issued(row, mine.0, mine.1)? {
                stats.credits_earned += issued.credits;
                stats.coupons_earned += i64::from(!issued.coupon_code.is_empty());
            }
        }
        stats.credit_balance = Ledger::balance_of(
            connection,
            workspace_id,
            &SystemAccount::Wallet(customer_id),
            CREDITS,
        )
        .await?;
        Ok(Response::new(stats))
    }
}

async fn code_row<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    code: &str,
) -> Result<Option<referral_code::Model>, ServiceError> {
    Ok(referral_code::Entity::find()
        .filter(referral_code::Column::WorkspaceId.eq(workspace_id))
        .filter(referral_code::Column::Code.eq(code))
        .one(connection)
        .await?)
}

//! Work on consultant and seller campaigns: the accepted promoter submits against a
//! deliverable; the advertiser approves (paid at once from escrow, never past `max_budget` nor
//! what escrow holds) or rejects it.

use kernel::ids::{check_text, parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::settings::of_workspace;
use kernel::{IdempotencyKey, Principal, Role, ServiceError, Violations};
use proto::payouts::v1 as pb;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use tonic::Request;
use uuid::Uuid;

use crate::campaigns::{self, is_operator};
use crate::convert::{self, money, not_found, time};
use crate::earnings::{self, Hold, Source};
use crate::entity::work;
use crate::participation::{ParticipationGrpc, require_type};
use crate::settings::PayoutsSettings;
use crate::{DOMAIN, events};

fn to_proto(row: &work::Model, currency: &str) -> pb::Work {
    let approved = row.status == pb::WorkStatus::Approved as i32;
    pb::Work {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        promoter_id: row.promoter_id.to_string(),
        deliverable: row.deliverable.clone(),
        url: row.url.clone(),
        status: row.status,
        amount: approved.then(|| money(currency, row.amount)).flatten(),
        fee: approved.then(|| money(currency, row.fee)).flatten(),
        comment: row.comment.clone(),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

fn work_not_found() -> ServiceError {
    not_found("WORK_NOT_FOUND", "work")
}

fn check_url(violations: &mut Violations, url: &str) {
    if url.is_empty() {
        return;
    }
    violations.check(
        url.chars().count() <= 2048 && (url.starts_with("https://") || url.starts_with("http://")),
        "url",
        "must be an http(s) URL of at most 2048 characters",
    );
}

pub(crate) async fn submit(
    service: &ParticipationGrpc,
    request: Request<pb::SubmitWorkRequest>,
) -> Result<pb::Work, ServiceError> {
    let principal = Principal::of(&request)?.clone();
    let body = request.get_ref();
    let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "SubmitWork", body)?;
    let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
    let mut violations = Violations::new(DOMAIN);
    violations.take(
        "deliverable",
        check_text(DOMAIN, "deliverable", body.deliverable.trim(), 200, false),
    );
    check_url(&mut violations, body.url.trim());
    violations.finish()?;
    let workspace_id = principal.workspace_id;
    let promoter_id = principal.subject;
    let now = service.core.now();
    service
        .core
        .context
        .idempotent(&key, |txn| async move {
            let campaign = campaigns::find(&*txn, workspace_id, campaign_id, false).await?;
            if campaign.status == pb::CampaignStatus::Draft as i32 {
                return Err(campaigns::campaign_not_found());
            }
            require_type(
                &campaign,
                &[pb::CampaignType::Consultant, pb::CampaignType::Seller],
                "work is submitted",
            )?;
            campaigns::check_earning_window(&campaign, now)?;
            let accepted = match campaign.accepted_application_id {
                Some(application_id) => {
                    crate::entity::application::Entity::find_by_id((workspace_id, application_id))
                        .one(&*txn)
                        .await?
                        .is_some_and(|application| application.promoter_id == promoter_id)
                }
                None => false,
            };
            if !accepted {
                return Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "PROMOTER_NOT_ACCEPTED",
                    format!("campaigns/{campaign_id}"),
                    "only the promoter whose application was accepted submits work",
                ));
            }
            let row = work::Model {
                workspace_id,
                id: Uuid::now_v7(),
                campaign_id,
                promoter_id,
                deliverable: body.deliverable.trim().to_owned(),
                url: body.url.trim().to_owned(),
                status: pb::WorkStatus::Submitted as i32,
                amount: 0,
                fee: 0,
                comment: String::new(),
                created_at: now,
                updated_at: now,
            };
            kernel::db::insert(&*txn, work::ActiveModel::from(row.clone())).await?;
            Ok((txn, to_proto(&row, &campaign.currency)))
        })
        .await
}

/// The work and its campaign, locked in that order's reverse (campaign first), for a caller
/// who manages the campaign; SUBMITTED or FAILED_PRECONDITION WORK_NOT_SUBMITTED.
async fn submitted<C: sea_orm::ConnectionTrait>(
    txn: &C,
    principal: &Principal,
    id: Uuid,
) -> Result<(work::Model, crate::entity::campaign::Model), ServiceError> {
    let campaign_id = work::Entity::find_by_id((principal.workspace_id, id))
        .one(txn)
        .await?
        .ok_or_else(work_not_found)?
        .campaign_id;
    let campaign = campaigns::managed(txn, principal, campaign_id, true)
        .await
        .map_err(|_| work_not_found())?;
    let row = work::Entity::find_by_id((principal.workspace_id, id))
        .one(txn)
        .await?
        .ok_or_else(work_not_found)?;
    if row.status != pb::WorkStatus::Submitted as i32 {
        return Err(ServiceError::failed_precondition(
            DOMAIN,
            "WORK_NOT_SUBMITTED",
            format!("work/{id}"),
            "only submitted work can be approved or rejected",
        ));
    }
    Ok((row, campaign))
}

pub(crate) async fn approve(
    service: &ParticipationGrpc,
    request: Request<pb::ApproveWorkRequest>,
) -> Result<pb::Work, ServiceError> {
    let principal = Principal::of(&request)?.clone();
    let body = request.get_ref();
    let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "ApproveWork", body)?;
    let id = parse_uuid(DOMAIN, "work_id", &body.work_id)?;
    let workspace_id = principal.workspace_id;
    let now = service.core.now();
    let principal = &principal;
    service
        .core
        .context
        .idempotent(&key, |txn| async move {
            let (mut row, mut campaign) = submitted(&*txn, principal, id).await?;
            campaigns::check_earning_window(&campaign, now)?;
            let amount =
                convert::money_in("amount", body.amount.as_ref(), &campaign.currency, false)?;
            let remaining = campaign.budget - campaign.spent;
            if amount > remaining {
                return Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "BUDGET_EXCEEDED",
                    format!("campaigns/{}", campaign.id),
                    format!("the campaign can pay at most {remaining} more minor units"),
                ));
            }
            let split = campaigns::terms(&campaign).split(amount);
            let settings = of_workspace::<PayoutsSettings, _>(&*txn, workspace_id).await?;
            earnings::record(
                &*txn,
                &mut campaign,
                row.promoter_id,
                (Source::Work, id.to_string()),
                split,
                Hold::days(settings.work_holding_days, now),
                now,
            )
            .await?;
            row.status = pb::WorkStatus::Approved as i32;
            row.amount = split.gross;
            row.fee = split.fee;
            row.updated_at = now;
            kernel::db::update(
                &*txn,
                work::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    status: Set(row.status),
                    amount: Set(row.amount),
                    fee: Set(row.fee),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            events::emit(
                &txn,
                workspace_id,
                events::WORK_APPROVED,
                format!("work/{id}"),
                json!({
                    "work_id": id.to_string(),
                    "campaign_id": campaign.id.to_string(),
                    "promoter_id": row.promoter_id.to_string(),
                    "currency": campaign.currency,
                    "amount": split.gross,
                    "fee": split.fee,
                }),
                now,
            )
            .await?;
            Ok((txn, to_proto(&row, &campaign.currency)))
        })
        .await
}

pub(crate) async fn reject(
    service: &ParticipationGrpc,
    request: Request<pb::RejectWorkRequest>,
) -> Result<pb::Work, ServiceError> {
    let principal = Principal::of(&request)?.clone();
    let body = request.get_ref();
    let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "RejectWork", body)?;
    let id = parse_uuid(DOMAIN, "work_id", &body.work_id)?;
    check_text(DOMAIN, "comment", &body.comment, 2000, true)?;
    let workspace_id = principal.workspace_id;
    let now = service.core.now();
    let principal = &principal;
    service
        .core
        .context
        .idempotent(&key, |txn| async move {
            let (mut row, campaign) = submitted(&*txn, principal, id).await?;
            row.status = pb::WorkStatus::Rejected as i32;
            row.comment = body.comment.clone();
            row.updated_at = now;
            kernel::db::update(
                &*txn,
                work::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    status: Set(row.status),
                    comment: Set(row.comment.clone()),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            Ok((txn, to_proto(&row, &campaign.currency)))
        })
        .await
}

pub(crate) async fn list(
    service: &ParticipationGrpc,
    request: Request<pb::ListWorkRequest>,
) -> Result<pb::ListWorkResponse, ServiceError> {
    let principal = Principal::of(&request)?;
    let body = request.get_ref();
    let limit = page_size(DOMAIN, body.page_size)?;
    let campaign_id = parse_optional_uuid(DOMAIN, "campaign_id", &body.campaign_id)?
        .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "campaign_id", "is required"))?;
    let digest = PageToken::query_digest(&[&body.campaign_id, &body.status.to_string()]);
    let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
    let connection = service.core.context.db.connection();
    let promoter_view = !is_operator(principal) && !principal.has_role(Role::Advertiser);
    let campaign = if promoter_view {
        campaigns::find(connection, principal.workspace_id, campaign_id, false).await?
    } else {
        campaigns::managed(connection, principal, campaign_id, false).await?
    };
    let mut query = work::Entity::find()
        .filter(work::Column::WorkspaceId.eq(principal.workspace_id))
        .filter(work::Column::CampaignId.eq(campaign_id))
        .order_by_asc(work::Column::Id)
        .limit(limit + 1);
    if promoter_view {
        query = query.filter(work::Column::PromoterId.eq(principal.subject));
    }
    if body.status != 0 {
        query = query.filter(work::Column::Status.eq(body.status));
    }
    if let Some(after) = after {
        query = query.filter(work::Column::Id.gt(after));
    }
    let mut rows = query.all(connection).await?;
    let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
    Ok(pb::ListWorkResponse {
        work: rows
            .iter()
            .map(|row| to_proto(row, &campaign.currency))
            .collect(),
        next_page_token,
    })
}

//! ParticipationService: promoters apply to consultant and seller campaigns (the advertiser
//! accepts exactly one) or join visibility and salesman campaigns; the accepted promoter submits
//! work, which the advertiser approves (paying at once from escrow) or rejects (`work`).

use std::sync::Arc;

use kernel::ids::{check_text, parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{ErrorCode, IdempotencyKey, Principal, Role, ServiceError};
use proto::payouts::v1 as pb;
use proto::payouts::v1::participation_service_server::{
    ParticipationService, ParticipationServiceServer,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::campaigns::{self, is_operator};
use crate::convert::{self, money, not_found, time};
use crate::entity::{application, campaign, member};
use crate::state::Payouts;
use crate::{DOMAIN, work};

pub struct ParticipationGrpc {
    pub(crate) core: Arc<Payouts>,
}

pub fn grpc(core: Arc<Payouts>) -> ParticipationServiceServer<ParticipationGrpc> {
    ParticipationServiceServer::new(ParticipationGrpc { core })
}

fn application_to_proto(row: &application::Model, currency: &str) -> pb::Application {
    pb::Application {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        promoter_id: row.promoter_id.to_string(),
        proposed_amount: money(currency, row.proposed_amount),
        pitch: row.pitch.clone(),
        status: row.status,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

pub(crate) fn membership_to_proto(row: &member::Model, currency: &str) -> pb::Membership {
    pb::Membership {
        campaign_id: row.campaign_id.to_string(),
        promoter_id: row.promoter_id.to_string(),
        tracking_code: row.tracking_code.clone(),
        views: row.views,
        earned: money(currency, row.earned),
        create_time: time(row.created_at),
    }
}

/// FAILED_PRECONDITION WRONG_CAMPAIGN_TYPE unless `row` is one of `kinds`.
pub(crate) fn require_type(
    row: &campaign::Model,
    kinds: &[pb::CampaignType],
    what: &str,
) -> Result<(), ServiceError> {
    if kinds.iter().any(|kind| *kind as i32 == row.campaign_type) {
        Ok(())
    } else {
        Err(ServiceError::failed_precondition(
            DOMAIN,
            "WRONG_CAMPAIGN_TYPE",
            format!("campaigns/{}", row.id),
            format!("{what} only on {} campaigns", kind_names(kinds)),
        ))
    }
}

fn kind_names(kinds: &[pb::CampaignType]) -> String {
    kinds
        .iter()
        .map(|kind| kind.as_str_name())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// FAILED_PRECONDITION CAMPAIGN_NOT_ACTIVE unless the campaign is active.
fn require_active(row: &campaign::Model) -> Result<(), ServiceError> {
    if row.status == pb::CampaignStatus::Active as i32 {
        Ok(())
    } else {
        Err(ServiceError::failed_precondition(
            DOMAIN,
            "CAMPAIGN_NOT_ACTIVE",
            format!("campaigns/{}", row.id),
            "the campaign is not active (not funded yet, or closed)",
        ))
    }
}

/// A membership of the workspace, if there is one.
pub(crate) async fn find_member<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    campaign_id: Uuid,
    promoter_id: Uuid,
) -> Result<Option<member::Model>, ServiceError> {
    Ok(
        member::Entity::find_by_id((workspace_id, campaign_id, promoter_id))
            .one(connection)
            .await?,
    )
}

/// Adds a promoter to a campaign with a fresh tracking code (`PRM…`), or answers the existing
/// membership.
pub(crate) async fn join<C: ConnectionTrait>(
    txn: &C,
    row: &campaign::Model,
    promoter_id: Uuid,
    now: i64,
) -> Result<member::Model, ServiceError> {
    if let Some(existing) = find_member(txn, row.workspace_id, row.id, promoter_id).await? {
        return Ok(existing);
    }
    let mut code = kernel::ids::person_code("PRM");
    for _ in 0..8 {
        let taken = member::Entity::find()
            .filter(member::Column::WorkspaceId.eq(row.workspace_id))
            .filter(member::Column::TrackingCode.eq(code.as_str()))
            .one(txn)
            .await?
            .is_some();
        if !taken {
            break;
        }
        code = kernel::ids::person_code("PRM");
    }
    let membership = member::Model {
        workspace_id: row.workspace_id,
        campaign_id: row.id,
        promoter_id,
        tracking_code: code,
        views: 0,
        earned: 0,
        fee: 0,
        created_at: now,
        updated_at: now,
    };
    kernel::db::insert(txn, member::ActiveModel::from(membership.clone())).await?;
    Ok(membership)
}

impl ParticipationGrpc {
    /// Accepts or rejects a pending application of a campaign the caller manages.
    async fn decide(
        &self,
        principal: &Principal,
        body: &pb::ApplicationActionRequest,
        method: &'static str,
        accept: bool,
    ) -> Result<pb::Application, ServiceError> {
        let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, method, body)?;
        let id = parse_uuid(DOMAIN, "id", &body.id)?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        self.core
            .context
            .idempotent(&key, |txn| async move {
                let unknown = || not_found("APPLICATION_NOT_FOUND", "application");
                let campaign_id = application::Entity::find_by_id((workspace_id, id))
                    .one(&*txn)
                    .await?
                    .ok_or_else(unknown)?
                    .campaign_id;
                // The campaign's lock orders concurrent decisions; the application is read again
                // under it.
                let campaign = campaigns::managed(&*txn, principal, campaign_id, true)
                    .await
                    .map_err(|_| unknown())?;
                let mut row = application::Entity::find_by_id((workspace_id, id))
                    .one(&*txn)
                    .await?
                    .ok_or_else(unknown)?;
                if row.status != pb::ApplicationStatus::Pending as i32 {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        "APPLICATION_NOT_PENDING",
                        format!("applications/{id}"),
                        "only a pending application can be accepted or rejected",
                    ));
                }
                if accept {
                    if campaign.accepted_application_id.is_some() {
                        return Err(ServiceError::failed_precondition(
                            DOMAIN,
                            "APPLICATION_ALREADY_ACCEPTED",
                            format!("campaigns/{}", campaign.id),
                            "this campaign has accepted an application already",
                        ));
                    }
                    require_active(&campaign)?;
                    kernel::db::update(
                        &*txn,
                        campaign::ActiveModel {
                            workspace_id: Set(workspace_id),
                            id: Set(campaign.id),
                            accepted_application_id: Set(Some(id)),
                            updated_at: Set(now),
                            ..Default::default()
                        },
                    )
                    .await?;
                    join(&*txn, &campaign, row.promoter_id, now).await?;
                    row.status = pb::ApplicationStatus::Accepted as i32;
                } else {
                    row.status = pb::ApplicationStatus::Rejected as i32;
                }
                row.updated_at = now;
                kernel::db::update(
                    &*txn,
                    application::ActiveModel {
                        workspace_id: Set(workspace_id),
                        id: Set(id),
                        status: Set(row.status),
                        updated_at: Set(now),
                        ..Default::default()
                    },
                )
                .await?;
                Ok((txn, application_to_proto(&row, &campaign.currency)))
            })
            .await
    }
}

#[tonic::async_trait]
impl ParticipationService for ParticipationGrpc {
    async fn apply_to_campaign(
        &self,
        request: Request<pb::ApplyToCampaignRequest>,
    ) -> Result<Response<pb::Application>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "ApplyToCampaign",
            body,
        )?;
        let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        check_text(DOMAIN, "pitch", &body.pitch, 2000, true)?;
        let workspace_id = principal.workspace_id;
        let promoter_id = principal.subject;
        let now = self.core.now();
        let response = self
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
                    "applications are taken",
                )?;
                require_active(&campaign)?;
                let proposed = convert::money_in(
                    "proposed_amount",
                    body.proposed_amount.as_ref(),
                    &campaign.currency,
                    false,
                )?;
                if !(campaign.min_budget..=campaign.max_budget).contains(&proposed) {
                    return Err(ServiceError::invalid_field(
                        DOMAIN,
                        "proposed_amount.amount",
                        format!(
                            "must be within the campaign's budget range, {} to {} minor units",
                            campaign.min_budget, campaign.max_budget
                        ),
                    ));
                }
                let existing = application::Entity::find()
                    .filter(application::Column::WorkspaceId.eq(workspace_id))
                    .filter(application::Column::CampaignId.eq(campaign_id))
                    .filter(application::Column::PromoterId.eq(promoter_id))
                    .one(&*txn)
                    .await?;
                if existing.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::AlreadyExists,
                        DOMAIN,
                        "APPLICATION_EXISTS",
                        "this promoter has applied to this campaign already",
                    ));
                }
                let row = application::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    campaign_id,
                    promoter_id,
                    proposed_amount: proposed,
                    pitch: body.pitch.clone(),
                    status: pb::ApplicationStatus::Pending as i32,
                    created_at: now,
                    updated_at: now,
                };
                kernel::db::insert(&*txn, application::ActiveModel::from(row.clone())).await?;
                Ok((txn, application_to_proto(&row, &campaign.currency)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn accept_application(
        &self,
        request: Request<pb::ApplicationActionRequest>,
    ) -> Result<Response<pb::Application>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let application = self
            .decide(&principal, request.get_ref(), "AcceptApplication", true)
            .await?;
        Ok(Response::new(application))
    }

    async fn reject_application(
        &self,
        request: Request<pb::ApplicationActionRequest>,
    ) -> Result<Response<pb::Application>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let application = self
            .decide(&principal, request.get_ref(), "RejectApplication", false)
            .await?;
        Ok(Response::new(application))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let campaign_id = parse_optional_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        let digest = PageToken::query_digest(&[&body.campaign_id, &body.status.to_string()]);
        let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let connection = self.core.context.db.connection();
        let mut query = application::Entity::find()
            .filter(application::Column::WorkspaceId.eq(principal.workspace_id))
            .order_by_asc(application::Column::Id)
            .limit(limit + 1);
        let promoter_view = !is_operator(principal) && !principal.has_role(Role::Advertiser);
        if promoter_view {
            query = query.filter(application::Column::PromoterId.eq(principal.subject));
        }
        let currency = match campaign_id {
            Some(campaign_id) => {
                let campaign = if promoter_view {
                    campaigns::find(connection, principal.workspace_id, campaign_id, false).await?
                } else {
                    campaigns::managed(connection, principal, campaign_id, false).await?
                };
                query = query.filter(application::Column::CampaignId.eq(campaign_id));
                Some(campaign.currency)
            }
            None if promoter_view || is_operator(principal) => None,
            None => {
                return Err(
                    ServiceError::invalid_field(DOMAIN, "campaign_id", "is required").into(),
                );
            }
        };
        if body.status != 0 {
            query = query.filter(application::Column::Status.eq(body.status));
        }
        if let Some(after) = after {
            query = query.filter(application::Column::Id.gt(after));
        }
        let mut rows = query.all(connection).await.map_err(ServiceError::from)?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        let mut applications = Vec::with_capacity(rows.len());
        for row in &rows {
            let currency = match &currency {
                Some(currency) => currency.clone(),
                None => {
                    campaigns::find(connection, principal.workspace_id, row.campaign_id, false)
                        .await?
                        .currency
                }
            };
            applications.push(application_to_proto(row, &currency));
        }
        Ok(Response::new(pb::ListApplicationsResponse {
            applications,
            next_page_token,
        }))
    }

    async fn join_campaign(
        &self,
        request: Request<pb::JoinCampaignRequest>,
    ) -> Result<Response<pb::Membership>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "JoinCampaign", body)?;
        let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        let workspace_id = principal.workspace_id;
        let promoter_id = principal.subject;
        let now = self.core.now();
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let campaign = campaigns::find(&*txn, workspace_id, campaign_id, false).await?;
                if campaign.status == pb::CampaignStatus::Draft as i32 {
                    return Err(campaigns::campaign_not_found());
                }
                require_type(
                    &campaign,
                    &[pb::CampaignType::Visibility, pb::CampaignType::Salesman],
                    "promoters join",
                )?;
                require_active(&campaign)?;
                let membership = join(&*txn, &campaign, promoter_id, now).await?;
                Ok((txn, membership_to_proto(&membership, &campaign.currency)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn submit_work(
        &self,
        request: Request<pb::SubmitWorkRequest>,
    ) -> Result<Response<pb::Work>, GrpcStatus> {
        Ok(Response::new(work::submit(self, request).await?))
    }

    async fn approve_work(
        &self,
        request: Request<pb::ApproveWorkRequest>,
    ) -> Result<Response<pb::Work>, GrpcStatus> {
        Ok(Response::new(work::approve(self, request).await?))
    }

    async fn reject_work(
        &self,
        request: Request<pb::RejectWorkRequest>,
    ) -> Result<Response<pb::Work>, GrpcStatus> {
        Ok(Response::new(work::reject(self, request).await?))
    }

    async fn list_work(
        &self,
        request: Request<pb::ListWorkRequest>,
    ) -> Result<Response<pb::ListWorkResponse>, GrpcStatus> {
        Ok(Response::new(work::list(self, request).await?))
    }
}

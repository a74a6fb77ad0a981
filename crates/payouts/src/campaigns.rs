//! CampaignService: advertisers create and read campaigns; funding and closing (`funding`) move
//! money in and out of their escrow.

use std::sync::Arc;

use credits_ledger::queries::system_balances;
use kernel::clock::parse_timestamp;
use kernel::ids::{check_text, parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::settings::of_workspace;
use kernel::{IdempotencyKey, Principal, Role, ServiceError, Violations};
use proto::payouts::v1 as pb;
use proto::payouts::v1::campaign_service_server::{CampaignService, CampaignServiceServer};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::DOMAIN;
use crate::convert::{self, money, not_found, time};
use crate::domain::Terms;
use crate::entity::{campaign, member, work};
use crate::escrow::escrow;
use crate::settings::{MAX_FEE_BPS, PayoutsSettings};
use crate::state::Payouts;

pub struct CampaignGrpc {
    pub(crate) core: Arc<Payouts>,
}

pub fn grpc(core: Arc<Payouts>) -> CampaignServiceServer<CampaignGrpc> {
    CampaignServiceServer::new(CampaignGrpc { core })
}

/// Roles that act on any campaign of their workspace.
const OPERATORS: &[Role] = &[Role::Admin, Role::Ops, Role::Billing];

pub(crate) fn is_operator(principal: &Principal) -> bool {
    principal.has_any_role(OPERATORS)
}

pub(crate) fn campaign_not_found() -> ServiceError {
    not_found("CAMPAIGN_NOT_FOUND", "campaign")
}

/// A campaign of the workspace, locked for the rest of the transaction when `lock` (PostgreSQL;
/// SQLite's write transactions are exclusive already).
pub(crate) async fn find<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<campaign::Model, ServiceError> {
    let mut query = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Id.eq(id));
    if lock {
        query = query.lock_exclusive();
    }
    query.one(connection).await?.ok_or_else(campaign_not_found)
}

/// A campaign the caller may manage: operators any, an advertiser its own (another's answers
/// like an unknown one).
pub(crate) async fn managed<C: ConnectionTrait>(
    connection: &C,
    principal: &Principal,
    id: Uuid,
    lock: bool,
) -> Result<campaign::Model, ServiceError> {
    let row = find(connection, principal.workspace_id, id, lock).await?;
    if is_operator(principal) || row.advertiser_id == principal.subject {
        Ok(row)
    } else {
        Err(campaign_not_found())
    }
}

/// A campaign the caller may read: managers as above; a promoter any that is no longer a draft.
async fn readable<C: ConnectionTrait>(
    connection: &C,
    principal: &Principal,
    id: Uuid,
) -> Result<campaign::Model, ServiceError> {
    let row = find(connection, principal.workspace_id, id, false).await?;
    let visible = is_operator(principal)
        || row.advertiser_id == principal.subject
        || (principal.has_role(Role::Promoter) && row.status != pb::CampaignStatus::Draft as i32);
    if visible {
        Ok(row)
    } else {
        Err(campaign_not_found())
    }
}

pub(crate) fn terms(row: &campaign::Model) -> Terms {
    Terms {
        kind: pb::CampaignType::try_from(row.campaign_type).unwrap_or_default(),
        rate_per_100_views: row.rate_per_100_views,
        max_views: row.max_views,
        min_budget: row.min_budget,
        max_budget: row.max_budget,
        fee_bps: u32::try_from(row.platform_fee_bps).unwrap_or(0),
        fee_payer: pb::FeePayer::try_from(row.fee_payer).unwrap_or_default(),
    }
}

/// What a campaign's escrow can still pay: its balance minus what held earnings reserve.
pub(crate) async fn escrow_available<C: ConnectionTrait>(
    connection: &C,
    row: &campaign::Model,
) -> Result<i64, ServiceError> {
    let balances =
        system_balances(connection, row.workspace_id, &escrow(row.id), &row.currency).await?;
    Ok(balances.balance() - balances.debits_pending)
}

pub(crate) async fn to_proto<C: ConnectionTrait>(
    connection: &C,
    row: &campaign::Model,
) -> Result<pb::Campaign, ServiceError> {
    let currency = row.currency.as_str();
    let visibility = row.campaign_type == pb::CampaignType::Visibility as i32;
    Ok(pb::Campaign {
        id: row.id.to_string(),
        advertiser_id: row.advertiser_id.to_string(),
        title: row.title.clone(),
        r#type: row.campaign_type,
        currency: row.currency.clone(),
        rate_per_100_views: visibility
            .then(|| money(currency, row.rate_per_100_views))
            .flatten(),
        max_views: row.max_views,
        min_budget: (!visibility)
            .then(|| money(currency, row.min_budget))
            .flatten(),
        max_budget: (!visibility)
            .then(|| money(currency, row.max_budget))
            .flatten(),
        commission_bps: u32::try_from(row.commission_bps).unwrap_or(0),
        tracking_method: row.tracking_method,
        platform_fee_bps: u32::try_from(row.platform_fee_bps).unwrap_or(0),
        start_time: row.start_at.and_then(time),
        end_time: row.end_at.and_then(time),
        status: row.status,
        fee_payer: row.fee_payer,
        budget: money(currency, row.budget),
        required_funding: money(currency, row.required_funding),
        funding_limit: money(currency, row.funding_limit),
        funded: money(currency, row.funded),
        spent: money(currency, row.spent),
        fees: money(currency, row.fees),
        refunded: money(currency, row.refunded),
        escrow_available: money(currency, escrow_available(connection, row).await?),
        total_views: row.total_views,
        accepted_application_id: row
            .accepted_application_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    })
}

/// Whether earnings may be recorded now: ACTIVE and inside the window. Otherwise
/// FAILED_PRECONDITION CAMPAIGN_NOT_ACTIVE.
pub(crate) fn check_earning_window(row: &campaign::Model, now: i64) -> Result<(), ServiceError> {
    let open = row.status == pb::CampaignStatus::Active as i32
        && row.start_at.is_none_or(|start| now >= start)
        && row.end_at.is_none_or(|end| now < end);
    if open {
        Ok(())
    } else {
        Err(ServiceError::failed_precondition(
            DOMAIN,
            "CAMPAIGN_NOT_ACTIVE",
            format!("campaigns/{}", row.id),
            "the campaign is not active (not funded yet, closed, or outside its time window)",
        ))
    }
}

/// A new campaign's row from the request, validated (everything wrong is reported at once).
fn new_campaign(
    principal: &Principal,
    input: &pb::Campaign,
    settings: &PayoutsSettings,
    now: i64,
) -> Result<campaign::Model, ServiceError> {
    let advertiser_id = if principal.has_role(Role::Admin) {
        parse_uuid(DOMAIN, "campaign.advertiser_id", &input.advertiser_id)?
    } else {
        match parse_optional_uuid(DOMAIN, "campaign.advertiser_id", &input.advertiser_id)? {
            None => principal.subject,
            Some(id) if id == principal.subject => id,
            Some(_) => {
                return Err(ServiceError::permission_denied(
                    DOMAIN,
                    "ADVERTISER_MISMATCH",
                    "an advertiser creates campaigns for itself only (campaign.advertiser_id)",
                ));
            }
        }
    };
    let kind = pb::CampaignType::try_from(input.r#type)
        .ok()
        .filter(|kind| *kind != pb::CampaignType::Unspecified)
        .ok_or_else(|| {
            ServiceError::invalid_field(DOMAIN, "campaign.type", "must be a campaign type")
        })?;
    let currency = convert::currency("campaign.currency", &input.currency)?.code;
    let mut violations = Violations::new(DOMAIN);
    violations.take(
        "campaign.title",
        check_text(DOMAIN, "campaign.title", input.title.trim(), 200, false),
    );
    let (mut rate, mut max_views, mut min_budget, mut max_budget) = (0, 0, 0, 0);
    let (mut commission_bps, mut tracking_method) = (0, 0);
    if kind == pb::CampaignType::Visibility {
        rate = convert::money_in(
            "campaign.rate_per_100_views",
            input.rate_per_100_views.as_ref(),
            currency,
            false,
        )?;
        violations.check(
            (1..=1_000_000_000_000).contains(&input.max_views),
            "campaign.max_views",
            "must be between 1 and 1000000000000",
        );
        max_views = input.max_views;
    } else {
        min_budget = convert::money_in(
            "campaign.min_budget",
            input.min_budget.as_ref(),
            currency,
            false,
        )?;
        max_budget = convert::money_in(
            "campaign.max_budget",
            input.max_budget.as_ref(),
            currency,
            false,
        )?;
        violations.check(
            max_budget >= min_budget,
            "campaign.max_budget",
            "must be at least campaign.min_budget",
        );
    }
    if kind == pb::CampaignType::Salesman {
        violations.check(
            (1..=kernel::money::BPS_WHOLE).contains(&input.commission_bps),
            "campaign.commission_bps",
            "must be between 1 and 10000 basis points",
        );
        commission_bps = input.commission_bps as i32;
        tracking_method = input.tracking_method;
        violations.check(
            matches!(
                pb::TrackingMethod::try_from(tracking_method),
                Ok(pb::TrackingMethod::ReferralLink | pb::TrackingMethod::CouponCode)
            ),
            "campaign.tracking_method",
            "must be TRACKING_METHOD_REFERRAL_LINK or TRACKING_METHOD_COUPON_CODE",
        );
    }
    violations.check(
        input.platform_fee_bps <= MAX_FEE_BPS,
        "campaign.platform_fee_bps",
        format!("must be at most {MAX_FEE_BPS} basis points"),
    );
    let start_at = parse_timestamp(DOMAIN, "campaign.start_time", input.start_time.as_ref())?;
    let end_at = parse_timestamp(DOMAIN, "campaign.end_time", input.end_time.as_ref())?;
    if let (Some(start), Some(end)) = (start_at, end_at) {
        violations.check(
            end > start,
            "campaign.end_time",
            "must be after campaign.start_time",
        );
    }
    violations.finish()?;
    let fee_bps = if input.platform_fee_bps == 0 {
        settings.platform_fee_bps
    } else {
        input.platform_fee_bps
    };
    let fee_payer = settings.fee_payer();
    let terms = Terms {
        kind,
        rate_per_100_views: rate,
        max_views,
        min_budget,
        max_budget,
        fee_bps,
        fee_payer,
    };
    let limits = terms
        .limits()
        .map_err(|error| error.into_service(DOMAIN, "campaign"))?;
    Ok(campaign::Model {
        workspace_id: principal.workspace_id,
        id: Uuid::now_v7(),
        advertiser_id,
        title: input.title.trim().to_owned(),
        campaign_type: kind as i32,
        currency: currency.to_owned(),
        rate_per_100_views: rate,
        max_views,
        min_budget,
        max_budget,
        commission_bps,
        tracking_method,
        platform_fee_bps: fee_bps as i32,
        fee_payer: fee_payer as i32,
        budget: limits.budget,
        required_funding: limits.required_funding,
        funding_limit: limits.funding_limit,
        funded: 0,
        spent: 0,
        fees: 0,
        refunded: 0,
        total_views: 0,
        status: pb::CampaignStatus::Draft as i32,
        accepted_application_id: None,
        start_at,
        end_at,
        created_at: now,
        updated_at: now,
    })
}

#[tonic::async_trait]
impl CampaignService for CampaignGrpc {
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key =
            IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateCampaign", body)?;
        let input = body
            .campaign
            .as_ref()
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "campaign", "is required"))?;
        let now = self.core.now();
        let principal = &principal;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let settings =
                    of_workspace::<PayoutsSettings, _>(&*txn, principal.workspace_id).await?;
                let row = new_campaign(principal, input, &settings, now)?;
                kernel::db::insert(&*txn, campaign::ActiveModel::from(row.clone())).await?;
                let campaign = to_proto(&*txn, &row).await?;
                Ok((txn, campaign))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let connection = self.core.context.db.connection();
        let row = readable(connection, principal, id).await?;
        Ok(Response::new(to_proto(connection, &row).await?))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&[&body.status.to_string(), &body.r#type.to_string()]);
        let before = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let connection = self.core.context.db.connection();
        let mut query = campaign::Entity::find()
            .filter(campaign::Column::WorkspaceId.eq(principal.workspace_id))
            .order_by_desc(campaign::Column::Id)
            .limit(limit + 1);
        if !is_operator(principal) {
            if principal.has_role(Role::Advertiser) {
                query = query.filter(campaign::Column::AdvertiserId.eq(principal.subject));
            } else {
                query = query.filter(campaign::Column::Status.ne(pb::CampaignStatus::Draft as i32));
            }
        }
        if body.status != 0 {
            query = query.filter(campaign::Column::Status.eq(body.status));
        }
        if body.r#type != 0 {
            query = query.filter(campaign::Column::CampaignType.eq(body.r#type));
        }
        if let Some(before) = before {
            query = query.filter(campaign::Column::Id.lt(before));
        }
        let mut rows = query.all(connection).await.map_err(ServiceError::from)?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        let mut campaigns = Vec::with_capacity(rows.len());
        for row in &rows {
            campaigns.push(to_proto(connection, row).await?);
        }
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn fund_campaign(
        &self,
        request: Request<pb::FundCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let campaign = crate::funding::fund(&self.core, &principal, request.get_ref()).await?;
        Ok(Response::new(campaign))
    }

    async fn close_campaign(
        &self,
        request: Request<pb::CloseCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let campaign = crate::funding::close(&self.core, &principal, request.get_ref()).await?;
        Ok(Response::new(campaign))
    }

    async fn get_campaign_performance(
        &self,
        request: Request<pb::GetCampaignPerformanceRequest>,
    ) -> Result<Response<pb::CampaignPerformance>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "campaign_id", &request.get_ref().campaign_id)?;
        let connection = self.core.context.db.connection();
        let row = managed(connection, principal, id, false).await?;
        let promoters = member::Entity::find()
            .filter(member::Column::WorkspaceId.eq(row.workspace_id))
            .filter(member::Column::CampaignId.eq(id))
            .count(connection)
            .await
            .map_err(ServiceError::from)?;
        let approved_work = work::Entity::find()
            .filter(work::Column::WorkspaceId.eq(row.workspace_id))
            .filter(work::Column::CampaignId.eq(id))
            .filter(work::Column::Status.eq(pb::WorkStatus::Approved as i32))
            .count(connection)
            .await
            .map_err(ServiceError::from)?;
        let currency = row.currency.as_str();
        Ok(Response::new(pb::CampaignPerformance {
            campaign_id: id.to_string(),
            views: row.total_views,
            promoters: promoters as i64,
            spent: money(currency, row.spent),
            fees: money(currency, row.fees),
            remaining_budget: money(currency, row.budget - row.spent),
            escrow_available: money(currency, escrow_available(connection, &row).await?),
            approved_work: approved_work as i64,
        }))
    }
}

//! PerformanceService: views and sales (`sales`) reported by a tracking backend. Each viewer counts once per
//! campaign and promoter, ever; the campaign stops counting at its max views; what the promoter
//! earned is recomputed from its cumulative views (so any batching pays the same) and the
//! difference is credited.

use std::collections::HashSet;
use std::sync::Arc;

use kernel::ids::parse_uuid;
use kernel::settings::of_workspace;
use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::payouts::v1 as pb;
use proto::payouts::v1::performance_service_server::{
    PerformanceService, PerformanceServiceServer,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use tonic::{Request, Response, Status as GrpcStatus};

use crate::campaigns;
use crate::convert::money;
use crate::domain::view_increment;
use crate::earnings::{self, Hold, Source};
use crate::entity::{campaign, member, view};
use crate::participation::{find_member, require_type};
use crate::settings::PayoutsSettings;
use crate::state::Payouts;
use crate::{DOMAIN, sales};

/// Viewer ids one call may carry.
pub const MAX_VIEWERS_PER_CALL: usize = 10_000;
/// Rows per statement when looking up and inserting viewers (4 parameters a row stays far below
/// SQLite's and PostgreSQL's parameter limits).
const VIEWER_CHUNK: usize = 1000;

pub struct PerformanceGrpc {
    pub(crate) core: Arc<Payouts>,
}

pub fn grpc(core: Arc<Payouts>) -> PerformanceServiceServer<PerformanceGrpc> {
    PerformanceServiceServer::new(PerformanceGrpc { core })
}

/// The viewer ids of a request, trimmed, each once, in order; every bad one reported.
fn viewer_ids(raw: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut violations = Violations::new(DOMAIN);
    violations.check(
        !raw.is_empty() && raw.len() <= MAX_VIEWERS_PER_CALL,
        "viewer_ids",
        format!("must hold 1 to {MAX_VIEWERS_PER_CALL} viewer ids"),
    );
    let mut seen = HashSet::with_capacity(raw.len());
    let mut viewers = Vec::with_capacity(raw.len());
    for (index, viewer) in raw.iter().enumerate() {
        let viewer = viewer.trim();
        if viewer.is_empty() || viewer.chars().count() > 128 {
            violations.add(
                &format!("viewer_ids[{index}]"),
                "must be 1 to 128 characters",
            );
            continue;
        }
        if seen.insert(viewer) {
            viewers.push(viewer.to_owned());
        }
    }
    violations.finish()?;
    Ok(viewers)
}

/// Stores the viewers of `candidates` not seen before for this campaign and promoter, at most
/// `room` of them, in order; returns how many were new. The caller holds the campaign's lock, so
/// nobody else adds viewers of this campaign meanwhile.
async fn add_viewers<C: ConnectionTrait>(
    txn: &C,
    membership: &member::Model,
    candidates: &[String],
    room: i64,
) -> Result<i64, ServiceError> {
    let mut fresh = Vec::new();
    for chunk in candidates.chunks(VIEWER_CHUNK) {
        let known: HashSet<String> = view::Entity::find()
            .select_only()
            .column(view::Column::ViewerId)
            .filter(view::Column::WorkspaceId.eq(membership.workspace_id))
            .filter(view::Column::CampaignId.eq(membership.campaign_id))
            .filter(view::Column::PromoterId.eq(membership.promoter_id))
            .filter(view::Column::ViewerId.is_in(chunk.iter().cloned()))
            .into_tuple::<String>()
            .all(txn)
            .await?
            .into_iter()
            .collect();
        fresh.extend(
            chunk
                .iter()
                .filter(|viewer| !known.contains(*viewer))
                .cloned(),
        );
        if fresh.len() as i64 >= room {
            break;
        }
    }
    fresh.truncate(usize::try_from(room.max(0)).unwrap_or(0));
    let mut added = 0;
    for chunk in fresh.chunks(VIEWER_CHUNK) {
        let rows = chunk.iter().map(|viewer_id| view::ActiveModel {
            workspace_id: Set(membership.workspace_id),
            campaign_id: Set(membership.campaign_id),
            promoter_id: Set(membership.promoter_id),
            viewer_id: Set(viewer_id.clone()),
        });
        added += view::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    view::Column::WorkspaceId,
                    view::Column::CampaignId,
                    view::Column::PromoterId,
                    view::Column::ViewerId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(added as i64)
}

#[tonic::async_trait]
impl PerformanceService for PerformanceGrpc {
    async fn record_views(
        &self,
        request: Request<pb::RecordViewsRequest>,
    ) -> Result<Response<pb::RecordViewsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "RecordViews", body)?;
        let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        let promoter_id = parse_uuid(DOMAIN, "promoter_id", &body.promoter_id)?;
        let viewers = viewer_ids(&body.viewer_ids)?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let viewers = &viewers;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let mut campaign = campaigns::find(&*txn, workspace_id, campaign_id, true).await?;
                require_type(&campaign, &[pb::CampaignType::Visibility], "views are paid")?;
                campaigns::check_earning_window(&campaign, now)?;
                let mut membership = find_member(&*txn, workspace_id, campaign_id, promoter_id)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::failed_precondition(
                            DOMAIN,
                            "PROMOTER_NOT_IN_CAMPAIGN",
                            format!("campaigns/{campaign_id}"),
                            "this promoter has not joined the campaign",
                        )
                    })?;
                let room = campaign.max_views - campaign.total_views;
                let counted = add_viewers(&*txn, &membership, viewers, room).await?;
                let mut credited = 0;
                if counted > 0 {
                    membership.views += counted;
                    campaign.total_views += counted;
                    let step = view_increment(
                        &campaigns::terms(&campaign),
                        membership.views,
                        membership.earned,
                        membership.fee,
                    )
                    .map_err(|error| error.into_service(DOMAIN, "viewer_ids"))?;
                    if step.gross > 0 {
                        let settings =
                            of_workspace::<PayoutsSettings, _>(&*txn, workspace_id).await?;
                        earnings::record(
                            &*txn,
                            &mut campaign,
                            promoter_id,
                            (Source::Views, membership.views.to_string()),
                            step,
                            Hold::days(settings.work_holding_days, now),
                            now,
                        )
                        .await?;
                        membership.earned += step.gross;
                        membership.fee += step.fee;
                        credited = step.promoter;
                    } else {
                        kernel::db::update(
                            &*txn,
                            campaign::ActiveModel {
                                workspace_id: Set(workspace_id),
                                id: Set(campaign_id),
                                total_views: Set(campaign.total_views),
                                updated_at: Set(now),
                                ..Default::default()
                            },
                        )
                        .await?;
                    }
                    kernel::db::update(
                        &*txn,
                        member::ActiveModel {
                            workspace_id: Set(workspace_id),
                            campaign_id: Set(campaign_id),
                            promoter_id: Set(promoter_id),
                            views: Set(membership.views),
                            earned: Set(membership.earned),
                            fee: Set(membership.fee),
                            updated_at: Set(now),
                            ..Default::default()
                        },
                    )
                    .await?;
                }
                let currency = campaign.currency.as_str();
                Ok((
                    txn,
                    pb::RecordViewsResponse {
                        counted,
                        total_views: membership.views,
                        earned: money(currency, membership.earned),
                        credited: money(currency, credited),
                        capped: campaign.total_views >= campaign.max_views,
                    },
                ))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn record_sale(
        &self,
        request: Request<pb::RecordSaleRequest>,
    ) -> Result<Response<pb::Sale>, GrpcStatus> {
        Ok(Response::new(sales::record(&self.core, request).await?))
    }

    async fn verify_sale(
        &self,
        request: Request<pb::SaleActionRequest>,
    ) -> Result<Response<pb::Sale>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let sale = sales::decide(&self.core, &principal, request.get_ref(), true).await?;
        Ok(Response::new(sale))
    }

    async fn reject_sale(
        &self,
        request: Request<pb::SaleActionRequest>,
    ) -> Result<Response<pb::Sale>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let sale = sales::decide(&self.core, &principal, request.get_ref(), false).await?;
        Ok(Response::new(sale))
    }

    async fn refund_sale(
        &self,
        request: Request<pb::RefundSaleRequest>,
    ) -> Result<Response<pb::Sale>, GrpcStatus> {
        Ok(Response::new(sales::refund(&self.core, request).await?))
    }

    async fn list_sales(
        &self,
        request: Request<pb::ListSalesRequest>,
    ) -> Result<Response<pb::ListSalesResponse>, GrpcStatus> {
        Ok(Response::new(sales::list(&self.core, request).await?))
    }
}

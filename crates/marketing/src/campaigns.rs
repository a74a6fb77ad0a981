//! promo.marketing.v1.CampaignService: campaigns and their groups, and the lifecycle draft →
//! scheduled → active ↔ paused → completed (moved at start and end times by the sweeper).

use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::ids::{check_text, parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::marketing::v1 as pb;
use proto::marketing::v1::campaign_service_server::{CampaignService, CampaignServiceServer};
use sea_orm::ActiveValue::Set;
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::campaign_input::{check_rules, read_campaign};
pub use crate::convert::campaign_to_proto;
use crate::model::{CampaignStatus, KIND_PROMO_CODE, TRIGGER_AUTOMATIC};
use crate::state::Marketing;
use crate::store::{self, campaign, group};
use crate::{DOMAIN, events};

pub struct CampaignGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> CampaignServiceServer<CampaignGrpc> {
    CampaignServiceServer::new(CampaignGrpc { core })
}

pub fn campaign_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "CAMPAIGN_NOT_FOUND", "campaign")
}

/// The lifecycle verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Launch,
    Pause,
    Resume,
    Complete,
}

impl Verb {
    fn method(self) -> &'static str {
        match self {
            Verb::Launch => "LaunchCampaign",
            Verb::Pause => "PauseCampaign",
            Verb::Resume => "ResumeCampaign",
            Verb::Complete => "CompleteCampaign",
        }
    }
}

fn status_conflict(row: &campaign::Model, current: CampaignStatus, verb: Verb) -> ServiceError {
    ServiceError::failed_precondition(
        DOMAIN,
        "CAMPAIGN_STATUS_CONFLICT",
        format!("campaigns/{}", row.id),
        format!("a campaign that is {current:?} cannot be {verb:?}ed").to_lowercase(),
    )
}

/// Moves a campaign whose window opened or closed (the sweeper); returns whether it changed.
pub(crate) async fn advance_due(
    core: &Marketing,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<bool, ServiceError> {
    let now = core.now();
    let changed = core
        .context
        .write(|txn| async move {
            let Some(row) = store::get_campaign(&*txn, workspace_id, id).await? else {
                return Ok((txn, false));
            };
            let stored = CampaignStatus::from_i32(row.status).unwrap_or(CampaignStatus::Completed);
            let effective = stored.effective(row.start_time, row.end_time, now);
            let target = match (stored, effective) {
                (CampaignStatus::Scheduled, CampaignStatus::Active) => CampaignStatus::Active,
                (s, CampaignStatus::Completed) if s != CampaignStatus::Completed => {
                    CampaignStatus::Completed
                }
                _ => return Ok((txn, false)),
            };
            store::update(
                &*txn,
                campaign::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    status: Set(target as i32),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            let (event, payload) = if target == CampaignStatus::Active {
                (
                    events::CAMPAIGN_STARTED,
                    json!({"campaign_id": id.to_string()}),
                )
            } else {
                (
                    events::CAMPAIGN_COMPLETED,
                    json!({"campaign_id": id.to_string(), "reason": "ENDED"}),
                )
            };
            events::emit(
                &txn,
                workspace_id,
                event,
                format!("campaigns/{id}"),
                payload,
                now,
            )
            .await?;
            store::bump_version(&*txn, workspace_id).await?;
            Ok((txn, true))
        })
        .await?;
    if changed {
        core.refresh(workspace_id).await;
    }
    Ok(changed)
}

impl CampaignGrpc {
    async fn transition(
        &self,
        principal: &Principal,
        body: &pb::CampaignActionRequest,
        verb: Verb,
    ) -> Result<pb::Campaign, ServiceError> {
        let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, verb.method(), body)?;
        let id = parse_uuid(DOMAIN, "id", &body.id)?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        self.core
            .change_definitions(&key, workspace_id, |txn| async move {
                let row = store::get_campaign(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(campaign_not_found)?;
                let stored =
                    CampaignStatus::from_i32(row.status).unwrap_or(CampaignStatus::Completed);
                let current = stored.effective(row.start_time, row.end_time, now);
                let mut start_time = row.start_time;
                let target = match (verb, current) {
                    (Verb::Launch, CampaignStatus::Draft) => {
                        let rule_ids: Vec<Uuid> =
                            kernel::db::json_column("mkt_campaign", id, "rule_ids", &row.rule_ids)?;
                        let promo_grant = row.kind == KIND_PROMO_CODE
                            && (row.promo_credits > 0 || row.trial_days > 0);
                        if rule_ids.is_empty() && !promo_grant {
                            return Err(ServiceError::failed_precondition(
                                DOMAIN,
                                "CAMPAIGN_HAS_NO_RULES",
                                format!("campaigns/{id}"),
                                "a campaign needs at least one discount rule to launch (a promo-code campaign: a rule, credits or trial days)",
                            ));
                        }
                        if row.end_time.is_some_and(|end| end <= now) {
                            return Err(ServiceError::failed_precondition(
                                DOMAIN,
                                "CAMPAIGN_ENDED",
                                format!("campaigns/{id}"),
                                "the campaign's end time has passed",
                            ));
                        }
                        let start = *start_time.get_or_insert(now);
                        if start > now {
                            CampaignStatus::Scheduled
                        } else {
                            CampaignStatus::Active
                        }
                    }
                    (Verb::Pause, CampaignStatus::Active | CampaignStatus::Scheduled) => {
                        CampaignStatus::Paused
                    }
                    (Verb::Resume, CampaignStatus::Paused) => {
                        if start_time.is_some_and(|start| start > now) {
                            CampaignStatus::Scheduled
                        } else {
                            CampaignStatus::Active
                        }
                    }
                    (Verb::Complete, status) if status != CampaignStatus::Completed => {
                        CampaignStatus::Completed
                    }
                    _ => return Err(status_conflict(&row, current, verb)),
                };
                store::update(
                    &*txn,
                    campaign::ActiveModel {
                        workspace_id: Set(workspace_id),
                        id: Set(id),
                        status: Set(target as i32),
                        start_time: Set(start_time),
                        updated_at: Set(now),
                        ..Default::default()
                    },
                )
                .await?;
                let subject = format!("campaigns/{id}");
                match verb {
                    Verb::Launch => {
                        let status = format!("{target:?}").to_uppercase();
                        let payload = json!({"campaign_id": id.to_string(), "status": status});
                        events::emit(
                            &txn,
                            workspace_id,
                            events::CAMPAIGN_LAUNCHED,
                            subject,
                            payload,
                            now,
                        )
                        .await?;
                    }
                    Verb::Complete => {
                        let payload = json!({"campaign_id": id.to_string(), "reason": "COMPLETED"});
                        events::emit(
                            &txn,
                            workspace_id,
                            events::CAMPAIGN_COMPLETED,
                            subject,
                            payload,
                            now,
                        )
                        .await?;
                    }
                    Verb::Pause | Verb::Resume => {}
                }
                let row = store::get_campaign(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(campaign_not_found)?;
                Ok((txn, campaign_to_proto(&row, now)?))
            })
            .await
    }
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
        let now = self.core.now();
        let new = read_campaign(body.campaign.as_ref(), now)?;
        let workspace_id = principal.workspace_id;
        let new = &new;
        let response = self
            .core
            .change_definitions(&key, workspace_id, |txn| async move {
                if let Some(group_id) = new.group_id
                    && store::get_group(&*txn, workspace_id, group_id)
                        .await?
                        .is_none()
                {
                    return Err(ServiceError::not_found(
                        DOMAIN,
                        "CAMPAIGN_GROUP_NOT_FOUND",
                        "campaign group",
                    ));
                }
                // A promo-code campaign that grants credits counts credits, not discount, against
                // its budget: its rule may be in any currency.
                let budget_currency = if new.promo_credits > 0 {
                    ""
                } else {
                    new.currency.as_str()
                };
                check_rules(&*txn, workspace_id, &new.rule_ids, budget_currency).await?;
                if let Some(code) = &new.code
                    && store::campaign_by_code(&*txn, workspace_id, code)
                        .await?
                        .is_some()
                {
                    return Err(ServiceError::new(
                        kernel::ErrorCode::AlreadyExists,
                        DOMAIN,
                        "CAMPAIGN_CODE_TAKEN",
                        "another campaign of this workspace has this code",
                    ));
                }
                let row = campaign::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    title: new.title.clone(),
                    code: new.code.clone(),
                    description: new.description.clone(),
                    group_id: new.group_id,
                    trigger_type: new.trigger_type,
                    auto_apply: new.trigger_type == TRIGGER_AUTOMATIC,
                    kind: new.kind,
                    status: CampaignStatus::Draft as i32,
                    rule_ids: kernel::db::to_json_column(&new.rule_ids)?,
                    start_time: new.start_time,
                    end_time: new.end_time,
                    currency: new.currency.clone(),
                    budget: new.budget,
                    budget_used: 0,
                    discount_given: 0,
                    usage_limit_total: new.usage_limit_total,
                    usage_limit_per_customer: new.usage_limit_per_customer,
                    uses_held: 0,
                    redemption_count: 0,
                    is_public: new.is_public,
                    utm: new.utm.clone(),
                    promo_credits: new.promo_credits,
                    trial_days: new.trial_days,
                    created_at: now,
                    updated_at: now,
                };
                store::insert(&*txn, campaign::ActiveModel::from(row.clone())).await?;
                Ok((txn, campaign_to_proto(&row, now)?))
            })
            .await?;
        tracing::info!(campaign_id = %response.id, "campaign created");
        Ok(Response::new(response))
    }

    async fn update_campaign(
        &self,
        request: Request<pb::UpdateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let response =
            crate::campaign_update::update(&self.core, &principal, request.get_ref()).await?;
        tracing::info!(campaign_id = %response.id, "campaign updated");
        Ok(Response::new(response))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let row = store::get_campaign(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(campaign_not_found)?;
        Ok(Response::new(campaign_to_proto(&row, self.core.now())?))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let group_id = parse_optional_uuid(DOMAIN, "group_id", &body.group_id)?;
        let wanted = match body.status {
            0 => None,
            status => Some(
                pb::CampaignStatus::try_from(status)
                    .ok()
                    .and_then(|_| CampaignStatus::from_i32(status))
                    .ok_or_else(|| {
                        ServiceError::invalid_field(DOMAIN, "status", "is not a campaign status")
                    })?,
            ),
        };
        let digest = PageToken::query_digest(&[&body.status.to_string(), &body.group_id]);
        let mut after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let now = self.core.now();
        // The effective status depends on the time, so filtering happens after reading; a page
        // is filled from as many reads as it takes (and may be followed by an empty last page).
        let mut campaigns = Vec::new();
        let mut next_page_token = String::new();
        'pages: loop {
            let rows = store::list_campaigns(
                self.core.context.db.connection(),
                principal.workspace_id,
                None,
                group_id,
                after,
                limit,
            )
            .await?;
            let last_read = (rows.len() as u64) < limit;
            for row in &rows {
                after = Some(row.id);
                let campaign = campaign_to_proto(row, now)?;
                if wanted.is_none_or(|status| campaign.status == status as i32) {
                    campaigns.push(campaign);
                    if campaigns.len() as u64 == limit {
                        next_page_token = PageToken::encode(&digest, &row.id.to_string());
                        break 'pages;
                    }
                }
            }
            if last_read {
                break;
            }
        }
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn launch_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(
            self.transition(principal, request.get_ref(), Verb::Launch)
                .await?,
        ))
    }

    async fn pause_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(
            self.transition(principal, request.get_ref(), Verb::Pause)
                .await?,
        ))
    }

    async fn resume_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(
            self.transition(principal, request.get_ref(), Verb::Resume)
                .await?,
        ))
    }

    async fn complete_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        Ok(Response::new(
            self.transition(principal, request.get_ref(), Verb::Complete)
                .await?,
        ))
    }

    async fn create_campaign_group(
        &self,
        request: Request<pb::CreateCampaignGroupRequest>,
    ) -> Result<Response<pb::CampaignGroup>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "CreateCampaignGroup",
            body,
        )?;
        let input = body.group.clone().unwrap_or_default();
        let mut violations = Violations::new(DOMAIN);
        violations.take(
            "group.name",
            check_text(DOMAIN, "group.name", &input.name, 200, false),
        );
        violations.take(
            "group.description",
            check_text(DOMAIN, "group.description", &input.description, 2000, true),
        );
        violations.finish()?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let input = &input;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                if store::group_by_name(&*txn, workspace_id, &input.name)
                    .await?
                    .is_some()
                {
                    return Err(ServiceError::new(
                        kernel::ErrorCode::AlreadyExists,
                        DOMAIN,
                        "CAMPAIGN_GROUP_EXISTS",
                        "a campaign group of this workspace has this name",
                    ));
                }
                let row = group::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    name: input.name.clone(),
                    description: input.description.clone(),
                    created_at: now,
                    updated_at: now,
                };
                store::insert(&*txn, group::ActiveModel::from(row.clone())).await?;
                Ok((txn, group_to_proto(&row)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn list_campaign_groups(
        &self,
        request: Request<pb::ListCampaignGroupsRequest>,
    ) -> Result<Response<pb::ListCampaignGroupsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&["groups"]);
        let after = PageToken::decode(DOMAIN, &digest, &body.page_token)?;
        let mut rows = store::list_groups(
            self.core.context.db.connection(),
            principal.workspace_id,
            after.as_deref(),
            limit + 1,
        )
        .await?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.name.clone());
        Ok(Response::new(pb::ListCampaignGroupsResponse {
            groups: rows.iter().map(group_to_proto).collect(),
            next_page_token,
        }))
    }
    async fn get_campaign_analytics(
        &self,
        request: Request<pb::GetCampaignAnalyticsRequest>,
    ) -> Result<Response<pb::CampaignAnalytics>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let analytics =
            crate::analytics::analytics(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(analytics))
    }

    type ExportCampaignAnalyticsStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::ExportChunk, GrpcStatus>>;

    async fn export_campaign_analytics(
        &self,
        request: Request<pb::ExportCampaignAnalyticsRequest>,
    ) -> Result<Response<Self::ExportCampaignAnalyticsStream>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let stream = crate::analytics::export(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(stream))
    }

    async fn report_impressions(
        &self,
        request: Request<pb::ReportImpressionsRequest>,
    ) -> Result<Response<pb::ReportImpressionsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let response =
            crate::analytics::report_impressions(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(response))
    }
}

fn group_to_proto(row: &group::Model) -> pb::CampaignGroup {
    pb::CampaignGroup {
        id: row.id.to_string(),
        name: row.name.clone(),
        description: row.description.clone(),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    }
}

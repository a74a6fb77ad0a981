//! LinkService: channels, trackable links on a marketing campaign with UTM parameters and a
//! random short code, honest click counting and conversion attribution.
//!
//! Counting: a click counts when its user agent is not a bot's and the visitor (a keyed hash of
//! address and user agent — the address itself is never stored) has no counted click on the
//! link within the workspace's dedup window (default an hour, sliding from the last counted
//! click). The visitor row's conditional update, or its insert for a first visit, decides; two
//! concurrent clicks of one visitor count once. The visitor row keeps the last counted click's
//! time, country and referrer (what a conversion is attributed to); a counted click moves the
//! link's count, the campaign's day in marketing's analytics and the affiliate's month.

use std::sync::Arc;

use kernel::ids::check_text;
use kernel::{ErrorCode, IdempotencyKey, Principal, ServiceError, Violations};
use marketing::api::LinkActivity;
use proto::growth::v1 as pb;
use proto::growth::v1::link_service_server::{LinkService, LinkServiceServer};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::clicks::PendingClick;
use crate::convert::{days, money, not_found, time};
use crate::entity::{channel, link, link_conversion, visitor};
use crate::gamification::check_slug;
use crate::link_input::Utm;
pub use crate::link_input::{PreparedLink, check_url, insert_link, prepare_link};
use crate::settings::GrowthSettings;
use crate::state::Growth;
use crate::{DOMAIN, codes, events};

/// Why a click did not count.
pub const NOT_COUNTED_DUPLICATE: &str = "CLICK_NOT_COUNTED_DUPLICATE";
pub const NOT_COUNTED_BOT: &str = "CLICK_NOT_COUNTED_BOT";

pub struct LinkGrpc {
    core: Arc<Growth>,
}

pub fn grpc(core: Arc<Growth>) -> LinkServiceServer<LinkGrpc> {
    LinkServiceServer::new(LinkGrpc { core })
}

fn channel_to_proto(row: &channel::Model) -> pb::Channel {
    pb::Channel {
        id: row.id.to_string(),
        code: row.code.clone(),
        name: row.name.clone(),
        channel_type: row.channel_type,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

fn link_to_proto(core: &Growth, row: &link::Model) -> Result<pb::Link, ServiceError> {
    let utm: Utm = kernel::db::json_column("growth_link", row.id, "utm", &row.utm)?;
    Ok(pb::Link {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        channel_id: row.channel_id.to_string(),
        affiliate_id: row
            .affiliate_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        name: row.name.clone(),
        destination_url: row.destination_url.clone(),
        utm: Some(utm.to_proto()),
        short_code: row.short_code.clone(),
        short_url: core.short_url(&row.short_code),
        tracking_url: row.tracking_url.clone(),
        click_count: row.click_count,
        conversion_count: row.conversion_count,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    })
}

/// A link by short code: of one workspace (gRPC), or of any (the public `/l/{code}` route).
pub(crate) async fn link_by_code<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Option<Uuid>,
    code: &str,
) -> Result<Option<link::Model>, ServiceError> {
    if !codes::is_short_code(code) {
        return Ok(None);
    }
    let mut query = link::Entity::find().filter(link::Column::ShortCode.eq(code));
    if let Some(workspace_id) = workspace_id {
        query = query.filter(link::Column::WorkspaceId.eq(workspace_id));
    }
    Ok(query.one(connection).await?)
}

fn link_not_found() -> ServiceError {
    not_found("LINK_NOT_FOUND", "link")
}

/// A click as the caller saw it.
pub struct ClickInput<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub referrer: &'a str,
    pub country: &'a str,
}

/// Counts one click on `row` (see the module's doc and `clicks`); returns the reason it did not
/// count.
pub async fn count_click(
    core: &Growth,
    row: &Arc<link::Model>,
    input: &ClickInput<'_>,
) -> Result<Option<&'static str>, ServiceError> {
    if core.is_bot(input.user_agent) {
        metrics::counter!("promo_growth_clicks_total", "outcome" => "bot").increment(1);
        return Ok(Some(NOT_COUNTED_BOT));
    }
    let workspace_id = row.workspace_id;
    let visitor = core.visitor(workspace_id, input.ip, input.user_agent);
    let now = core.now();
    let window = core
        .clicks
        .settings(core.context.db.connection(), workspace_id)
        .await?
        .click_dedup_window_seconds
        .saturating_mul(1_000_000);
    let counted = !core.clicks.seen_recently(row.id, &visitor, now, window)
        && core
            .clicks
            .submit(PendingClick {
                workspace_id,
                link: row.clone(),
                visitor,
                country: input
                    .country
                    .trim()
                    .to_ascii_uppercase()
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .take(2)
                    .collect(),
                referrer: input
                    .referrer
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(2048)
                    .collect(),
                at: now,
            })
            .await?;
    let outcome = if counted { "counted" } else { "duplicate" };
    metrics::counter!("promo_growth_clicks_total", "outcome" => outcome).increment(1);
    Ok((!counted).then_some(NOT_COUNTED_DUPLICATE))
}

/// The link of a short code in any workspace: what the public `/l/{code}` route follows (the
/// caller checks that the link's workspace has the module on, then counts with [`count_click`]).
pub async fn find_public(
    core: &Growth,
    code: &str,
) -> Result<Option<Arc<link::Model>>, ServiceError> {
    if !codes::is_short_code(code) {
        return Ok(None);
    }
    core.clicks.link(core.context.db.connection(), code).await
}

#[tonic::async_trait]
impl LinkService for LinkGrpc {
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::Channel>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateChannel", body)?;
        let input = body.channel.clone().unwrap_or_default();
        let mut violations = Violations::new(DOMAIN);
        check_slug(&mut violations, "channel.code", &input.code);
        violations.take(
            "channel.name",
            check_text(DOMAIN, "channel.name", &input.name, 200, false),
        );
        violations.check(
            matches!(pb::ChannelType::try_from(input.channel_type), Ok(kind) if kind != pb::ChannelType::Unspecified),
            "channel.channel_type",
            "must be CHANNEL_TYPE_SOCIAL, _EMAIL, _AFFILIATE, _SEARCH, _DIRECT, _REFERRAL or _OTHER",
        );
        violations.finish()?;
        let now = self.core.now();
        let row = channel::Model {
            workspace_id: principal.workspace_id,
            id: Uuid::now_v7(),
            code: input.code.clone(),
            name: input.name.clone(),
            channel_type: input.channel_type,
            created_at: now,
            updated_at: now,
        };
        let row = &row;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let taken = channel::Entity::find()
                    .filter(channel::Column::WorkspaceId.eq(row.workspace_id))
                    .filter(channel::Column::Code.eq(&row.code))
                    .one(&*txn)
                    .await?;
                if taken.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::AlreadyExists,
                        DOMAIN,
                        "CHANNEL_CODE_TAKEN",
                        "another channel of this workspace has this code",
                    ));
                }
                kernel::db::insert(&*txn, channel::ActiveModel::from(row.clone())).await?;
                Ok((txn, channel_to_proto(row)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn create_link(
        &self,
        request: Request<pb::CreateLinkRequest>,
    ) -> Result<Response<pb::Link>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateLink", body)?;
        let prepared = prepare_link(body.link.as_ref())?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let (core, prepared) = (&self.core, &prepared);
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let row = insert_link(core, &txn, workspace_id, prepared, now).await?;
                Ok((txn, link_to_proto(core, &row)?))
            })
            .await?;
        tracing::info!(link_id = %response.id, short_code = %response.short_code, "link created");
        Ok(Response::new(response))
    }

    async fn get_link(
        &self,
        request: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let connection = self.core.context.db.connection();
        let row = if body.short_code.is_empty() {
            let id = kernel::ids::parse_uuid(DOMAIN, "id", &body.id)?;
            link::Entity::find_by_id((principal.workspace_id, id))
                .one(connection)
                .await
                .map_err(ServiceError::from)?
        } else {
            link_by_code(connection, Some(principal.workspace_id), &body.short_code).await?
        };
        let row = row.ok_or_else(link_not_found)?;
        Ok(Response::new(link_to_proto(&self.core, &row)?))
    }

    async fn record_click(
        &self,
        request: Request<pb::RecordClickRequest>,
    ) -> Result<Response<pb::RecordClickResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let row = find_public(&self.core, &body.short_code)
            .await?
            .filter(|row| row.workspace_id == principal.workspace_id)
            .ok_or_else(link_not_found)?;
        let reason = count_click(
            &self.core,
            &row,
            &ClickInput {
                ip: &body.ip,
                user_agent: &body.user_agent,
                referrer: &body.referrer,
                country: &body.country,
            },
        )
        .await?;
        Ok(Response::new(pb::RecordClickResponse {
            redirect_url: row.tracking_url.clone(),
            counted: reason.is_none(),
            reason: reason.unwrap_or_default().to_owned(),
        }))
    }

    async fn record_link_conversion(
        &self,
        request: Request<pb::RecordLinkConversionRequest>,
    ) -> Result<Response<pb::RecordLinkConversionResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "RecordLinkConversion",
            body,
        )?;
        let mut violations = Violations::new(DOMAIN);
        violations.take(
            "order_id",
            check_text(DOMAIN, "order_id", &body.order_id, 128, false),
        );
        let amount = violations.take("amount", money("amount", body.amount.as_ref(), true));
        violations.finish()?;
        let Some(amount) = amount else {
            return Err(ServiceError::internal("validated amount missing").into());
        };
        let workspace_id = principal.workspace_id;
        let visitor_id = self
            .core
            .visitor(workspace_id, &body.visitor_ip, &body.user_agent);
        let now = self.core.now();
        let core = &self.core;
        let (visitor_id, amount) = (&visitor_id, &amount);
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let row = link_by_code(&*txn, Some(workspace_id), &body.short_code)
                    .await?
                    .ok_or_else(link_not_found)?;
                let refused = |reason: &str, row: &link::Model| -> Result<_, ServiceError> {
                    Ok(pb::RecordLinkConversionResponse {
                        attributed: false,
                        reason: reason.to_owned(),
                        click_time: None,
                        link: Some(link_to_proto(core, row)?),
                    })
                };
                let done = link_conversion::Entity::find_by_id((
                    workspace_id,
                    row.id,
                    body.order_id.clone(),
                ))
                .one(&*txn)
                .await?;
                if done.is_some() {
                    let response = refused("ORDER_ALREADY_ATTRIBUTED", &row)?;
                    return Ok((txn, response));
                }
                let window =
                    kernel::settings::of_workspace::<GrowthSettings, _>(&*txn, workspace_id)
                        .await?
                        .link_attribution_days;
                let last = visitor::Entity::find_by_id((workspace_id, row.id, visitor_id.clone()))
                    .one(&*txn)
                    .await?
                    .filter(|last| last.last_counted_at > now - days(window));
                let Some(last) = last else {
                    let response = refused("NO_CLICK_IN_WINDOW", &row)?;
                    return Ok((txn, response));
                };
                kernel::db::insert(
                    &*txn,
                    link_conversion::ActiveModel {
                        workspace_id: Set(workspace_id),
                        link_id: Set(row.id),
                        order_id: Set(body.order_id.clone()),
                        click_at: Set(last.last_counted_at),
                        currency: Set(amount.asset.code.to_owned()),
                        amount: Set(amount.amount),
                        created_at: Set(now),
                    },
                )
                .await?;
                link::Entity::update_many()
                    .col_expr(
                        link::Column::ConversionCount,
                        Expr::col(link::Column::ConversionCount).add(1),
                    )
                    .filter(link::Column::WorkspaceId.eq(workspace_id))
                    .filter(link::Column::Id.eq(row.id))
                    .exec(&*txn)
                    .await?;
                core.marketing
                    .add_link_activity(
                        &*txn,
                        workspace_id,
                        row.campaign_id,
                        LinkActivity {
                            conversions: 1,
                            currency: amount.asset.code,
                            revenue: amount.amount,
                            ..LinkActivity::default()
                        },
                        now,
                    )
                    .await?;
                events::emit(
                    &txn,
                    workspace_id,
                    events::LINK_CONVERTED,
                    format!("links/{}", row.id),
                    json!({
                        "link_id": row.id.to_string(),
                        "campaign_id": row.campaign_id.to_string(),
                        "order_id": body.order_id,
                        "currency": amount.asset.code,
                        "amount": amount.amount,
                    }),
                    now,
                )
                .await?;
                let mut after = row.clone();
                after.conversion_count += 1;
                Ok((
                    txn,
                    pb::RecordLinkConversionResponse {
                        attributed: true,
                        reason: String::new(),
                        click_time: time(last.last_counted_at),
                        link: Some(link_to_proto(core, &after)?),
                    },
                ))
            })
            .await?;
        Ok(Response::new(response))
    }
}

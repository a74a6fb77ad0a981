//! promo.marketing.v1.DisplayService: storefront blocks (slides, featured categories and posts)
//! of campaigns, listed from the pricing snapshot.

use std::sync::Arc;

use kernel::clock::{micros_to_timestamp, parse_timestamp};
use kernel::ids::check_text;
use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::marketing::v1 as pb;
use proto::marketing::v1::display_service_server::{DisplayService, DisplayServiceServer};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::DOMAIN;
use crate::campaigns::campaign_not_found;
use crate::state::Marketing;
use crate::store::{self, display};

pub struct DisplayGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> DisplayServiceServer<DisplayGrpc> {
    DisplayServiceServer::new(DisplayGrpc { core })
}

fn display_to_proto(row: &display::Model) -> pb::Display {
    pb::Display {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        display_type: row.display_type,
        title: row.title.clone(),
        image_url: row.image_url.clone(),
        link_url: row.link_url.clone(),
        category_id: row.category_id.clone(),
        post_id: row.post_id.clone(),
        position: row.position,
        start_time: row.start_time.map(micros_to_timestamp),
        end_time: row.end_time.map(micros_to_timestamp),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    }
}

fn check_url(violations: &mut Violations, field: &str, url: &str) {
    violations.take(field, check_text(DOMAIN, field, url, 2048, true));
    violations.check(
        url.is_empty() || url.starts_with("https://") || url.starts_with("http://"),
        field,
        "must be an http(s) URL",
    );
}

#[tonic::async_trait]
impl DisplayService for DisplayGrpc {
    async fn create_display(
        &self,
        request: Request<pb::CreateDisplayRequest>,
    ) -> Result<Response<pb::Display>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateDisplay", body)?;
        let input = body.display.clone().unwrap_or_default();
        let mut violations = Violations::under(DOMAIN, "display.");
        let campaign_id = violations.uuid("campaign_id", &input.campaign_id);
        let kind =
            pb::DisplayType::try_from(input.display_type).unwrap_or(pb::DisplayType::Unspecified);
        violations.check(
            kind != pb::DisplayType::Unspecified,
            "display_type",
            "must be one of the DISPLAY_TYPE_ values",
        );
        violations.take(
            "title",
            check_text(DOMAIN, "title", &input.title, 200, false),
        );
        check_url(&mut violations, "image_url", &input.image_url);
        check_url(&mut violations, "link_url", &input.link_url);
        for (field, value) in [
            ("category_id", &input.category_id),
            ("post_id", &input.post_id),
        ] {
            violations.take(field, check_text(DOMAIN, field, value, 128, true));
        }
        violations.check(
            kind != pb::DisplayType::FeaturedCategory || !input.category_id.is_empty(),
            "category_id",
            "a featured category names its category",
        );
        violations.check(
            kind != pb::DisplayType::FeaturedPost || !input.post_id.is_empty(),
            "post_id",
            "a featured post names its post",
        );
        let start_time = violations
            .take(
                "start_time",
                parse_timestamp(DOMAIN, "start_time", input.start_time.as_ref()),
            )
            .flatten();
        let end_time = violations
            .take(
                "end_time",
                parse_timestamp(DOMAIN, "end_time", input.end_time.as_ref()),
            )
            .flatten();
        if let (Some(start), Some(end)) = (start_time, end_time) {
            violations.check(end > start, "end_time", "must be after start_time");
        }
        violations.finish()?;
        let Some(campaign_id) = campaign_id else {
            return Err(ServiceError::internal("a checked campaign id is missing").into());
        };
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let row = display::Model {
            workspace_id,
            id: Uuid::now_v7(),
            campaign_id,
            display_type: input.display_type,
            title: input.title.clone(),
            image_url: input.image_url.clone(),
            link_url: input.link_url.clone(),
            category_id: input.category_id.clone(),
            post_id: input.post_id.clone(),
            position: input.position,
            start_time,
            end_time,
            created_at: now,
            updated_at: now,
        };
        let row = &row;
        let response =
            self.core
                .change_definitions(&key, workspace_id, |txn| async move {
                    if store::get_campaign(&*txn, workspace_id, campaign_id)
                        .await?
                        .is_none()
                    {
                        return Err(campaign_not_found()
                            .with_field("display.campaign_id", "no such campaign"));
                    }
                    store::insert(&*txn, display::ActiveModel::from(row.clone())).await?;
                    Ok((txn, display_to_proto(row)))
                })
                .await?;
        Ok(Response::new(response))
    }

    async fn list_displays(
        &self,
        request: Request<pb::ListDisplaysRequest>,
    ) -> Result<Response<pb::ListDisplaysResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let wanted = request.get_ref().display_type;
        let snapshot = self.core.snapshots.get(principal.workspace_id).await?;
        let now = self.core.now();
        let displays = snapshot
            .displays
            .iter()
            .filter(|row| wanted == 0 || row.display_type == wanted)
            .filter(|row| row.start_time.is_none_or(|start| start <= now))
            .filter(|row| row.end_time.is_none_or(|end| end > now))
            .filter(|row| {
                snapshot
                    .campaign(row.campaign_id)
                    .is_some_and(|campaign| campaign.is_public && campaign.is_active(now))
            })
            .map(display_to_proto)
            .collect();
        Ok(Response::new(pb::ListDisplaysResponse { displays }))
    }
}

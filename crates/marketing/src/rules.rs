//! promo.marketing.v1.DiscountRuleService: reusable discount calculations.

use std::sync::Arc;

use kernel::ids::parse_uuid;
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::marketing::v1 as pb;
use proto::marketing::v1::discount_rule_service_server::{
    DiscountRuleService, DiscountRuleServiceServer,
};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::DOMAIN;
use crate::convert::{rule_from_proto, rule_to_proto};
use crate::state::Marketing;
use crate::store::{self, rule};

pub struct RuleGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> DiscountRuleServiceServer<RuleGrpc> {
    DiscountRuleServiceServer::new(RuleGrpc { core })
}

pub fn rule_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "DISCOUNT_RULE_NOT_FOUND", "discount rule")
}

#[tonic::async_trait]
impl DiscountRuleService for RuleGrpc {
    async fn create_discount_rule(
        &self,
        request: Request<pb::CreateDiscountRuleRequest>,
    ) -> Result<Response<pb::DiscountRule>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "CreateDiscountRule",
            body,
        )?;
        let input = body.rule.clone().unwrap_or_default();
        let (definition, currency) = rule_from_proto(&input)?;
        let now = self.core.now();
        let row = rule::Model {
            workspace_id: principal.workspace_id,
            id: Uuid::now_v7(),
            name: input.name.clone(),
            kind: input.kind,
            currency,
            definition: kernel::db::to_json_column(&definition)?,
            created_at: now,
            updated_at: now,
        };
        let row = &row;
        let response = self
            .core
            .change_definitions(&key, principal.workspace_id, |txn| async move {
                store::insert(&*txn, rule::ActiveModel::from(row.clone())).await?;
                Ok((txn, rule_to_proto(row)?))
            })
            .await?;
        tracing::info!(rule_id = %response.id, "discount rule created");
        Ok(Response::new(response))
    }

    async fn get_discount_rule(
        &self,
        request: Request<pb::GetDiscountRuleRequest>,
    ) -> Result<Response<pb::DiscountRule>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let row = store::get_rule(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(rule_not_found)?;
        Ok(Response::new(rule_to_proto(&row)?))
    }

    async fn list_discount_rules(
        &self,
        request: Request<pb::ListDiscountRulesRequest>,
    ) -> Result<Response<pb::ListDiscountRulesResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&["rules"]);
        let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let mut rows = store::list_rules(
            self.core.context.db.connection(),
            principal.workspace_id,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        Ok(Response::new(pb::ListDiscountRulesResponse {
            rules: rows.iter().map(rule_to_proto).collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }
}

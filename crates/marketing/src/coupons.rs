//! promo.marketing.v1.CouponService: single coupons, bulk generation as a resumable job,
//! validation with the reason, listing and CSV export.

use std::sync::Arc;

use kernel::clock::parse_timestamp;
use kernel::ids::parse_uuid;
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::marketing::v1 as pb;
use proto::marketing::v1::coupon_service_server::{CouponService, CouponServiceServer};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::DOMAIN;
use crate::campaigns::campaign_not_found;
use crate::codes::Pattern;
use crate::convert::coupon_to_proto;
use crate::model::CouponDef;
use crate::rules::rule_not_found;
use crate::state::Marketing;
use crate::store::{self, CouponFilter, batch, coupon};

/// Most codes one GenerateCoupons makes.
pub const MAX_BATCH: i64 = 1_000_000;
/// The pattern of a coupon created without a code.
const DEFAULT_PATTERN: &str = "********";

pub struct CouponGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> CouponServiceServer<CouponGrpc> {
    CouponServiceServer::new(CouponGrpc { core })
}

pub fn coupon_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "COUPON_NOT_FOUND", "coupon")
}

/// Everything of a coupon but its code, validated (stored as a batch's template).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Terms {
    pub rule_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub usage_limit: i64,
    pub usage_limit_per_customer: i64,
}

impl Terms {
    pub fn row(
        &self,
        workspace_id: Uuid,
        code: String,
        batch_id: Option<Uuid>,
        participation_id: Option<Uuid>,
        now: i64,
    ) -> coupon::Model {
        coupon::Model {
            workspace_id,
            id: Uuid::now_v7(),
            code,
            rule_id: self.rule_id,
            campaign_id: self.campaign_id,
            customer_id: self.customer_id,
            participation_id,
            batch_id,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            usage_limit: self.usage_limit,
            usage_limit_per_customer: self.usage_limit_per_customer,
            uses_held: 0,
            times_redeemed: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Reads a coupon's terms (under `prefix`, "coupon." or "template.").
fn read_terms(
    input: Option<&pb::Coupon>,
    prefix: &str,
    now: i64,
) -> Result<(Terms, String), ServiceError> {
    let mut violations = Violations::under(DOMAIN, prefix);
    let Some(input) = input else {
        let mut violations = Violations::new(DOMAIN);
        violations.add(prefix.trim_end_matches('.'), "is required");
        return Err(violations.into_error());
    };
    let rule_id = violations.uuid("discount_rule_id", &input.discount_rule_id);
    let campaign_id = violations.optional_uuid("campaign_id", &input.campaign_id);
    let customer_id = violations.optional_uuid("customer_id", &input.customer_id);
    let valid_from = violations
        .take(
            "valid_from",
            parse_timestamp(DOMAIN, "valid_from", input.valid_from.as_ref()),
        )
        .flatten();
    let valid_until = violations
        .take(
            "valid_until",
            parse_timestamp(DOMAIN, "valid_until", input.valid_until.as_ref()),
        )
        .flatten();
    if let Some(until) = valid_until {
        violations.check(
            valid_from.is_none_or(|from| until > from),
            "valid_until",
            "must be after valid_from",
        );
        violations.check(until > now, "valid_until", "must be in the future");
    }
    violations.check(
        input.usage_limit >= 0,
        "usage_limit",
        "must not be negative (0 = unlimited)",
    );
    violations.check(
        input.usage_limit_per_customer >= 0,
        "usage_limit_per_customer",
        "must not be negative (0 = unlimited)",
    );
    violations.finish()?;
    let Some(rule_id) = rule_id else {
        return Err(ServiceError::internal("a checked rule id is missing"));
    };
    Ok((
        Terms {
            rule_id,
            campaign_id,
            customer_id,
            valid_from,
            valid_until,
            usage_limit: input.usage_limit,
            usage_limit_per_customer: input.usage_limit_per_customer,
        },
        input.code.clone(),
    ))
}

/// Checks that a coupon's rule and campaign exist in the workspace and agree on the currency.
async fn check_references<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    terms: &Terms,
    prefix: &str,
) -> Result<(), ServiceError> {
    let rule = store::get_rule(connection, workspace_id, terms.rule_id)
        .await?
        .ok_or_else(|| {
            rule_not_found().with_field(&format!("{prefix}discount_rule_id"), "no such rule")
        })?;
    if let Some(campaign_id) = terms.campaign_id {
        let campaign = store::get_campaign(connection, workspace_id, campaign_id)
            .await?
            .ok_or_else(|| {
                campaign_not_found().with_field(&format!("{prefix}campaign_id"), "no such campaign")
            })?;
        if !rule.currency.is_empty()
            && campaign.budget.is_some()
            && rule.currency != campaign.currency
        {
            return Err(ServiceError::new(
                kernel::ErrorCode::InvalidArgument,
                DOMAIN,
                "CURRENCY_MISMATCH",
                "the rule's amounts and the campaign's budget are in different currencies",
            )
            .with_field(
                &format!("{prefix}discount_rule_id"),
                "another currency than the campaign's budget",
            ));
        }
    }
    Ok(())
}

/// The customer a call may act for: a customer token only for itself (empty means itself);
/// others name any customer or none.
pub fn acting_customer(
    principal: &Principal,
    field: &str,
    requested: &str,
) -> Result<Option<Uuid>, ServiceError> {
    principal.acting_customer(DOMAIN, field, requested)
}

/// Issues one coupon inside an open transaction (also used by participation): a free code is
/// drawn when `code` is `None`. Returns the stored row.
pub(crate) async fn issue<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    terms: &Terms,
    code: Option<String>,
    participation_id: Option<Uuid>,
    now: i64,
) -> Result<coupon::Model, ServiceError> {
    let code = match code {
        Some(code) => {
            if store::coupon_by_code(connection, workspace_id, &code)
                .await?
                .is_some()
            {
                return Err(ServiceError::new(
                    kernel::ErrorCode::AlreadyExists,
                    DOMAIN,
                    "COUPON_CODE_TAKEN",
                    "another coupon of this workspace has this code",
                ));
            }
            code
        }
        None => {
            let pattern =
                Pattern::new("", DEFAULT_PATTERN, true).map_err(ServiceError::internal)?;
            let mut drawn = None;
            for _ in 0..8 {
                let candidate = pattern.generate(&mut rand::rng());
                if store::coupon_by_code(connection, workspace_id, &candidate)
                    .await?
                    .is_none()
                {
                    drawn = Some(candidate);
                    break;
                }
            }
            drawn.ok_or_else(|| ServiceError::internal("no free coupon code after 8 draws"))?
        }
    };
    let row = terms.row(workspace_id, code, None, participation_id, now);
    store::insert(connection, coupon::ActiveModel::from(row.clone())).await?;
    Ok(row)
}

#[tonic::async_trait]
impl CouponService for CouponGrpc {
    async fn create_coupon(
        &self,
        request: Request<pb::CreateCouponRequest>,
    ) -> Result<Response<pb::Coupon>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateCoupon", body)?;
        let now = self.core.now();
        let (terms, code) = read_terms(body.coupon.as_ref(), "coupon.", now)?;
        let code = if code.is_empty() {
            None
        } else {
            Some(crate::codes::normalize(&code).ok_or_else(|| {
                ServiceError::invalid_field(
                    DOMAIN,
                    "coupon.code",
                    "must be 1 to 64 letters, digits, '-' or '_'",
                )
            })?)
        };
        let workspace_id = principal.workspace_id;
        let (terms, code) = (&terms, &code);
        let issued = std::sync::Mutex::new(None);
        let issued_ref = &issued;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                check_references(&*txn, workspace_id, terms, "coupon.").await?;
                let row = issue(&*txn, workspace_id, terms, code.clone(), None, now).await?;
                store::bump_version(&*txn, workspace_id).await?;
                if let Ok(mut issued) = issued_ref.lock() {
                    *issued = Some(CouponDef::from_row(&row));
                }
                Ok((txn, coupon_to_proto(&row)))
            })
            .await?;
        let coupon = issued.lock().ok().and_then(|mut issued| issued.take());
        self.core
            .record_new_coupons(workspace_id, coupon.into_iter().collect())
            .await;
        tracing::info!(coupon_id = %response.id, "coupon created");
        Ok(Response::new(response))
    }

    async fn generate_coupons(
        &self,
        request: Request<pb::GenerateCouponsRequest>,
    ) -> Result<Response<pb::CouponBatch>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "GenerateCoupons",
            body,
        )?;
        let now = self.core.now();
        let (terms, code) = read_terms(body.template.as_ref(), "template.", now)?;
        let mut violations = Violations::new(DOMAIN);
        violations.check(
            code.is_empty(),
            "template.code",
            "a generated coupon gets its code from the pattern",
        );
        violations.check(
            (1..=MAX_BATCH).contains(&body.count),
            "count",
            format!("must be between 1 and {MAX_BATCH}"),
        );
        let pattern_text = if body.pattern.is_empty() {
            DEFAULT_PATTERN.to_owned()
        } else {
            body.pattern.trim().to_ascii_uppercase()
        };
        let prefix = body.prefix.trim().to_ascii_uppercase();
        match Pattern::new(&prefix, &pattern_text, !body.allow_ambiguous) {
            Ok(pattern) => {
                if let Err(why) = pattern.check_capacity(u64::try_from(body.count).unwrap_or(0)) {
                    violations.add("pattern", why);
                }
            }
            Err(why) => violations.add("pattern", why),
        }
        violations.finish()?;
        let workspace_id = principal.workspace_id;
        let template = kernel::db::to_json_column(&terms)?;
        let (terms, template, pattern_text, prefix) = (&terms, &template, &pattern_text, &prefix);
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                check_references(&*txn, workspace_id, terms, "template.").await?;
                let row = batch::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    status: crate::batches::BATCH_RUNNING,
                    requested: body.count,
                    generated: 0,
                    pattern: pattern_text.clone(),
                    prefix: prefix.clone(),
                    allow_ambiguous: body.allow_ambiguous,
                    template: template.clone(),
                    error: String::new(),
                    created_at: now,
                    updated_at: now,
                };
                store::insert(&*txn, batch::ActiveModel::from(row.clone())).await?;
                Ok((txn, crate::batches::batch_to_proto(&row)))
            })
            .await?;
        // A worker per call: a retried request starts one more, and the batch's progress check
        // lets only one of them add codes (the others stop at their first chunk).
        if response.status == crate::batches::BATCH_RUNNING
            && let Ok(id) = Uuid::parse_str(&response.id)
        {
            crate::batches::spawn_batch(self.core.clone(), workspace_id, id);
        }
        tracing::info!(batch_id = %response.id, count = body.count, "coupon batch started");
        Ok(Response::new(response))
    }

    async fn get_coupon_batch(
        &self,
        request: Request<pb::GetCouponBatchRequest>,
    ) -> Result<Response<pb::CouponBatch>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let row = store::get_batch(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(|| ServiceError::not_found(DOMAIN, "COUPON_BATCH_NOT_FOUND", "coupon batch"))?;
        Ok(Response::new(crate::batches::batch_to_proto(&row)))
    }

    async fn get_coupon(
        &self,
        request: Request<pb::GetCouponRequest>,
    ) -> Result<Response<pb::Coupon>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let connection = self.core.context.db.connection();
        let workspace_id = principal.workspace_id;
        let row = match (body.id.is_empty(), body.code.is_empty()) {
            (false, true) => {
                let id = parse_uuid(DOMAIN, "id", &body.id)?;
                store::get_coupon(connection, workspace_id, id).await?
            }
            (true, false) => match crate::codes::normalize(&body.code) {
                Some(code) => store::coupon_by_code(connection, workspace_id, &code).await?,
                None => None,
            },
            _ => {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "id",
                    "exactly one of id and code is required",
                )
                .into());
            }
        };
        let visible = |row: &coupon::Model| match acting_customer(principal, "customer_id", "") {
            Ok(Some(customer)) => row.customer_id == Some(customer),
            Ok(None) => true,
            Err(_) => false,
        };
        let row = row.filter(visible).ok_or_else(coupon_not_found)?;
        Ok(Response::new(coupon_to_proto(&row)))
    }

    async fn list_coupons(
        &self,
        request: Request<pb::ListCouponsRequest>,
    ) -> Result<Response<pb::ListCouponsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let filter = CouponFilter {
            campaign_id: kernel::ids::parse_optional_uuid(
                DOMAIN,
                "campaign_id",
                &body.campaign_id,
            )?,
            customer_id: acting_customer(principal, "customer_id", &body.customer_id)?,
            batch_id: kernel::ids::parse_optional_uuid(DOMAIN, "batch_id", &body.batch_id)?,
        };
        let digest =
            PageToken::query_digest(&[&body.campaign_id, &body.customer_id, &body.batch_id]);
        let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let mut rows = store::list_coupons(
            self.core.context.db.connection(),
            principal.workspace_id,
            filter,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        Ok(Response::new(pb::ListCouponsResponse {
            coupons: rows.iter().map(coupon_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn validate_coupon(
        &self,
        request: Request<pb::ValidateCouponRequest>,
    ) -> Result<Response<pb::ValidateCouponResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let customer = acting_customer(principal, "customer_id", &body.customer_id)?;
        let response = crate::loaded::validate(&self.core, principal, body, customer).await?;
        Ok(Response::new(response))
    }

    type ExportCouponsStream = ReceiverStream<Result<pb::ExportChunk, GrpcStatus>>;

    async fn export_coupons(
        &self,
        request: Request<pb::ExportCouponsRequest>,
    ) -> Result<Response<Self::ExportCouponsStream>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let filter = CouponFilter {
            campaign_id: kernel::ids::parse_optional_uuid(
                DOMAIN,
                "campaign_id",
                &body.campaign_id,
            )?,
            customer_id: None,
            batch_id: kernel::ids::parse_optional_uuid(DOMAIN, "batch_id", &body.batch_id)?,
        };
        if filter.campaign_id.is_some() == filter.batch_id.is_some() {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "campaign_id",
                "exactly one of campaign_id and batch_id is required",
            )
            .into());
        }
        if !matches!(
            pb::ExportFormat::try_from(body.format),
            Ok(pb::ExportFormat::Unspecified | pb::ExportFormat::Csv)
        ) {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "format",
                "coupons export as CSV only",
            )
            .into());
        }
        let connection = self.core.context.db.connection().clone();
        let workspace_id = principal.workspace_id;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let header = "code,status,times_redeemed,times_reserved,usage_limit,usage_limit_per_customer,customer_id,valid_from,valid_until\n";
            if sender
                .send(Ok(pb::ExportChunk {
                    chunk: header.as_bytes().to_vec(),
                }))
                .await
                .is_err()
            {
                return;
            }
            let mut after = None;
            loop {
                let rows = match store::list_coupons(&connection, workspace_id, filter, after, 5000)
                    .await
                {
                    Ok(rows) => rows,
                    Err(error) => {
                        let _ = sender.send(Err(error.into_status())).await;
                        return;
                    }
                };
                let Some(last) = rows.last() else { return };
                after = Some(last.id);
                let mut chunk = String::new();
                for row in &rows {
                    chunk.push_str(&csv_line(row));
                }
                if sender
                    .send(Ok(pb::ExportChunk {
                        chunk: chunk.into_bytes(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

fn csv_line(row: &coupon::Model) -> String {
    let status = if row.usage_limit > 0 && row.times_redeemed >= row.usage_limit {
        "REDEEMED"
    } else {
        "AVAILABLE"
    };
    let time = |micros: Option<i64>| {
        micros
            .map(|micros| kernel::clock::from_micros(micros).to_rfc3339())
            .unwrap_or_default()
    };
    // Codes, ids, numbers and RFC 3339 times hold no comma, quote or line break.
    format!(
        "{},{status},{},{},{},{},{},{},{}\n",
        row.code,
        row.times_redeemed,
        row.uses_held - row.times_redeemed,
        row.usage_limit,
        row.usage_limit_per_customer,
        row.customer_id.map(|id| id.to_string()).unwrap_or_default(),
        time(row.valid_from),
        time(row.valid_until),
    )
}

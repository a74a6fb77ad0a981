//! GamificationService: badges awarded once at their threshold, activity any service may add
//! (idempotently), and leaderboards per metric and period served from the period totals of
//! `metrics`, ranked by standard competition ranking (1, 2, 2, 4).

use std::sync::Arc;

use chrono::NaiveDate;
use kernel::ids::check_text;
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::growth::v1 as pb;
use proto::growth::v1::gamification_service_server::{
    GamificationService, GamificationServiceServer,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::convert::time;
use crate::entity::{award, badge, metric};
use crate::metrics::{Period, local_date};
use crate::state::Growth;
use crate::{DOMAIN, metrics};

/// The gRPC service.
pub struct GamificationGrpc {
    core: Arc<Growth>,
}

pub fn grpc(core: Arc<Growth>) -> GamificationServiceServer<GamificationGrpc> {
    GamificationServiceServer::new(GamificationGrpc { core })
}

/// A metric name: 1 to 64 lower-case letters, digits, '_' and '.'.
pub fn check_metric(field: &str, name: &str) -> Result<(), ServiceError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid_field(
            DOMAIN,
            field,
            "must be 1 to 64 lower-case letters, digits, '_' or '.'",
        ))
    }
}

/// A code of a workspace's catalogue (badges, channels): 1 to 64 lower-case letters, digits,
/// '-' and '_'.
pub fn check_slug(violations: &mut Violations, field: &str, code: &str) {
    violations.check(
        (1..=64).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        field,
        "must be 1 to 64 lower-case letters, digits, '-' or '_'",
    );
}

fn badge_to_proto(row: &badge::Model) -> pb::Badge {
    pb::Badge {
        id: row.id.to_string(),
        code: row.code.clone(),
        name: row.name.clone(),
        category: row.category.clone(),
        tier: row.tier,
        metric: row.metric.clone(),
        threshold: row.threshold,
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

fn award_to_proto(badge: &badge::Model, awarded_at: i64) -> pb::BadgeAward {
    pb::BadgeAward {
        badge_code: badge.code.clone(),
        badge_name: badge.name.clone(),
        tier: badge.tier,
        award_time: time(awarded_at),
    }
}

fn period_of(value: i32) -> Result<Period, ServiceError> {
    match pb::LeaderboardPeriod::try_from(value) {
        Ok(pb::LeaderboardPeriod::Daily) => Ok(Period::Daily),
        Ok(pb::LeaderboardPeriod::Weekly) => Ok(Period::Weekly),
        Ok(pb::LeaderboardPeriod::Monthly) => Ok(Period::Monthly),
        Ok(pb::LeaderboardPeriod::AllTime) => Ok(Period::AllTime),
        _ => Err(ServiceError::invalid_field(
            DOMAIN,
            "period",
            "must be LEADERBOARD_PERIOD_DAILY, _WEEKLY, _MONTHLY or _ALL_TIME",
        )),
    }
}

/// Where the next leaderboard page starts: the last entry's value, subject, rank and position.
struct Cursor {
    value: i64,
    subject: Uuid,
    rank: i64,
    position: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.value, self.subject, self.rank, self.position
        )
    }

    fn decode(text: &str) -> Option<Cursor> {
        let mut parts = text.split('|');
        let cursor = Cursor {
            value: parts.next()?.parse().ok()?,
            subject: parts.next()?.parse().ok()?,
            rank: parts.next()?.parse().ok()?,
            position: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// One page of a period's totals, highest first (ties by subject id, descending), ranked.
async fn leaderboard_page<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    name: &str,
    period_key: &str,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<(pb::LeaderboardEntry, Cursor)>, ServiceError> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let mut query = metric::Entity::find()
        .filter(metric::Column::WorkspaceId.eq(workspace_id))
        .filter(metric::Column::Metric.eq(name))
        .filter(metric::Column::Period.eq(period_key));
    if let Some(after) = after {
        query = query.filter(
            Expr::tuple([
                Expr::col(metric::Column::Value),
                Expr::col(metric::Column::SubjectId),
            ])
            .lt(Expr::tuple([
                Expr::value(after.value),
                Expr::value(after.subject),
            ])),
        );
    }
    let rows = query
        .order_by_desc(metric::Column::Value)
        .order_by_desc(metric::Column::SubjectId)
        .limit(limit)
        .all(connection)
        .await?;
    let (mut last_value, mut rank, mut position) = match after {
        Some(after) => (Some(after.value), after.rank, after.position),
        None => (None, 0, 0),
    };
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        position += 1;
        if last_value != Some(row.value) {
            rank = position;
        }
        last_value = Some(row.value);
        entries.push((
            pb::LeaderboardEntry {
                rank,
                subject_id: row.subject_id.to_string(),
                value: row.value,
            },
            Cursor {
                value: row.value,
                subject: row.subject_id,
                rank,
                position,
            },
        ));
    }
    Ok(entries)
}

#[tonic::async_trait]
impl GamificationService for GamificationGrpc {
    async fn create_badge(
        &self,
        request: Request<pb::CreateBadgeRequest>,
    ) -> Result<Response<pb::Badge>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateBadge", body)?;
        let input = body.badge.clone().unwrap_or_default();
        let mut violations = Violations::new(DOMAIN);
        check_slug(&mut violations, "badge.code", &input.code);
        violations.take(
            "badge.name",
            check_text(DOMAIN, "badge.name", &input.name, 200, false),
        );
        violations.take(
            "badge.category",
            check_text(DOMAIN, "badge.category", &input.category, 64, true),
        );
        violations.take("badge.metric", check_metric("badge.metric", &input.metric));
        violations.check(
            matches!(
                pb::BadgeTier::try_from(input.tier),
                Ok(pb::BadgeTier::Bronze
                    | pb::BadgeTier::Silver
                    | pb::BadgeTier::Gold
                    | pb::BadgeTier::Platinum)
            ),
            "badge.tier",
            "must be BADGE_TIER_BRONZE, _SILVER, _GOLD or _PLATINUM",
        );
        violations.check(
            (1..=kernel::money::MAX_AMOUNT).contains(&input.threshold),
            "badge.threshold",
            "must be at least 1",
        );
        violations.finish()?;
        let now = self.core.now();
        let row = badge::Model {
            workspace_id: principal.workspace_id,
            id: Uuid::now_v7(),
            code: input.code.clone(),
            name: input.name.clone(),
            category: input.category.clone(),
            tier: input.tier,
            metric: input.metric.clone(),
            threshold: input.threshold,
            created_at: now,
            updated_at: now,
        };
        let row = &row;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let taken = badge::Entity::find()
                    .filter(badge::Column::WorkspaceId.eq(row.workspace_id))
                    .filter(badge::Column::Code.eq(&row.code))
                    .one(&*txn)
                    .await?;
                if taken.is_some() {
                    return Err(ServiceError::new(
                        kernel::ErrorCode::AlreadyExists,
                        DOMAIN,
                        "BADGE_CODE_TAKEN",
                        "another badge of this workspace has this code",
                    ));
                }
                kernel::db::insert(&*txn, badge::ActiveModel::from(row.clone())).await?;
                Ok((txn, badge_to_proto(row)))
            })
            .await?;
        tracing::info!(badge_id = %response.id, "badge created");
        Ok(Response::new(response))
    }

    async fn record_activity(
        &self,
        request: Request<pb::RecordActivityRequest>,
    ) -> Result<Response<pb::RecordActivityResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key =
            IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "RecordActivity", body)?;
        let mut violations = Violations::new(DOMAIN);
        let subject_id = violations.uuid("subject_id", &body.subject_id);
        violations.take("metric", check_metric("metric", &body.metric));
        violations.check(
            (1..=kernel::money::MAX_AMOUNT).contains(&body.delta),
            "delta",
            "must be a positive whole number",
        );
        violations.finish()?;
        let subject_id = subject_id.unwrap_or_default();
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let (value, awarded) = metrics::add(
                    &txn,
                    workspace_id,
                    subject_id,
                    &body.metric,
                    body.delta,
                    now,
                )
                .await?;
                let response = pb::RecordActivityResponse {
                    value,
                    awarded: awarded
                        .iter()
                        .map(|award| award_to_proto(&award.badge, award.awarded_at))
                        .collect(),
                };
                Ok((txn, response))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn list_badges(
        &self,
        request: Request<pb::ListBadgesRequest>,
    ) -> Result<Response<pb::ListBadgesResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let subject_id = principal
            .acting_customer(DOMAIN, "subject_id", &request.get_ref().subject_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "subject_id", "is required"))?;
        let connection = self.core.context.db.connection();
        let awards = award::Entity::find()
            .filter(award::Column::WorkspaceId.eq(principal.workspace_id))
            .filter(award::Column::SubjectId.eq(subject_id))
            .order_by_asc(award::Column::AwardedAt)
            .order_by_asc(award::Column::BadgeId)
            .all(connection)
            .await
            .map_err(ServiceError::from)?;
        let badges = badge::Entity::find()
            .filter(badge::Column::WorkspaceId.eq(principal.workspace_id))
            .filter(badge::Column::Id.is_in(awards.iter().map(|award| award.badge_id)))
            .all(connection)
            .await
            .map_err(ServiceError::from)?;
        let awards = awards
            .iter()
            .filter_map(|award| {
                badges
                    .iter()
                    .find(|badge| badge.id == award.badge_id)
                    .map(|badge| award_to_proto(badge, award.awarded_at))
            })
            .collect();
        Ok(Response::new(pb::ListBadgesResponse { awards }))
    }

    async fn get_leaderboard(
        &self,
        request: Request<pb::GetLeaderboardRequest>,
    ) -> Result<Response<pb::GetLeaderboardResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        check_metric("metric", &body.metric)?;
        let period = period_of(body.period)?;
        let limit = page_size(DOMAIN, body.page_size)?;
        let connection = self.core.context.db.connection();
        let day = if body.date.is_empty() {
            local_date(connection, principal.workspace_id, self.core.now()).await?
        } else {
            NaiveDate::parse_from_str(&body.date, "%Y-%m-%d").map_err(|_| {
                ServiceError::invalid_field(DOMAIN, "date", "must be a day that exists, YYYY-MM-DD")
            })?
        };
        let period_key = period.key(day);
        let digest = PageToken::query_digest(&[&body.metric, &period_key]);
        let after = PageToken::decode(DOMAIN, &digest, &body.page_token)?
            .map(|text| {
                Cursor::decode(&text).ok_or_else(|| {
                    ServiceError::invalid_field(
                        DOMAIN,
                        "page_token",
                        "is not a token this query issued",
                    )
                })
            })
            .transpose()?;
        let mut page = leaderboard_page(
            connection,
            principal.workspace_id,
            &body.metric,
            &period_key,
            after.as_ref(),
            limit + 1,
        )
        .await?;
        let next_page_token =
            kernel::pagination::finish_page(&mut page, limit, &digest, |row| row.1.encode());
        Ok(Response::new(pb::GetLeaderboardResponse {
            period_key: period_key
                .split_once(':')
                .map_or(period_key.as_str(), |(_, key)| key)
                .to_owned(),
            entries: page.into_iter().map(|(entry, _)| entry).collect(),
            next_page_token,
        }))
    }
}

/// Sets up a metric row directly (the leaderboard benchmark seeds a million subjects this way).
pub fn seed_row(
    workspace_id: Uuid,
    name: &str,
    period: &str,
    subject: Uuid,
    value: i64,
) -> metric::ActiveModel {
    metric::ActiveModel {
        workspace_id: Set(workspace_id),
        metric: Set(name.to_owned()),
        period: Set(period.to_owned()),
        subject_id: Set(subject),
        value: Set(value),
    }
}

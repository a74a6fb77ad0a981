//! Metric totals per subject and period, and the badges they award. Every activity adds to four
//! rows (the day, the ISO week and the month it falls in, in the workspace's time zone, and all
//! time), so leaderboards read one period's rows in order instead of scanning activity. A badge
//! is awarded when the all-time value crosses its threshold; the award's key (badge, subject)
//! makes that exactly once, whatever runs concurrently.

use chrono::{Datelike, NaiveDate};
use kernel::{ServiceError, WriteTxn};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::entity::{award, badge, metric};
use crate::events;

/// Built-in metrics other growth features feed.
pub const REFERRAL_CONVERSIONS: &str = "referral_conversions";
pub const AFFILIATE_REVENUE: &str = "affiliate_revenue";

/// A leaderboard period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    AllTime,
}

impl Period {
    pub const ALL: [Period; 4] = [
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::AllTime,
    ];

    /// The key of the period containing `day`: `d:2026-11-23`, `w:2026-W48`, `m:2026-11`, `all`.
    pub fn key(self, day: NaiveDate) -> String {
        match self {
            Period::Daily => format!("d:{}", day.format("%Y-%m-%d")),
            Period::Weekly => {
                let week = day.iso_week();
                format!("w:{}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => format!("m:{}", day.format("%Y-%m")),
            Period::AllTime => "all".to_owned(),
        }
    }
}

pub use kernel::settings::local_date;

/// A badge awarded by an activity.
#[derive(Clone, Debug)]
pub struct Awarded {
    pub badge: badge::Model,
    pub awarded_at: i64,
}

/// Adds `delta` (> 0) to a subject's metric in every period of `now`, then awards the badges
/// whose threshold the all-time value just crossed. Returns the new all-time value and the
/// awards.
pub async fn add(
    txn: &WriteTxn,
    workspace_id: Uuid,
    subject_id: Uuid,
    name: &str,
    delta: i64,
    now: i64,
) -> Result<(i64, Vec<Awarded>), ServiceError> {
    let day = local_date(&**txn, workspace_id, now).await?;
    for period in Period::ALL {
        let row = metric::ActiveModel {
            workspace_id: Set(workspace_id),
            metric: Set(name.to_owned()),
            period: Set(period.key(day)),
            subject_id: Set(subject_id),
            value: Set(delta),
        };
        metric::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    metric::Column::WorkspaceId,
                    metric::Column::Metric,
                    metric::Column::Period,
                    metric::Column::SubjectId,
                ])
                .value(
                    metric::Column::Value,
                    Expr::col((metric::Entity, metric::Column::Value)).add(delta),
                )
                .to_owned(),
            )
            .exec_without_returning(&**txn)
            .await?;
    }
    let value = metric::Entity::find_by_id((
        workspace_id,
        name.to_owned(),
        Period::AllTime.key(day),
        subject_id,
    ))
    .one(&**txn)
    .await?
    .map_or(delta, |row| row.value);
    let before = value - delta;
    let crossed = badge::Entity::find()
        .filter(badge::Column::WorkspaceId.eq(workspace_id))
        .filter(badge::Column::Metric.eq(name))
        .filter(badge::Column::Threshold.gt(before))
        .filter(badge::Column::Threshold.lte(value))
        .all(&**txn)
        .await?;
    let mut awarded = Vec::new();
    for badge in crossed {
        let inserted = award::Entity::insert(award::ActiveModel {
            workspace_id: Set(workspace_id),
            badge_id: Set(badge.id),
            subject_id: Set(subject_id),
            awarded_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                award::Column::WorkspaceId,
                award::Column::BadgeId,
                award::Column::SubjectId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&**txn)
        .await?;
        if inserted == 0 {
            continue;
        }
        events::emit(
            txn,
            workspace_id,
            events::BADGE_AWARDED,
            format!("badges/{}", badge.id),
            json!({
                "badge_id": badge.id.to_string(),
                "badge_code": badge.code,
                "subject_id": subject_id.to_string(),
            }),
            now,
        )
        .await?;
        awarded.push(Awarded {
            badge,
            awarded_at: now,
        });
    }
    Ok((value, awarded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_keys_follow_iso_weeks_and_calendar_months() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(Period::Daily.key(day(2026, 11, 23)), "d:2026-11-23");
        assert_eq!(Period::Weekly.key(day(2026, 11, 23)), "w:2026-W48");
        // 1 January 2027 is a Friday: it belongs to the last ISO week of 2026.
        assert_eq!(Period::Weekly.key(day(2027, 1, 1)), "w:2026-W53");
        // 29 December 2025 is a Monday: ISO week 1 of 2026.
        assert_eq!(Period::Weekly.key(day(2025, 12, 29)), "w:2026-W01");
        assert_eq!(Period::Monthly.key(day(2027, 1, 1)), "m:2027-01");
        assert_eq!(Period::AllTime.key(day(2027, 1, 1)), "all");
    }
}

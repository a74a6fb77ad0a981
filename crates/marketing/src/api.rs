//! What other domains may ask of marketing inside their own transactions (growth issues reward
//! coupons and feeds campaign analytics with link clicks and conversions). Every function takes
//! the caller's open connection, so its writes commit or roll back with the caller's.

use kernel::{ServiceError, WriteTxn};
use proto::marketing::v1 as pb;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::coupons::Terms;
use crate::model::CouponDef;
use crate::redemptions::local_day;
use crate::state::Marketing;
use crate::store::{self, DayCounts, rule};

/// A coupon issued inside another domain's transaction; hand it to
/// [`Marketing::coupons_committed`] once that transaction commits.
#[derive(Clone, Debug)]
pub struct IssuedCoupon {
    pub id: Uuid,
    pub code: String,
    def: CouponDef,
}

/// Link activity of one campaign and day, for its analytics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkActivity<'a> {
    pub clicks: i64,
    pub conversions: i64,
    /// The conversions' order currency ("" with none) and total.
    pub currency: &'a str,
    pub revenue: i64,
}

impl Marketing {
    /// Whether the workspace has this discount rule.
    pub async fn rule_exists<C: ConnectionTrait>(
        &self,
        connection: &C,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<bool, ServiceError> {
        Ok(store::get_rule(connection, workspace_id, id)
            .await?
            .is_some())
    }

    /// Whether the workspace has this campaign.
    pub async fn campaign_exists<C: ConnectionTrait>(
        &self,
        connection: &C,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<bool, ServiceError> {
        Ok(store::get_campaign(connection, workspace_id, id)
            .await?
            .is_some())
    }

    /// Creates a discount rule from its wire form (validated as CreateDiscountRule does) in the
    /// open transaction; returns its id.
    pub async fn create_rule_in(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        input: &pb::DiscountRule,
        now: i64,
    ) -> Result<Uuid, ServiceError> {
        let (definition, currency) = crate::convert::rule_from_proto(input)?;
        let id = Uuid::now_v7();
        let row = rule::Model {
            workspace_id,
            id,
            name: input.name.clone(),
            kind: input.kind,
            currency,
            definition: kernel::db::to_json_column(&definition)?,
            created_at: now,
            updated_at: now,
        };
        store::insert(&**txn, rule::ActiveModel::from(row)).await?;
        store::bump_version(&**txn, workspace_id).await?;
        Ok(id)
    }

    /// Issues a single-use coupon of `rule_id` bound to `customer_id` (a free code is drawn),
    /// in the open transaction.
    pub async fn issue_customer_coupon(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        rule_id: Uuid,
        customer_id: Uuid,
        now: i64,
    ) -> Result<IssuedCoupon, ServiceError> {
        let terms = Terms {
            rule_id,
            campaign_id: None,
            customer_id: Some(customer_id),
            valid_from: None,
            valid_until: None,
            usage_limit: 1,
            usage_limit_per_customer: 1,
        };
        let row = crate::coupons::issue(&**txn, workspace_id, &terms, None, None, now).await?;
        store::bump_version(&**txn, workspace_id).await?;
        Ok(IssuedCoupon {
            id: row.id,
            code: row.code.clone(),
            def: CouponDef::from_row(&row),
        })
    }

    /// Makes coupons another domain issued visible to this replica's pricing at once (other
    /// replicas follow the version their transaction moved).
    pub async fn coupons_committed(&self, workspace_id: Uuid, coupons: Vec<IssuedCoupon>) {
        self.record_new_coupons(workspace_id, coupons.into_iter().map(|c| c.def).collect())
            .await;
    }

    /// Adds link clicks and conversions to a campaign's analytics for the day `now` falls on in
    /// the workspace's time zone, in the open transaction.
    pub async fn add_link_activity<C: ConnectionTrait>(
        &self,
        connection: &C,
        workspace_id: Uuid,
        campaign_id: Uuid,
        activity: LinkActivity<'_>,
        now: i64,
    ) -> Result<(), ServiceError> {
        let day = local_day(connection, workspace_id, now).await?;
        let counts = DayCounts {
            clicks: activity.clicks,
            conversions: activity.conversions,
            revenue: activity.revenue,
            ..DayCounts::default()
        };
        store::add_to_day(
            connection,
            workspace_id,
            campaign_id,
            &day,
            activity.currency,
            counts,
        )
        .await
    }
}

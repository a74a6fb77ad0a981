//! Marketing: campaign groups, campaigns, discount rules, coupons and their generation batches,
//! per-customer usage, redemptions, participations, displays, daily campaign analytics, and a
//! per-workspace version that tells replicas when to rebuild pricing snapshots. Every table is
//! keyed by (workspace_id, id).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{index, keyed, stamped};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "mkt_version",
    "mkt_campaign_daily",
    "mkt_display",
    "mkt_participation",
    "mkt_redemption",
    "mkt_customer_usage",
    "mkt_coupon_batch",
    "mkt_coupon",
    "mkt_discount_rule",
    "mkt_campaign",
    "mkt_campaign_group",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(stamped(
                keyed("mkt_campaign_group")
                    .col(string_len("name", 200))
                    .col(text("description"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                index(
                    "mkt_campaign_group",
                    "mkt_campaign_group_name",
                    &["workspace_id", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_campaign")
                    .col(string_len("title", 200))
                    // Upper-cased; NULL when the campaign has none (unique when present).
                    .col(string_len_null("code", 64))
                    .col(text("description"))
                    .col(uuid_null("group_id"))
                    .col(integer("trigger_type"))
                    .col(boolean("auto_apply"))
                    .col(integer("kind"))
                    .col(integer("status"))
                    // JSON array of rule ids.
                    .col(text("rule_ids"))
                    .col(big_integer_null("start_time"))
                    .col(big_integer_null("end_time"))
                    // The budget's currency ("" without a budget) and amount (NULL = unlimited).
                    .col(string_len("currency", 16))
                    .col(big_integer_null("budget"))
                    // Budget held by reservations and confirmed: never above budget.
                    .col(big_integer("budget_used"))
                    // Confirmed discount.
                    .col(big_integer("discount_given"))
                    .col(big_integer("usage_limit_total"))
                    .col(big_integer("usage_limit_per_customer"))
                    // Redemptions reserved and confirmed: never above usage_limit_total when set.
                    .col(big_integer("uses_held"))
                    .col(big_integer("redemption_count"))
                    .col(boolean("is_public"))
                    // JSON object of UTM fields.
                    .col(text("utm"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                index(
                    "mkt_campaign",
                    "mkt_campaign_code",
                    &["workspace_id", "code"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_discount_rule")
                    .col(string_len("name", 200))
                    .col(integer("kind"))
                    .col(string_len("currency", 16))
                    // JSON of the calculation (marketing::pricing::Rule).
                    .col(text("definition"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_coupon")
                    .col(string_len("code", 64))
                    .col(uuid("rule_id"))
                    .col(uuid_null("campaign_id"))
                    .col(uuid_null("customer_id"))
                    .col(uuid_null("participation_id"))
                    .col(uuid_null("batch_id"))
                    .col(big_integer_null("valid_from"))
                    .col(big_integer_null("valid_until"))
                    .col(big_integer("usage_limit"))
                    .col(big_integer("usage_limit_per_customer"))
                    // Uses reserved and confirmed: never above usage_limit when set.
                    .col(big_integer("uses_held"))
                    .col(big_integer("times_redeemed"))
                    .to_owned(),
            ))
            .await?;
        for (name, columns, unique) in [
            ("mkt_coupon_code", &["workspace_id", "code"][..], true),
            (
                "mkt_coupon_campaign",
                &["workspace_id", "campaign_id", "id"][..],
                false,
            ),
            (
                "mkt_coupon_customer",
                &["workspace_id", "customer_id", "id"][..],
                false,
            ),
            (
                "mkt_coupon_batch_id",
                &["workspace_id", "batch_id", "id"][..],
                false,
            ),
        ] {
            let mut statement = index("mkt_coupon", name, columns);
            if unique {
                statement.unique();
            }
            manager.create_index(statement).await?;
        }
        manager
            .create_table(stamped(
                keyed("mkt_coupon_batch")
                    .col(integer("status"))
                    .col(big_integer("requested"))
                    .col(big_integer("generated"))
                    .col(string_len("pattern", 64))
                    .col(string_len("prefix", 64))
                    .col(boolean("allow_ambiguous"))
                    // JSON of the coupon template.
                    .col(text("template"))
                    .col(text("error"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mkt_customer_usage")
                    .col(uuid("workspace_id"))
                    // A coupon's or a campaign's id.
                    .col(uuid("scope_id"))
                    .col(uuid("customer_id"))
                    // Uses reserved and confirmed by this customer.
                    .col(big_integer("held"))
                    .primary_key(
                        Index::create()
                            .col("workspace_id")
                            .col("scope_id")
                            .col("customer_id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_redemption")
                    .col(string_len("order_id", 128))
                    .col(uuid_null("customer_id"))
                    .col(integer("status"))
                    .col(string_len("currency", 16))
                    .col(big_integer("order_amount"))
                    .col(big_integer("total_discount"))
                    // JSON: the effects and what they hold (coupons, campaigns, customer uses).
                    .col(text("effects"))
                    .col(text("rejected"))
                    .col(big_integer("expire_at"))
                    .col(text("rollback_reason"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(index(
                "mkt_redemption",
                "mkt_redemption_expiry",
                &["status", "expire_at"],
            ))
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_participation")
                    .col(uuid("campaign_id"))
                    .col(uuid("customer_id"))
                    .col(integer("status"))
                    .col(uuid_null("coupon_id"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_index(
                index(
                    "mkt_participation",
                    "mkt_participation_once",
                    &["workspace_id", "campaign_id", "customer_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_table(stamped(
                keyed("mkt_display")
                    .col(uuid("campaign_id"))
                    .col(integer("display_type"))
                    .col(string_len("title", 200))
                    .col(string_len("image_url", 2048))
                    .col(string_len("link_url", 2048))
                    .col(string_len("category_id", 128))
                    .col(string_len("post_id", 128))
                    .col(integer("position"))
                    .col(big_integer_null("start_time"))
                    .col(big_integer_null("end_time"))
                    .to_owned(),
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mkt_campaign_daily")
                    .col(uuid("workspace_id"))
                    .col(uuid("campaign_id"))
                    // YYYY-MM-DD in the workspace time zone.
                    .col(string_len("day", 10))
                    // Of revenue and discount_given ("" for rows of counts only).
                    .col(string_len("currency", 16))
                    .col(big_integer("impressions"))
                    .col(big_integer("clicks"))
                    .col(big_integer("conversions"))
                    .col(big_integer("revenue"))
                    .col(big_integer("coupons_generated"))
                    .col(big_integer("coupons_redeemed"))
                    .col(big_integer("discount_given"))
                    .primary_key(
                        Index::create()
                            .col("workspace_id")
                            .col("campaign_id")
                            .col("day")
                            .col("currency"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mkt_version")
                    .col(uuid("workspace_id").primary_key())
                    .col(big_integer("version"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .drop_table(Table::drop().table(*table).to_owned())
                .await?;
        }
        Ok(())
    }
}

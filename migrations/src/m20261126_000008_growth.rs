//! Growth: referral programs, codes and referrals; affiliates, their attributed customers,
//! commissions, clawbacks owed and monthly dashboard rows; channels, links, deduplicated visitors with
//! their last counted click, and attributed conversions; badges, awards and metric totals per period (what
//! leaderboards read). Every tenant table is keyed by (workspace_id, …); link short codes are
//! unique across workspaces because `GET /l/{code}` carries no workspace.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{index, keyed, stamped, table_with_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "growth_metric",
    "growth_badge_award",
    "growth_badge",
    "growth_link_conversion",
    "growth_visitor",
    "growth_link",
    "growth_channel",
    "growth_affiliate_month",
    "growth_affiliate_debt",
    "growth_commission",
    "growth_attribution",
    "growth_affiliate",
    "growth_referral",
    "growth_referral_code",
    "growth_referral_program",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            stamped(
                keyed("growth_referral_program")
                    .col(string_len("name", 200))
                    // JSON of each side's reward (growth::referrals::RewardDef).
                    .col(text("referrer_reward"))
                    .col(text("referee_reward"))
                    // "" and 0 without a minimum.
                    .col(string_len("min_currency", 16))
                    .col(big_integer("min_amount"))
                    .col(big_integer("max_referrals"))
                    .col(big_integer("link_ttl_days"))
                    .to_owned(),
            ),
            stamped(
                keyed("growth_referral_code")
                    .col(uuid("program_id"))
                    .col(uuid("customer_id"))
                    .col(string_len("code", 16))
                    .col(big_integer("expire_at"))
                    .col(big_integer("referral_count"))
                    .to_owned(),
            ),
            stamped(
                keyed("growth_referral")
                    .col(uuid("program_id"))
                    .col(uuid("referrer_id"))
                    .col(uuid("referee_id"))
                    .col(string_len("code", 16))
                    .col(integer("status"))
                    .col(string_len_null("order_id", 128))
                    .col(string_len("order_currency", 16))
                    .col(big_integer("order_amount"))
                    // JSON of what each side received (growth::referrals::Issued), "" before.
                    .col(text("referrer_issued"))
                    .col(text("referee_issued"))
                    .col(big_integer("expire_at"))
                    .to_owned(),
            ),
            stamped(
                keyed("growth_affiliate")
                    .col(uuid("customer_id"))
                    .col(string_len("code", 16))
                    .col(integer("status"))
                    .col(string_len("company_name", 200))
                    .col(string_len("website", 2048))
                    .col(integer("commission_bps"))
                    .col(integer("commission_months"))
                    .to_owned(),
            ),
            table_with_key("growth_attribution", &["workspace_id", "customer_id"])
                .col(uuid("workspace_id"))
                .col(uuid("customer_id"))
                .col(uuid("affiliate_id"))
                .col(big_integer("attributed_at"))
                .to_owned(),
            stamped(
                keyed("growth_commission")
                    .col(uuid("affiliate_id"))
                    .col(string_len("order_id", 128))
                    .col(uuid_null("customer_id"))
                    .col(string_len("currency", 16))
                    .col(big_integer("sale_amount"))
                    .col(big_integer("refunded_amount"))
                    .col(big_integer("amount"))
                    .col(integer("status"))
                    .col(big_integer("due_at"))
                    .col(big_integer("credited_amount"))
                    .col(uuid_null("transfer_id"))
                    .col(string_len("reason", 64))
                    .col(integer("commission_bps"))
                    // YYYY-MM of the sale in the workspace time zone.
                    .col(string_len("month", 7))
                    .to_owned(),
            ),
            table_with_key(
                "growth_affiliate_debt",
                &["workspace_id", "affiliate_id", "currency"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("affiliate_id"))
            .col(string_len("currency", 16))
            .col(big_integer("owed"))
            .to_owned(),
            table_with_key(
                "growth_affiliate_month",
                &["workspace_id", "affiliate_id", "month"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("affiliate_id"))
            .col(string_len("month", 7))
            .col(big_integer("clicks"))
            .col(big_integer("conversions"))
            .col(big_integer("revenue"))
            .col(big_integer("commission"))
            .to_owned(),
            stamped(
                keyed("growth_channel")
                    .col(string_len("code", 64))
                    .col(string_len("name", 200))
                    .col(integer("channel_type"))
                    .to_owned(),
            ),
            stamped(
                keyed("growth_link")
                    .col(uuid("campaign_id"))
                    .col(uuid("channel_id"))
                    .col(uuid_null("affiliate_id"))
                    .col(string_len("name", 200))
                    .col(text("destination_url"))
                    // JSON object of the UTM fields.
                    .col(text("utm"))
                    .col(string_len("short_code", 16))
                    .col(text("tracking_url"))
                    .col(big_integer("click_count"))
                    .col(big_integer("conversion_count"))
                    .to_owned(),
            ),
            // The last counted click of a visitor (keyed hash of address and user agent) on a
            // link, with its country and referrer: what deduplication compares with and what a
            // conversion is attributed to.
            table_with_key("growth_visitor", &["workspace_id", "link_id", "visitor"])
                .col(uuid("workspace_id"))
                .col(uuid("link_id"))
                .col(string_len("visitor", 32))
                .col(big_integer("last_counted_at"))
                .col(string_len("country", 2))
                .col(string_len("referrer", 2048))
                .to_owned(),
            table_with_key(
                "growth_link_conversion",
                &["workspace_id", "link_id", "order_id"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("link_id"))
            .col(string_len("order_id", 128))
            // When the click it was attributed to was counted.
            .col(big_integer("click_at"))
            .col(string_len("currency", 16))
            .col(big_integer("amount"))
            .col(big_integer("created_at"))
            .to_owned(),
            stamped(
                keyed("growth_badge")
                    .col(string_len("code", 64))
                    .col(string_len("name", 200))
                    .col(string_len("category", 64))
                    .col(integer("tier"))
                    .col(string_len("metric", 64))
                    .col(big_integer("threshold"))
                    .to_owned(),
            ),
            table_with_key(
                "growth_badge_award",
                &["workspace_id", "badge_id", "subject_id"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("badge_id"))
            .col(uuid("subject_id"))
            .col(big_integer("awarded_at"))
            .to_owned(),
            // A subject's total of a metric in one period: "all", "d:2026-11-23", "w:2026-W48"
            // or "m:2026-11" (workspace time zone).
            table_with_key(
                "growth_metric",
                &["workspace_id", "metric", "period", "subject_id"],
            )
            .col(uuid("workspace_id"))
            .col(string_len("metric", 64))
            .col(string_len("period", 16))
            .col(uuid("subject_id"))
            .col(big_integer("value"))
            .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        let indexes: [(&str, &str, &[&str], bool); 15] = [
            (
                "growth_referral_code",
                "growth_referral_code_code",
                &["workspace_id", "code"],
                true,
            ),
            (
                "growth_referral_code",
                "growth_referral_code_owner",
                &["workspace_id", "program_id", "customer_id"],
                true,
            ),
            (
                "growth_referral",
                "growth_referral_once",
                &["workspace_id", "program_id", "referee_id"],
                true,
            ),
            (
                "growth_referral",
                "growth_referral_referee",
                &["workspace_id", "referee_id", "status"],
                false,
            ),
            (
                "growth_referral",
                "growth_referral_referrer",
                &["workspace_id", "referrer_id"],
                false,
            ),
            (
                "growth_referral",
                "growth_referral_expiry",
                &["status", "expire_at"],
                false,
            ),
            (
                "growth_affiliate",
                "growth_affiliate_customer",
                &["workspace_id", "customer_id"],
                true,
            ),
            (
                "growth_affiliate",
                "growth_affiliate_code",
                &["workspace_id", "code"],
                true,
            ),
            (
                "growth_commission",
                "growth_commission_order",
                &["workspace_id", "order_id"],
                true,
            ),
            (
                "growth_commission",
                "growth_commission_due",
                &["status", "due_at"],
                false,
            ),
            (
                "growth_commission",
                "growth_commission_affiliate",
                &["workspace_id", "affiliate_id", "status"],
                false,
            ),
            (
                "growth_channel",
                "growth_channel_code",
                &["workspace_id", "code"],
                true,
            ),
            (
                "growth_link",
                "growth_link_short_code",
                &["short_code"],
                true,
            ),
            (
                "growth_badge",
                "growth_badge_code",
                &["workspace_id", "code"],
                true,
            ),
            (
                "growth_metric",
                "growth_metric_board",
                &["workspace_id", "metric", "period", "value", "subject_id"],
                false,
            ),
        ];
        for (table, name, columns, unique) in indexes {
            let mut statement = index(table, name, columns);
            if unique {
                statement.unique();
            }
            manager.create_index(statement.to_owned()).await?;
        }
        manager
            .create_index(index(
                "growth_badge_award",
                "growth_badge_award_subject",
                &["workspace_id", "subject_id"],
            ))
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

//! Payouts: advertisers' campaigns and their fundings, promoters' memberships, unique viewers,
//! applications and work, every earning with its platform fee, connected payout accounts,
//! payout runs, payouts (one per promoter, period and currency by a unique key) and what each
//! run carried forward. Money sits in the ledger; these tables say why it moved.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{index, keyed, stamped, table_with_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "payout_webhook_event",
    "payout_carry",
    "payout_payout",
    "payout_run",
    "payout_account",
    "payout_earning",
    "payout_sale",
    "payout_work",
    "payout_application",
    "payout_view",
    "payout_member",
    "payout_funding",
    "payout_campaign",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            stamped(
                keyed("payout_campaign")
                    .col(uuid("advertiser_id"))
                    .col(string_len("title", 200))
                    .col(integer("campaign_type"))
                    .col(string_len("currency", 16))
                    .col(big_integer("rate_per_100_views"))
                    .col(big_integer("max_views"))
                    .col(big_integer("min_budget"))
                    .col(big_integer("max_budget"))
                    .col(integer("commission_bps"))
                    .col(integer("tracking_method"))
                    .col(integer("platform_fee_bps"))
                    .col(integer("fee_payer"))
                    .col(big_integer("budget"))
                    .col(big_integer("required_funding"))
                    .col(big_integer("funding_limit"))
                    .col(big_integer("funded"))
                    .col(big_integer("spent"))
                    .col(big_integer("fees"))
                    .col(big_integer("refunded"))
                    .col(big_integer("total_views"))
                    .col(integer("status"))
                    .col(uuid_null("accepted_application_id"))
                    .col(big_integer_null("start_at"))
                    .col(big_integer_null("end_at"))
                    .to_owned(),
            ),
            keyed("payout_funding")
                .col(uuid("campaign_id"))
                .col(uuid("advertiser_id"))
                .col(string_len("payment_reference", 255))
                .col(string_len("currency", 16))
                .col(big_integer("amount"))
                .col(big_integer("processing_fee"))
                // YYYY-MM in the workspace time zone.
                .col(string_len("period", 7))
                .col(uuid("transfer_id"))
                .col(big_integer("created_at"))
                .to_owned(),
            table_with_key(
                "payout_member",
                &["workspace_id", "campaign_id", "promoter_id"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("campaign_id"))
            .col(uuid("promoter_id"))
            .col(string_len("tracking_code", 16))
            .col(big_integer("views"))
            // Gross credited so far and the fee taken on it (views are credited cumulatively:
            // what a call pays is the new total minus these).
            .col(big_integer("earned"))
            .col(big_integer("fee"))
            .col(big_integer("created_at"))
            .col(big_integer("updated_at"))
            .to_owned(),
            table_with_key(
                "payout_view",
                &["workspace_id", "campaign_id", "promoter_id", "viewer_id"],
            )
            .col(uuid("workspace_id"))
            .col(uuid("campaign_id"))
            .col(uuid("promoter_id"))
            .col(string_len("viewer_id", 128))
            .to_owned(),
            stamped(
                keyed("payout_application")
                    .col(uuid("campaign_id"))
                    .col(uuid("promoter_id"))
                    .col(big_integer("proposed_amount"))
                    .col(string_len("pitch", 2000))
                    .col(integer("status"))
                    .to_owned(),
            ),
            stamped(
                keyed("payout_work")
                    .col(uuid("campaign_id"))
                    .col(uuid("promoter_id"))
                    .col(string_len("deliverable", 200))
                    .col(string_len("url", 2048))
                    .col(integer("status"))
                    .col(big_integer("amount"))
                    .col(big_integer("fee"))
                    .col(string_len("comment", 2000))
                    .to_owned(),
            ),
            stamped(
                keyed("payout_sale")
                    .col(uuid("campaign_id"))
                    .col(uuid("promoter_id"))
                    .col(string_len("order_id", 128))
                    .col(string_len("currency", 16))
                    .col(big_integer("amount"))
                    .col(big_integer("refunded"))
                    .col(big_integer("commission"))
                    .col(big_integer("fee"))
                    .col(integer("status"))
                    // The earning that holds the commission (none once nothing is left).
                    .col(uuid_null("earning_id"))
                    .col(big_integer_null("release_at"))
                    .to_owned(),
            ),
            // One credit to a promoter: where it came from, its gross, the platform fee and who
            // paid it, and whether it is still held (a pending ledger transfer) or available.
            stamped(
                keyed("payout_earning")
                    .col(uuid("campaign_id"))
                    .col(uuid("advertiser_id"))
                    .col(uuid("promoter_id"))
                    .col(integer("source"))
                    .col(string_len("source_id", 64))
                    .col(string_len("currency", 16))
                    .col(big_integer("gross"))
                    .col(big_integer("fee"))
                    .col(big_integer("promoter_amount"))
                    .col(integer("fee_payer"))
                    .col(integer("status"))
                    .col(big_integer("release_at"))
                    // YYYY-MM in the workspace time zone.
                    .col(string_len("period", 7))
                    .col(uuid_null("wallet_transfer_id"))
                    .col(uuid_null("fee_transfer_id"))
                    .to_owned(),
            ),
            table_with_key("payout_account", &["workspace_id", "promoter_id"])
                .col(uuid("workspace_id"))
                .col(uuid("promoter_id"))
                .col(string_len("provider", 32))
                .col(string_len("provider_account_id", 255))
                .col(boolean("payouts_enabled"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            stamped(
                keyed("payout_run")
                    .col(string_len("period", 7))
                    .col(string_len("currency", 16))
                    .col(integer("status"))
                    .col(big_integer("payouts"))
                    .col(big_integer("total"))
                    .col(big_integer("skipped_below_minimum"))
                    .col(big_integer("held"))
                    // The last wallet owner the run went past (it resumes after it).
                    .col(uuid_null("cursor"))
                    .to_owned(),
            ),
            stamped(
                keyed("payout_payout")
                    .col(uuid("run_id"))
                    .col(uuid("promoter_id"))
                    .col(string_len("period", 7))
                    .col(string_len("currency", 16))
                    .col(big_integer("amount"))
                    .col(integer("status"))
                    .col(string_len("failure_reason", 500))
                    .col(string_len("provider", 32))
                    .col(string_len("provider_account_id", 255))
                    .col(string_len("provider_reference", 255))
                    .col(integer("attempts"))
                    .col(big_integer("next_attempt_at"))
                    // The creation time of the last provider event applied (older ones are
                    // stale and ignored).
                    .col(big_integer("provider_event_at"))
                    .to_owned(),
            ),
            table_with_key("payout_carry", &["workspace_id", "currency", "promoter_id"])
                .col(uuid("workspace_id"))
                .col(string_len("currency", 16))
                .col(uuid("promoter_id"))
                .col(string_len("period", 7))
                .col(big_integer("amount"))
                .col(big_integer("updated_at"))
                .to_owned(),
            // Provider events already processed: each is handled once, by its provider's id.
            table_with_key("payout_webhook_event", &["provider", "event_id"])
                .col(string_len("provider", 32))
                .col(string_len("event_id", 255))
                .col(string_len("event_type", 128))
                .col(string_len("outcome", 255))
                .col(big_integer("received_at"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        let indexes: [(&'static str, &'static str, &[&'static str], bool); 15] = [
            (
                "payout_sale",
                "payout_sale_order",
                &["workspace_id", "campaign_id", "order_id"],
                true,
            ),
            (
                "payout_campaign",
                "payout_campaign_advertiser",
                &["workspace_id", "advertiser_id"],
                false,
            ),
            (
                "payout_funding",
                "payout_funding_advertiser",
                &["workspace_id", "advertiser_id", "period"],
                false,
            ),
            (
                "payout_funding",
                "payout_funding_reference",
                &["workspace_id", "payment_reference"],
                true,
            ),
            (
                "payout_member",
                "payout_member_tracking_code",
                &["workspace_id", "tracking_code"],
                true,
            ),
            (
                "payout_application",
                "payout_application_promoter",
                &["workspace_id", "campaign_id", "promoter_id"],
                true,
            ),
            (
                "payout_work",
                "payout_work_campaign",
                &["workspace_id", "campaign_id"],
                false,
            ),
            (
                "payout_earning",
                "payout_earning_release",
                &["status", "release_at"],
                false,
            ),
            (
                "payout_earning",
                "payout_earning_period",
                &["workspace_id", "period"],
                false,
            ),
            (
                "payout_earning",
                "payout_earning_promoter",
                &["workspace_id", "promoter_id"],
                false,
            ),
            (
                "payout_run",
                "payout_run_period",
                &["workspace_id", "currency", "period"],
                false,
            ),
            (
                "payout_payout",
                "payout_payout_once",
                &["workspace_id", "period", "currency", "promoter_id"],
                true,
            ),
            (
                "payout_payout",
                "payout_payout_reference",
                &["provider", "provider_reference"],
                false,
            ),
            (
                "payout_account",
                "payout_account_provider",
                &["provider", "provider_account_id"],
                false,
            ),
            (
                "payout_payout",
                "payout_payout_dispatch",
                &["status", "next_attempt_at"],
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
                "payout_payout",
                "payout_payout_promoter",
                &["workspace_id", "promoter_id"],
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

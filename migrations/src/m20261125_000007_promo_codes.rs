//! Promo codes: what a promo-code campaign grants besides a rule (credits, trial days), and one
//! row per redemption of a promo code, keyed by (workspace_id, id).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table("mkt_campaign")
                    .add_column(big_integer("promo_credits").default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("mkt_campaign")
                    .add_column(integer("trial_days").default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mkt_promo_redemption")
                    .col(uuid("workspace_id"))
                    .col(uuid("id"))
                    .col(uuid("campaign_id"))
                    .col(uuid("customer_id"))
                    .col(string_len("code", 64))
                    .col(big_integer("credits"))
                    .col(integer("trial_days"))
                    .col(uuid_null("discount_rule_id"))
                    // The ledger transfer that granted the credits, if any.
                    .col(uuid_null("transfer_id"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("workspace_id").col("id"))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "mkt_promo_redemption_campaign",
                &["workspace_id", "campaign_id", "created_at"][..],
            ),
            (
                "mkt_promo_redemption_customer",
                &["workspace_id", "customer_id", "created_at"][..],
            ),
        ] {
            manager
                .create_index(index("mkt_promo_redemption", name, columns))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("mkt_promo_redemption").to_owned())
            .await?;
        for column in ["trial_days", "promo_credits"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("mkt_campaign")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

//! The double-entry ledger: accounts, transfers, failed transfer ids, and the per-workspace hash chain.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ledger_account")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid_null("owner_id"))
                    .col(string_len("asset", 16))
                    .col(string_len("code", 64))
                    .col(integer("flags"))
                    .col(big_integer("debits_posted"))
                    .col(big_integer("credits_posted"))
                    .col(big_integer("debits_pending"))
                    .col(big_integer("credits_pending"))
                    .col(text("metadata"))
                    .col(big_integer("created_at"))
                    .check(Expr::col("debits_posted").gte(0))
                    .check(Expr::col("credits_posted").gte(0))
                    .check(Expr::col("debits_pending").gte(0))
                    .check(Expr::col("credits_pending").gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_account_owner")
                    .table("ledger_account")
                    .col("workspace_id")
                    .col("owner_id")
                    .col("asset")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ledger_transfer")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(big_integer("seq"))
                    .col(uuid("debit_account_id"))
                    .col(uuid("credit_account_id"))
                    .col(big_integer("amount"))
                    .col(big_integer("requested_amount"))
                    .col(uuid_null("pending_id"))
                    .col(string_len("code", 64))
                    .col(string_len("reference", 128))
                    .col(big_integer("timeout_seconds"))
                    .col(integer("flags"))
                    .col(small_integer("kind"))
                    .col(small_integer("pending_state"))
                    .col(big_integer_null("expires_at"))
                    .col(big_integer_null("resolved_at"))
                    .col(text("metadata"))
                    .col(big_integer("created_at"))
                    .col(string_len("hash", 64))
                    .check(Expr::col("amount").gt(0))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ledger_transfer_seq", &["workspace_id", "seq"][..]),
            (
                "ledger_transfer_debit",
                &["debit_account_id", "created_at"][..],
            ),
            (
                "ledger_transfer_credit",
                &["credit_account_id", "created_at"][..],
            ),
            ("ledger_transfer_code", &["workspace_id", "code", "seq"][..]),
            (
                "ledger_transfer_reference",
                &["workspace_id", "reference", "seq"][..],
            ),
        ] {
            let mut index = crate::index("ledger_transfer", name, columns);
            if name == "ledger_transfer_seq" {
                index.unique();
            }
            manager.create_index(index).await?;
        }
        // Only pending transfers are ever due to expire: a partial index keeps every other insert
        // from paying for it (the same statement works on SQLite and PostgreSQL).
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ledger_transfer_expiry ON ledger_transfer (expires_at) WHERE pending_state = 1",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ledger_failed_transfer")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(integer("result"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ledger_chain_head")
                    .col(uuid("workspace_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string_len("hash", 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "ledger_chain_head",
            "ledger_failed_transfer",
            "ledger_transfer",
            "ledger_account",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

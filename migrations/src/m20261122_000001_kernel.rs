//! Workspaces and the idempotency store.

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
                    .table("kernel_workspace")
                    .col(uuid("id").primary_key())
                    .col(string_len("name", 63).unique_key())
                    .col(string_len("display_name", 200))
                    .col(string_len("modules", 200))
                    .col(text("settings"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("kernel_idempotency")
                    .col(uuid("workspace_id"))
                    .col(uuid("request_id"))
                    .col(string_len("method", 200))
                    .col(string_len("fingerprint", 64))
                    .col(blob("response"))
                    .col(big_integer("created_at"))
                    .primary_key(Index::create().col("workspace_id").col("request_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("kernel_idempotency_created_at")
                    .table("kernel_idempotency")
                    .col("created_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("kernel_idempotency").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("kernel_workspace").to_owned())
            .await
    }
}

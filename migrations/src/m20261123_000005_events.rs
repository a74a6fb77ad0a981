//! The domain-event outbox (kernel::events): events appended in the transactions that cause
//! them, the positions a sequencer gives them once committed, and each consumer's cursor and
//! lease.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("kernel_event")
                    .col(uuid("workspace_id"))
                    .col(uuid("id"))
                    // Assigned after commit, in commit order; NULL until then.
                    .col(big_integer_null("position"))
                    .col(string_len("event_type", 128))
                    .col(string_len("subject", 256))
                    .col(big_integer("occurred_at"))
                    .col(text("payload"))
                    .primary_key(Index::create().col("workspace_id").col("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("kernel_event", "kernel_event_by_position", &["position"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "kernel_event",
                "kernel_event_unsequenced",
                &["occurred_at", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("kernel_event_sequence")
                    .col(integer("id").primary_key())
                    .col(big_integer("last_position"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_raw(Statement::from_string(
                manager.get_database_backend(),
                "INSERT INTO kernel_event_sequence (id, last_position) VALUES (1, 0)",
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("kernel_event_consumer")
                    .col(string_len("name", 64).primary_key())
                    .col(big_integer("position"))
                    .col(uuid_null("lease_owner"))
                    .col(big_integer("lease_until"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "kernel_event_consumer",
            "kernel_event_sequence",
            "kernel_event",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Material promotion: the materials knowledge base, promotions, their impressions, uses and audit
//! trail, and a per-workspace version that tells replicas when to rebuild selection snapshots.

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
                    .table("promo_material")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string_len("name", 200))
                    .col(string_len("material_type", 64))
                    .col(text("tags"))
                    .col(uuid_null("owner_id"))
                    .col(text("properties"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "promo_material_type",
                &["workspace_id", "material_type", "id"][..],
            ),
            (
                "promo_material_owner",
                &["workspace_id", "owner_id", "id"][..],
            ),
        ] {
            manager
                .create_index(crate::index("promo_material", name, columns))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("promo_promotion")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("material_id"))
                    .col(uuid("factory_id"))
                    .col(string_len("material_type", 64))
                    .col(integer("status"))
                    .col(big_integer("credits_allocated"))
                    .col(big_integer("credits_spent"))
                    .col(big_integer("credits_refunded"))
                    .col(big_integer("impression_count"))
                    .col(big_integer("usage_count"))
                    .col(text("project_types"))
                    .col(big_integer_null("start_time"))
                    .col(big_integer_null("end_time"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .check(
                        Expr::col("credits_spent")
                            .add(Expr::col("credits_refunded"))
                            .lte(Expr::col("credits_allocated")),
                    )
                    .check(Expr::col("credits_spent").gte(0))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "promo_promotion_factory",
                &["workspace_id", "factory_id", "id"][..],
            ),
            ("promo_promotion_status", &["workspace_id", "status"][..]),
        ] {
            manager
                .create_index(crate::index("promo_promotion", name, columns))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("promo_impression")
                    .col(uuid("decision_id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("promotion_id"))
                    .col(big_integer("charge"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("promo_usage")
                    .col(uuid("decision_id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid_null("promotion_id"))
                    .col(uuid("material_id"))
                    .col(big_integer("charge"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        for (table, name) in [
            ("promo_impression", "promo_impression_promotion"),
            ("promo_usage", "promo_usage_promotion"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col("promotion_id")
                        .col("created_at")
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("promo_audit")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("promotion_id"))
                    .col(uuid_null("actor_id"))
                    .col(string_len("action", 64))
                    .col(text("detail"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("promo_audit_promotion")
                    .table("promo_audit")
                    .col("promotion_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("promo_version")
                    .col(uuid("workspace_id").primary_key())
                    .col(big_integer("version"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "promo_version",
            "promo_audit",
            "promo_usage",
            "promo_impression",
            "promo_promotion",
            "promo_material",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

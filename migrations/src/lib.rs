//! The one Migrator for every domain's tables. Every migration runs on SQLite and PostgreSQL and
//! has a working `down`.
#![forbid(unsafe_code)]
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_kernel;
mod m20261122_000002_ledger;
mod m20261122_000003_promotion;
mod m20261123_000004_tenant_keys;
mod m20261123_000005_events;
mod m20261124_000006_marketing;
mod m20261125_000007_promo_codes;
mod m20261126_000008_growth;
mod m20261127_000009_payouts;

/// An index on `columns` of `table`, in order.
pub(crate) fn index(
    table: &'static str,
    name: &'static str,
    columns: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).to_owned();
    for column in columns {
        index.col(*column);
    }
    index
}

/// A tenant table keyed by (workspace_id, id).
pub(crate) fn keyed(table: &'static str) -> TableCreateStatement {
    Table::create()
        .table(table)
        .col(sea_orm_migration::schema::uuid("workspace_id"))
        .col(sea_orm_migration::schema::uuid("id"))
        .primary_key(Index::create().col("workspace_id").col("id"))
        .to_owned()
}

/// A table keyed by the columns named (each still needs its `.col(…)`).
pub(crate) fn table_with_key(table: &'static str, key: &[&'static str]) -> TableCreateStatement {
    let mut primary = Index::create();
    for column in key {
        primary.col(*column);
    }
    Table::create()
        .table(table)
        .primary_key(&mut primary)
        .to_owned()
}

/// Adds `created_at` and `updated_at` (microseconds since the epoch).
pub(crate) fn stamped(mut table: TableCreateStatement) -> TableCreateStatement {
    table
        .col(sea_orm_migration::schema::big_integer("created_at"))
        .col(sea_orm_migration::schema::big_integer("updated_at"));
    table
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_kernel::Migration),
            Box::new(m20261122_000002_ledger::Migration),
            Box::new(m20261122_000003_promotion::Migration),
            Box::new(m20261123_000004_tenant_keys::Migration),
            Box::new(m20261123_000005_events::Migration),
            Box::new(m20261124_000006_marketing::Migration),
            Box::new(m20261125_000007_promo_codes::Migration),
            Box::new(m20261126_000008_growth::Migration),
            Box::new(m20261127_000009_payouts::Migration),
        ]
    }
}

//! The one Migrator for every domain's tables. Every migration runs on SQLite and PostgreSQL and
//! has a working `down`.
#![forbid(unsafe_code)]
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_kernel;
mod m20261122_000002_ledger;
mod m20261122_000003_promotion;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_kernel::Migration),
            Box::new(m20261122_000002_ledger::Migration),
            Box::new(m20261122_000003_promotion::Migration),
        ]
    }
}

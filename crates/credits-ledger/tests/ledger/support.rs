//! A fresh migrated database per test: a temp SQLite file, or a new PostgreSQL database when
//! PROMO_TEST_DATABASE_URL is set (unreachable is a failure, never a skip).

use std::sync::Arc;

use kernel::{Clock, Context, Db, DbOptions};
use migrations::{Migrator, MigratorTrait};

pub struct TestDb {
    pub context: Context,
    _dir: tempfile::TempDir,
}

pub async fn test_db(clock: Arc<dyn Clock>) -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match std::env::var("PROMO_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            kernel::db::create_postgres_database(&admin_url, &name)
                .await
                .unwrap_or_else(|error| {
                    panic!("PROMO_TEST_DATABASE_URL is set but unusable: {error}")
                })
        }
        _ => format!("sqlite://{}", dir.path().join("ledger.db").display()),
    };
    let options = DbOptions {
        max_connections: 32,
        ..DbOptions::default()
    };
    let db = Db::connect(&url, &options).await.expect("connect");
    Migrator::up(db.connection(), None).await.expect("migrate");
    TestDb {
        context: Context::new(db, clock),
        _dir: dir,
    }
}

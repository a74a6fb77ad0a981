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
    let url = kernel::db::fresh_test_database_url(dir.path(), "ledger.db")
        .await
        .unwrap_or_else(|error| panic!("PROMO_TEST_DATABASE_URL is set but unusable: {error}"));
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

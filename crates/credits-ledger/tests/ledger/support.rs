//! A fresh migrated database per test: a temp SQLite file, or a new PostgreSQL database when
//! PROMO_TEST_DATABASE_URL is set (unreachable is a failure, never a skip).

use std::sync::Arc;

use kernel::{Clock, Context, Db, DbOptions};
use migrations::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

pub struct TestDb {
    pub context: Context,
    _dir: tempfile::TempDir,
}

pub async fn test_db(clock: Arc<dyn Clock>) -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match std::env::var("PROMO_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(&admin_url)
                .await
                .unwrap_or_else(|error| {
                    panic!("PROMO_TEST_DATABASE_URL is set but unreachable: {error}")
                });
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create database");
            admin.close().await.expect("close");
            let (base, query) = admin_url
                .split_once('?')
                .map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
            let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
            if query.is_empty() {
                format!("{base}/{name}")
            } else {
                format!("{base}/{name}?{query}")
            }
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

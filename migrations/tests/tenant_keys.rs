//! The tenant-key migration moves existing rows, marks derived accounts as managed, and rolls back.

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use uuid::Uuid;

async fn fresh(dir: &std::path::Path) -> DatabaseConnection {
    let url = kernel::db::fresh_test_database_url(dir, "m.db")
        .await
        .unwrap_or_else(|error| panic!("PROMO_TEST_DATABASE_URL is set but unusable: {error}"));
    Database::connect(url).await.expect("connect")
}

async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) {
    let backend = db.get_database_backend();
    let sql = kernel::db::placeholders_for(backend, sql);
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

async fn count(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    let backend = db.get_database_backend();
    let sql = kernel::db::placeholders_for(backend, sql);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .expect("query")
        .expect("row");
    row.try_get_by_index::<i64>(0).expect("count")
}

fn account_sql() -> &'static str {
    "INSERT INTO ledger_account (id, workspace_id, owner_id, asset, code, flags, debits_posted, \
     credits_posted, debits_pending, credits_pending, metadata, created_at) \
     VALUES (?, ?, NULL, 'CREDITS', ?, ?, 0, 0, 0, 0, ?, 0)"
}

#[tokio::test]
async fn rows_move_to_tenant_keys_and_roll_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = fresh(dir.path()).await;
    Migrator::up(&db, Some(3)).await.expect("first three");

    let workspace = Uuid::new_v4();
    let other = Uuid::new_v4();
    // A wallet the platform derived, and an account a client made with metadata that imitates it.
    let key = format!("wallet:{}:CREDITS", Uuid::new_v4());
    let wallet = Uuid::new_v5(&workspace, key.as_bytes());
    let imitation = Uuid::new_v4();
    let client = Uuid::new_v4();
    let system_metadata = format!("{{\"system\":\"{key}\"}}");
    exec(
        &db,
        account_sql(),
        vec![
            wallet.into(),
            workspace.into(),
            "WALLET".into(),
            1.into(),
            system_metadata.clone().into(),
        ],
    )
    .await;
    exec(
        &db,
        account_sql(),
        vec![
            imitation.into(),
            workspace.into(),
            "WALLET".into(),
            1.into(),
            system_metadata.into(),
        ],
    )
    .await;
    exec(
        &db,
        account_sql(),
        vec![
            client.into(),
            workspace.into(),
            "TEST".into(),
            0.into(),
            "{}".into(),
        ],
    )
    .await;
    let request_id = Uuid::new_v4();
    exec(
        &db,
        "INSERT INTO kernel_idempotency (workspace_id, request_id, method, fingerprint, response, created_at) VALUES (?, ?, 'M', 'f', ?, 0)",
        vec![workspace.into(), request_id.into(), Vec::<u8>::new().into()],
    )
    .await;
    let promotion = Uuid::new_v4();
    exec(
        &db,
        "INSERT INTO promo_promotion (id, workspace_id, material_id, factory_id, material_type, status, credits_allocated, credits_spent, credits_refunded, impression_count, usage_count, project_types, start_time, end_time, created_at, updated_at) VALUES (?, ?, ?, ?, 'wood', 2, 10, 0, 0, 0, 0, '[]', NULL, NULL, 0, 0)",
        vec![promotion.into(), workspace.into(), Uuid::new_v4().into(), Uuid::new_v4().into()],
    )
    .await;

    Migrator::up(&db, Some(1)).await.expect("tenant keys");

    let managed = |id: Uuid| {
        let db = &db;
        async move {
            count(db, "SELECT CAST(flags AS BIGINT) FROM ledger_account WHERE workspace_id = ? AND id = ?", vec![workspace.into(), id.into()]).await
        }
    };
    assert_eq!(
        managed(wallet).await,
        1 | (1 << 15),
        "the derived wallet is managed"
    );
    assert_eq!(managed(imitation).await, 1, "an imitation is not");
    assert_eq!(managed(client).await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM kernel_idempotency WHERE workspace_id = ? AND request_id = ?",
            vec![workspace.into(), request_id.into()]
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM promo_promotion WHERE workspace_id = ? AND id = ?",
            vec![workspace.into(), promotion.into()]
        )
        .await,
        1
    );

    // Two principals may now use one request id.
    for principal in [Uuid::new_v4(), Uuid::new_v4()] {
        exec(
            &db,
            "INSERT INTO kernel_idempotency (workspace_id, principal_id, request_id, method, fingerprint, response, created_at) VALUES (?, ?, ?, 'M', 'f', ?, 0)",
            vec![workspace.into(), principal.into(), request_id.into(), Vec::<u8>::new().into()],
        )
        .await;
    }

    // The same ids are free in another workspace now.
    exec(
        &db,
        account_sql(),
        vec![
            client.into(),
            other.into(),
            "TEST".into(),
            0.into(),
            "{}".into(),
        ],
    )
    .await;
    let error = Migrator::down(&db, Some(1)).await.expect_err("shared id");
    assert!(
        error.to_string().contains("more than one workspace"),
        "{error}"
    );
    assert_eq!(
        managed(wallet).await,
        1 | (1 << 15),
        "a refused roll-back changes nothing"
    );

    exec(
        &db,
        "DELETE FROM ledger_account WHERE workspace_id = ? AND id = ?",
        vec![other.into(), client.into()],
    )
    .await;
    Migrator::down(&db, Some(1)).await.expect("roll back");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM kernel_idempotency WHERE workspace_id = ? AND request_id = ?",
            vec![workspace.into(), request_id.into()]
        )
        .await,
        1,
        "one record per request id again"
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(flags AS BIGINT) FROM ledger_account WHERE id = ?",
            vec![wallet.into()]
        )
        .await,
        1,
        "the managed mark is gone"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM promo_promotion WHERE id = ?",
            vec![promotion.into()]
        )
        .await,
        1
    );
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(managed(wallet).await, 1 | (1 << 15));
}

//! Tenant isolation by construction: every tenant table is keyed by `(workspace_id, id)`, so an id
//! used in one workspace is unknown in every other; idempotency records belong to a principal;
//! accounts the platform derives are marked as managed by their domain; and each workspace's
//! materials taxonomy (types and synonyms) becomes data.
//!
//! PostgreSQL swaps primary keys in place; SQLite, which cannot alter a primary key, rebuilds each
//! table from the description below and copies its rows. `down` restores the global keys and
//! fails, changing nothing, if an id has meanwhile been used in two workspaces.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Bit of `ledger_account.flags` marking an account a domain manages (see credits-ledger).
const MANAGED_BY_DOMAIN: i32 = 1 << 15;
const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Which generation of the schema a table is built for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// Before this migration: ids unique across all workspaces.
    Global,
    /// After: ids unique per workspace.
    Tenant,
}

/// A secondary index: its name, columns in order, and whether it is unique.
type IndexSpec = (&'static str, Vec<&'static str>, bool);

/// A table this migration re-keys.
struct Rekeyed {
    table: &'static str,
    global_key: &'static [&'static str],
    tenant_key: &'static [&'static str],
    /// Its columns and checks, without a primary key.
    columns: fn(&mut TableCreateStatement),
    /// `(name, columns, unique)` of its secondary indexes.
    indexes: fn(Keys) -> Vec<IndexSpec>,
    /// A partial index the schema builder cannot express, created verbatim.
    partial_index: Option<&'static str>,
}

impl Rekeyed {
    fn key(&self, keys: Keys) -> &'static [&'static str] {
        match keys {
            Keys::Global => self.global_key,
            Keys::Tenant => self.tenant_key,
        }
    }

    fn column_names(&self, keys: Keys) -> Vec<String> {
        let mut statement = Table::create().table("probe").to_owned();
        (self.columns)(&mut statement);
        let mut names: Vec<String> = statement
            .get_columns()
            .iter()
            .map(|column| column.get_column_name())
            .collect();
        if keys == Keys::Global {
            names.retain(|name| name != "principal_id" || self.table != "kernel_idempotency");
        }
        names
    }
}

fn ledger_account(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
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
        .check(Expr::col("credits_pending").gte(0));
}

fn ledger_transfer(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
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
        .check(Expr::col("amount").gt(0));
}

fn ledger_failed_transfer(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
        .col(uuid("workspace_id"))
        .col(integer("result"))
        .col(big_integer("created_at"));
}

fn promo_material(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
        .col(uuid("workspace_id"))
        .col(string_len("name", 200))
        .col(string_len("material_type", 64))
        .col(text("tags"))
        .col(uuid_null("owner_id"))
        .col(text("properties"))
        .col(big_integer("created_at"));
}

fn promo_promotion(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
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
        .check(Expr::col("credits_spent").gte(0));
}

fn promo_impression(table: &mut TableCreateStatement) {
    table
        .col(uuid("decision_id"))
        .col(uuid("workspace_id"))
        .col(uuid("promotion_id"))
        .col(big_integer("charge"))
        .col(big_integer("created_at"));
}

fn promo_usage(table: &mut TableCreateStatement) {
    table
        .col(uuid("decision_id"))
        .col(uuid("workspace_id"))
        .col(uuid_null("promotion_id"))
        .col(uuid("material_id"))
        .col(big_integer("charge"))
        .col(big_integer("created_at"));
}

fn promo_audit(table: &mut TableCreateStatement) {
    table
        .col(uuid("id"))
        .col(uuid("workspace_id"))
        .col(uuid("promotion_id"))
        .col(uuid_null("actor_id"))
        .col(string_len("action", 64))
        .col(text("detail"))
        .col(big_integer("created_at"));
}

fn kernel_idempotency(table: &mut TableCreateStatement) {
    table
        .col(uuid("workspace_id"))
        .col(uuid("principal_id"))
        .col(uuid("request_id"))
        .col(string_len("method", 200))
        .col(string_len("fingerprint", 64))
        .col(blob("response"))
        .col(big_integer("created_at"));
}

/// Prefixes `columns` with `workspace_id` for the tenant-keyed schema.
fn scoped(keys: Keys, columns: &[&'static str]) -> Vec<&'static str> {
    let mut all = Vec::with_capacity(columns.len() + 1);
    if keys == Keys::Tenant {
        all.push("workspace_id");
    }
    all.extend_from_slice(columns);
    all
}

fn tables() -> Vec<Rekeyed> {
    vec![
        Rekeyed {
            table: "kernel_idempotency",
            global_key: &["workspace_id", "request_id"],
            tenant_key: &["workspace_id", "principal_id", "request_id"],
            columns: kernel_idempotency,
            indexes: |_| vec![("kernel_idempotency_created_at", vec!["created_at"], false)],
            partial_index: None,
        },
        Rekeyed {
            table: "ledger_account",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: ledger_account,
            indexes: |_| {
                vec![(
                    "ledger_account_owner",
                    vec!["workspace_id", "owner_id", "asset"],
                    false,
                )]
            },
            partial_index: None,
        },
        Rekeyed {
            table: "ledger_transfer",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: ledger_transfer,
            indexes: |keys| {
                vec![
                    ("ledger_transfer_seq", vec!["workspace_id", "seq"], true),
                    (
                        "ledger_transfer_debit",
                        scoped(keys, &["debit_account_id", "created_at"]),
                        false,
                    ),
                    (
                        "ledger_transfer_credit",
                        scoped(keys, &["credit_account_id", "created_at"]),
                        false,
                    ),
                    (
                        "ledger_transfer_code",
                        vec!["workspace_id", "code", "seq"],
                        false,
                    ),
                    (
                        "ledger_transfer_reference",
                        vec!["workspace_id", "reference", "seq"],
                        false,
                    ),
                ]
            },
            partial_index: Some(
                "CREATE INDEX ledger_transfer_expiry ON ledger_transfer (expires_at) WHERE pending_state = 1",
            ),
        },
        Rekeyed {
            table: "ledger_failed_transfer",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: ledger_failed_transfer,
            indexes: |_| Vec::new(),
            partial_index: None,
        },
        Rekeyed {
            table: "promo_material",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: promo_material,
            indexes: |_| {
                vec![
                    (
                        "promo_material_type",
                        vec!["workspace_id", "material_type", "id"],
                        false,
                    ),
                    (
                        "promo_material_owner",
                        vec!["workspace_id", "owner_id", "id"],
                        false,
                    ),
                ]
            },
            partial_index: None,
        },
        Rekeyed {
            table: "promo_promotion",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: promo_promotion,
            indexes: |_| {
                vec![
                    (
                        "promo_promotion_factory",
                        vec!["workspace_id", "factory_id", "id"],
                        false,
                    ),
                    (
                        "promo_promotion_status",
                        vec!["workspace_id", "status"],
                        false,
                    ),
                ]
            },
            partial_index: None,
        },
        Rekeyed {
            table: "promo_impression",
            global_key: &["decision_id"],
            tenant_key: &["workspace_id", "decision_id"],
            columns: promo_impression,
            indexes: |keys| {
                vec![(
                    "promo_impression_promotion",
                    scoped(keys, &["promotion_id", "created_at"]),
                    false,
                )]
            },
            partial_index: None,
        },
        Rekeyed {
            table: "promo_usage",
            global_key: &["decision_id"],
            tenant_key: &["workspace_id", "decision_id"],
            columns: promo_usage,
            indexes: |keys| {
                vec![(
                    "promo_usage_promotion",
                    scoped(keys, &["promotion_id", "created_at"]),
                    false,
                )]
            },
            partial_index: None,
        },
        Rekeyed {
            table: "promo_audit",
            global_key: &["id"],
            tenant_key: &["workspace_id", "id"],
            columns: promo_audit,
            indexes: |keys| {
                vec![(
                    "promo_audit_promotion",
                    scoped(keys, &["promotion_id", "id"]),
                    false,
                )]
            },
            partial_index: None,
        },
    ]
}

async fn execute(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates `table`'s secondary indexes for `keys`.
async fn create_indexes(
    manager: &SchemaManager<'_>,
    table: &Rekeyed,
    keys: Keys,
) -> Result<(), DbErr> {
    for (name, columns, unique) in (table.indexes)(keys) {
        let mut index = crate::index(table.table, name, &columns);
        if unique {
            index.unique();
        }
        manager.create_index(index).await?;
    }
    if let Some(sql) = table.partial_index {
        execute(manager, sql).await?;
    }
    Ok(())
}

/// Moves `table` to the primary key of `to`, keeping every row.
async fn rekey(manager: &SchemaManager<'_>, table: &Rekeyed, to: Keys) -> Result<(), DbErr> {
    let name = table.table;
    let from = match to {
        Keys::Tenant => Keys::Global,
        Keys::Global => Keys::Tenant,
    };
    if to == Keys::Global {
        refuse_shared_ids(manager, table).await?;
    }
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            if name == "kernel_idempotency" && to == Keys::Tenant {
                execute(
                    manager,
                    &format!(
                        "ALTER TABLE kernel_idempotency ADD COLUMN principal_id uuid NOT NULL DEFAULT '{NIL}'"
                    ),
                )
                .await?;
            }
            if name == "kernel_idempotency" && to == Keys::Global {
                // A request id two principals used keeps one record (SQLite's rebuild does the
                // same with INSERT OR IGNORE).
                execute(
                    manager,
                    "DELETE FROM kernel_idempotency a USING kernel_idempotency b \
                     WHERE a.workspace_id = b.workspace_id AND a.request_id = b.request_id \
                     AND a.principal_id > b.principal_id",
                )
                .await?;
            }
            for (index, _, _) in (table.indexes)(from) {
                execute(manager, &format!("DROP INDEX IF EXISTS \"{index}\"")).await?;
            }
            if table.partial_index.is_some() {
                execute(manager, "DROP INDEX IF EXISTS ledger_transfer_expiry").await?;
            }
            execute(
                manager,
                &format!(
                    "ALTER TABLE \"{name}\" DROP CONSTRAINT \"{name}_pkey\", ADD CONSTRAINT \"{name}_pkey\" PRIMARY KEY ({})",
                    quoted(table.key(to))
                ),
            )
            .await?;
            if name == "kernel_idempotency" && to == Keys::Global {
                execute(
                    manager,
                    "ALTER TABLE kernel_idempotency DROP COLUMN principal_id",
                )
                .await?;
            }
        }
        _ => {
            let rebuilt = format!("{name}_rekeyed");
            let mut create = Table::create()
                .table(Alias::new(rebuilt.clone()))
                .to_owned();
            (table.columns)(&mut create);
            if name == "kernel_idempotency" && to == Keys::Global {
                // The global schema had no principal column: rebuild without it.
                let mut without = Table::create()
                    .table(Alias::new(rebuilt.clone()))
                    .to_owned();
                for column in create.get_columns() {
                    if column.get_column_name() != "principal_id" {
                        without.col(column.clone());
                    }
                }
                create = without;
            }
            let mut primary_key = Index::create();
            for column in table.key(to) {
                primary_key.col(*column);
            }
            create.primary_key(&mut primary_key);
            manager.create_table(create).await?;
            let columns = table.column_names(to);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            // Records from before principals owned them belong to no principal (the nil UUID,
            // which no token may carry), so they can never answer another caller.
            let values: Vec<String> = columns
                .iter()
                .map(|column| match *column {
                    "principal_id" if to == Keys::Tenant => {
                        "X'00000000000000000000000000000000'".to_owned()
                    }
                    other => format!("\"{other}\""),
                })
                .collect();
            execute(
                manager,
                &format!(
                    "INSERT OR IGNORE INTO \"{rebuilt}\" ({}) SELECT {} FROM \"{name}\"",
                    quoted(&columns),
                    values.join(", ")
                ),
            )
            .await?;
            execute(manager, &format!("DROP TABLE \"{name}\"")).await?;
            execute(
                manager,
                &format!("ALTER TABLE \"{rebuilt}\" RENAME TO \"{name}\""),
            )
            .await?;
        }
    }
    create_indexes(manager, table, to).await
}

/// Going back to global ids is impossible once one id is used in two workspaces: say which.
async fn refuse_shared_ids(manager: &SchemaManager<'_>, table: &Rekeyed) -> Result<(), DbErr> {
    if table.table == "kernel_idempotency" {
        // Records are short-lived; a request id two principals used keeps one record.
        return Ok(());
    }
    let id = table.global_key[0];
    let statement = Statement::from_string(
        manager.get_database_backend(),
        format!(
            "SELECT \"{id}\" AS shared FROM \"{}\" GROUP BY \"{id}\" HAVING COUNT(*) > 1 LIMIT 1",
            table.table
        ),
    );
    if let Some(row) = manager.get_connection().query_one_raw(statement).await? {
        let shared: uuid::Uuid = row.try_get("", "shared")?;
        return Err(DbErr::Migration(format!(
            "cannot roll back: {} id {shared} is used in more than one workspace",
            table.table
        )));
    }
    Ok(())
}

/// Marks the accounts the platform derived (system accounts, wallets, budgets) as managed by their
/// domain. They are recognised by what only `ensure_system_account` writes: a `system` key in
/// their metadata from which their id is derived.
async fn mark_managed_accounts(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let connection = manager.get_connection();
    let rows = connection
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, workspace_id, metadata FROM ledger_account WHERE metadata LIKE '%\"system\"%'",
        ))
        .await?;
    for row in rows {
        let id: uuid::Uuid = row.try_get("", "id")?;
        let workspace: uuid::Uuid = row.try_get("", "workspace_id")?;
        let metadata: String = row.try_get("", "metadata")?;
        let key = serde_json::from_str::<serde_json::Value>(&metadata)
            .ok()
            .and_then(|value| {
                value
                    .get("system")
                    .and_then(|key| key.as_str())
                    .map(str::to_owned)
            });
        let Some(key) = key else {
            continue;
        };
        if uuid::Uuid::new_v5(&workspace, key.as_bytes()) != id {
            continue;
        }
        let placeholders = match backend {
            DbBackend::Postgres => "workspace_id = $1 AND id = $2",
            _ => "workspace_id = ? AND id = ?",
        };
        connection
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE ledger_account SET flags = flags + {MANAGED_BY_DOMAIN} WHERE {placeholders} AND flags < {MANAGED_BY_DOMAIN}"
                ),
                [workspace.into(), id.into()],
            ))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on every backend: SQLite checks DDL against the schema its connection last
    /// saw, so a rebuild spread over pooled connections would trip over itself; and a failed or
    /// refused step must leave nothing half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            rekey(manager, &table, Keys::Tenant).await?;
        }
        mark_managed_accounts(manager).await?;
        manager
            .create_table(
                Table::create()
                    .table("promo_type")
                    .col(uuid("workspace_id"))
                    .col(string_len("name", 64))
                    .col(text("synonyms"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .primary_key(Index::create().col("workspace_id").col("name"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("promo_taxonomy")
                    .col(uuid("workspace_id").primary_key())
                    .col(big_integer("seeded_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            refuse_shared_ids(manager, &table).await?;
        }
        for name in ["promo_taxonomy", "promo_type"] {
            manager
                .drop_table(Table::drop().table(name).to_owned())
                .await?;
        }
        execute(
            manager,
            &format!(
                "UPDATE ledger_account SET flags = flags - {MANAGED_BY_DOMAIN} WHERE flags >= {MANAGED_BY_DOMAIN}"
            ),
        )
        .await?;
        for table in tables() {
            rekey(manager, &table, Keys::Global).await?;
        }
        Ok(())
    }
}

//! spawn_app(): the real gateway on port 0 against a fresh database — a temp SQLite file, or a
//! fresh PostgreSQL database when PROMO_TEST_DATABASE_URL is set.

use std::sync::{Arc, Once};

use gateway::Config;
use gateway::token::TokenIssuer;
use kernel::{Clock, Role, SystemClock};
use tokio::sync::oneshot;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub issuer: TokenIssuer,
    pub default_workspace: Uuid,
    pub database_url: String,
    pub channel: Channel,
    /// The running gateway's promotion module, so tests can wait on its work instead of sleeping.
    pub promotions: Arc<promotion_core::PromotionCore>,
    /// The running gateway's marketing module (its sweeper, for tests that move the clock).
    pub marketing: Arc<marketing::Marketing>,
    /// The running gateway's growth module (its sweeper).
    pub growth: Arc<growth::Growth>,
    /// The running gateway's payouts module (its sweeper).
    pub payouts: Arc<payouts::Payouts>,
    /// Where the HTTP listener (short links) serves.
    pub http_address: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A fresh database URL for one test.
pub async fn fresh_database_url(data_dir: &std::path::Path) -> String {
    kernel::db::fresh_test_database_url(data_dir, "promo.db")
        .await
        .unwrap_or_else(|error| panic!("PROMO_TEST_DATABASE_URL is set but unusable: {error}"))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(customize, Arc::new(SystemClock)).await
}

/// A built (migrated, keyed) application that is not serving yet, and its data directory.
pub async fn build_app(
    customize: impl FnOnce(&mut Config),
    clock: Arc<dyn Clock>,
) -> (gateway::App, tempfile::TempDir) {
    init_test_logging();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let database_url = fresh_database_url(data_dir.path()).await;
    let mut config = Config {
        listen: "127.0.0.1:0".to_owned(),
        database_url,
        data_dir: data_dir.path().to_path_buf(),
        jwt_secret: TEST_SECRET.to_owned(),
        ..Config::default()
    };
    customize(&mut config);
    (
        gateway::build(config, clock).await.expect("build app"),
        data_dir,
    )
}

pub async fn spawn_app_with_clock(
    customize: impl FnOnce(&mut Config),
    clock: Arc<dyn Clock>,
) -> TestApp {
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind HTTP");
    let http_address = http_listener.local_addr().expect("HTTP address");
    let (app, data_dir) = build_app(
        |config| {
            config.http_listen = http_address.to_string();
            customize(config);
        },
        clock,
    )
    .await;
    let app = app.with_http_listener(http_listener);
    let database_url = app.config.database_url();
    let default_workspace = kernel::workspace::find_by_name(app.context.db.connection(), "default")
        .await
        .expect("query")
        .expect("default workspace")
        .id;
    let issuer = app.issuer.clone();
    let promotions = app.promotions.clone();
    let marketing = app.marketing.clone();
    let growth = app.growth.clone();
    let payouts = app.payouts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(listener, async {
        let _ = shutdown_signal.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    TestApp {
        issuer,
        default_workspace,
        database_url,
        channel,
        promotions,
        marketing,
        growth,
        payouts,
        http_address,
        shutdown: Some(shutdown),
        server: Some(server),
        _data_dir: data_dir,
    }
}

impl TestApp {
    /// A valid token in the default workspace.
    pub fn token(&self, roles: &[Role]) -> String {
        self.token_for(Uuid::new_v4(), self.default_workspace, roles)
    }

    pub fn token_for(&self, subject: Uuid, workspace: Uuid, roles: &[Role]) -> String {
        self.issuer
            .issue(subject, workspace, roles, 3600)
            .expect("token")
    }

    /// Rebuilds the default workspace's selection snapshot now, as the background refresher would
    /// within half a second.
    pub async fn refresh_selection(&self) {
        self.refresh_selection_of(self.default_workspace).await;
    }

    pub async fn refresh_selection_of(&self, workspace_id: Uuid) {
        self.promotions
            .snapshots()
            .rebuild(workspace_id)
            .await
            .expect("snapshot rebuild");
    }

    /// Waits until every impression served so far is in the database.
    pub async fn flush_impressions(&self) {
        self.promotions
            .flush_impressions(std::time::Duration::from_secs(20))
            .await
            .unwrap_or_else(|pending| panic!("{pending} impressions never reached the database"));
    }

    /// Runs SQL on the gateway's database, with `?` placeholders (numbered for PostgreSQL).
    pub async fn execute(&self, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(self.database_url.as_str())
            .await
            .expect("connect");
        let backend = db.get_database_backend();
        let sql = kernel::db::placeholders_for(backend, sql);
        let result = db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .rows_affected();
        db.close().await.expect("close");
        result
    }

    /// Creates another workspace with every module and returns its id.
    pub async fn other_workspace(&self, name: &str) -> Uuid {
        use proto::admin::v1 as admin;
        let created = proto::admin::v1::workspace_service_client::WorkspaceServiceClient::new(
            self.channel.clone(),
        )
        .create_workspace(authed(
            admin::CreateWorkspaceRequest {
                request_id: request_id(),
                name: name.to_owned(),
                display_name: String::new(),
                modules: vec![],
            },
            &self.token(&[Role::PlatformAdmin]),
        ))
        .await
        .expect("create workspace")
        .into_inner();
        Uuid::parse_str(&created.id).expect("workspace id")
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Wraps a message with a bearer token.
/// Runs `promo ledger verify` on the app's database and fails on any break (conservation, hash
/// chain, balances recomputed from transfers).
pub async fn verify_ledger(app: &TestApp) {
    let connection = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .expect("connect");
    let report = credits_ledger::verify::verify(&connection)
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// The balance of a system account of the default workspace (0 before it exists).
pub async fn system_balance(
    app: &TestApp,
    account: credits_ledger::SystemAccount,
    asset: &str,
) -> i64 {
    use proto::ledger::v1 as ledger;
    let id = account.id(app.default_workspace, asset);
    match ledger::ledger_service_client::LedgerServiceClient::new(app.channel.clone())
        .get_account_balance(authed(
            ledger::GetAccountBalanceRequest {
                account_id: id.to_string(),
                ..Default::default()
            },
            &app.token(&[Role::Admin]),
        ))
        .await
    {
        Ok(balance) => balance.into_inner().balance,
        Err(status) if status.code() == tonic::Code::NotFound => 0,
        Err(status) => panic!("balance: {status:?}"),
    }
}

pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

pub fn request_id() -> String {
    Uuid::new_v4().to_string()
}

/// The ErrorInfo reason of a status (panics when absent: every error must carry one).
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
        .reason
}

/// Billing buys `amount` credits for `owner` in `workspace` (one purchase per `reference`).
pub async fn purchase(
    app: &TestApp,
    workspace: Uuid,
    owner: Uuid,
    amount: i64,
    reference: &str,
) -> Result<proto::ledger::v1::Transfer, tonic::Status> {
    proto::ledger::v1::ledger_service_client::LedgerServiceClient::new(app.channel.clone())
        .purchase_credits(authed(
            proto::ledger::v1::PurchaseCreditsRequest {
                request_id: request_id(),
                owner_id: owner.to_string(),
                amount,
                payment_reference: reference.to_owned(),
            },
            &app.token_for(Uuid::new_v4(), workspace, &[Role::Billing]),
        ))
        .await
        .map(|response| response.into_inner())
}

/// Creates a material as the principal of `token` (a factory owns what it creates).
pub async fn create_material(
    app: &TestApp,
    token: &str,
    name: &str,
    material_type: &str,
) -> proto::promotion::v1::Material {
    use proto::promotion::v1 as pb;
    pb::material_service_client::MaterialServiceClient::new(app.channel.clone())
        .create_material(authed(
            pb::CreateMaterialRequest {
                request_id: request_id(),
                material: Some(pb::Material {
                    name: name.to_owned(),
                    material_type: material_type.to_owned(),
                    tags: vec!["Premium".to_owned()],
                    ..Default::default()
                }),
            },
            token,
        ))
        .await
        .expect("material")
        .into_inner()
}

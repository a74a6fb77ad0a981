//! Building the application from configuration and serving it: the same code for the binary
//! and for the tests (`run(listener, shutdown)`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kernel::workspace::{self, DEFAULT_WORKSPACE, Module};
use kernel::{Clock, Context, Db};
use migrations::{Migrator, MigratorTrait};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;

use crate::config::Config;
use crate::directory::WorkspaceDirectory;
use crate::layer::{GatewayLayer, GatewayPolicy};
use crate::token::{SecretSource, TokenIssuer, TokenVerifier};

/// How long a stopping server waits for queued impressions to reach the database.
const IMPRESSION_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often committed domain events get their positions (what consumers wait for at most).
const EVENT_SEQUENCE_PERIOD: Duration = Duration::from_millis(200);

/// A configured application: database migrated, default workspace present, keys loaded.
pub struct App {
    pub config: Config,
    pub context: Context,
    /// Mints HS256 tokens with the configured secret (CLI and tests).
    pub issuer: TokenIssuer,
    /// Where the HS256 secret came from (`promo token` says when it had to create one).
    pub secret_source: SecretSource,
    /// The ledger with its group-commit writer running.
    pub ledger: credits_ledger::Ledger,
    /// Material promotion, with its impression writer running.
    pub promotions: Arc<promotion_core::PromotionCore>,
    /// Shop promotions, with their pricing snapshots.
    pub marketing: Arc<marketing::Marketing>,
    /// Referrals, affiliates, links and badges.
    pub growth: Arc<growth::Growth>,
    /// Advertisers' campaigns, promoters' earnings and payout runs.
    pub payouts: Arc<payouts::Payouts>,
    /// An HTTP listener handed in before `run` (tests bind port 0 first); otherwise `run` binds
    /// `http_listen` when it is set.
    http_listener: Option<TcpListener>,
    /// Every domain's workspace settings section (GetSettings/UpdateSettings compose them).
    pub settings: Arc<kernel::settings::Registry>,
    verifier: TokenVerifier,
}

/// The workspace settings section of every domain this gateway composes. A domain with settings
/// adds its section here, once.
pub fn settings_sections() -> kernel::settings::Registry {
    kernel::settings::Registry::new()
        .with::<promotion_core::settings::PromotionSettings>()
        .with::<marketing::settings::MarketingSettings>()
        .with::<growth::settings::GrowthSettings>()
        .with::<payouts::settings::PayoutsSettings>()
}

/// Connects, migrates, makes sure `default` exists and loads the JWT keys.
pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
    config.validate().map_err(anyhow::Error::msg)?;
    if config.is_sqlite() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    }
    let db = Db::connect(&config.database_url(), &config.db_options())
        .await
        .context("connecting to the database")?;
    Migrator::up(db.connection(), None)
        .await
        .context("applying migrations")?;
    ensure_default_workspace(&db, clock.as_ref()).await?;
    let (secret, secret_source) =
        crate::token::load_or_create_secret(&config.jwt_secret, &config.data_dir)
            .map_err(anyhow::Error::msg)?;
    let public_key = if config.jwt_public_key_file.is_empty() {
        None
    } else {
        let algorithm = match config.jwt_public_key_algorithm.as_str() {
            "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
            _ => jsonwebtoken::Algorithm::RS256,
        };
        Some((std::path::Path::new(&config.jwt_public_key_file), algorithm))
    };
    let verifier = TokenVerifier::new(&secret, public_key, config.jwt_max_lifetime_seconds)
        .map_err(anyhow::Error::msg)?;
    let context = Context::new(db, clock);
    let ledger = credits_ledger::Ledger::start(context.clone());
    let promotions =
        promotion_core::PromotionCore::start(context.clone(), &secret, config.selection_seed);
    let marketing = marketing::Marketing::start(context.clone());
    let short_url_base = config.short_url_base();
    let growth =
        growth::Growth::start(context.clone(), marketing.clone(), &secret, &short_url_base);
    let provider: Arc<dyn payouts::provider::PayoutProvider> =
        match config.payouts.provider.as_str() {
            "stripe" => Arc::new(payouts::stripe::StripeProvider::new(
                &config.payouts.stripe_api_base,
                &config.payouts.stripe_api_key,
            )),
            _ => Arc::new(payouts::provider::BuiltInProvider),
        };
    let payouts = payouts::Payouts::start(context.clone(), provider);
    // Selection and pricing cache their settings: they follow every change.
    let settings = Arc::new(
        settings_sections()
            .observed_by(promotions.settings_observer())
            .observed_by(marketing.settings_observer()),
    );
    Ok(App {
        config,
        context,
        issuer: TokenIssuer::new(&secret),
        secret_source,
        ledger,
        promotions,
        marketing,
        growth,
        payouts,
        http_listener: None,
        settings,
        verifier,
    })
}

/// Creates workspace `default` with every module on first start.
async fn ensure_default_workspace(db: &Db, clock: &dyn Clock) -> anyhow::Result<()> {
    if workspace::find_by_name(db.connection(), DEFAULT_WORKSPACE)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let modules = Module::ALL.into_iter().collect();
    let txn = db.begin_write().await?;
    match workspace::create(
        &*txn,
        DEFAULT_WORKSPACE,
        "Default workspace",
        &modules,
        clock.now(),
    )
    .await
    {
        Ok(row) => {
            txn.commit().await?;
            tracing::info!(workspace_id = %row.id, "created the default workspace");
            Ok(())
        }
        // Another replica starting at the same moment created it.
        Err(error) if error.code() == kernel::ErrorCode::AlreadyExists => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The services one server exposes and what reflection and health need to know about them.
pub struct Registry {
    routes: RoutesBuilder,
    descriptor_sets: Vec<&'static [u8]>,
    service_names: Vec<&'static str>,
}

impl Registry {
    fn describe<S: NamedService>(&mut self, _service: &S, descriptor_set: &'static [u8]) {
        self.service_names.push(S::NAME);
        if !self.descriptor_sets.contains(&descriptor_set) {
            self.descriptor_sets.push(descriptor_set);
        }
    }

    /// The descriptor sets of the registered services: what the access-table test walks.
    pub fn descriptor_sets(&self) -> &[&'static [u8]] {
        &self.descriptor_sets
    }

    pub fn service_names(&self) -> &[&'static str] {
        &self.service_names
    }
}

impl App {
    /// Serves the HTTP routes on `listener` (already bound) instead of binding `http_listen`.
    pub fn with_http_listener(mut self, listener: TcpListener) -> App {
        self.http_listener = Some(listener);
        self
    }

    /// Every domain service this gateway serves, with its descriptor set; `run` serves exactly
    /// these, and the access-table test walks exactly these.
    pub fn registry(&self, directory: Arc<WorkspaceDirectory>) -> Registry {
        let limits = &self.config.limits;
        let mut registry = Registry {
            routes: RoutesBuilder::default(),
            descriptor_sets: Vec::new(),
            service_names: Vec::new(),
        };

        let admin = crate::admin::grpc(
            self.context.clone(),
            directory.clone(),
            self.settings.clone(),
        )
        .max_decoding_message_size(limits.max_message_bytes);
        registry.describe(&admin, proto::admin::v1::FILE_DESCRIPTOR_SET);
        registry.routes.add_service(admin);

        let ledger = credits_ledger::service::grpc(self.ledger.clone())
            .max_decoding_message_size(limits.max_message_bytes);
        registry.describe(&ledger, proto::ledger::v1::FILE_DESCRIPTOR_SET);
        registry.routes.add_service(ledger);

        let materials = promotion_core::materials::grpc(self.promotions.clone())
            .max_decoding_message_size(limits.max_message_bytes);
        registry.describe(&materials, proto::promotion::v1::FILE_DESCRIPTOR_SET);
        registry.routes.add_service(materials);
        let promotions = promotion_core::promotions::grpc(self.promotions.clone())
            .max_decoding_message_size(limits.max_message_bytes);
        registry.describe(&promotions, proto::promotion::v1::FILE_DESCRIPTOR_SET);
        registry.routes.add_service(promotions);
        let selection = promotion_core::selection::grpc(self.promotions.clone())
            .max_decoding_message_size(limits.max_message_bytes);
        registry.describe(&selection, proto::promotion::v1::FILE_DESCRIPTOR_SET);
        registry.routes.add_service(selection);

        macro_rules! marketing_service {
            ($module:ident) => {{
                let service = marketing::$module::grpc(self.marketing.clone())
                    .max_decoding_message_size(limits.max_message_bytes);
                registry.describe(&service, proto::marketing::v1::FILE_DESCRIPTOR_SET);
                registry.routes.add_service(service);
            }};
        }
        marketing_service!(campaigns);
        marketing_service!(rules);
        marketing_service!(coupons);
        marketing_service!(redemptions);
        marketing_service!(participation);
        marketing_service!(displays);

        macro_rules! growth_service {
            ($module:ident) => {{
                let service = growth::$module::grpc(self.growth.clone())
                    .max_decoding_message_size(limits.max_message_bytes);
                registry.describe(&service, proto::growth::v1::FILE_DESCRIPTOR_SET);
                registry.routes.add_service(service);
            }};
        }
        growth_service!(referrals);
        growth_service!(affiliates);
        growth_service!(links);
        growth_service!(gamification);

        macro_rules! payouts_service {
            ($module:ident) => {{
                let service = payouts::$module::grpc(self.payouts.clone())
                    .max_decoding_message_size(limits.max_message_bytes);
                registry.describe(&service, proto::payouts::v1::FILE_DESCRIPTOR_SET);
                registry.routes.add_service(service);
            }};
        }
        payouts_service!(campaigns);
        payouts_service!(participation);
        payouts_service!(performance);
        payouts_service!(wallets);

        registry
    }

    /// Serves on `listener` until `shutdown` resolves, then drains in-flight calls.
    pub async fn run(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let limits = &self.config.limits;
        let directory = Arc::new(WorkspaceDirectory::new(
            self.context.db.clone(),
            Duration::from_secs(2),
        ));
        let policy = Arc::new(GatewayPolicy::new(
            self.verifier.clone(),
            directory.clone(),
            limits,
        ));
        let mut registry = self.registry(directory.clone());

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        for name in &registry.service_names {
            health_reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        health_reporter
            .set_service_status("", ServingStatus::Serving)
            .await;

        let mut reflection_v1 = tonic_reflection::server::Builder::configure();
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure();
        for descriptor_set in registry.descriptor_sets.iter().copied().chain([
            proto::ERROR_DETAILS_FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            // Each builder adds only its own version's descriptor; both versions are served.
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]) {
            reflection_v1 = reflection_v1.register_encoded_file_descriptor_set(descriptor_set);
            reflection_v1alpha =
                reflection_v1alpha.register_encoded_file_descriptor_set(descriptor_set);
        }
        registry.routes.add_service(health_service);
        registry.routes.add_service(reflection_v1.build_v1()?);
        registry
            .routes
            .add_service(reflection_v1alpha.build_v1alpha()?);

        let pruner = tokio::spawn(crate::layer::prune_rate_limiter(policy.clone()));
        let expiry = tokio::spawn(self.ledger.clone().run_expiry(Duration::from_secs(1)));
        let promotion_tasks = tokio::spawn(self.promotions.clone().run_background());
        let marketing_tasks = tokio::spawn(self.marketing.clone().run_background());
        let growth_tasks = tokio::spawn(self.growth.clone().run_background());
        let payouts_tasks = tokio::spawn(self.payouts.clone().run_background());
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_listener = match self.http_listener.take() {
            Some(listener) => Some(listener),
            None if !self.config.http_listen.is_empty() => Some(
                TcpListener::bind(&self.config.http_listen)
                    .await
                    .with_context(|| format!("binding http_listen {}", self.config.http_listen))?,
            ),
            None => None,
        };
        let http = http_listener.map(|http_listener| {
            tracing::info!(address = ?http_listener.local_addr().ok(), "serving HTTP (short links, payout webhooks)");
            let limit = kernel::settings::RateLimit {
                per_second: self.config.limits.http_rate_limit_per_second,
                burst: self.config.limits.http_rate_limit_burst,
            };
            tokio::spawn(crate::http::serve(
                http_listener,
                crate::http::Domains {
                    growth: self.growth.clone(),
                    payouts: self.payouts.clone(),
                    payout_webhook_secrets: Arc::new(self.config.payouts.webhook_secrets()),
                },
                directory.clone(),
                limit,
                async {
                    let _ = http_stopped.await;
                },
            ))
        });
        let sweeper = tokio::spawn(sweep_idempotency(
            self.context.clone(),
            self.config.idempotency_retention_hours,
        ));
        let events = tokio::spawn(kernel::events::run_sequencer(
            self.context.clone(),
            EVENT_SEQUENCE_PERIOD,
            Duration::from_secs(self.config.event_retention_hours.saturating_mul(3600)),
        ));
        let address = listener.local_addr()?;
        tracing::info!(%address, services = ?registry.service_names, "serving");

        let drained = tonic::transport::Server::builder()
            .layer(GatewayLayer::new(policy))
            .add_routes(registry.routes.routes())
            .serve_with_incoming_shutdown(incoming_without_delay(listener), async {
                shutdown.await;
                tracing::info!("shutting down: draining in-flight calls");
                for name in &registry.service_names {
                    health_reporter
                        .set_service_status(*name, ServingStatus::NotServing)
                        .await;
                }
            })
            .await;
        pruner.abort();
        expiry.abort();
        promotion_tasks.abort();
        marketing_tasks.abort();
        growth_tasks.abort();
        payouts_tasks.abort();
        let _ = http_stop.send(());
        if let Some(http) = http {
            match http.await {
                Ok(Err(error)) => tracing::error!(%error, "the HTTP listener failed"),
                Err(error) => tracing::error!(%error, "the HTTP listener panicked"),
                Ok(Ok(())) => {}
            }
        }
        sweeper.abort();
        events.abort();
        // Every call has drained: what selection queued must reach the database before we exit.
        match self
            .promotions
            .flush_impressions(IMPRESSION_FLUSH_TIMEOUT)
            .await
        {
            Ok(()) => tracing::info!("impressions flushed"),
            Err(pending) => {
                tracing::error!(pending, "impressions still unwritten at shutdown")
            }
        }
        drained.context("serving gRPC")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The accepted connections with Nagle's algorithm off: a response is written as several frames
/// (headers, data, trailers), and holding the last one back until the client's delayed ACK would
/// add tens of milliseconds to every call whose answer does not fit one segment.
fn incoming_without_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not turn Nagle's algorithm off");
        }
        Ok(stream)
    })
}

/// Deletes idempotency records past their retention, every few minutes; a failed sweep is logged,
/// counted and tried again next time.
async fn sweep_idempotency(context: Context, retention_hours: u64) {
    let mut interval = tokio::time::interval(Duration::from_secs(300));
    loop {
        interval.tick().await;
        let cutoff = context.clock.now() - chrono::Duration::hours(retention_hours as i64);
        match kernel::idempotency::sweep(context.db.connection(), cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "swept idempotency records"),
            Err(error) => {
                metrics::counter!("promo_background_failures_total", "job" => "idempotency_sweeper")
                    .increment(1);
                tracing::warn!(%error, "idempotency sweep failed; retrying next round");
            }
        }
    }
}

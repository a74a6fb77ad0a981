//! Layered configuration: defaults → optional `promo.toml` → `PROMO_*` environment (`__` nests)
//! → command-line flags, then one [`Config::validate`] that rejects nonsense at start-up.
//!
//! An unknown key in a config file stops the start (it is surely a typo). An unknown `PROMO_*`
//! environment variable is only warned about and ignored: Kubernetes injects `PROMO_PORT`,
//! `PROMO_SERVICE_HOST` and the like into every pod of a namespace with a Service named `promo`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything the gateway can be told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    pub listen: String,
    /// `sqlite://…` or `postgres://…`; empty means SQLite in `data_dir`.
    pub database_url: String,
    /// Where the embedded database and the generated JWT secret live.
    pub data_dir: PathBuf,
    /// HS256 secret; generated once into `data_dir` when empty and the database is SQLite.
    pub jwt_secret: String,
    /// PEM public key of an external identity provider (RS256 or EdDSA); enables that algorithm.
    pub jwt_public_key_file: String,
    /// `RS256` or `EdDSA`, for `jwt_public_key_file`.
    pub jwt_public_key_algorithm: String,
    /// Prometheus `/metrics` listen address; empty disables the exporter.
    pub metrics_listen: String,
    /// The small HTTP listener beside gRPC (short links `GET /l/{code}`); empty disables it.
    pub http_listen: String,
    /// The public address short links are built on (`https://go.shop.example`); empty means
    /// `http://{http_listen}`.
    pub http_public_url: String,
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub log_format: String,
    pub limits: Limits,
    pub database: DatabaseConfig,
    pub payouts: PayoutsConfig,
    /// How long idempotency records are kept, in hours.
    pub idempotency_retention_hours: u64,
    /// How long domain events are kept once every consumer has them, in hours.
    pub event_retention_hours: u64,
    /// Varies the selection random number generator (tests and reproductions only). Selection is
    /// random per request either way, derived from the request id and the server key.
    pub selection_seed: Option<u64>,
    /// Longest lifetime a bearer token may have, in seconds (`exp - iat`); `promo token --ttl` is
    /// held to it too.
    pub jwt_max_lifetime_seconds: u64,
    /// What loading noticed but did not refuse (unknown `PROMO_*` variables), for the log.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request message the server decodes.
    pub max_message_bytes: usize,
    /// Deadline of every RPC (a shorter client `grpc-timeout` wins).
    pub request_timeout_ms: u64,
    /// Requests in flight across all connections before new ones are shed with UNAVAILABLE.
    pub max_concurrent_requests: usize,
    /// Sustained requests per second per principal of a human role (admin, ops, factory,
    /// advertiser, promoter, customer, platform-admin).
    pub rate_limit_per_second: u32,
    /// Burst above the sustained rate per principal of a human role.
    pub rate_limit_burst: u32,
    /// Sustained requests per second per principal of a service role (generator, billing,
    /// storefront): machine traffic, limited only against runaways.
    pub service_rate_limit_per_second: u32,
    /// Burst above the sustained rate per principal of a service role.
    pub service_rate_limit_burst: u32,
    /// Sustained requests per second per client address on the HTTP listener (short links).
    pub http_rate_limit_per_second: u32,
    /// Burst above the sustained rate per client address on the HTTP listener.
    pub http_rate_limit_burst: u32,
    /// Limits of single roles by name, replacing the two defaults above for that role
    /// (`[limits.roles.admin] per_second = 50, burst = 100`). A workspace's settings may replace
    /// them again for that workspace.
    pub roles: BTreeMap<String, RoleLimit>,
}

/// A rate limit of one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// How payouts reach promoters and how provider events are authenticated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayoutsConfig {
    /// `builtin` (the embedded default: settles at once, moves no real money) or `stripe`.
    pub provider: String,
    /// The provider's webhook signing secret (`whsec_…`); several separated by commas during a
    /// rotation. Empty: `POST /webhooks/payouts` answers 404.
    pub webhook_secret: String,
    /// Stripe's API address (tests point it at a local receiver).
    pub stripe_api_base: String,
    /// The platform's Stripe secret key (`sk_…`), required with `provider = "stripe"`.
    pub stripe_api_key: String,
}

impl Default for PayoutsConfig {
    fn default() -> PayoutsConfig {
        PayoutsConfig {
            provider: "builtin".to_owned(),
            webhook_secret: String::new(),
            stripe_api_base: "https://api.stripe.com".to_owned(),
            stripe_api_key: String::new(),
        }
    }
}

impl PayoutsConfig {
    /// The configured webhook secrets, trimmed, empty ones dropped.
    pub fn webhook_secrets(&self) -> Vec<String> {
        self.webhook_secret
            .split(',')
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        match self.provider.as_str() {
            "builtin" => Ok(()),
            "stripe" if self.stripe_api_key.is_empty() => Err(
                "payouts.stripe_api_key: PROMO_PAYOUTS__STRIPE_API_KEY is required with payouts.provider = \"stripe\"".to_owned(),
            ),
            "stripe" if !self.stripe_api_base.starts_with("https://") && !self.stripe_api_base.starts_with("http://") => Err(format!(
                "payouts.stripe_api_base: {:?} must start with https://",
                self.stripe_api_base
            )),
            "stripe" => Ok(()),
            other => Err(format!(
                "payouts.provider: {other:?} must be builtin or stripe"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:50051".to_owned(),
            database_url: String::new(),
            data_dir: PathBuf::from("data"),
            jwt_secret: String::new(),
            jwt_public_key_file: String::new(),
            jwt_public_key_algorithm: "RS256".to_owned(),
            metrics_listen: String::new(),
            http_listen: String::new(),
            http_public_url: String::new(),
            log_format: "auto".to_owned(),
            limits: Limits::default(),
            database: DatabaseConfig::default(),
            payouts: PayoutsConfig::default(),
            idempotency_retention_hours: 72,
            event_retention_hours: 168,
            selection_seed: None,
            jwt_max_lifetime_seconds: 30 * 86_400,
            warnings: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1024,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            service_rate_limit_per_second: 100_000,
            service_rate_limit_burst: 200_000,
            http_rate_limit_per_second: 100,
            http_rate_limit_burst: 200,
            roles: BTreeMap::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> DatabaseConfig {
        DatabaseConfig {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
}

impl Config {
    /// Reads every layer. `config_file` defaults to `promo.toml` when that file exists.
    pub fn load(config_file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match config_file {
            Some(path) if !path.exists() => {
                return Err(format!("config file {} does not exist", path.display()));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("promo.toml").exists() => {
                figment = figment.merge(Toml::file("promo.toml"))
            }
            None => {}
        }
        let known = known_keys();
        let mut warnings = Vec::new();
        for (name, _) in std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .filter(|(name, _)| name.starts_with("PROMO_"))
        {
            let key = env_key(&name);
            if !key.starts_with("test_") && !is_known(&known, &key) {
                warnings.push(format!(
                    "ignoring environment variable {name}: it names no setting (Kubernetes service links inject PROMO_PORT and the like; set enableServiceLinks: false)"
                ));
            }
        }
        let mut config: Config = figment
            .merge(
                Env::prefixed("PROMO_")
                    .split("__")
                    .filter(move |key| is_known(&known, key.as_str())),
            )
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|error| format!("invalid configuration: {error}"))?;
        config.validate()?;
        config.warnings = warnings;
        Ok(config)
    }

    /// Where short links point: the configured public URL, or the HTTP listener itself.
    pub fn short_url_base(&self) -> String {
        if !self.http_public_url.is_empty() {
            self.http_public_url.clone()
        } else if !self.http_listen.is_empty() {
            format!("http://{}", self.http_listen)
        } else {
            String::new()
        }
    }

    /// Rejects values the server could not run with, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.listen.parse::<SocketAddr>().map_err(|_| {
            format!(
                "listen: {:?} is not a socket address like 127.0.0.1:50051",
                self.listen
            )
        })?;
        if !self.metrics_listen.is_empty() {
            self.metrics_listen.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "metrics_listen: {:?} is not a socket address like 127.0.0.1:9090",
                    self.metrics_listen
                )
            })?;
        }
        if !self.http_listen.is_empty() {
            self.http_listen.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "http_listen: {:?} is not a socket address like 127.0.0.1:8080",
                    self.http_listen
                )
            })?;
        }
        let public_url = &self.http_public_url;
        let web = public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url.is_empty() && !web {
            return Err(format!(
                "http_public_url: {:?} must start with http:// or https://",
                self.http_public_url
            ));
        }
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "database_url: {url:?} must start with sqlite: or postgres://"
            ));
        }
        if !self.is_sqlite() && self.jwt_secret.is_empty() && self.jwt_public_key_file.is_empty() {
            return Err(
                "jwt_secret: PROMO_JWT_SECRET is required with PostgreSQL (replicas must share one key)".to_owned()
            );
        }
        if !self.jwt_secret.is_empty() && self.jwt_secret.len() < 32 {
            return Err("jwt_secret: must be at least 32 bytes".to_owned());
        }
        if !self.jwt_public_key_file.is_empty()
            && !matches!(self.jwt_public_key_algorithm.as_str(), "RS256" | "EdDSA")
        {
            return Err(format!(
                "jwt_public_key_algorithm: {:?} must be RS256 or EdDSA",
                self.jwt_public_key_algorithm
            ));
        }
        self.payouts.validate()?;
        if !matches!(self.log_format.as_str(), "auto" | "json" | "pretty") {
            return Err(format!(
                "log_format: {:?} must be auto, json or pretty",
                self.log_format
            ));
        }
        let limits = &self.limits;
        check_range(
            "limits.max_message_bytes",
            limits.max_message_bytes as u64,
            1024,
            256 * 1024 * 1024,
        )?;
        check_range(
            "limits.request_timeout_ms",
            limits.request_timeout_ms,
            10,
            3_600_000,
        )?;
        check_range(
            "limits.max_concurrent_requests",
            limits.max_concurrent_requests as u64,
            1,
            1_000_000,
        )?;
        check_range(
            "limits.rate_limit_per_second",
            u64::from(limits.rate_limit_per_second),
            1,
            10_000_000,
        )?;
        check_range(
            "limits.rate_limit_burst",
            u64::from(limits.rate_limit_burst),
            u64::from(limits.rate_limit_per_second.max(1)),
            100_000_000,
        )?;
        check_range(
            "limits.service_rate_limit_per_second",
            u64::from(limits.service_rate_limit_per_second),
            1,
            10_000_000,
        )?;
        check_range(
            "limits.service_rate_limit_burst",
            u64::from(limits.service_rate_limit_burst),
            u64::from(limits.service_rate_limit_per_second.max(1)),
            100_000_000,
        )?;
        check_range(
            "limits.http_rate_limit_per_second",
            u64::from(limits.http_rate_limit_per_second),
            1,
            10_000_000,
        )?;
        check_range(
            "limits.http_rate_limit_burst",
            u64::from(limits.http_rate_limit_burst),
            u64::from(limits.http_rate_limit_per_second.max(1)),
            100_000_000,
        )?;
        for (role, limit) in &limits.roles {
            role.parse::<kernel::Role>()
                .map_err(|message| format!("limits.roles.{role}: {message}"))?;
            let as_setting = kernel::settings::RateLimit {
                per_second: limit.per_second,
                burst: limit.burst,
            };
            if let Some(problem) = as_setting.problem() {
                return Err(format!("limits.roles.{role}: {problem}"));
            }
        }
        check_range(
            "jwt_max_lifetime_seconds",
            self.jwt_max_lifetime_seconds,
            60,
            366 * 86_400,
        )?;
        check_range(
            "database.max_connections",
            u64::from(self.database.max_connections),
            2,
            10_000,
        )?;
        check_range(
            "database.acquire_timeout_ms",
            self.database.acquire_timeout_ms,
            10,
            600_000,
        )?;
        check_range(
            "database.statement_timeout_ms",
            self.database.statement_timeout_ms,
            10,
            3_600_000,
        )?;
        check_range(
            "idempotency_retention_hours",
            self.idempotency_retention_hours,
            1,
            24 * 365,
        )?;
        Ok(())
    }

    /// The database URL, defaulting to SQLite in `data_dir`.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("promo.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|_| format!("listen: {:?} is not a socket address", self.listen))
    }

    pub fn db_options(&self) -> kernel::DbOptions {
        kernel::DbOptions {
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.database.statement_timeout_ms),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Settings whose keys are free (maps): anything below them is known.
const MAP_KEYS: &[&str] = &["limits.roles"];

/// Every setting's dotted key (`limits.rate_limit_per_second`), from the defaults.
fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
        let serde_json::Value::Object(fields) = value else {
            return;
        };
        for (name, field) in fields {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            walk(&key, field, keys);
            keys.push(key);
        }
    }
    let mut keys = Vec::new();
    if let Ok(defaults) = serde_json::to_value(Config::default()) {
        walk("", &defaults, &mut keys);
    }
    keys
}

/// The dotted key an environment variable sets: `PROMO_LIMITS__RATE_LIMIT_BURST` →
/// `limits.rate_limit_burst`.
fn env_key(name: &str) -> String {
    name.trim_start_matches("PROMO_")
        .to_ascii_lowercase()
        .replace("__", ".")
}

fn is_known(known: &[String], key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    known.contains(&key)
        || MAP_KEYS
            .iter()
            .any(|map| key.starts_with(&format!("{map}.")))
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name}: {value} is outside {min}..={max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_point_at_embedded_sqlite() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.database_url(), "sqlite://data/promo.db");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn layers_apply_in_order_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "listen = \"127.0.0.1:1\"\nmetrics_listen = \"127.0.0.1:2\"\n[limits]\nrate_limit_per_second = 7\nrate_limit_burst = 7\n")?;
            jail.set_env("PROMO_METRICS_LISTEN", "127.0.0.1:3");
            jail.set_env("PROMO_LIMITS__RATE_LIMIT_BURST", "9");
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:4".to_owned()),
                ..FlagOverrides::default()
            };
            let config = Config::load(Some(Path::new("custom.toml")), &flags)
                .map_err(figment::Error::from)?;
            assert_eq!(config.listen, "127.0.0.1:4");
            assert_eq!(config.metrics_listen, "127.0.0.1:3");
            assert_eq!(config.limits.rate_limit_per_second, 7);
            assert_eq!(config.limits.rate_limit_burst, 9);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn unknown_environment_variables_are_warned_about_and_ignored_but_unknown_file_keys_fail() {
        figment::Jail::expect_with(|jail| {
            // What the kubelet injects for a Service named `promo`.
            jail.set_env("PROMO_PORT", "tcp://10.0.0.1:50051");
            jail.set_env("PROMO_SERVICE_HOST", "10.0.0.1");
            jail.set_env("PROMO_PORT_50051_TCP_ADDR", "10.0.0.1");
            jail.set_env("PROMO_LIMITS__RATE_LIMIT_BURST", "3000");
            jail.set_env("PROMO_LIMITS__ROLES__ADMIN__PER_SECOND", "7");
            jail.set_env("PROMO_LIMITS__ROLES__ADMIN__BURST", "9");
            let config =
                Config::load(None, &FlagOverrides::default()).map_err(figment::Error::from)?;
            assert_eq!(
                config.limits.rate_limit_burst, 3000,
                "known keys still apply"
            );
            assert_eq!(
                config.limits.roles.get("admin"),
                Some(&RoleLimit {
                    per_second: 7,
                    burst: 9
                })
            );
            assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
            assert!(config.warnings.iter().any(|w| w.contains("PROMO_PORT ")));
            jail.create_file("typo.toml", "listen = \"127.0.0.1:1\"\nlisen = \"x\"\n")?;
            let error = Config::load(Some(Path::new("typo.toml")), &FlagOverrides::default())
                .expect_err("unknown file key");
            assert!(error.contains("lisen"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn nonsense_is_rejected_with_the_setting_named() {
        let mut config = Config {
            listen: "nowhere".to_owned(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .expect_err("bad listen")
                .starts_with("listen:")
        );
        config = Config {
            database_url: "postgres://localhost/x".to_owned(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .expect_err("no secret")
                .starts_with("jwt_secret:")
        );
        config.limits.max_message_bytes = 1;
        config.jwt_secret = "x".repeat(32);
        assert!(
            config
                .validate()
                .expect_err("tiny limit")
                .starts_with("limits.max_message_bytes:")
        );
        config = Config::default();
        config.limits.rate_limit_burst = 1;
        assert!(
            config
                .validate()
                .expect_err("burst below rate")
                .starts_with("limits.rate_limit_burst:")
        );
    }
}

//! Logs (JSON, or pretty on a terminal), OTLP trace export and the Prometheus exporter.

use std::io::IsTerminal;
use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;

/// Flushes pending spans when dropped.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown failed: {error}");
        }
    }
}

/// Latency buckets in seconds, from 100 µs to 10 s.
const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Installs the subscriber; OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init_tracing(config: &Config) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log_format.as_str() {
        "json" => true,
        "pretty" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let (otel_layer, tracer_provider) = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("promo")
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("promo"));
        (Some(layer), Some(provider))
    } else {
        (None, None)
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { tracer_provider })
}

/// The Prometheus builder with this platform's histogram buckets.
pub fn prometheus_builder() -> anyhow::Result<PrometheusBuilder> {
    Ok(PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full("promo_rpc_duration_seconds".to_owned()),
        RPC_BUCKETS,
    )?)
}

/// Serves `/metrics` on `address` (must run inside the tokio runtime).
pub fn init_metrics(address: SocketAddr) -> anyhow::Result<()> {
    prometheus_builder()?
        .with_http_listener(address)
        .install()?;
    tracing::info!(%address, "prometheus metrics on /metrics");
    Ok(())
}

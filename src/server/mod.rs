//! `acestep serve`: an HTTP server (axum) over the [`crate::jobs::JobManager`] speaking three async-task API
//! dialects, so that a client written for any of them works by changing its base URL and token:
//!
//! - [`async_task`]: the async task API (`POST /v1/async/music/generations`,
//!   `GET /api/v1/task/{id}`, `POST /api/v1/task/{id}/cancel`, `GET /v1/task/{id}/status`,
//!   `GET /v1/task/{id}`, `GET /v1/tasks/available-quota`);
//! - [`producer`]: the producer tasks API (`POST /producer/audios`, `POST /producer/tasks`);
//! - [`acestep_api`]: the ACE-Step API server (`POST /v1/music/generate`, `GET /v1/jobs/{id}`).
//!
//! Generated audio is served at `GET /files/{job id}/{file id}` (with HTTP range support) until
//! the job's retention expires (then 410). With API keys configured every API endpoint needs
//! `Authorization: Bearer <key>` and the key is the quota owner; file URLs are capability links
//! (two random UUIDs), downloadable without the header like the hosted services' signed links.
//!
//! ```no_run
//! use std::sync::Arc;
//! use acestep::jobs::{JobManager, ManagerConfig, PipelineGenerator};
//! use acestep::server::{AppState, ServerConfig};
//! # async fn f(generator: PipelineGenerator) -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = Arc::new(JobManager::open(ManagerConfig::new("/var/lib/acestep"), Arc::new(generator))?);
//! let config = ServerConfig { api_keys: vec!["secret".into()], ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await?;
//! acestep::server::serve(listener, AppState::new(jobs, config), std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod dialects;
mod downloads;
mod error;
pub mod events;
mod form;
pub mod openapi;
mod state;

pub use dialects::{acestep_api, async_task, producer};
pub use error::{Answer, DialectError};
pub(crate) use error::{Class, Dialect};
pub use form::BodyLimits;
pub use state::{owner_of_key, AppState, RateLimit, ServerConfig};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::Error;
use crate::jobs::Result;

/// Unix seconds as RFC 3339 (`2025-12-30T18:36:00.994Z`).
pub(crate) fn iso8601(unix: f64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Builds the router of all three dialects and the file downloads.
pub fn router(state: Arc<AppState>) -> Router {
    let upload_limit = state.config.limits.max_upload_bytes;
    let body_timeout = state.config.body_timeout;
    Router::new()
        .route("/v1/async/music/generations", post(async_task::submit))
        .route("/api/v1/task/{id}", get(async_task::query))
        .route("/api/v1/task/{id}/cancel", post(async_task::cancel))
        .route("/api/v1/task/{id}/events", get(events::async_task))
        .route("/v1/task/{id}/status", get(async_task::status))
        .route("/v1/task/{id}", get(async_task::record))
        .route("/v1/tasks/available-quota", get(async_task::quota))
        .route("/producer/audios", post(producer::audios))
        .route("/producer/tasks", post(producer::tasks))
        .route("/producer/tasks/{id}/events", get(events::producer))
        .route("/v1/music/generate", post(acestep_api::generate))
        .route("/v1/jobs/{id}", get(acestep_api::job))
        .route("/v1/jobs/{id}/events", get(events::acestep_api))
        .route("/files/{job}/{file}", get(downloads::download))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::dialect_errors,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        // Multipart bodies are bounded by this (JSON and form bodies by their own, smaller limit).
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text: queue depth, running jobs, jobs by outcome, step and
/// generation seconds, requests and their latency per dialect.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    // The store is read on the blocking pool (PostgreSQL's client must not run on an async thread).
    let m = match state.blocking(|s| Ok(s.jobs.metrics())).await {
        Ok(m) => m,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let mut t = String::new();
    let gauge = |t: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(t, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    gauge(
        &mut t,
        "acestep_queue_depth",
        "Jobs waiting for a worker.",
        "gauge",
    );
    let _ = writeln!(t, "acestep_queue_depth {}", m.queued);
    gauge(
        &mut t,
        "acestep_jobs_running",
        "Jobs a worker is generating.",
        "gauge",
    );
    let _ = writeln!(t, "acestep_jobs_running {}", m.running);
    gauge(
        &mut t,
        "acestep_jobs_submitted_total",
        "Jobs accepted since start.",
        "counter",
    );
    let _ = writeln!(t, "acestep_jobs_submitted_total {}", m.submitted);
    gauge(
        &mut t,
        "acestep_jobs_finished_total",
        "Jobs ended since start, by outcome.",
        "counter",
    );
    for (s, n) in [
        ("succeeded", m.succeeded),
        ("failed", m.failed),
        ("cancelled", m.cancelled),
    ] {
        let _ = writeln!(t, "acestep_jobs_finished_total{{state=\"{s}\"}} {n}");
    }
    let hist = |t: &mut String, name: &str, labels: &str, h: &crate::jobs::Histogram| {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in h.bounds.iter().zip(&h.counts) {
            let _ = writeln!(t, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(t, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(t, "{name}_sum{braces} {}", h.sum);
        let _ = writeln!(t, "{name}_count{braces} {}", h.count);
    };
    gauge(
        &mut t,
        "acestep_step_seconds",
        "Seconds per diffusion step (per unit of step cost).",
        "histogram",
    );
    hist(&mut t, "acestep_step_seconds", "", &m.step_seconds);
    gauge(
        &mut t,
        "acestep_generation_seconds",
        "Seconds per succeeded generation.",
        "histogram",
    );
    hist(
        &mut t,
        "acestep_generation_seconds",
        "",
        &m.generation_seconds,
    );
    let reqs = state.requests.lock().unwrap_or_else(|e| e.into_inner());
    gauge(
        &mut t,
        "acestep_http_requests_total",
        "Requests answered, by dialect and status.",
        "counter",
    );
    for (d, s) in reqs.iter() {
        for (code, n) in &s.by_status {
            let _ = writeln!(
                t,
                "acestep_http_requests_total{{dialect=\"{d}\",status=\"{code}\"}} {n}"
            );
        }
    }
    gauge(
        &mut t,
        "acestep_http_request_seconds",
        "Request latency by dialect.",
        "histogram",
    );
    for (d, s) in reqs.iter() {
        hist(
            &mut t,
            "acestep_http_request_seconds",
            &format!("dialect=\"{d}\""),
            &s.seconds,
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        t,
    )
        .into_response()
}

/// Serves `state` on `listener` until `shutdown` resolves: each connection must send its
/// headers within `header_timeout` and its body within `body_timeout`; on shutdown, requests in
/// flight get `shutdown_grace` to finish before their connections are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("listening socket", e))?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let _ = state
        .listen_url
        .set(format!("http://{host}:{}", addr.port()));
    let header_timeout = state.config.header_timeout;
    let grace = state.config.shutdown_grace;
    let app = router(state.clone());
    // HTTP/1.1 only: its header timer starts as soon as a connection is accepted, so an idle
    // or half-open connection is closed after `header_timeout` too.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    state.stopping.send_replace(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?}: their connections are closed");
    }
    Ok(())
}

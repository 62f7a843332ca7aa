//! `acestep serve`: an HTTP server (axum) over the [`JobManager`] speaking three async-task API
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
//! # async fn f(generator: PipelineGenerator) -> acestep::Result<()> {
//! let jobs = Arc::new(JobManager::open(ManagerConfig::new("/var/lib/acestep"), Arc::new(generator))?);
//! let config = ServerConfig { api_keys: vec!["secret".into()], ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await.map_err(|e| acestep::Error::io("127.0.0.1:8001", e))?;
//! acestep::server::serve(listener, AppState::new(jobs, config), std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod acestep_api;
pub mod async_task;
pub mod events;
mod form;
pub mod openapi;
pub mod producer;

pub(crate) use crate::error::short;
pub use form::BodyLimits;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceExt;

use crate::error::Error;
use crate::jobs::{JobError, Result};
use crate::jobs::{JobManager, JobRecord};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted API keys; empty: no authentication (every caller is owner `local`).
    pub api_keys: Vec<String>,
    /// How long `POST /producer/audios` without `callback_url` / `async` waits for the result
    /// before answering with the running task (default 600 s).
    pub sync_timeout: Duration,
    /// The base URL put in links (`https://music.example.com`); None: taken from the request's
    /// `Host` header as `http://host`.
    pub public_url: Option<String>,
    /// The model name reported in records.
    pub model_name: String,
    /// Accept server-side paths for source / reference audio and LoRA (the ACE-Step API's
    /// `src_audio_path`, `reference_audio_path`); off: only uploads and hub LoRA ids.
    pub allow_local_paths: bool,
    /// Request body size limits (413 beyond them).
    pub limits: BodyLimits,
    /// How long a client may take to send a request's headers (default 10 s).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (default 60 s).
    pub body_timeout: Duration,
    /// How long a stop waits for requests in flight before closing their connections
    /// (default 10 s).
    pub shutdown_grace: Duration,
    /// How often an event stream without events gets a keep-alive comment (default 15 s).
    pub sse_keep_alive: Duration,
    /// Submissions per API key (None: no limit beyond the quota and the queue bound); beyond
    /// it a submit is 429 with `Retry-After`.
    pub rate_limit: Option<RateLimit>,
}

/// A rate of submissions per API key: `count` per `period`, in bursts of up to `count`
/// (a token bucket refilled evenly). Written `30/min`, `5/s`, `1000/h`, `10/90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Submissions per period (at least 1).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.period.as_secs() {
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/min", self.count),
            3600 => write!(f, "{}/h", self.count),
            s => write!(f, "{}/{s}s", self.count),
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = Error;

    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        let bad = || {
            Error::InvalidArgument {
            name: "rate_limit",
            value: short(s),
            expected: "COUNT/PERIOD with COUNT >= 1 and PERIOD s, min, h or <seconds>s                        (e.g. 30/min)"
                .into(),
        }
        };
        let (count, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match period.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            p => {
                let secs: u64 = p
                    .strip_suffix('s')
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                Duration::from_secs(secs)
            }
        };
        if count == 0 || period.is_zero() {
            return Err(bad());
        }
        Ok(Self { count, period })
    }
}

/// Submissions per owner, limited by [`ServerConfig::rate_limit`].
type Limiter = governor::DefaultKeyedRateLimiter<String>;

fn limiter(rate: RateLimit) -> Limiter {
    let burst = std::num::NonZeroU32::new(rate.count).unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::with_period(rate.period / rate.count.max(1))
        .unwrap_or_else(|| governor::Quota::per_second(burst))
        .allow_burst(burst);
    governor::RateLimiter::keyed(quota)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            sync_timeout: Duration::from_secs(600),
            public_url: None,
            model_name: "ACE-Step-v1-3.5B".into(),
            allow_local_paths: false,
            limits: BodyLimits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            sse_keep_alive: Duration::from_secs(15),
            rate_limit: None,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    /// The job manager.
    pub jobs: Arc<JobManager>,
    /// The settings.
    pub config: ServerConfig,
    uploads: PathBuf,
    /// The base URL of the listening socket (set by [`serve`]), for links when no
    /// `public_url` is configured.
    listen_url: std::sync::OnceLock<String>,
    /// Set when [`serve`] begins its graceful stop: event streams end at once instead of holding
    /// the stop for its whole grace.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Output files whose checksum was verified, with the size and modification time they had
    /// then (a file is read through again only when these change).
    verified: std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::SystemTime)>>,
    /// Requests served, per dialect: counts per status and a latency histogram.
    requests: std::sync::Mutex<std::collections::BTreeMap<&'static str, RequestStats>>,
    /// Submissions per owner.
    limiter: Option<Limiter>,
}

/// Requests of one dialect.
#[derive(Debug)]
struct RequestStats {
    by_status: std::collections::BTreeMap<u16, u64>,
    seconds: crate::jobs::Histogram,
}

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const REQUEST_SECONDS_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

impl AppState {
    /// The state of a server over `jobs`.
    pub fn new(jobs: Arc<JobManager>, config: ServerConfig) -> Arc<Self> {
        let uploads = jobs.config().data_dir.join("uploads");
        Arc::new(Self {
            jobs,
            uploads,
            listen_url: std::sync::OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            verified: Default::default(),
            requests: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            limiter: config.rate_limit.map(limiter),
            config,
        })
    }

    /// `text` without the data directory's absolute path (server paths never leave the server).
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.jobs.scrub(text)
    }

    /// The quota owner of a request: [`owner_of_key`] of its API key, `local` when no keys are configured; None when
    /// the key is missing or wrong.
    pub(crate) fn owner(&self, headers: &HeaderMap) -> Option<String> {
        if self.config.api_keys.is_empty() {
            return Some("local".into());
        }
        let value = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .trim();
        // `Bearer <key>`, the scheme in any case; a bare key is refused.
        let (scheme, key) = value.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let key = key.trim();
        // The owner is a digest of the key, so that records and callbacks never carry the key.
        self.config
            .api_keys
            .iter()
            .find(|k| k.as_str() == key)
            .map(|k| owner_of_key(k))
    }

    /// The job `id` if `owner` may see it.
    pub(crate) fn job_of(&self, id: &str, owner: &str) -> Result<JobRecord> {
        let rec = self.jobs.poll(id)?;
        if !self.config.api_keys.is_empty() && rec.owner != owner {
            return Err(JobError::JobNotFound { id: id.to_string() });
        }
        Ok(rec)
    }

    /// The owner of an authorised request, or `D`'s 401.
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) fn authorize<D: Dialect>(
        &self,
        headers: &HeaderMap,
    ) -> std::result::Result<String, Response> {
        self.owner(headers).ok_or_else(D::unauthorized)
    }

    /// A receiver that turns true when the server begins to stop.
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Runs `f` (job store reads and writes: SQLite) on the blocking pool, so that it never
    /// holds an async thread.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(|e| Error::Internal {
                message: format!("a blocking task failed: {e}"),
            })?
    }

    /// Job `id` for an authorised request (read on the blocking pool), or `D`'s error.
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn job_for<D: Dialect>(
        self: &Arc<Self>,
        headers: &HeaderMap,
        id: &str,
    ) -> std::result::Result<JobRecord, Response> {
        let owner = self.authorize::<D>(headers)?;
        let id = id.to_string();
        self.blocking(move |s| s.job_of(&id, &owner))
            .await
            .map_err(|e| D::from_error(&e))
    }

    /// Takes one submission from `owner`'s rate limit, or [`JobError::RateLimited`].
    pub(crate) fn admit(&self, owner: &str) -> Result<()> {
        let (Some(limiter), Some(rate)) = (&self.limiter, self.config.rate_limit) else {
            return Ok(());
        };
        match limiter.check_key(&owner.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                use governor::clock::Clock as _;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(JobError::RateLimited {
                    limit: rate.to_string(),
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
        }
    }

    /// [`AppState::read_request`] for a submission: the owner's rate limit is taken before the
    /// body is read (429 with `Retry-After` beyond it).
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn read_submission<D: Dialect>(
        &self,
        req: Request,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), Response> {
        self.read::<D>(req, true).await
    }

    /// The headers, owner and body fields of an authorised request, or `D`'s error.
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn read_request<D: Dialect>(
        &self,
        req: Request,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), Response> {
        self.read::<D>(req, false).await
    }

    #[allow(clippy::result_large_err)]
    async fn read<D: Dialect>(
        &self,
        req: Request,
        submission: bool,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), Response> {
        let headers = req.headers().clone();
        let owner = self.authorize::<D>(&headers)?;
        if submission {
            self.admit(&owner).map_err(|e| D::from_error(&e))?;
        }
        let fields = form::read(req, &self.uploads, self.config.limits)
            .await
            .map_err(|e| D::from_error(&e))?;
        Ok((headers, owner, fields))
    }

    /// Submits a job built from `fields` by `build` after probing its audio inputs, on the
    /// blocking pool (building, probing audio and the job store's SQLite never hold an async
    /// thread); the request's uploads stay only when the job was accepted. Each submission also
    /// deletes uploads older than the retention that no queued or running job reads. Returns
    /// the new job's record and what `build` returned beside the request.
    pub(crate) async fn submit<T: Send + 'static>(
        self: &Arc<Self>,
        fields: form::Fields,
        owner: String,
        build: impl FnOnce(&form::Fields, &AppState) -> Result<(crate::jobs::JobRequest, T)>
            + Send
            + 'static,
    ) -> Result<(JobRecord, T)> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let submitted = build(&fields, &state).and_then(|(req, extra)| {
                check_inputs(&fields, &req.params)?;
                let id = state.jobs.submit(req, &owner)?;
                Ok((state.jobs.poll(&id)?, extra))
            });
            if submitted.is_ok() {
                fields.keep();
            }
            state.sweep_uploads();
            submitted
        })
        .await
        .map_err(|e| Error::Internal {
            message: format!("the submission task failed: {e}"),
        })?
    }

    /// Deletes uploads older than the retention period that no queued or running job uses.
    fn sweep_uploads(&self) {
        let Ok(dir) = std::fs::read_dir(&self.uploads) else {
            return;
        };
        let retention = self.jobs.config().retention;
        let old: Vec<PathBuf> = dir
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > retention)
            })
            .map(|e| e.path())
            .collect();
        if old.is_empty() {
            return;
        }
        let filter = crate::jobs::ListFilter {
            states: vec![
                crate::jobs::JobState::Queued,
                crate::jobs::JobState::Running,
            ],
            ..Default::default()
        };
        let Ok(active) = self.jobs.list(None, &filter) else {
            return;
        };
        let used: std::collections::HashSet<String> = active
            .iter()
            .flat_map(|r| {
                let p = &r.request.params;
                [p.src_audio_path.clone(), p.ref_audio_input.clone()]
            })
            .flatten()
            .collect();
        for path in old {
            if !used.contains(path.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Where requests' audio inputs may come from.
    pub(crate) fn inputs(&self) -> form::Inputs {
        form::Inputs {
            allow_local_paths: self.config.allow_local_paths,
        }
    }

    /// The base URL for links: the configured `public_url`, else the listening address (never
    /// the request's `Host` header, which a client chooses).
    pub(crate) fn base_url(&self, _headers: &HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        self.listen_url
            .get()
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:8001".into())
    }

    /// Download URLs of a job's files (`?d=` picks the error dialect of the download).
    pub(crate) fn file_urls(
        &self,
        headers: &HeaderMap,
        rec: &JobRecord,
        dialect: &str,
    ) -> Vec<String> {
        let base = self.base_url(headers);
        rec.result
            .iter()
            .flat_map(|r| r.files.iter())
            .map(|f| {
                let ext = f.path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
                format!("{base}/files/{}/{}.{ext}?d={dialect}", rec.id, f.id)
            })
            .collect()
    }
}

/// Probes the source and reference audio of `params` (format, channels, rate, length within
/// the task's cap), so that a request with an unusable file is refused at submit.
fn check_inputs(fields: &form::Fields, params: &crate::pipeline::GenerationParams) -> Result<()> {
    for (name, path) in [
        ("src_audio", &params.src_audio_path),
        ("ref_audio", &params.ref_audio_input),
    ] {
        let Some(path) = path else { continue };
        fields.probe(name, std::path::Path::new(path))?;
    }
    Ok(())
}

/// The quota owner of an API key: `key-` and a SHA-1 based UUID of it (stable, not the key).
pub fn owner_of_key(key: &str) -> String {
    format!(
        "key-{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()).simple()
    )
}

/// How an error is reported, whatever the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    BadRequest,
    Unauthorized,
    NotFound,
    Conflict,
    Quota,
    Gone,
    TooLarge,
    MethodNotAllowed,
    Unavailable,
    Internal,
}

impl Class {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Class::BadRequest => StatusCode::BAD_REQUEST,
            Class::Unauthorized => StatusCode::UNAUTHORIZED,
            Class::NotFound => StatusCode::NOT_FOUND,
            Class::Conflict => StatusCode::CONFLICT,
            Class::Quota => StatusCode::TOO_MANY_REQUESTS,
            Class::Gone => StatusCode::GONE,
            Class::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Class::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The class of a job manager or engine error.
    pub(crate) fn of(e: &JobError) -> Self {
        match e {
            JobError::Engine(Error::InvalidArgument { .. } | Error::Audio { .. }) => {
                Class::BadRequest
            }
            JobError::JobNotFound { .. } => Class::NotFound,
            JobError::JobFinished { .. } => Class::Conflict,
            JobError::QuotaExceeded { .. }
            | JobError::QueueFull { .. }
            | JobError::RateLimited { .. } => Class::Quota,
            JobError::ShuttingDown
            | JobError::StorageUnavailable { .. }
            | JobError::Store { .. } => Class::Unavailable,
            JobError::PayloadTooLarge { .. } => Class::TooLarge,
            _ => Class::Internal,
        }
    }

    /// The class of an HTTP error status (for responses made outside the handlers).
    fn of_status(s: StatusCode) -> Self {
        match s {
            StatusCode::UNAUTHORIZED => Class::Unauthorized,
            StatusCode::NOT_FOUND => Class::NotFound,
            StatusCode::CONFLICT => Class::Conflict,
            StatusCode::TOO_MANY_REQUESTS => Class::Quota,
            StatusCode::GONE => Class::Gone,
            StatusCode::PAYLOAD_TOO_LARGE => Class::TooLarge,
            StatusCode::METHOD_NOT_ALLOWED => Class::MethodNotAllowed,
            StatusCode::SERVICE_UNAVAILABLE => Class::Unavailable,
            s if s.is_client_error() => Class::BadRequest,
            _ => Class::Internal,
        }
    }
}

/// An error in one dialect's format.
pub(crate) trait Dialect {
    /// The response for `class` with `message`.
    fn error(class: Class, message: &str) -> Response;

    /// The response for a crate error (a rate limit's with `Retry-After`).
    fn from_error(e: &JobError) -> Response {
        let mut resp = Self::error(Class::of(e), &e.to_string());
        if let JobError::RateLimited {
            retry_after_secs, ..
        } = e
        {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_secs),
            );
        }
        resp
    }

    /// 401 for a missing or wrong key.
    fn unauthorized() -> Response {
        Self::error(
            Class::Unauthorized,
            "missing or invalid API key: send `Authorization: Bearer <key>`",
        )
    }
}

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
        .route("/files/{job}/{file}", get(download))
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
            dialect_errors,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        // Multipart bodies are bounded by this (JSON and form bodies by their own, smaller limit).
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit))
        .with_state(state)
}

/// Which dialect a request path belongs to, for errors made outside its handlers.
fn dialect_of(path: &str, query: Option<&str>) -> &'static str {
    if path == "/metrics" || path == "/health" {
        "other"
    } else if path.starts_with("/producer/") {
        "producer"
    } else if path.starts_with("/v1/music/") || path.starts_with("/v1/jobs/") {
        "acestep"
    } else if path.starts_with("/files/") {
        match query
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("d="))
        {
            Some("producer") => "producer",
            Some("acestep") => "acestep",
            _ => "async_task",
        }
    } else {
        "async_task"
    }
}

/// An error response in the named dialect's format.
fn dialect_error(dialect: &str, class: Class, message: &str) -> Response {
    match dialect {
        "producer" => producer::Producer::error(class, message),
        "acestep" => acestep_api::AceStepApi::error(class, message),
        _ => async_task::AsyncTask::error(class, message),
    }
}

/// Every request gets an id (the client's `x-request-id` when it is a short token, else a new
/// UUID), returned in the `x-request-id` header and in every error body, logged with its
/// method, path, status and latency, and counted for `/metrics`. Every error leaves in its
/// dialect's JSON format (axum's own rejections, a 405, an unknown route, a body limit) and
/// without server paths.
async fn dialect_errors(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let t0 = std::time::Instant::now();
    let dialect = dialect_of(req.uri().path(), req.uri().query());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let mut out = if (status.is_client_error() || status.is_server_error())
        && status != StatusCode::RANGE_NOT_SATISFIABLE
    {
        error_response(&state, dialect, resp, &request_id).await
    } else {
        resp
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        out.headers_mut().insert("x-request-id", v);
    }
    let secs = t0.elapsed().as_secs_f64();
    {
        let mut reqs = state.requests.lock().unwrap_or_else(|e| e.into_inner());
        let stats = reqs.entry(dialect).or_insert_with(|| RequestStats {
            by_status: Default::default(),
            seconds: crate::jobs::Histogram::new(&REQUEST_SECONDS_BUCKETS),
        });
        *stats.by_status.entry(status.as_u16()).or_default() += 1;
        stats.seconds.observe(secs);
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        status = status.as_u16(),
        latency_ms = secs * 1e3,
        "request"
    );
    out
}

/// An error response in `dialect`'s JSON format, without server paths, carrying `request_id`.
async fn error_response(
    state: &AppState,
    dialect: &str,
    resp: Response,
    request_id: &str,
) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let mut value = if json {
        serde_json::from_str::<serde_json::Value>(&state.scrub(&text)).unwrap_or_default()
    } else {
        let message = match text.trim() {
            "" => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string(),
            t => t.to_string(),
        };
        let made = dialect_error(dialect, Class::of_status(status), &state.scrub(&message));
        let b = axum::body::to_bytes(made.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&b).unwrap_or_default()
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("request_id".into(), serde_json::Value::from(request_id));
    }
    let mut out = (status, axum::Json(value)).into_response();
    for (k, v) in parts.headers.iter() {
        if k == axum::http::header::ALLOW || k == axum::http::header::RETRY_AFTER {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// `GET /metrics`: Prometheus text: queue depth, running jobs, jobs by outcome, step and
/// generation seconds, requests and their latency per dialect.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    let m = state.jobs.metrics();
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

#[derive(serde::Deserialize)]
struct DownloadQuery {
    d: Option<String>,
}

/// `GET /files/{job}/{file}`: a job's output file, with range support, checked against the size
/// and checksum recorded when it was written.
async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath((job, file)): UrlPath<(String, String)>,
    Query(q): Query<DownloadQuery>,
    req: Request,
) -> Response {
    let dialect = q.d.as_deref().unwrap_or("async_task");
    let error = |class: Class, msg: &str| dialect_error(dialect, class, msg);
    let file_id = file.split('.').next().unwrap_or_default().to_string();
    let target = job.clone();
    let rec = match state.blocking(move |s| s.jobs.poll(&target)).await {
        Ok(r) => r,
        Err(e) => return error(Class::of(&e), &e.to_string()),
    };
    let Some(result) = rec.result else {
        return error(
            Class::NotFound,
            &format!("job `{job}` has no output ({})", rec.state),
        );
    };
    let Some(f) = result.files.iter().find(|f| f.id == file_id) else {
        return error(
            Class::NotFound,
            &format!("job `{job}` has no file `{file}`"),
        );
    };
    if result.expired {
        return error(
            Class::Gone,
            &format!("the output of job `{job}` expired and was deleted"),
        );
    }
    // The checksum is read through once per version of the file (size and modification time),
    // not on every range request of a player.
    let stamp = std::fs::metadata(&f.path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    let known = stamp.is_some()
        && state
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&f.id)
            == stamp.as_ref();
    if !known {
        let check = {
            let f = f.clone();
            tokio::task::spawn_blocking(move || f.verify()).await
        };
        match check {
            Ok(Ok(())) => {
                if let Some(st) = stamp {
                    state
                        .verified
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(f.id.clone(), st);
                }
            }
            Ok(Err(why)) => {
                tracing::error!("output {} of job {job}: {why}", f.id);
                // The record says what the download says: the output is gone.
                let target = job.clone();
                if let Err(e) = state
                    .blocking(move |s| s.jobs.mark_output_lost(&target))
                    .await
                {
                    tracing::warn!("marking the output of {job} lost: {e}");
                }
                return error(
                    Class::Gone,
                    &format!("the output of job `{job}` is no longer available ({why})"),
                );
            }
            Err(e) => return error(Class::Internal, &e.to_string()),
        }
    }
    match tower_http::services::ServeFile::new(&f.path)
        .oneshot(req)
        .await
    {
        Ok(resp) => resp.into_response(),
        Err(e) => error(Class::Internal, &e.to_string()),
    }
}

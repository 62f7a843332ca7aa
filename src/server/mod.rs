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
mod form;
pub mod producer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceExt;

use crate::error::{Error, Result};
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            sync_timeout: Duration::from_secs(600),
            public_url: None,
            model_name: "ACE-Step-v1-3.5B".into(),
            allow_local_paths: false,
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
}

impl AppState {
    /// The state of a server over `jobs`.
    pub fn new(jobs: Arc<JobManager>, config: ServerConfig) -> Arc<Self> {
        let uploads = jobs.config().data_dir.join("uploads");
        Arc::new(Self {
            jobs,
            config,
            uploads,
        })
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
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
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
            return Err(Error::JobNotFound { id: id.to_string() });
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

    /// Job `id` for an authorised request, or `D`'s error.
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) fn job_for<D: Dialect>(
        &self,
        headers: &HeaderMap,
        id: &str,
    ) -> std::result::Result<JobRecord, Response> {
        let owner = self.authorize::<D>(headers)?;
        self.job_of(id, &owner).map_err(|e| D::from_error(&e))
    }

    /// The headers, owner and body fields of an authorised request, or `D`'s error.
    // The error is the finished HTTP response, returned by value as handlers do.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn read_request<D: Dialect>(
        &self,
        req: Request,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), Response> {
        let headers = req.headers().clone();
        let owner = self.authorize::<D>(&headers)?;
        let fields = form::read(req, &self.uploads)
            .await
            .map_err(|e| D::from_error(&e))?;
        Ok((headers, owner, fields))
    }

    /// Submits a job built from `fields`; the request's uploads are deleted when it is refused.
    /// Each submission also deletes uploads older than the retention that no queued or running
    /// job reads.
    pub(crate) fn submit_with_uploads(
        &self,
        fields: &form::Fields,
        build: impl FnOnce() -> Result<crate::jobs::JobRequest>,
        owner: &str,
    ) -> Result<String> {
        let submitted = build().and_then(|req| self.jobs.submit(req, owner));
        if submitted.is_err() {
            for path in fields.files.values() {
                let _ = std::fs::remove_file(path);
            }
        }
        self.sweep_uploads();
        submitted
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

    /// The base URL for links in responses to a request with `headers`.
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:8001");
        format!("http://{host}")
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
            Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The class of a crate error.
    pub(crate) fn of(e: &Error) -> Self {
        match e {
            Error::InvalidArgument { .. } | Error::Audio { .. } => Class::BadRequest,
            Error::JobNotFound { .. } => Class::NotFound,
            Error::JobFinished { .. } => Class::Conflict,
            Error::QuotaExceeded { .. } => Class::Quota,
            Error::ShuttingDown => Class::Unavailable,
            _ => Class::Internal,
        }
    }
}

/// An error in one dialect's format.
pub(crate) trait Dialect {
    /// The response for `class` with `message`.
    fn error(class: Class, message: &str) -> Response;

    /// The response for a crate error.
    fn from_error(e: &Error) -> Response {
        Self::error(Class::of(e), &e.to_string())
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
    Router::new()
        .route(
            "/v1/async/music/generations",
            post(async_task::submit),
        )
        .route("/api/v1/task/{id}", get(async_task::query))
        .route("/api/v1/task/{id}/cancel", post(async_task::cancel))
        .route("/v1/task/{id}/status", get(async_task::status))
        .route("/v1/task/{id}", get(async_task::record))
        .route("/v1/tasks/available-quota", get(async_task::quota))
        .route("/producer/audios", post(producer::audios))
        .route("/producer/tasks", post(producer::tasks))
        .route("/v1/music/generate", post(acestep_api::generate))
        .route("/v1/jobs/{id}", get(acestep_api::job))
        .route("/files/{job}/{file}", get(download))
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint"}})),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(512 * 1024 * 1024))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(addr, e))
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    d: Option<String>,
}

/// `GET /files/{job}/{file}`: a job's output file, with range support.
async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath((job, file)): UrlPath<(String, String)>,
    Query(q): Query<DownloadQuery>,
    req: Request,
) -> Response {
    let error = |class: Class, msg: &str| match q.d.as_deref() {
        Some("producer") => producer::Producer::error(class, msg),
        Some("acestep") => acestep_api::AceStepApi::error(class, msg),
        _ => async_task::AsyncTask::error(class, msg),
    };
    let file_id = file.split('.').next().unwrap_or_default().to_string();
    let rec = match state.jobs.poll(&job) {
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
    if result.expired || !f.path.exists() {
        return error(
            Class::Gone,
            &format!("the output of job `{job}` expired and was deleted"),
        );
    }
    match tower_http::services::ServeFile::new(&f.path)
        .oneshot(req)
        .await
    {
        Ok(resp) => resp.into_response(),
        Err(e) => error(Class::Internal, &e.to_string()),
    }
}

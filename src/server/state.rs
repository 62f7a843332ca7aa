//! What every handler shares: the settings ([`ServerConfig`]), the job manager, API-key
//! authorisation and quota owners, rate limits, request reading and submission on the blocking
//! pool, and download links.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderMap;

use super::error::{Dialect, DialectError};
use super::form::{self, BodyLimits};
use crate::error::{short, Error};
use crate::jobs::{JobError, JobManager, JobRecord, Result};

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
    pub(super) uploads: PathBuf,
    /// The base URL of the listening socket (set by [`serve`]), for links when no
    /// `public_url` is configured.
    pub(super) listen_url: std::sync::OnceLock<String>,
    /// Set when [`serve`] begins its graceful stop: event streams end at once instead of holding
    /// the stop for its whole grace.
    pub(super) stopping: tokio::sync::watch::Sender<bool>,
    /// Output files whose checksum was verified, with the size and modification time they had
    /// then (a file is read through again only when these change).
    pub(super) verified:
        std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::SystemTime)>>,
    /// Requests served, per dialect: counts per status and a latency histogram.
    pub(super) requests: std::sync::Mutex<std::collections::BTreeMap<&'static str, RequestStats>>,
    /// Submissions per owner.
    pub(super) limiter: Option<Limiter>,
}

/// Requests of one dialect.
#[derive(Debug)]
pub(super) struct RequestStats {
    pub(super) by_status: std::collections::BTreeMap<u16, u64>,
    pub(super) seconds: crate::jobs::Histogram,
}

/// Upper bounds (seconds) of the request-latency histogram's buckets.
pub(super) const REQUEST_SECONDS_BUCKETS: [f64; 9] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

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
    pub(crate) fn authorize<D: Dialect>(
        &self,
        headers: &HeaderMap,
    ) -> std::result::Result<String, DialectError<D>> {
        self.owner(headers)
            .ok_or_else(|| DialectError::from_response(D::unauthorized()))
    }

    /// A receiver that turns true when the server begins to stop.
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Runs `f` (job store reads and writes: SQLite, PostgreSQL) on the blocking pool, so that it never
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
    pub(crate) async fn job_for<D: Dialect>(
        self: &Arc<Self>,
        headers: &HeaderMap,
        id: &str,
    ) -> std::result::Result<JobRecord, DialectError<D>> {
        let owner = self.authorize::<D>(headers)?;
        let id = id.to_string();
        Ok(self.blocking(move |s| s.job_of(&id, &owner)).await?)
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
    pub(crate) async fn read_submission<D: Dialect>(
        &self,
        req: Request,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), DialectError<D>> {
        self.read::<D>(req, true).await
    }

    /// The headers, owner and body fields of an authorised request, or `D`'s error.
    pub(crate) async fn read_request<D: Dialect>(
        &self,
        req: Request,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), DialectError<D>> {
        self.read::<D>(req, false).await
    }

    async fn read<D: Dialect>(
        &self,
        req: Request,
        submission: bool,
    ) -> std::result::Result<(HeaderMap, String, form::Fields), DialectError<D>> {
        let headers = req.headers().clone();
        let owner = self.authorize::<D>(&headers)?;
        if submission {
            self.admit(&owner)?;
        }
        let fields = form::read(req, &self.uploads, self.config.limits).await?;
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

//! The local job manager: asynchronous generation jobs with submit / poll / cancel / list /
//! quota / batch retrieve, FIFO workers around one resident [`Generator`], SQLite persistence,
//! result retention and completion callbacks. It is what `acestep serve` sits on, and works
//! embedded in any Rust program with no server.
//!
//! - States: [`JobState::Queued`] -> [`JobState::Running`] -> [`JobState::Succeeded`] |
//!   [`JobState::Failed`] | [`JobState::Cancelled`], each transition timestamped.
//! - [`JobManager::submit`] validates the request and enforces the per-owner quota (queued +
//!   running jobs) before anything is stored; it returns the job id at once.
//! - [`JobManager::poll`] gives the [`JobRecord`]: state, queue position, ETA (moving average of
//!   measured seconds per diffusion step times the steps ahead), progress, result or error.
//! - [`JobManager::cancel`]: a queued job is cancelled at once, a running one at its next step.
//! - Persistence: a [`StoreLocation`]: `<data_dir>/jobs.sqlite` by default (one process), or a
//!   PostgreSQL database shared by API front ends (`workers: 0`) and worker processes (a
//!   cluster). On restart queued jobs are queued again in order, a job that was running is
//!   re-queued once, and failed with code `interrupted` if that happens again; in a cluster a
//!   worker holds its job under a lease renewed by heartbeats, and the job of a worker that died
//!   is re-queued (the same once) when the lease runs out. Outputs live in
//!   `<data_dir>/outputs/<job id>/` and are deleted when the retention expires.
//!
//! ```no_run
//! use std::sync::Arc;
//! use acestep::jobs::{JobManager, JobRequest, ManagerConfig, PipelineGenerator};
//! use acestep::{Checkpoint, GenerationParams, Pipeline};
//!
//! let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! let generator = PipelineGenerator::new(Pipeline::load(&ckpt, &Default::default())?);
//! let jobs = JobManager::open(ManagerConfig::new("/var/lib/acestep"), Arc::new(generator))?;
//! let request = JobRequest {
//!     params: GenerationParams { prompt: "ambient, pads".into(), audio_duration: 20.0, ..Default::default() },
//!     ..Default::default()
//! };
//! let id = jobs.submit(request, "alice")?;
//! loop {
//!     let job = jobs.poll(&id)?;
//!     if job.state.is_terminal() {
//!         println!("{:?}", job.result.map(|r| r.files));
//!         break;
//!     }
//!     println!("{:?} {:.0}% eta {:?}", job.state, job.progress.percent, job.eta_seconds);
//!     std::thread::sleep(std::time::Duration::from_secs(2));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod callback;
mod error;
pub mod events;
pub mod generator;
mod manager;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use callback::{webhook_signature, WEBHOOK_TOLERANCE};
pub use error::{JobError, Result};
pub use events::{EventFeed, FeedEvent, Follower};
pub use generator::{
    GenerationOutput, Generator, JobProgress, OutputFile, PipelineGenerator, QueueOnly, Stage,
};
pub use manager::JobManager;
pub use store::StoreLocation;

use crate::pipeline::GenerationParams;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is generating it.
    Running,
    /// Finished with output files.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by the caller.
    Cancelled,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The lower-case name (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses [`JobState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A generation request as submitted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobRequest {
    /// The generation parameters (reference names).
    #[serde(default)]
    pub params: GenerationParams,
    /// An `http://` or `https://` URL that gets the [`JobRecord`] POSTed as JSON when the job
    /// reaches a terminal state (with retries and exponential backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// What `callback_url` is sent: empty means `[completed]` (the terminal record only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_events_filter: Vec<WebhookEvent>,
    /// Free-form data kept with the job (e.g. the API dialect's original request).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl JobRequest {
    /// Whether `callback_url` gets deliveries for `event`.
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.callback_url.is_some()
            && if self.webhook_events_filter.is_empty() {
                event == WebhookEvent::Completed
            } else {
                self.webhook_events_filter.contains(&event)
            }
    }
}

/// What a job's webhook (`callback_url`) is sent for (its `webhook_events_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A worker started the job.
    Start,
    /// Diffusion progress: at most one delivery a second, and one when decoding starts.
    Progress,
    /// The job reached its terminal state (succeeded, failed, cancelled).
    Completed,
}

impl WebhookEvent {
    /// The lower-case name (`start`, `progress`, `completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Start => "start",
            WebhookEvent::Progress => "progress",
            WebhookEvent::Completed => "completed",
        }
    }

    /// Parses [`WebhookEvent::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            WebhookEvent::Start,
            WebhookEvent::Progress,
            WebhookEvent::Completed,
        ]
        .into_iter()
        .find(|e| e.as_str() == s.trim())
    }
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// A stable code: `generation_failed`, `panic`, `interrupted`, `output_failed`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

/// What a succeeded job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The output files (one per batch item).
    pub files: Vec<OutputFile>,
    /// The seeds used.
    pub seeds: Vec<u64>,
    /// Generation details (parameters, timings).
    pub info: serde_json::Value,
    /// Seconds of audio per file (the requested duration).
    pub audio_duration: f64,
    /// Wall-clock seconds the generation took.
    pub elapsed_seconds: f64,
    /// True once the retention expired and the files were deleted.
    #[serde(default)]
    pub expired: bool,
}

/// Everything known about a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id (UUID v4).
    pub id: String,
    /// The quota owner that submitted it.
    pub owner: String,
    /// Its state.
    pub state: JobState,
    /// The request.
    pub request: JobRequest,
    /// Unix seconds of submission.
    pub created_at: f64,
    /// Unix seconds its (last) run started.
    pub started_at: Option<f64>,
    /// Unix seconds it reached its terminal state.
    pub finished_at: Option<f64>,
    /// Unix seconds its outputs expire (succeeded jobs).
    pub expires_at: Option<f64>,
    /// 1-based position in the queue; 0 when running or finished.
    pub queue_position: usize,
    /// Estimated seconds until it finishes its diffusion (None until a step was measured, and
    /// once finished).
    pub eta_seconds: Option<f64>,
    /// Progress.
    pub progress: JobProgress,
    /// The outputs, when it succeeded.
    pub result: Option<JobResult>,
    /// The error, when it failed.
    pub error: Option<JobFailure>,
    /// Times a worker started it.
    pub attempts: u32,
    /// True when a cancel was requested while it was running (it stops at the next step).
    #[serde(default)]
    pub cancel_requested: bool,
}

impl JobRecord {
    /// What may leave the server about this job (callback bodies, records in responses): no
    /// owner, no server paths (uploads are named by their file name, outputs by their download
    /// link under `base_url`, when given).
    pub fn public_json(&self, base_url: Option<&str>) -> serde_json::Value {
        let dialect = self.request.metadata["dialect"]
            .as_str()
            .unwrap_or("async_task");
        let files: Vec<serde_json::Value> = self
            .result
            .iter()
            .flat_map(|r| r.files.iter())
            .map(|f| {
                let ext = f.path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
                serde_json::json!({
                    "id": f.id,
                    "url": base_url.map(|b| format!("{}/files/{}/{}.{ext}?d={dialect}", b.trim_end_matches('/'), self.id, f.id)),
                    "seed": f.seed,
                    "duration_seconds": f.duration_seconds,
                    "sample_rate": f.sample_rate,
                    "format": f.format,
                    "size_bytes": f.size_bytes,
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "expires_at": self.expires_at,
            "progress": self.progress,
            "parameters": public_params(&self.request.params),
            "metadata": self.request.metadata,
            "result": self.result.as_ref().map(|r| serde_json::json!({
                "files": files,
                "seeds": r.seeds,
                "audio_duration": r.audio_duration,
                "elapsed_seconds": r.elapsed_seconds,
                "expired": r.expired,
            })),
            "error": self.error,
            "attempts": self.attempts,
        })
    }
}

/// The parameters of a request as they may leave the server: uploaded inputs by file name.
pub fn public_params(params: &GenerationParams) -> serde_json::Value {
    let mut v = serde_json::to_value(params).unwrap_or_default();
    for key in ["src_audio_path", "ref_audio_input", "lora_name_or_path"] {
        if let Some(s) = v[key].as_str() {
            let p = std::path::Path::new(s);
            if p.is_absolute() {
                // Uploads are saved as `<uuid>-<original name>`.
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = match name.get(36..37) {
                    Some("-") => name[37..].to_string(),
                    _ => name,
                };
                v[key] = serde_json::Value::String(name);
            }
        }
    }
    v
}

/// Upper bounds (seconds) of the buckets of [`JobMetrics`]' histograms.
pub const STEP_SECONDS_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds (seconds) of the generation-time histogram's buckets.
pub const GENERATION_SECONDS_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A cumulative histogram (Prometheus style): counts of observations at or under each bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// The buckets' upper bounds.
    pub bounds: Vec<f64>,
    /// Observations at or under each bound (cumulative).
    pub counts: Vec<u64>,
    /// All observations.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    /// Records `x`.
    pub fn observe(&mut self, x: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if x <= *b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += x;
    }
}

/// What the job manager has done since it started, for monitoring.
#[derive(Debug, Clone, PartialEq)]
pub struct JobMetrics {
    /// Jobs waiting now.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs accepted since start.
    pub submitted: u64,
    /// Jobs that ended in each state since start: succeeded, failed, cancelled.
    pub succeeded: u64,
    /// See `succeeded`.
    pub failed: u64,
    /// See `succeeded`.
    pub cancelled: u64,
    /// Seconds per diffusion step (per unit of step cost).
    pub step_seconds: Histogram,
    /// Seconds per generation (start to end of a run that succeeded).
    pub generation_seconds: Histogram,
}

/// An owner's concurrency quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Maximum queued + running jobs.
    pub limit: usize,
    /// Queued + running jobs now.
    pub active: usize,
    /// `limit - active`.
    pub available: usize,
}

/// Which jobs [`JobManager::list`] returns (newest first).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these states (all when empty).
    pub states: Vec<JobState>,
    /// At most this many (all when 0).
    pub limit: usize,
    /// Skip this many.
    pub offset: usize,
}

/// A state transition, sent to [`JobManager::subscribe`]rs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// The job.
    pub id: String,
    /// Its new state.
    pub state: JobState,
    /// Unix seconds of the transition.
    pub at: f64,
}

/// Completion-callback delivery settings.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// Attempts before giving up (default 6).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with every retry (default 2 s).
    pub initial_backoff: Duration,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// Deliver to loopback, private and link-local addresses too (default false: such targets
    /// are refused at submit and at connect time).
    pub allow_private: bool,
    /// The server's base URL, for the download links in callback bodies (None: files are
    /// named by id only).
    pub public_url: Option<String>,
    /// The key every delivery is signed with (HMAC-SHA256, Standard Webhooks headers); a key
    /// written `whsec_<base64>` is those bytes, any other string its UTF-8 bytes. None: unsigned.
    pub secret: Option<String>,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            allow_private: false,
            public_url: None,
            secret: None,
        }
    }
}

/// Job manager settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Holds `outputs/` (and `jobs.sqlite` with the default store). Every process of a cluster
    /// names the same folder (a shared mount), so that any of them serves any job's files.
    pub data_dir: PathBuf,
    /// Where the jobs are kept (default: `<data_dir>/jobs.sqlite`).
    pub store: StoreLocation,
    /// Worker threads (default 1: one per device); 0 makes an API-only front end (a shared
    /// store only: other processes run the jobs).
    pub workers: usize,
    /// Maximum queued + running jobs per owner (default 10).
    pub max_active_per_owner: usize,
    /// Most jobs waiting in the queue, all owners together (default 1000; 0: no limit); a submit
    /// past it is [`JobError::QueueFull`].
    pub max_queue: usize,
    /// How long outputs are kept after a job succeeds (default 24 h).
    pub retention: Duration,
    /// How often the sweeper deletes expired outputs (default 60 s).
    pub sweep_interval: Duration,
    /// Seconds per diffusion step (per unit of [`Generator::step_cost`]) assumed for the ETA
    /// before any step was measured; None leaves the ETA unknown until then.
    pub initial_seconds_per_step: Option<f64>,
    /// Callback delivery.
    pub callback: CallbackConfig,
    /// How long a worker holds a running job without a heartbeat (shared stores; default
    /// 30 s). Heartbeats come every quarter of it; a job whose worker died is queued again
    /// (once) when it runs out.
    pub lease: Duration,
    /// How often an idle worker asks the store for work that another process queued (default
    /// 250 ms; a submit in this process wakes it at once).
    pub poll_interval: Duration,
}

impl ManagerConfig {
    /// Defaults with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store: StoreLocation::DataDir,
            workers: 1,
            max_active_per_owner: 10,
            max_queue: 1000,
            retention: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(60),
            initial_seconds_per_step: None,
            callback: CallbackConfig::default(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// Unix time in seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

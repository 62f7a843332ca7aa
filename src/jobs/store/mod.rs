//! The job store: where jobs live, and the one source of truth about them. [`JobStore`] is the
//! interface the job manager drives; [`sqlite::SqliteStore`] (one process, `jobs.sqlite` in the
//! data directory, the default) and [`postgres::PostgresStore`] (a cluster of API front ends and
//! workers on one PostgreSQL database) implement it and pass the same behaviour suite.
//!
//! Every operation that decides something between processes is one atomic statement or
//! transaction in the database: a submit checks the quota and the queue depth in the transaction
//! that inserts the job, a worker claims the oldest queued job (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL) under a lease it renews with heartbeats, a job ends only by the worker that holds
//! it, a lapsed lease is reaped once (queued again once, then failed `interrupted`), an expiry or
//! a callback is claimed by one process.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use super::{JobFailure, JobProgress, JobRecord, JobResult, JobState, ListFilter};
use crate::jobs::{JobError, Result};

/// Where the jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreLocation {
    /// The embedded SQLite database `<data_dir>/jobs.sqlite` (one process).
    #[default]
    DataDir,
    /// An SQLite database file (one process).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by API front ends and workers (`postgres://user@host/db`
    /// or a libpq key-value string).
    Postgres(String),
}

impl std::str::FromStr for StoreLocation {
    type Err = crate::Error;

    /// `postgres://...` / `postgresql://...` (PostgreSQL), `sqlite:<path>` or a plain path
    /// (SQLite), empty or `sqlite` (the data directory's `jobs.sqlite`).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            Ok(StoreLocation::DataDir)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(s.to_string()))
        } else if let Some(p) = s.strip_prefix("sqlite://").or(s.strip_prefix("sqlite:")) {
            Ok(StoreLocation::Sqlite(PathBuf::from(p)))
        } else if s.contains("://") {
            Err(crate::Error::InvalidArgument {
                name: "store",
                value: redact(s),
                expected: "postgres://user@host/db, sqlite:<path> or a file path".into(),
            })
        } else {
            Ok(StoreLocation::Sqlite(PathBuf::from(s)))
        }
    }
}

/// `url` without its password (what logs and errors may show).
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) if url.contains("password") => "<connection string>".into(),
        Err(_) => url.to_string(),
    }
}

/// A job to insert, with what the ETA needs of it.
pub(crate) struct NewJob<'a> {
    /// The record (state queued).
    pub rec: &'a JobRecord,
    /// Diffusion steps it takes.
    pub steps: usize,
    /// Relative cost of one step.
    pub cost: f64,
}

/// The limits a submit is checked against, in the transaction that inserts it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most queued + running jobs per owner.
    pub per_owner: usize,
    /// Most queued jobs in all (0: no limit).
    pub queue: usize,
}

/// A job claimed by a worker.
pub(crate) struct Claimed {
    /// Its record, now running (attempt counted).
    pub rec: JobRecord,
    /// Diffusion steps.
    pub steps: usize,
    /// Cost of one step.
    pub cost: f64,
}

/// A job of the queue (oldest first) or a running job, with what the ETA needs.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    /// The job.
    pub id: String,
    /// Diffusion steps.
    pub steps: usize,
    /// Cost of one step.
    pub cost: f64,
    /// Its saved progress (running jobs).
    pub progress: JobProgress,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// The worker still holds the job; a cancel was asked when `cancel` is true.
    Held {
        /// A cancel was requested.
        cancel: bool,
    },
    /// The job is no longer this worker's (reaped after its lease lapsed, or gone).
    Lost,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The job was queued: it is cancelled now.
    Now,
    /// The job is running: its worker stops it at its next step.
    Requested,
    /// Nothing to do: the job is in this state (cancelled, succeeded or failed).
    Terminal(JobState),
    /// No such job.
    NotFound,
}

/// A running job whose lease lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// The job.
    pub id: String,
    /// Queued again (false: failed `interrupted`).
    pub requeued: bool,
}

/// A terminal state to record.
#[derive(Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub state: JobState,
    pub expires_at: Option<f64>,
    pub progress: &'a JobProgress,
    pub result: Option<&'a JobResult>,
    pub error: Option<&'a JobFailure>,
}

/// Callback delivery state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackState {
    Delivered,
    Failed,
}

impl CallbackState {
    fn as_str(self) -> &'static str {
        match self {
            CallbackState::Delivered => "delivered",
            CallbackState::Failed => "failed",
        }
    }
}

/// How long an expiry claimed by a sweeper that did not finish it waits before another takes it.
pub(crate) const SWEEP_RETRY: Duration = Duration::from_secs(600);

/// The live workers of a cluster, as their heartbeats say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Workers {
    /// Worker slots (concurrent jobs) of the live worker processes.
    pub slots: usize,
    /// The median of their measured seconds per unit of step cost, if any measured one.
    pub seconds_per_unit: Option<f64>,
}

/// How long a callback delivery may take before another process takes it over (the dispatcher
/// gives up well before: 6 attempts, backoff doubling from 2 s, 10 s timeouts).
pub(crate) const CALLBACK_LEASE: Duration = Duration::from_secs(15 * 60);

/// The job store. Every method is one atomic step in the database; `&self` methods may be called
/// from many threads.
pub(crate) trait JobStore: Send + Sync {
    /// What the store is (`sqlite:<path>`, `postgres://host/db`), for messages.
    fn describe(&self) -> String;

    /// Whether other processes may use it at the same time (then leases decide who holds a
    /// running job, and a lapsed one is reaped; else a running job found at start is a crash's).
    fn shared(&self) -> bool;

    /// Inserts a queued job if its owner's quota and the queue depth allow.
    fn insert(&self, job: &NewJob<'_>, limits: Limits) -> Result<()>;

    /// The stored record (queue position / ETA left at 0 / None; `cancel_requested` as stored).
    fn get(&self, id: &str) -> Result<Option<JobRecord>>;

    /// The stored records of those of `ids` that exist, in no particular order.
    fn get_many(&self, ids: &[String]) -> Result<Vec<JobRecord>>;

    /// Jobs of `owner` (every owner when None), newest first.
    fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>>;

    /// Queued + running jobs of `owner`.
    fn active_count(&self, owner: &str) -> Result<usize>;

    /// The jobs in `state` (queued or running), oldest first.
    fn active(&self, state: JobState) -> Result<Vec<Active>>;

    /// The queue, oldest first.
    fn queue(&self) -> Result<Vec<Active>> {
        self.active(JobState::Queued)
    }

    /// The running jobs.
    fn running(&self) -> Result<Vec<Active>> {
        self.active(JobState::Running)
    }

    /// Claims the oldest queued job for `worker` under a lease of `lease`; None when the queue
    /// is empty.
    fn claim(
        &self,
        worker: &str,
        lease: Duration,
        progress: &JobProgress,
    ) -> Result<Option<Claimed>>;

    /// Renews `worker`'s lease on `id` (saving `progress` when given) and reads its cancel flag.
    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease: Duration,
        progress: Option<&JobProgress>,
    ) -> Result<Beat>;

    /// Records the end of running job `id` held by `worker`; a success asked to cancel before
    /// this moment is recorded cancelled (without its result). The state recorded, or None
    /// (nothing written) when the worker no longer holds the job.
    fn finish(&self, id: &str, worker: &str, end: &Finish<'_>) -> Result<Option<JobState>>;

    /// Cancels a queued job, or asks the worker of a running one to stop.
    fn cancel(&self, id: &str) -> Result<Cancelled>;

    /// Puts running job `id` held by `worker` back in the queue; `refund` gives its attempt back
    /// (a graceful stop is not the job's fault).
    fn requeue(&self, id: &str, worker: &str, refund: bool) -> Result<()>;

    /// Reaps running jobs whose lease lapsed (every running job when `all`, at the start of an
    /// unshared store): queued again after their first attempt, failed `interrupted` after
    /// their second.
    fn reap(&self, all: bool) -> Result<Vec<Reaped>>;

    /// Claims the succeeded jobs whose retention ran out, for their outputs to be deleted and
    /// then marked expired ([`JobStore::mark_expired`]); each is returned to one caller only
    /// (again after [`SWEEP_RETRY`], should that caller have died meanwhile).
    fn expire_due(&self) -> Result<Vec<String>>;

    /// Marks the outputs of `id` expired (deleted or damaged).
    fn mark_expired(&self, id: &str) -> Result<()>;

    /// Records the end of `id`'s callback delivery.
    fn set_callback_state(&self, id: &str, state: CallbackState) -> Result<()>;

    /// Claims the terminal jobs whose completion callback is pending and unheld: its lease ran
    /// out, or the process that held it has not been seen alive within `alive` (it died while
    /// delivering); every pending one when `all` (the start of an unshared store).
    fn claim_orphan_callbacks(&self, all: bool, alive: Duration) -> Result<Vec<String>>;

    /// Records that process `worker` is alive with `slots` workers (0: an API front end) and
    /// its measured seconds per unit of step cost.
    fn worker_alive(&self, worker: &str, slots: usize, seconds_per_unit: Option<f64>)
        -> Result<()>;

    /// Forgets worker process `worker` (a clean stop).
    fn worker_gone(&self, worker: &str) -> Result<()>;

    /// The worker processes seen within `within`.
    fn workers(&self, within: Duration) -> Result<Workers>;
}

/// Opens the store at `location` (`data_dir` holds the default SQLite database) for process
/// `holder` (who holds the callbacks it claims), applying its schema migrations.
pub(crate) fn open(
    location: &StoreLocation,
    data_dir: &std::path::Path,
    holder: &str,
) -> Result<Box<dyn JobStore>> {
    let holder = sql_literal(holder);
    Ok(match location {
        StoreLocation::DataDir => Box::new(sqlite::SqliteStore::open(
            &data_dir.join("jobs.sqlite"),
            holder,
        )?),
        StoreLocation::Sqlite(p) => Box::new(sqlite::SqliteStore::open(p, holder)?),
        StoreLocation::Postgres(url) => Box::new(postgres::PostgresStore::open(url, holder)?),
    })
}

/// `s` as an SQL string literal.
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The columns every backend reads a job from, in this order.
pub(crate) const COLUMNS: &str =
    "id, owner, state, request, created_at, started_at, finished_at, expires_at, progress, \
     result, error_code, error_message, attempts, cancel_requested";

/// A job row as read from either backend, before its JSON columns are parsed.
pub(crate) struct RawJob {
    pub id: String,
    pub owner: String,
    pub state: String,
    pub request: String,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub expires_at: Option<f64>,
    pub progress: Option<String>,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i64,
    pub cancel_requested: bool,
}

impl RawJob {
    /// The record; the error names the column that does not parse.
    pub fn into_record(self) -> std::result::Result<JobRecord, String> {
        let state = JobState::parse(&self.state)
            .ok_or_else(|| format!("unknown job state `{}`", self.state))?;
        fn parse<T: serde::de::DeserializeOwned>(
            id: &str,
            col: &str,
            s: &str,
        ) -> std::result::Result<T, String> {
            serde_json::from_str(s).map_err(|e| format!("column {col} of job {id}: {e}"))
        }
        let request = parse(&self.id, "request", &self.request)?;
        let progress = match &self.progress {
            Some(p) => parse(&self.id, "progress", p)?,
            None => JobProgress::default(),
        };
        let result = match &self.result {
            Some(r) => Some(parse(&self.id, "result", r)?),
            None => None,
        };
        Ok(JobRecord {
            id: self.id,
            owner: self.owner,
            state,
            request,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            expires_at: self.expires_at,
            queue_position: 0,
            eta_seconds: None,
            progress,
            result,
            error: self.error_code.map(|code| JobFailure {
                code,
                message: self.error_message.unwrap_or_default(),
            }),
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            cancel_requested: self.cancel_requested && state == JobState::Running,
        })
    }
}

/// `v` as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The error of a job store named `store`.
pub(crate) fn store_err(store: &str, message: impl std::fmt::Display) -> JobError {
    JobError::Store {
        store: store.to_string(),
        message: message.to_string(),
    }
}

/// The failure of a job found running after its lease lapsed for the second time.
pub(crate) fn interrupted(attempts: i64) -> JobFailure {
    JobFailure {
        code: "interrupted".into(),
        message: format!(
            "the job was interrupted while running {attempts} times (its worker stopped)"
        ),
    }
}

/// The quota and queue-depth checks of a submit, given the counts read in its transaction.
pub(crate) fn check_limits(
    owner: &str,
    active: usize,
    queued: usize,
    limits: Limits,
) -> Result<()> {
    if limits.queue > 0 && queued >= limits.queue {
        return Err(JobError::QueueFull {
            depth: queued,
            limit: limits.queue,
        });
    }
    if active >= limits.per_owner {
        return Err(JobError::QuotaExceeded {
            owner: owner.to_string(),
            active,
            limit: limits.per_owner,
        });
    }
    Ok(())
}

/// The median of `v`; None when empty.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// The SQL list of `states` (`'queued', 'running'`), from their fixed names.
pub(crate) fn state_list(states: &[JobState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

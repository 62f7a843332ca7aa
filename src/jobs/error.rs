//! The job manager's and the server's errors: the service's own failures (unknown job, quota,
//! full queue, rate limit, store, storage) apart from the engine's [`crate::Error`], which they
//! wrap.

use std::path::PathBuf;

/// Result alias of the job manager and the server.
pub type Result<T> = std::result::Result<T, JobError>;

/// Everything that can go wrong in the job manager and the server.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// An error of the engine: bad parameters, a missing file, a model failure, ...
    #[error(transparent)]
    Engine(#[from] crate::Error),

    /// A job id the job manager does not know (never submitted, or removed).
    #[error("no job with id `{id}`")]
    JobNotFound {
        /// The id that was asked for.
        id: String,
    },

    /// An operation that needs a queued or running job was asked of a finished one.
    #[error("job `{id}` has already {state}; only queued or running jobs can be cancelled")]
    JobFinished {
        /// The job.
        id: String,
        /// Its terminal state (`succeeded`, `failed`).
        state: String,
    },

    /// An owner already has as many queued + running jobs as the quota allows.
    #[error("quota exceeded for `{owner}`: {active} of {limit} concurrent jobs (queued + running) in use")]
    QuotaExceeded {
        /// The quota owner (API key or user name).
        owner: String,
        /// Jobs queued or running now.
        active: usize,
        /// The limit.
        limit: usize,
    },

    /// The queue holds as many jobs as it may: try again later.
    #[error("the queue is full: {depth} jobs waiting (limit {limit}); try again later")]
    QueueFull {
        /// Jobs waiting now.
        depth: usize,
        /// The limit.
        limit: usize,
    },

    /// An API key sent more submissions than its rate limit allows: try again after the wait.
    #[error("rate limit exceeded: at most {limit} per API key; retry in {retry_after_secs} s")]
    RateLimited {
        /// The limit (`30/min`).
        limit: String,
        /// Seconds until a submission is accepted again.
        retry_after_secs: u64,
    },

    /// The job store (SQLite or PostgreSQL database) failed.
    #[error("job store {store}: {message}")]
    Store {
        /// The store (`sqlite:<path>`, `postgres://host/db`; never a password).
        store: String,
        /// The database's message.
        message: String,
    },

    /// The job manager is shutting down and takes no more work.
    #[error("the job manager is shutting down")]
    ShuttingDown,

    /// A request body or upload is larger than the server accepts.
    #[error("{what} is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// What was too large (`the JSON body`, `the multipart body`, ...).
        what: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// The data directory cannot be written (read-only, full, gone): nothing can be accepted
    /// until it can.
    #[error("storage unavailable: {path} cannot be written ({message})")]
    StorageUnavailable {
        /// The folder or file that failed.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
}

impl From<candle_core::Error> for JobError {
    fn from(e: candle_core::Error) -> Self {
        JobError::Engine(e.into())
    }
}

impl JobError {
    /// The engine's error, if this is one.
    pub fn engine(&self) -> Option<&crate::Error> {
        match self {
            JobError::Engine(e) => Some(e),
            _ => None,
        }
    }
}

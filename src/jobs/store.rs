//! SQLite persistence of jobs (`<data_dir>/jobs.sqlite`).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{JobFailure, JobProgress, JobRecord, JobRequest, JobResult, JobState, ListFilter};
use crate::jobs::{JobError, Result};

/// Callback delivery state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackState {
    Pending,
    Delivered,
    Failed,
}

impl CallbackState {
    fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Delivered => "delivered",
            CallbackState::Failed => "failed",
        }
    }
}

/// A terminal state to record.
#[derive(Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub state: JobState,
    pub finished_at: f64,
    pub expires_at: Option<f64>,
    pub progress: &'a JobProgress,
    pub result: Option<&'a JobResult>,
    pub error: Option<&'a JobFailure>,
}

/// The job database.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    progress TEXT,
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    callback_state TEXT,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs(owner, state);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
";

const COLUMNS: &str =
    "id, owner, state, request, created_at, started_at, finished_at, expires_at, \
                       progress, result, error_code, error_message, attempts";

impl Store {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| store_err(path, e))?;
        let s = Self {
            conn,
            path: path.to_path_buf(),
        };
        s.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| store_err(path, e))?;
        // WAL keeps readers off the writer's back; NORMAL sync is durable across process crashes.
        let _: String = s
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| store_err(path, e))?;
        s.conn
            .execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(|e| store_err(path, e))?;
        s.conn
            .execute_batch(SCHEMA)
            .map_err(|e| store_err(path, e))?;
        s.conn.set_prepared_statement_cache_capacity(32);
        Ok(s)
    }

    fn err(&self, e: rusqlite::Error) -> JobError {
        store_err(&self.path, e)
    }

    /// Stores a new job.
    pub fn insert(&self, rec: &JobRecord) -> Result<()> {
        let request = to_json(&rec.request);
        let cb = rec
            .request
            .callback_url
            .as_ref()
            .map(|_| CallbackState::Pending.as_str());
        self.conn
            .prepare_cached(
                "INSERT INTO jobs (id, owner, state, request, created_at, progress, attempts, callback_state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    rec.id,
                    rec.owner,
                    rec.state.as_str(),
                    request,
                    rec.created_at,
                    to_json(&rec.progress),
                    cb
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The stored record of `id` (queue position / ETA left at 0 / None).
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))
            .and_then(|mut st| st.query_row(params![id], read_row).optional())
            .map_err(|e| self.err(e))
    }

    /// Marks `id` running (a new attempt).
    pub fn set_running(&self, id: &str, started_at: f64) -> Result<u32> {
        self.exec(
            "UPDATE jobs SET state = 'running', started_at = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, started_at],
        )?;
        self.conn
            .query_row(
                "SELECT attempts FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Puts a running job back in the queue; `refund` gives its attempt back (a graceful
    /// shutdown is not the job's fault).
    pub fn requeue(&self, id: &str, refund: bool) -> Result<()> {
        let sql = if refund {
            "UPDATE jobs SET state = 'queued', started_at = NULL, attempts = MAX(attempts - 1, 0), progress = ?2 WHERE id = ?1"
        } else {
            "UPDATE jobs SET state = 'queued', started_at = NULL, progress = ?2 WHERE id = ?1"
        };
        self.exec(sql, params![id, to_json(&JobProgress::default())])
    }

    /// Saves progress.
    pub fn set_progress(&self, id: &str, p: &JobProgress) -> Result<()> {
        self.exec(
            "UPDATE jobs SET progress = ?2 WHERE id = ?1",
            params![id, to_json(p)],
        )
    }

    /// Records a terminal state.
    pub fn finish(&self, id: &str, end: &Finish<'_>) -> Result<()> {
        let Finish {
            state,
            finished_at,
            expires_at,
            progress,
            result,
            error,
        } = *end;
        self.exec(
            "UPDATE jobs SET state = ?2, finished_at = ?3, expires_at = ?4, progress = ?5, result = ?6, \
             error_code = ?7, error_message = ?8 WHERE id = ?1",
            params![
                id,
                state.as_str(),
                finished_at,
                expires_at,
                to_json(progress),
                result.map(to_json),
                error.map(|e| e.code.clone()),
                error.map(|e| e.message.clone()),
            ],
        )
    }

    /// Queued + running jobs of `owner`.
    pub fn active_count(&self, owner: &str) -> Result<usize> {
        self.conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE owner = ?1 AND state IN ('queued', 'running')",
            )
            .and_then(|mut st| st.query_row(params![owner], |r| r.get::<_, i64>(0)))
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Jobs of `owner` (every owner when None), newest first.
    pub fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR owner = ?1)");
        if !filter.states.is_empty() {
            let names: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND state IN ({})", names.join(", ")));
        }
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        sql.push_str(" ORDER BY seq DESC LIMIT ?2 OFFSET ?3");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![owner, limit, filter.offset as i64], read_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Ids in `state`, oldest first, with their attempts.
    pub fn ids_in_state(&self, state: JobState) -> Result<Vec<(String, u32)>> {
        let mut st = self
            .conn
            .prepare("SELECT id, attempts FROM jobs WHERE state = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![state.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Succeeded jobs whose retention ran out by `now` and whose files are not yet deleted.
    pub fn due_for_expiry(&self, now: f64) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id FROM jobs WHERE expired = 0 AND expires_at IS NOT NULL AND expires_at <= ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![now], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Marks the outputs of `id` deleted.
    pub fn mark_expired(&self, id: &str) -> Result<()> {
        let rec = self.get(id)?;
        let result = rec.and_then(|r| r.result).map(|mut r| {
            r.expired = true;
            r
        });
        self.exec(
            "UPDATE jobs SET expired = 1, result = COALESCE(?2, result) WHERE id = ?1",
            params![id, result.as_ref().map(to_json)],
        )
    }

    /// Sets the callback delivery state of `id`.
    pub fn set_callback_state(&self, id: &str, state: CallbackState) -> Result<()> {
        self.exec(
            "UPDATE jobs SET callback_state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )
    }

    /// Terminal jobs whose callback is still pending (to resend after a restart).
    pub fn pending_callbacks(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id FROM jobs WHERE callback_state = 'pending' \
                 AND state IN ('succeeded', 'failed', 'cancelled') ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

fn store_err(path: &Path, e: rusqlite::Error) -> JobError {
    JobError::Store {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Parses a JSON column, reporting a corrupt value as a conversion error of column `idx`.
fn from_json<T: serde::de::DeserializeOwned>(idx: usize, s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(2)?;
    let state = JobState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown job state `{state}`").into(),
        )
    })?;
    let request: String = r.get(3)?;
    let request: JobRequest = from_json(3, &request)?;
    let progress: Option<String> = r.get(8)?;
    let result: Option<String> = r.get(9)?;
    let code: Option<String> = r.get(10)?;
    let message: Option<String> = r.get(11)?;
    Ok(JobRecord {
        id: r.get(0)?,
        owner: r.get(1)?,
        state,
        request,
        created_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        expires_at: r.get(7)?,
        queue_position: 0,
        eta_seconds: None,
        progress: match progress {
            Some(p) => from_json(8, &p)?,
            None => JobProgress::default(),
        },
        result: result.map(|s| from_json(9, &s)).transpose()?,
        error: code.map(|code| JobFailure {
            code,
            message: message.unwrap_or_default(),
        }),
        attempts: r.get(12)?,
        cancel_requested: false,
    })
}

//! The embedded store: one SQLite database file (`<data_dir>/jobs.sqlite` by default), for one
//! process. Its statements run on one connection behind a mutex, so each is atomic.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    check_limits, interrupted, median, state_list, store_err, to_json, Active, Beat, CallbackState,
    Cancelled, Claimed, Finish, JobStore, Limits, NewJob, RawJob, Reaped, Workers, CALLBACK_LEASE,
    COLUMNS, SWEEP_RETRY,
};
use crate::jobs::{now, JobProgress, JobRecord, JobState, ListFilter, Result};

/// The schema, one migration per version (applied in order, each once, recorded in
/// `schema_migrations`). Version 1 is the schema of the single-process manager; version 2 adds
/// leases, cancel requests, ETA inputs, callback claims and the workers' heartbeats.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS jobs (
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
    CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);",
    "ALTER TABLE jobs ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN cost REAL NOT NULL DEFAULT 1.0;
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN callback_lease REAL;
    ALTER TABLE jobs ADD COLUMN callback_holder TEXT;
    ALTER TABLE jobs ADD COLUMN sweep_claimed REAL;
    CREATE INDEX jobs_state_seq ON jobs(state, seq);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        seen_at REAL NOT NULL,
        slots INTEGER NOT NULL,
        seconds_per_unit REAL
    );",
];

/// The condition under which an ending job's callback is claimed by the process that ends it.
const PENDING: &str = "callback_state = 'pending'";

/// The SQLite job store.
pub(crate) struct SqliteStore {
    conn: Mutex<Connection>,
    name: String,
    /// This process, as an SQL literal (the holder of the callbacks it claims).
    holder: String,
}

impl SqliteStore {
    /// Opens (creating) the database at `path` and migrates it to the current schema.
    pub fn open(path: &Path, holder: String) -> Result<Self> {
        let name = format!("sqlite:{}", path.display());
        let err = |e: rusqlite::Error| store_err(&name, e);
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        // WAL keeps readers off the writer's back; NORMAL sync is durable across process crashes.
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);",
        )
        .map_err(err)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if current > MIGRATIONS.len() as i64 {
            return Err(store_err(
                &name,
                format!(
                    "its schema is version {current}, newer than this acestep knows ({})",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, now()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        conn.set_prepared_statement_cache_capacity(48);
        Ok(Self {
            conn: Mutex::new(conn),
            name,
            holder,
        })
    }

    /// The SQL that claims a job's pending callback for this process when `cond` holds, with
    /// its lease ending at parameter `lease`.
    fn claim_callback(&self, cond: &str, lease: &str) -> String {
        format!(
            "callback_lease = CASE WHEN {cond} THEN {lease} END, \
             callback_holder = CASE WHEN {cond} THEN {} END",
            self.holder
        )
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> crate::jobs::JobError {
        store_err(&self.name, e)
    }

    /// Runs one statement; the rows it changed.
    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        self.lock()
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map_err(|e| self.err(e))
    }

    /// Runs a query whose rows are read by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(p, f).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    fn records(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<JobRecord>> {
        self.rows(sql, p, read_raw)?
            .into_iter()
            .map(|r| r.into_record().map_err(|e| store_err(&self.name, e)))
            .collect()
    }
}

fn read_raw(r: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        id: r.get(0)?,
        owner: r.get(1)?,
        state: r.get(2)?,
        request: r.get(3)?,
        created_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        expires_at: r.get(7)?,
        progress: r.get(8)?,
        result: r.get(9)?,
        error_code: r.get(10)?,
        error_message: r.get(11)?,
        attempts: r.get(12)?,
        cancel_requested: r.get::<_, i64>(13)? != 0,
    })
}

impl JobStore for SqliteStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn shared(&self) -> bool {
        false
    }

    fn insert(&self, job: &NewJob<'_>, limits: Limits) -> Result<()> {
        let rec = job.rec;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let (active, queued): (i64, i64) = tx
            .query_row(
                "SELECT COUNT(*) FILTER (WHERE owner = ?1 AND state IN ('queued', 'running')), \
                 COUNT(*) FILTER (WHERE state = 'queued') FROM jobs WHERE state IN ('queued', 'running')",
                params![rec.owner],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        check_limits(&rec.owner, active as usize, queued as usize, limits)?;
        let cb = rec.request.callback_url.as_ref().map(|_| "pending");
        tx.execute(
            "INSERT INTO jobs (id, owner, state, request, created_at, progress, attempts, \
             callback_state, steps, cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)",
            params![
                rec.id,
                rec.owner,
                rec.state.as_str(),
                to_json(&rec.request),
                rec.created_at,
                to_json(&rec.progress),
                cb,
                job.steps as i64,
                job.cost
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let conn = self.lock();
        let raw = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))
            .and_then(|mut st| st.query_row(params![id], read_raw).optional())
            .map_err(|e| self.err(e))?;
        raw.map(|r| r.into_record().map_err(|e| store_err(&self.name, e)))
            .transpose()
    }

    fn get_many(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.get(id)?);
        }
        Ok(out)
    }

    fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR owner = ?1)");
        if !filter.states.is_empty() {
            sql.push_str(&format!(" AND state IN ({})", state_list(&filter.states)));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?2 OFFSET ?3");
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        self.records(&sql, params![owner, limit, filter.offset as i64])
    }

    fn active_count(&self, owner: &str) -> Result<usize> {
        let n = self.rows(
            "SELECT COUNT(*) FROM jobs WHERE owner = ?1 AND state IN ('queued', 'running')",
            params![owner],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(n.first().copied().unwrap_or(0) as usize)
    }

    fn active(&self, state: JobState) -> Result<Vec<Active>> {
        self.rows(
            "SELECT id, steps, cost, progress FROM jobs WHERE state = ?1 ORDER BY seq",
            params![state.as_str()],
            |r| {
                let progress: Option<String> = r.get(3)?;
                Ok(Active {
                    id: r.get(0)?,
                    steps: r.get::<_, i64>(1)?.max(0) as usize,
                    cost: r.get(2)?,
                    progress: progress
                        .and_then(|p| serde_json::from_str(&p).ok())
                        .unwrap_or_default(),
                })
            },
        )
    }

    fn claim(
        &self,
        worker: &str,
        lease: Duration,
        progress: &JobProgress,
    ) -> Result<Option<Claimed>> {
        let t = now();
        let sql = format!(
            "UPDATE jobs SET state = 'running', started_at = ?2, attempts = attempts + 1, \
             worker = ?1, lease_until = ?3, cancel_requested = 0, progress = ?4 \
             WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1) \
             RETURNING {COLUMNS}, steps, cost"
        );
        let got = self.rows(
            &sql,
            params![worker, t, t + lease.as_secs_f64(), to_json(progress)],
            |r| Ok((read_raw(r)?, r.get::<_, i64>(14)?, r.get::<_, f64>(15)?)),
        )?;
        got.into_iter()
            .next()
            .map(|(raw, steps, cost)| {
                Ok(Claimed {
                    rec: raw.into_record().map_err(|e| store_err(&self.name, e))?,
                    steps: steps.max(0) as usize,
                    cost,
                })
            })
            .transpose()
    }

    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease: Duration,
        progress: Option<&JobProgress>,
    ) -> Result<Beat> {
        let got = self.rows(
            "UPDATE jobs SET lease_until = ?3, progress = COALESCE(?4, progress) \
             WHERE id = ?1 AND worker = ?2 AND state = 'running' RETURNING cancel_requested",
            params![
                id,
                worker,
                now() + lease.as_secs_f64(),
                progress.map(to_json)
            ],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(match got.first() {
            Some(c) => Beat::Held { cancel: *c != 0 },
            None => Beat::Lost,
        })
    }

    fn finish(&self, id: &str, worker: &str, end: &Finish<'_>) -> Result<Option<JobState>> {
        let t = now();
        let sql = format!(
            "UPDATE jobs SET \
               state = CASE WHEN cancel_requested AND ?3 = 'succeeded' THEN 'cancelled' ELSE ?3 END, \
               expires_at = CASE WHEN cancel_requested AND ?3 = 'succeeded' THEN NULL ELSE ?5 END, \
               result = CASE WHEN cancel_requested AND ?3 = 'succeeded' THEN NULL ELSE ?7 END, \
               finished_at = ?4, progress = ?6, error_code = ?8, error_message = ?9, \
               lease_until = NULL, {} \
             WHERE id = ?1 AND worker = ?2 AND state = 'running' RETURNING state",
            self.claim_callback(PENDING, "?10")
        );
        let got = self.rows(
            &sql,
            params![
                id,
                worker,
                end.state.as_str(),
                t,
                end.expires_at,
                to_json(end.progress),
                end.result.map(to_json),
                end.error.map(|e| e.code.clone()),
                end.error.map(|e| e.message.clone()),
                t + CALLBACK_LEASE.as_secs_f64(),
            ],
            |r| r.get::<_, String>(0),
        )?;
        Ok(got.first().and_then(|s| JobState::parse(s)))
    }

    fn cancel(&self, id: &str) -> Result<Cancelled> {
        let t = now();
        let conn = self.lock();
        let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            conn.prepare_cached(sql)
                .and_then(|mut st| st.execute(p))
                .map_err(|e| self.err(e))
        };
        let lease = t + CALLBACK_LEASE.as_secs_f64();
        if exec(
            &format!(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, {} \
                 WHERE id = ?1 AND state = 'queued'",
                self.claim_callback(PENDING, "?3")
            ),
            &[&id, &t, &lease],
        )? == 1
        {
            return Ok(Cancelled::Now);
        }
        if exec(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
            &[&id],
        )? == 1
        {
            return Ok(Cancelled::Requested);
        }
        let state: Option<String> = conn
            .prepare_cached("SELECT state FROM jobs WHERE id = ?1")
            .and_then(|mut st| st.query_row(params![id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(match state.as_deref().and_then(JobState::parse) {
            Some(s) => Cancelled::Terminal(s),
            None => Cancelled::NotFound,
        })
    }

    fn requeue(&self, id: &str, worker: &str, refund: bool) -> Result<()> {
        self.exec(
            "UPDATE jobs SET state = 'queued', started_at = NULL, worker = NULL, \
             lease_until = NULL, cancel_requested = 0, progress = ?3, \
             attempts = CASE WHEN ?4 THEN MAX(attempts - 1, 0) ELSE attempts END \
             WHERE id = ?1 AND worker = ?2 AND state = 'running'",
            params![id, worker, to_json(&JobProgress::default()), refund],
        )?;
        Ok(())
    }

    fn reap(&self, all: bool) -> Result<Vec<Reaped>> {
        let t = now();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let lapsed: Vec<(String, i64)> = {
            let mut st = tx
                .prepare(
                    "SELECT id, attempts FROM jobs WHERE state = 'running' \
                     AND (?1 OR lease_until IS NULL OR lease_until < ?2) ORDER BY seq",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![all, t], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.err(e))?
        };
        let mut out = Vec::with_capacity(lapsed.len());
        for (id, attempts) in lapsed {
            let requeued = attempts < 2;
            if requeued {
                tx.execute(
                    "UPDATE jobs SET state = 'queued', started_at = NULL, worker = NULL, \
                     lease_until = NULL, cancel_requested = 0, progress = ?2 WHERE id = ?1",
                    params![id, to_json(&JobProgress::default())],
                )
            } else {
                let f = interrupted(attempts);
                tx.execute(
                    &format!(
                        "UPDATE jobs SET state = 'failed', finished_at = ?2, error_code = ?3, \
                         error_message = ?4, worker = NULL, lease_until = NULL, {} \
                         WHERE id = ?1",
                        self.claim_callback(PENDING, "?5")
                    ),
                    params![id, t, f.code, f.message, t + CALLBACK_LEASE.as_secs_f64()],
                )
            }
            .map_err(|e| self.err(e))?;
            out.push(Reaped { id, requeued });
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn expire_due(&self) -> Result<Vec<String>> {
        let t = now();
        self.rows(
            "UPDATE jobs SET sweep_claimed = ?1 WHERE expired = 0 AND expires_at IS NOT NULL \
             AND expires_at <= ?1 AND (sweep_claimed IS NULL OR sweep_claimed < ?2) RETURNING id",
            params![t, t - SWEEP_RETRY.as_secs_f64()],
            |r| r.get(0),
        )
    }

    fn mark_expired(&self, id: &str) -> Result<()> {
        self.exec(
            "UPDATE jobs SET expired = 1, \
             result = CASE WHEN result IS NULL THEN NULL ELSE json_set(result, '$.expired', json('true')) END \
             WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    fn set_callback_state(&self, id: &str, state: CallbackState) -> Result<()> {
        self.exec(
            "UPDATE jobs SET callback_state = ?2, callback_lease = NULL, callback_holder = NULL \
             WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    fn claim_orphan_callbacks(&self, all: bool, alive: Duration) -> Result<Vec<String>> {
        let t = now();
        self.rows(
            &format!(
                "UPDATE jobs SET {} WHERE callback_state = 'pending' \
                 AND state IN ('succeeded', 'failed', 'cancelled') \
                 AND (?3 OR callback_lease IS NULL OR callback_lease < ?2 \
                      OR callback_holder IS NULL \
                      OR callback_holder NOT IN (SELECT id FROM workers WHERE seen_at >= ?4)) \
                 RETURNING id",
                self.claim_callback("TRUE", "?1")
            ),
            params![
                t + CALLBACK_LEASE.as_secs_f64(),
                t,
                all,
                t - alive.as_secs_f64()
            ],
            |r| r.get(0),
        )
    }

    fn worker_alive(
        &self,
        worker: &str,
        slots: usize,
        seconds_per_unit: Option<f64>,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO workers (id, seen_at, slots, seconds_per_unit) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, slots = excluded.slots, \
             seconds_per_unit = COALESCE(excluded.seconds_per_unit, workers.seconds_per_unit)",
            params![worker, now(), slots as i64, seconds_per_unit],
        )?;
        Ok(())
    }

    fn worker_gone(&self, worker: &str) -> Result<()> {
        self.exec("DELETE FROM workers WHERE id = ?1", params![worker])?;
        Ok(())
    }

    fn workers(&self, within: Duration) -> Result<Workers> {
        let rows = self.rows(
            "SELECT slots, seconds_per_unit FROM workers WHERE seen_at >= ?1",
            params![now() - within.as_secs_f64()],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?)),
        )?;
        Ok(Workers {
            slots: rows.iter().map(|r| r.0.max(0) as usize).sum(),
            seconds_per_unit: median(rows.iter().filter_map(|r| r.1).collect()),
        })
    }
}

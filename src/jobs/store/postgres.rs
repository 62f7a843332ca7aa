//! The cluster store: one PostgreSQL database shared by API front ends (`acestep serve
//! --workers 0`) and worker processes (`acestep worker`). Queued jobs are claimed in FIFO order
//! with `FOR UPDATE SKIP LOCKED`; leases and heartbeats use the database's clock, so the hosts'
//! clocks need not agree.
//!
//! The client is the synchronous `postgres` crate (the job manager is thread-based); it must not
//! be called on an async runtime's worker threads (the server calls the manager through
//! `spawn_blocking`).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, NoTls, Row};

use super::{
    check_limits, interrupted, median, redact, state_list, store_err, to_json, Active, Beat,
    CallbackState, Cancelled, Claimed, Finish, JobStore, Limits, NewJob, RawJob, Reaped, Workers,
    CALLBACK_LEASE, COLUMNS, SWEEP_RETRY,
};
use crate::jobs::{JobError, JobProgress, JobRecord, JobState, ListFilter, Result};

/// The schema, one migration per version (the same versions as the SQLite store's), applied
/// in order under an advisory lock so that processes starting together migrate once.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS jobs (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        expires_at DOUBLE PRECISION,
        progress TEXT,
        result TEXT,
        error_code TEXT,
        error_message TEXT,
        attempts BIGINT NOT NULL DEFAULT 0,
        callback_state TEXT,
        expired BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs(owner, state);
    CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);",
    "ALTER TABLE jobs ADD COLUMN steps BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN cost DOUBLE PRECISION NOT NULL DEFAULT 1.0;
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
    ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE jobs ADD COLUMN callback_lease DOUBLE PRECISION;
    ALTER TABLE jobs ADD COLUMN callback_holder TEXT;
    ALTER TABLE jobs ADD COLUMN sweep_claimed DOUBLE PRECISION;
    CREATE INDEX jobs_state_seq ON jobs(state, seq);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL,
        slots BIGINT NOT NULL,
        seconds_per_unit DOUBLE PRECISION
    );",
];

/// The advisory lock keys: schema migrations, submits (quota and queue depth are checked and the
/// job inserted under it, cluster-wide).
const MIGRATION_LOCK: i64 = 0x6163_6573_7465_7001;
const SUBMIT_LOCK: i64 = 0x6163_6573_7465_7002;

/// The database's clock, in Unix seconds.
const NOW: &str = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION";

/// Connections kept open per process.
const POOL_SIZE: usize = 8;

/// The PostgreSQL job store: a small pool of connections.
pub(crate) struct PostgresStore {
    url: String,
    name: String,
    /// This process, as an SQL literal (the holder of the callbacks it claims).
    holder: String,
    idle: Mutex<Vec<Client>>,
    /// Connections open (idle or lent).
    open: Mutex<usize>,
    freed: Condvar,
}

/// A pooled connection, returned to the pool when dropped (unless it broke).
struct Conn<'a> {
    pool: &'a PostgresStore,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if c.is_closed() {
                *lock(&self.pool.open) -= 1;
            } else {
                lock(&self.pool.idle).push(c);
            }
            self.pool.freed.notify_one();
        }
    }
}

/// A failure's message: a database error's own message and detail, not only "db error".
struct Failure(String);

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure(match e.as_db_error() {
            Some(db) => match db.detail() {
                Some(d) => format!("{} ({d})", db.message()),
                None => db.message().to_string(),
            },
            None => e.to_string(),
        })
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PostgresStore {
    /// Connects to `url` and migrates the database to the current schema.
    pub fn open(url: &str, holder: String) -> Result<Self> {
        let store = Self {
            url: url.to_string(),
            name: redact(url),
            holder,
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            freed: Condvar::new(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The SQL that claims a job's pending callback for this process when `cond` holds (its
    /// lease on the database's clock).
    fn claim_callback(&self, cond: &str) -> String {
        format!(
            "callback_lease = CASE WHEN {cond} THEN {NOW} + {} END, \
             callback_holder = CASE WHEN {cond} THEN {} END",
            CALLBACK_LEASE.as_secs_f64(),
            self.holder
        )
    }

    fn err(&self, e: impl Into<Failure>) -> JobError {
        store_err(&self.name, e.into().0)
    }

    /// A connection from the pool (a new one while fewer than [`POOL_SIZE`] are open).
    fn conn(&self) -> Result<Conn<'_>> {
        loop {
            if let Some(c) = lock(&self.idle).pop() {
                if c.is_closed() {
                    *lock(&self.open) -= 1;
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(c),
                });
            }
            let mut open = lock(&self.open);
            if *open < POOL_SIZE {
                *open += 1;
                drop(open);
                return match Client::connect(&self.url, NoTls) {
                    Ok(c) => Ok(Conn {
                        pool: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        *lock(&self.open) -= 1;
                        Err(self.err(format!("cannot connect: {e}")))
                    }
                };
            }
            let (_open, _) = self
                .freed
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| self.err(e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)",
        )
        .map_err(|e| self.err(e))?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        if current > MIGRATIONS.len() as i64 {
            return Err(self.err(format!(
                "its schema is version {current}, newer than this acestep knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).map_err(|e| self.err(e))?;
            tx.execute(
                &format!("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, {NOW})"),
                &[&(i as i64 + 1)],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn query(&self, sql: &str, p: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<Row>> {
        let mut c = self.conn()?;
        c.query(sql, p).map_err(|e| self.err(e))
    }

    fn execute(&self, sql: &str, p: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64> {
        let mut c = self.conn()?;
        c.execute(sql, p).map_err(|e| self.err(e))
    }

    fn record(&self, r: &Row) -> Result<JobRecord> {
        read_raw(r)
            .map_err(|e| self.err(e))?
            .into_record()
            .map_err(|e| self.err(e))
    }

    fn ids(&self, rows: Vec<Row>) -> Result<Vec<String>> {
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| self.err(e)))
            .collect()
    }
}

fn read_raw(r: &Row) -> std::result::Result<RawJob, postgres::Error> {
    Ok(RawJob {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        state: r.try_get(2)?,
        request: r.try_get(3)?,
        created_at: r.try_get(4)?,
        started_at: r.try_get(5)?,
        finished_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        progress: r.try_get(8)?,
        result: r.try_get(9)?,
        error_code: r.try_get(10)?,
        error_message: r.try_get(11)?,
        attempts: r.try_get(12)?,
        cancel_requested: r.try_get(13)?,
    })
}

/// The condition under which an ending job's callback is claimed by the process that ends it.
const PENDING: &str = "callback_state = 'pending'";

impl JobStore for PostgresStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn insert(&self, job: &NewJob<'_>, limits: Limits) -> Result<()> {
        let rec = job.rec;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SUBMIT_LOCK])
            .map_err(|e| self.err(e))?;
        let row = tx
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE owner = $1), COUNT(*) FILTER (WHERE state = 'queued') \
                 FROM jobs WHERE state IN ('queued', 'running')",
                &[&rec.owner],
            )
            .map_err(|e| self.err(e))?;
        let (active, queued): (i64, i64) = (row.get(0), row.get(1));
        check_limits(&rec.owner, active as usize, queued as usize, limits)?;
        let cb = rec.request.callback_url.as_ref().map(|_| "pending");
        tx.execute(
            "INSERT INTO jobs (id, owner, state, request, created_at, progress, attempts, \
             callback_state, steps, cost) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
            &[
                &rec.id,
                &rec.owner,
                &rec.state.as_str(),
                &to_json(&rec.request),
                &rec.created_at,
                &to_json(&rec.progress),
                &cb,
                &(job.steps as i64),
                &job.cost,
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let rows = self.query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id])?;
        rows.first().map(|r| self.record(r)).transpose()
    }

    fn get_many(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let rows = self.query(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ANY($1)"),
            &[&ids],
        )?;
        rows.iter().map(|r| self.record(r)).collect()
    }

    fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE ($1::TEXT IS NULL OR owner = $1)");
        if !filter.states.is_empty() {
            sql.push_str(&format!(" AND state IN ({})", state_list(&filter.states)));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT $2 OFFSET $3");
        let limit: Option<i64> = (filter.limit > 0).then_some(filter.limit as i64);
        let rows = self.query(&sql, &[&owner, &limit, &(filter.offset as i64)])?;
        rows.iter().map(|r| self.record(r)).collect()
    }

    fn active_count(&self, owner: &str) -> Result<usize> {
        let rows = self.query(
            "SELECT COUNT(*) FROM jobs WHERE owner = $1 AND state IN ('queued', 'running')",
            &[&owner],
        )?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as usize)
    }

    fn active(&self, state: JobState) -> Result<Vec<Active>> {
        let rows = self.query(
            "SELECT id, steps, cost, progress FROM jobs WHERE state = $1 ORDER BY seq",
            &[&state.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                let progress: Option<String> = r.try_get(3).map_err(|e| self.err(e))?;
                Ok(Active {
                    id: r.try_get(0).map_err(|e| self.err(e))?,
                    steps: r.try_get::<_, i64>(1).map_err(|e| self.err(e))?.max(0) as usize,
                    cost: r.try_get(2).map_err(|e| self.err(e))?,
                    progress: progress
                        .and_then(|p| serde_json::from_str(&p).ok())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    fn claim(
        &self,
        worker: &str,
        lease: Duration,
        progress: &JobProgress,
    ) -> Result<Option<Claimed>> {
        let sql = format!(
            "UPDATE jobs SET state = 'running', started_at = {NOW}, attempts = attempts + 1, \
             worker = $1, lease_until = {NOW} + $2, cancel_requested = FALSE, progress = $3 \
             WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq \
                          LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}, steps, cost"
        );
        let rows = self.query(&sql, &[&worker, &lease.as_secs_f64(), &to_json(progress)])?;
        rows.first()
            .map(|r| {
                Ok(Claimed {
                    rec: self.record(r)?,
                    steps: r.try_get::<_, i64>(14).map_err(|e| self.err(e))?.max(0) as usize,
                    cost: r.try_get(15).map_err(|e| self.err(e))?,
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
        let rows = self.query(
            &format!(
                "UPDATE jobs SET lease_until = {NOW} + $3, progress = COALESCE($4, progress) \
                 WHERE id = $1 AND worker = $2 AND state = 'running' RETURNING cancel_requested"
            ),
            &[&id, &worker, &lease.as_secs_f64(), &progress.map(to_json)],
        )?;
        Ok(match rows.first() {
            Some(r) => Beat::Held { cancel: r.get(0) },
            None => Beat::Lost,
        })
    }

    fn finish(&self, id: &str, worker: &str, end: &Finish<'_>) -> Result<Option<JobState>> {
        let rows = self.query(
            &format!(
                "UPDATE jobs SET \
                   state = CASE WHEN cancel_requested AND $3::TEXT = 'succeeded' THEN 'cancelled' \
                     ELSE $3::TEXT END, \
                   expires_at = CASE WHEN cancel_requested AND $3::TEXT = 'succeeded' THEN NULL \
                     ELSE $4::DOUBLE PRECISION END, \
                   result = CASE WHEN cancel_requested AND $3::TEXT = 'succeeded' THEN NULL \
                     ELSE $6::TEXT END, \
                   finished_at = {NOW}, progress = $5, error_code = $7, error_message = $8, \
                   lease_until = NULL, {} \
                 WHERE id = $1 AND worker = $2 AND state = 'running' RETURNING state",
                self.claim_callback(PENDING)
            ),
            &[
                &id,
                &worker,
                &end.state.as_str(),
                &end.expires_at,
                &to_json(end.progress),
                &end.result.map(to_json),
                &end.error.map(|e| e.code.clone()),
                &end.error.map(|e| e.message.clone()),
            ],
        )?;
        Ok(rows
            .first()
            .and_then(|r| JobState::parse(r.get::<_, &str>(0))))
    }

    fn cancel(&self, id: &str) -> Result<Cancelled> {
        let mut c = self.conn()?;
        let n = c
            .execute(
                &format!(
                    "UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, {} \
                     WHERE id = $1 AND state = 'queued'",
                    self.claim_callback(PENDING)
                ),
                &[&id],
            )
            .map_err(|e| self.err(e))?;
        if n == 1 {
            return Ok(Cancelled::Now);
        }
        let n = c
            .execute(
                "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND state = 'running'",
                &[&id],
            )
            .map_err(|e| self.err(e))?;
        if n == 1 {
            return Ok(Cancelled::Requested);
        }
        let rows = c
            .query("SELECT state FROM jobs WHERE id = $1", &[&id])
            .map_err(|e| self.err(e))?;
        Ok(
            match rows
                .first()
                .and_then(|r| JobState::parse(r.get::<_, &str>(0)))
            {
                Some(s) => Cancelled::Terminal(s),
                None => Cancelled::NotFound,
            },
        )
    }

    fn requeue(&self, id: &str, worker: &str, refund: bool) -> Result<()> {
        self.execute(
            "UPDATE jobs SET state = 'queued', started_at = NULL, worker = NULL, \
             lease_until = NULL, cancel_requested = FALSE, progress = $3, \
             attempts = CASE WHEN $4 THEN GREATEST(attempts - 1, 0) ELSE attempts END \
             WHERE id = $1 AND worker = $2 AND state = 'running'",
            &[&id, &worker, &to_json(&JobProgress::default()), &refund],
        )?;
        Ok(())
    }

    fn reap(&self, all: bool) -> Result<Vec<Reaped>> {
        let f = interrupted(2);
        // One statement: each lapsed job is locked, re-checked and changed by one reaper.
        let rows = self.query(
            &format!(
                "UPDATE jobs SET \
                   state = CASE WHEN attempts < 2 THEN 'queued' ELSE 'failed' END, \
                   started_at = CASE WHEN attempts < 2 THEN NULL ELSE started_at END, \
                   finished_at = CASE WHEN attempts < 2 THEN NULL ELSE {NOW} END, \
                   error_code = CASE WHEN attempts < 2 THEN NULL ELSE $2 END, \
                   error_message = CASE WHEN attempts < 2 THEN NULL ELSE \
                     'the job was interrupted while running ' || attempts || \
                     ' times (its worker stopped)' END, \
                   progress = CASE WHEN attempts < 2 THEN $3 ELSE progress END, \
                   {}, \
                   worker = NULL, lease_until = NULL, cancel_requested = FALSE \
                 WHERE seq IN (SELECT seq FROM jobs WHERE state = 'running' \
                     AND ($1 OR lease_until IS NULL OR lease_until < {NOW}) \
                     ORDER BY seq FOR UPDATE SKIP LOCKED) \
                 RETURNING id, state",
                self.claim_callback(&format!("attempts >= 2 AND {PENDING}"))
            ),
            &[&all, &f.code, &to_json(&JobProgress::default())],
        )?;
        rows.iter()
            .map(|r| {
                let state: &str = r.try_get(1).map_err(|e| self.err(e))?;
                Ok(Reaped {
                    id: r.try_get(0).map_err(|e| self.err(e))?,
                    requeued: state == "queued",
                })
            })
            .collect()
    }

    fn expire_due(&self) -> Result<Vec<String>> {
        let rows = self.query(
            &format!(
                "UPDATE jobs SET sweep_claimed = {NOW} WHERE seq IN (SELECT seq FROM jobs \
                 WHERE NOT expired AND expires_at IS NOT NULL AND expires_at <= {NOW} \
                 AND (sweep_claimed IS NULL OR sweep_claimed < {NOW} - $1) \
                 FOR UPDATE SKIP LOCKED) RETURNING id"
            ),
            &[&SWEEP_RETRY.as_secs_f64()],
        )?;
        self.ids(rows)
    }

    fn mark_expired(&self, id: &str) -> Result<()> {
        self.execute(
            "UPDATE jobs SET expired = TRUE, \
             result = CASE WHEN result IS NULL THEN NULL \
               ELSE jsonb_set(result::jsonb, '{expired}', 'true'::jsonb)::TEXT END \
             WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    fn set_callback_state(&self, id: &str, state: CallbackState) -> Result<()> {
        self.execute(
            "UPDATE jobs SET callback_state = $2, callback_lease = NULL, callback_holder = NULL \
             WHERE id = $1",
            &[&id, &state.as_str()],
        )?;
        Ok(())
    }

    fn claim_orphan_callbacks(&self, all: bool, alive: Duration) -> Result<Vec<String>> {
        let rows = self.query(
            &format!(
                "UPDATE jobs SET {} WHERE seq IN (SELECT seq FROM jobs \
                 WHERE callback_state = 'pending' AND state IN ('succeeded', 'failed', 'cancelled') \
                 AND ($1 OR callback_lease IS NULL OR callback_lease < {NOW} \
                      OR callback_holder IS NULL \
                      OR callback_holder NOT IN (SELECT id FROM workers WHERE seen_at >= {NOW} - $2)) \
                 FOR UPDATE SKIP LOCKED) RETURNING id",
                self.claim_callback("TRUE")
            ),
            &[&all, &alive.as_secs_f64()],
        )?;
        self.ids(rows)
    }

    fn worker_alive(
        &self,
        worker: &str,
        slots: usize,
        seconds_per_unit: Option<f64>,
    ) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO workers (id, seen_at, slots, seconds_per_unit) VALUES ($1, {NOW}, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, slots = excluded.slots, \
                 seconds_per_unit = COALESCE(excluded.seconds_per_unit, workers.seconds_per_unit)"
            ),
            &[&worker, &(slots as i64), &seconds_per_unit],
        )?;
        Ok(())
    }

    fn worker_gone(&self, worker: &str) -> Result<()> {
        self.execute("DELETE FROM workers WHERE id = $1", &[&worker])?;
        Ok(())
    }

    fn workers(&self, within: Duration) -> Result<Workers> {
        let rows = self.query(
            &format!("SELECT slots, seconds_per_unit FROM workers WHERE seen_at >= {NOW} - $1"),
            &[&within.as_secs_f64()],
        )?;
        let mut slots = 0usize;
        let mut spu = Vec::new();
        for r in &rows {
            slots += r.try_get::<_, i64>(0).map_err(|e| self.err(e))?.max(0) as usize;
            if let Some(s) = r.try_get::<_, Option<f64>>(1).map_err(|e| self.err(e))? {
                spu.push(s);
            }
        }
        Ok(Workers {
            slots,
            seconds_per_unit: median(spu),
        })
    }
}

//! [`JobManager`]: the workers, the sweeper, the lease keeper and the callback dispatcher around
//! a [`JobStore`] that holds the queue (SQLite for one process, PostgreSQL for a cluster).

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::callback::{self, CallbackSender, Delivery, Message};
use super::store::{
    self, Active, Beat, CallbackState, Cancelled, Finish, JobStore, Limits, NewJob, Workers,
};
use super::{
    now, Generator, JobEvent, JobFailure, JobProgress, JobRecord, JobRequest, JobResult, JobState,
    ListFilter, ManagerConfig, Quota, WebhookEvent,
};
use crate::error::Error;
use crate::jobs::{JobError, Result};
use crate::pipeline::Control;

/// Abort flags of a running job.
const RUN: u8 = 0;
const CANCEL: u8 = 1;
const SHUTDOWN: u8 = 2;
const HALT: u8 = 3;
/// The job's lease was lost (reaped by another process): stop without touching the store.
const LOST: u8 = 4;

/// Step durations kept for the moving average.
const STEP_WINDOW: usize = 32;

struct Running {
    abort: Arc<AtomicU8>,
    progress: JobProgress,
    /// The job's record, kept when its webhook wants `start` or `progress` deliveries.
    webhook: Option<JobRecord>,
    /// When the last `progress` webhook was sent.
    last_webhook: Option<Instant>,
    /// `progress` webhooks sent in this run (numbers their message ids).
    webhooks_sent: u32,
    steps: usize,
    cost: f64,
    last_step_at: Instant,
    last_saved: Instant,
}

struct State {
    /// The jobs this process's workers run.
    running: HashMap<String, Running>,
    /// Recent seconds per diffusion step per unit of step cost (a moving window).
    step_secs: VecDeque<f64>,
    /// 0 running, SHUTDOWN or HALT.
    stopping: u8,
    /// Bumped by every submit (a worker that saw no job waits only if nothing came since).
    submits: u64,
    /// The cluster's live workers, as last read (shared stores), and when.
    workers: Option<(Instant, Workers)>,
    /// Counters and histograms since start.
    metrics: super::JobMetrics,
}

impl State {
    /// The median of the recent step times (robust to one late wake-up or a page fault, which
    /// would make a mean, and every ETA with it, jump).
    fn seconds_per_unit(&self) -> Option<f64> {
        store::median(self.step_secs.iter().copied().collect())
    }
}

/// What the ETAs of a moment are computed from.
struct View {
    queue: Vec<Active>,
    /// Seconds of diffusion the running jobs have left, all together.
    running_left: f64,
    running: usize,
    /// Seconds per unit of step cost.
    spu: Option<f64>,
    /// Workers that take jobs from the queue.
    slots: usize,
}

impl View {
    /// The ETA of the job at queue index `pos` with `ahead` seconds of queued work before it.
    fn eta_at(&self, pos: usize, ahead: f64) -> Option<f64> {
        let spu = self.spu?;
        let own = secs(&self.queue[pos], spu);
        let slots = self.slots.max(1);
        if self.running + pos < slots {
            return Some(own);
        }
        Some((self.running_left + ahead) / slots as f64 + own)
    }

    /// The queue position (1-based) and ETA of `id`.
    fn queued(&self, id: &str) -> Option<(usize, Option<f64>)> {
        let pos = self.queue.iter().position(|q| q.id == id)?;
        let ahead = self.spu.map_or(0.0, |spu| {
            self.queue[..pos].iter().map(|q| secs(q, spu)).sum()
        });
        Some((pos + 1, self.eta_at(pos, ahead)))
    }
}

/// Seconds of diffusion a queued job takes.
fn secs(q: &Active, spu: f64) -> f64 {
    q.steps as f64 * q.cost * spu
}

struct Shared {
    config: ManagerConfig,
    generator: Arc<dyn Generator>,
    store: Box<dyn JobStore>,
    /// This process's name in the store (leases, heartbeats).
    worker_id: String,
    state: Mutex<State>,
    /// Wakes workers (new job, shutdown) and the sweeper (shutdown).
    wake: Condvar,
    events: Mutex<Vec<Sender<JobEvent>>>,
    /// Every job's live events, for streaming.
    feed: Arc<super::events::EventFeed>,
    callbacks: Mutex<CallbackSender>,
    /// The data directory as given and resolved, longest first (removed from what is shown).
    data_dirs: Vec<String>,
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (every critical
/// section leaves the state consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The job manager. Dropping it shuts it down gracefully: running jobs stop at their next step and
/// are put back in the queue (without using up an attempt) for the next start.
pub struct JobManager {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl JobManager {
    /// Opens (creating) the data directory and the job store, recovers the jobs of a previous
    /// run and starts the workers, the sweeper, the lease keeper and the callback dispatcher.
    pub fn open(config: ManagerConfig, generator: Arc<dyn Generator>) -> Result<Self> {
        let outputs = config.data_dir.join("outputs");
        std::fs::create_dir_all(&outputs).map_err(|e| JobError::StorageUnavailable {
            path: outputs.clone(),
            message: e.to_string(),
        })?;
        check_writable(&outputs)?;
        check_writable(&config.data_dir)?;
        let worker_id = worker_id();
        let store = store::open(&config.store, &config.data_dir, &worker_id)?;
        if config.workers == 0 && !store.shared() {
            return Err(Error::InvalidArgument {
                name: "workers",
                value: "0".into(),
                expected: "at least 1 (0 only with a shared store: PostgreSQL)".into(),
            }
            .into());
        }
        let (tx, rx) = mpsc::channel();
        let dir = &config.data_dir;
        let mut data_dirs: Vec<String> = [Some(dir.clone()), dir.canonicalize().ok()]
            .into_iter()
            .flatten()
            .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        data_dirs.sort_by_key(|p| std::cmp::Reverse(p.len()));
        data_dirs.dedup();
        let shared = Arc::new(Shared {
            config,
            generator,
            store,
            worker_id,
            state: Mutex::new(State {
                running: HashMap::new(),
                step_secs: VecDeque::new(),
                stopping: RUN,
                submits: 0,
                workers: None,
                metrics: super::JobMetrics {
                    queued: 0,
                    running: 0,
                    submitted: 0,
                    succeeded: 0,
                    failed: 0,
                    cancelled: 0,
                    step_seconds: super::Histogram::new(&super::STEP_SECONDS_BUCKETS),
                    generation_seconds: super::Histogram::new(&super::GENERATION_SECONDS_BUCKETS),
                },
            }),
            wake: Condvar::new(),
            events: Mutex::new(Vec::new()),
            feed: Arc::new(super::events::EventFeed::new()),
            callbacks: Mutex::new(tx),
            data_dirs,
        });
        let mut threads = Vec::new();
        let weak = Arc::downgrade(&shared);
        let cb_config = shared.config.callback.clone();
        let cb_tx = lock(&shared.callbacks).clone();
        threads.push(spawn("acestep-callbacks", move || {
            callback_thread(rx, cb_tx, cb_config, weak)
        })?);
        if shared.store.shared() {
            // Seen alive before it holds anything (a callback held by a process never seen is
            // taken over by the others).
            shared
                .store
                .worker_alive(&shared.worker_id, shared.config.workers, None)?;
        }
        shared.recover()?;
        for i in 0..shared.config.workers {
            let s = shared.clone();
            threads.push(spawn(&format!("acestep-worker-{i}"), move || s.worker())?);
        }
        let s = shared.clone();
        threads.push(spawn("acestep-sweeper", move || s.sweeper())?);
        if shared.store.shared() {
            let s = shared.clone();
            threads.push(spawn("acestep-leases", move || s.lease_keeper())?);
            let s = shared.clone();
            threads.push(spawn("acestep-relay", move || s.relay())?);
        }
        Ok(Self { shared, threads })
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.shared.config
    }

    /// The job store, as messages name it (`sqlite:<path>`, `postgres://host/db`).
    pub fn store(&self) -> String {
        self.shared.store.describe()
    }

    /// This process's name in the job store (what holds the leases of the jobs it runs).
    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// `text` without the data directory's absolute path (what is shown to clients never names
    /// a server path).
    pub fn scrub(&self, text: &str) -> String {
        self.shared.scrub(text)
    }

    /// The generator the workers run.
    pub fn generator(&self) -> &Arc<dyn Generator> {
        &self.shared.generator
    }

    /// Validates `request`, checks `owner`'s quota and the queue depth and queues the job;
    /// returns its id at once. Nothing is stored when it fails ([`Error::InvalidArgument`]
    /// naming the field, [`JobError::QuotaExceeded`], [`JobError::QueueFull`],
    /// [`JobError::ShuttingDown`]).
    pub fn submit(&self, request: JobRequest, owner: &str) -> Result<String> {
        let sh = &self.shared;
        sh.generator.validate(&request.params)?;
        if let Some(url) = &request.callback_url {
            callback::check_url(url, sh.config.callback.allow_private)?;
        }
        check_writable(&sh.output_dir(""))?;
        let steps = sh.generator.diffusion_steps(&request.params);
        let cost = sh.generator.step_cost(&request.params);
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now();
        let rec = JobRecord {
            id: id.clone(),
            owner: owner.to_string(),
            state: JobState::Queued,
            request,
            created_at,
            started_at: None,
            finished_at: None,
            expires_at: None,
            queue_position: 0,
            eta_seconds: None,
            progress: JobProgress::default(),
            result: None,
            error: None,
            attempts: 0,
            cancel_requested: false,
        };
        let limits = Limits {
            per_owner: sh.config.max_active_per_owner,
            queue: sh.config.max_queue,
        };
        {
            // Under the state lock, so that the job's events go out in transition order (a
            // worker takes the lock before it says the job started).
            let mut st = lock(&sh.state);
            if st.stopping != RUN {
                return Err(JobError::ShuttingDown);
            }
            sh.store.insert(
                &NewJob {
                    rec: &rec,
                    steps,
                    cost,
                },
                limits,
            )?;
            st.metrics.submitted += 1;
            st.submits += 1;
            sh.emit(&id, JobState::Queued, created_at);
            if let Ok(view) = sh.view(&mut st) {
                let from = view.queue.iter().position(|q| q.id == id).unwrap_or(0);
                sh.queue_moved(&view, from);
            }
        }
        sh.wake.notify_all();
        Ok(id)
    }

    /// The job's record with its live queue position, ETA and progress.
    pub fn poll(&self, id: &str) -> Result<JobRecord> {
        let sh = &self.shared;
        let mut rec = sh.store.get(id)?.ok_or_else(|| not_found(id))?;
        // An output deleted behind the manager's back reads as expired, as its download does.
        if let Some(r) = rec.result.as_mut() {
            if !r.expired && r.files.iter().any(|f| !f.path.exists()) {
                sh.store.mark_expired(id)?;
                r.expired = true;
            }
        }
        let mut st = lock(&sh.state);
        let view = sh.view_for(&mut st, std::slice::from_ref(&rec))?;
        sh.overlay(&st, view.as_ref(), &mut rec);
        Ok(rec)
    }

    /// Records that the outputs of `id` are gone or damaged (found so by a download): its
    /// record then says `expired`, as the download does.
    pub fn mark_output_lost(&self, id: &str) -> Result<()> {
        self.shared.store.mark_expired(id)
    }

    /// The records of `ids` that exist, in the order given (unknown ids are left out).
    pub fn retrieve_batch(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let sh = &self.shared;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(rec) = sh.store.get(id)? {
                out.push(rec);
            }
        }
        sh.overlay_all(&mut out)?;
        Ok(out)
    }

    /// Jobs of `owner` (of every owner when None), newest first.
    pub fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>> {
        let mut recs = self.shared.store.list(owner, filter)?;
        self.shared.overlay_all(&mut recs)?;
        Ok(recs)
    }

    /// Counters and histograms of this process since start, with the queue depth and running
    /// jobs now (of the whole cluster, with a shared store).
    pub fn metrics(&self) -> super::JobMetrics {
        let sh = &self.shared;
        let queued = sh.store.queue().map(|q| q.len());
        let running = sh.store.running().map(|r| r.len());
        let st = lock(&sh.state);
        let mut m = st.metrics.clone();
        m.queued = queued.unwrap_or(0);
        m.running = running.unwrap_or(st.running.len());
        m
    }

    /// `owner`'s concurrency quota.
    pub fn quota(&self, owner: &str) -> Result<Quota> {
        let active = self.shared.store.active_count(owner)?;
        let limit = self.shared.config.max_active_per_owner;
        Ok(Quota {
            limit,
            active,
            available: limit.saturating_sub(active),
        })
    }

    /// Cancels a job: a queued one at once, a running one at its next diffusion step (the record
    /// returned then says `cancel_requested`), whichever process runs it. Cancelling a
    /// cancelled job is a no-op; a succeeded or failed one is [`JobError::JobFinished`].
    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        let sh = &self.shared;
        let mut st = lock(&sh.state);
        match sh.store.cancel(id)? {
            Cancelled::NotFound => Err(not_found(id)),
            Cancelled::Now => {
                st.metrics.cancelled += 1;
                sh.emit(id, JobState::Cancelled, now());
                let rec = sh.store.get(id)?.ok_or_else(|| not_found(id))?;
                if let Ok(view) = sh.view(&mut st) {
                    sh.queue_moved(&view, 0);
                }
                drop(st);
                // The cancel claimed the callback (its lease was set in the same statement).
                sh.send_callback(&rec);
                Ok(rec)
            }
            Cancelled::Requested | Cancelled::Terminal(JobState::Running) => {
                if let Some(r) = st.running.get(id) {
                    let _ =
                        r.abort
                            .compare_exchange(RUN, CANCEL, Ordering::SeqCst, Ordering::SeqCst);
                }
                let mut rec = sh.store.get(id)?.ok_or_else(|| not_found(id))?;
                let view = sh.view_for(&mut st, std::slice::from_ref(&rec))?;
                sh.overlay(&st, view.as_ref(), &mut rec);
                Ok(rec)
            }
            Cancelled::Terminal(s @ (JobState::Succeeded | JobState::Failed)) => {
                Err(JobError::JobFinished {
                    id: id.to_string(),
                    state: s.as_str().to_string(),
                })
            }
            Cancelled::Terminal(_) => {
                let mut rec = sh.store.get(id)?.ok_or_else(|| not_found(id))?;
                let view = sh.view_for(&mut st, std::slice::from_ref(&rec))?;
                sh.overlay(&st, view.as_ref(), &mut rec);
                Ok(rec)
            }
        }
    }

    /// Every job's live events (queue position changes, start, each diffusion step, decoding,
    /// the end), for streaming to clients.
    pub fn events(&self) -> &Arc<super::events::EventFeed> {
        &self.shared.feed
    }

    /// A channel that receives every state transition from now on.
    pub fn subscribe(&self) -> Receiver<JobEvent> {
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.events).push(tx);
        rx
    }

    /// Deletes the outputs of every job whose retention has run out (the sweeper does this every
    /// `sweep_interval`); returns how many jobs expired.
    pub fn sweep_now(&self) -> Result<usize> {
        self.shared.sweep()
    }

    /// The folder a job's outputs are written to.
    pub fn output_dir(&self, id: &str) -> PathBuf {
        self.shared.output_dir(id)
    }

    /// Stops gracefully within `grace`: no new job starts, a job in its diffusion stops at its
    /// next step and goes back to the queue (its attempt not used up), and a job already decoding
    /// or writing its audio is let finish, so that finished work is kept. A job still running when
    /// `grace` runs out is put back in the queue too (its thread is left to stop on its own at
    /// its next progress report, without touching the database).
    pub fn shutdown(mut self, grace: Duration) {
        {
            let mut st = lock(&self.shared.state);
            st.stopping = SHUTDOWN;
            for r in st.running.values() {
                r.abort.store(SHUTDOWN, Ordering::SeqCst);
            }
        }
        self.shared.wake.notify_all();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !lock(&self.shared.state).running.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let any_late = {
            let mut st = lock(&self.shared.state);
            let late: Vec<(String, Arc<AtomicU8>)> = st
                .running
                .iter()
                .map(|(id, r)| (id.clone(), r.abort.clone()))
                .collect();
            let any_late = !late.is_empty();
            for (id, abort) in late {
                abort.store(HALT, Ordering::SeqCst);
                st.running.remove(&id);
                tracing::warn!("job {id} did not stop within {grace:?}; queued again");
                if let Err(e) = self.shared.store.requeue(&id, &self.shared.worker_id, true) {
                    tracing::error!("re-queueing job {id}: {e}");
                }
            }
            any_late
        };
        self.shared.gone();
        self.shared.wake.notify_all();
        let _ = lock(&self.shared.callbacks).send(Message::Stop);
        // Worker threads still inside a generation are not waited for (they stop at their
        // next progress report); the others are joined.
        for t in self.threads.drain(..) {
            let worker = t
                .thread()
                .name()
                .is_some_and(|n| n.starts_with("acestep-worker"));
            if !any_late || !worker || t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// Stops the workers without touching the database, as a crash would (running jobs stay
    /// `running` in the store). For recovery tests only.
    #[doc(hidden)]
    pub fn halt(mut self) {
        self.stop(HALT);
    }

    fn stop(&mut self, mode: u8) {
        {
            let mut st = lock(&self.shared.state);
            st.stopping = mode;
            for r in st.running.values() {
                r.abort.store(mode, Ordering::SeqCst);
            }
        }
        self.shared.wake.notify_all();
        let _ = lock(&self.shared.callbacks).send(Message::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if mode != HALT {
            self.shared.gone();
        }
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(SHUTDOWN);
        }
    }
}

/// A name for this process in the store: host, process id and a random suffix.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &tag[..8])
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::io(name, e).into())
}

/// Checks that `dir` can be written now (a file created and removed).
fn check_writable(dir: &std::path::Path) -> Result<()> {
    let probe = dir.join(format!(".write-check-{}", uuid::Uuid::new_v4().simple()));
    let unavailable = |e: std::io::Error| JobError::StorageUnavailable {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::write(&probe, b"").map_err(unavailable)?;
    std::fs::remove_file(&probe).map_err(unavailable)
}

fn not_found(id: &str) -> JobError {
    JobError::JobNotFound { id: id.to_string() }
}

fn callback_thread(
    rx: Receiver<Message>,
    tx: Sender<Message>,
    config: super::CallbackConfig,
    shared: Weak<Shared>,
) {
    callback::run(rx, tx, config, |id, delivered| {
        if let Some(sh) = shared.upgrade() {
            let state = if delivered {
                CallbackState::Delivered
            } else {
                CallbackState::Failed
            };
            if let Err(e) = sh.store.set_callback_state(id, state) {
                tracing::warn!("recording callback state of {id}: {e}");
            }
        }
    })
}

/// The text of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl Shared {
    fn output_dir(&self, id: &str) -> PathBuf {
        self.config.data_dir.join("outputs").join(id)
    }

    /// `text` without the data directory's absolute path (job errors are shown to clients).
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for d in &self.data_dirs {
            out = out
                .replace(&format!("{d}/"), "")
                .replace(d.as_str(), "<data-dir>");
        }
        out
    }

    /// How often a running job's lease is renewed and its cancel flag read.
    fn beat_interval(&self) -> Duration {
        (self.config.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// How long a worker process counts as alive after its last heartbeat.
    fn alive_window(&self) -> Duration {
        self.config.lease.max(Duration::from_secs(1))
    }

    /// How long a process must be unseen before the callbacks it holds are taken over (longer
    /// than a lease: a delivery in flight is not repeated for a late heartbeat).
    fn callback_takeover(&self) -> Duration {
        (self.config.lease * 3).max(Duration::from_secs(10))
    }

    /// Forgets this process in the store (a clean stop).
    fn gone(&self) {
        if self.store.shared() {
            if let Err(e) = self.store.worker_gone(&self.worker_id) {
                tracing::warn!("removing worker {}: {e}", self.worker_id);
            }
        }
    }

    fn emit(&self, id: &str, state: JobState, at: f64) {
        let ev = JobEvent {
            id: id.to_string(),
            state,
            at,
        };
        lock(&self.events).retain(|tx| tx.send(ev.clone()).is_ok());
        if state.is_terminal() {
            self.feed.push(
                id,
                state.as_str(),
                serde_json::json!({"id": id, "state": state}),
            );
        }
    }

    /// The queue, the running jobs' time left, the speed and the workers now.
    fn view(&self, st: &mut State) -> Result<View> {
        let queue = self.store.queue()?;
        let (slots, cluster_spu) = if self.store.shared() {
            let fresh = st
                .workers
                .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
                .map(|(_, w)| w);
            let w = match fresh {
                Some(w) => w,
                None => {
                    let w = self.store.workers(self.alive_window())?;
                    st.workers = Some((Instant::now(), w));
                    w
                }
            };
            (w.slots, w.seconds_per_unit)
        } else {
            (self.config.workers, None)
        };
        let spu = st
            .seconds_per_unit()
            .or(cluster_spu)
            .or(self.config.initial_seconds_per_step);
        let (running, running_left) = if self.store.shared() {
            let all = self.store.running()?;
            let left = spu.map_or(0.0, |spu| {
                all.iter()
                    .map(|a| match st.running.get(&a.id) {
                        Some(r) => running_eta(r, spu),
                        None => a.steps.saturating_sub(a.progress.step) as f64 * a.cost * spu,
                    })
                    .sum()
            });
            (all.len(), left)
        } else {
            let left = spu.map_or(0.0, |spu| {
                st.running.values().map(|r| running_eta(r, spu)).sum()
            });
            (st.running.len(), left)
        };
        Ok(View {
            queue,
            running_left,
            running,
            spu,
            slots,
        })
    }

    /// [`Shared::view`] when any of `recs` is queued (the only state that needs the queue), or
    /// running on another process (for the speed).
    fn view_for(&self, st: &mut State, recs: &[JobRecord]) -> Result<Option<View>> {
        let needed = recs.iter().any(|r| match r.state {
            JobState::Queued => true,
            JobState::Running => !st.running.contains_key(&r.id),
            _ => false,
        });
        if needed {
            self.view(st).map(Some)
        } else {
            Ok(None)
        }
    }

    fn overlay_all(&self, recs: &mut [JobRecord]) -> Result<()> {
        let mut st = lock(&self.state);
        let view = self.view_for(&mut st, recs)?;
        for r in recs {
            self.overlay(&st, view.as_ref(), r);
        }
        Ok(())
    }

    /// Fills in the live fields: progress, queue position, ETA, cancel flag.
    fn overlay(&self, st: &State, view: Option<&View>, rec: &mut JobRecord) {
        match rec.state {
            JobState::Running => {
                if let Some(r) = st.running.get(&rec.id) {
                    let spu = st
                        .seconds_per_unit()
                        .or(view.and_then(|v| v.spu))
                        .or(self.config.initial_seconds_per_step);
                    rec.progress = r.progress;
                    rec.cancel_requested |= r.abort.load(Ordering::SeqCst) == CANCEL;
                    rec.eta_seconds = spu.map(|spu| running_eta(r, spu));
                } else if let Some(spu) = view.and_then(|v| v.spu) {
                    // Run by another process: its saved progress.
                    let cost = self.generator.step_cost(&rec.request.params);
                    let p = rec.progress;
                    rec.eta_seconds = Some(p.total.saturating_sub(p.step) as f64 * cost * spu);
                }
            }
            JobState::Queued => {
                if let Some((pos, eta)) = view.and_then(|v| v.queued(&rec.id)) {
                    rec.queue_position = pos;
                    rec.eta_seconds = eta;
                }
            }
            _ => {}
        }
    }

    /// Sends the `running` event of a job's attempt `attempt`.
    fn push_running(&self, id: &str, attempt: u32) {
        self.feed.push(
            id,
            "running",
            serde_json::json!({"id": id, "state": JobState::Running, "attempt": attempt}),
        );
    }

    /// Sends the event of a running job's progress `p` (`progress` for a diffusion step,
    /// `decoding`, `writing`); false (nothing sent) in the other stages.
    fn push_progress(&self, id: &str, p: &JobProgress, eta: Option<f64>) -> bool {
        let kind = match p.stage {
            super::Stage::Diffusion => "progress",
            super::Stage::Decoding => "decoding",
            super::Stage::Writing => "writing",
            _ => return false,
        };
        self.feed.push(
            id,
            kind,
            serde_json::json!({
                "id": id,
                "state": JobState::Running,
                "stage": p.stage,
                "step": p.step,
                "total": p.total,
                "percent": p.percent,
                "eta_seconds": eta,
            }),
        );
        true
    }

    /// Sends a `queued` event with its new position to every queued job from index `from` on.
    fn queue_moved(&self, view: &View, from: usize) {
        let mut ahead = view.spu.map_or(0.0, |spu| {
            view.queue.iter().take(from).map(|q| secs(q, spu)).sum()
        });
        for (i, q) in view.queue.iter().enumerate().skip(from) {
            let eta = view.eta_at(i, ahead);
            ahead += view.spu.map_or(0.0, |spu| secs(q, spu));
            self.feed.push(
                &q.id,
                "queued",
                serde_json::json!({
                    "id": q.id,
                    "state": JobState::Queued,
                    "queue_position": i + 1,
                    "eta_seconds": eta,
                }),
            );
        }
    }

    /// Sends the terminal record to the job's webhook (when its filter has `completed`); the
    /// caller holds the job's callback claim.
    fn send_callback(&self, rec: &JobRecord) {
        self.send_webhook(rec, WebhookEvent::Completed, "completed".into());
    }

    /// Queues a delivery of `rec` for `event` to its webhook when its filter asks for it;
    /// `msg_id` is the message's `webhook-id` suffix (the job id comes first).
    fn send_webhook(&self, rec: &JobRecord, event: WebhookEvent, msg_id: String) {
        let Some(url) = &rec.request.callback_url else {
            return;
        };
        if !rec.request.wants(event) {
            if event == WebhookEvent::Completed {
                // Nothing to deliver: the claim ends here.
                let _ = self
                    .store
                    .set_callback_state(&rec.id, CallbackState::Delivered);
            }
            return;
        }
        let mut body = rec.public_json(self.config.callback.public_url.as_deref());
        body["event"] = serde_json::json!(event);
        let _ = lock(&self.callbacks).send(Message::Deliver(Delivery {
            id: rec.id.clone(),
            event,
            msg_id: format!("{}-{msg_id}", rec.id),
            url: url.clone(),
            body: body.to_string(),
        }));
    }

    /// Sends the completion callbacks of `ids` (claimed by the caller).
    fn send_callbacks(&self, ids: Vec<String>) {
        for id in ids {
            match self.store.get(&id) {
                Ok(Some(rec)) => self.send_callback(&rec),
                Ok(None) => {}
                Err(e) => tracing::warn!("reading job {id} for its callback: {e}"),
            }
        }
    }

    /// Reaps the jobs of a previous run (every running job of an unshared store; the lapsed
    /// leases of a shared one) and resends the callbacks left pending.
    fn recover(&self) -> Result<()> {
        let all = !self.store.shared();
        self.reaped(self.store.reap(all)?);
        {
            // The queue found at start: each job's position, for its event stream.
            let mut st = lock(&self.state);
            let view = self.view(&mut st)?;
            self.queue_moved(&view, 0);
        }
        self.send_callbacks(
            self.store
                .claim_orphan_callbacks(all, self.callback_takeover())?,
        );
        Ok(())
    }

    /// Logs and announces reaped jobs.
    fn reaped(&self, reaped: Vec<store::Reaped>) {
        for r in reaped {
            if r.requeued {
                tracing::info!("job {} was interrupted while running; queued again", r.id);
                self.wake.notify_all();
            } else {
                tracing::warn!("job {} was interrupted twice; failed", r.id);
                self.emit(&r.id, JobState::Failed, now());
                self.send_callbacks(vec![r.id]);
            }
        }
    }

    fn worker(self: Arc<Self>) {
        loop {
            // The claim and the start are one step under the state lock, so that the relay
            // never takes this process's job for another's.
            let mut st = lock(&self.state);
            if st.stopping != RUN {
                return;
            }
            let seen = st.submits;
            let claimed = self.store.claim(
                &self.worker_id,
                self.config.lease,
                &JobProgress::encoding(0),
            );
            match claimed {
                Ok(Some(c)) => {
                    if let Some((rec, abort)) = self.start(&mut st, c) {
                        drop(st);
                        self.run_job(rec, abort);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!("claiming a job: {e}"),
            }
            if st.stopping == RUN && st.submits == seen {
                let _ = self
                    .wake
                    .wait_timeout(st, self.config.poll_interval)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// Starts a claimed job; None when it is not to run (an invalid stored request, a stop).
    fn start(&self, st: &mut State, c: store::Claimed) -> Option<(JobRecord, Arc<AtomicU8>)> {
        let store::Claimed { rec, steps, cost } = c;
        let id = rec.id.clone();
        let abort = Arc::new(AtomicU8::new(RUN));
        if st.stopping != RUN {
            if let Err(e) = self.store.requeue(&id, &self.worker_id, true) {
                tracing::error!("re-queueing job {id}: {e}");
            }
            return None;
        }
        // A request stored by an API front end (which may not hold the model) or before
        // today's bounds is checked again before it sizes any work.
        if let Err(e) = self.generator.validate(&rec.request.params) {
            let failure = JobFailure {
                code: "invalid_request".into(),
                message: self.scrub(&e.to_string()),
            };
            let progress = JobProgress::default();
            let end = Finish {
                state: JobState::Failed,
                expires_at: None,
                progress: &progress,
                result: None,
                error: Some(&failure),
            };
            match self.store.finish(&id, &self.worker_id, &end) {
                Ok(Some(state)) => {
                    st.metrics.failed += 1;
                    self.emit(&id, state, now());
                    self.send_callbacks(vec![id]);
                }
                Ok(None) => {}
                Err(e) => tracing::error!("failing job {id}: {e}"),
            }
            return None;
        }
        let progress = JobProgress::encoding(steps);
        if let Err(e) =
            self.store
                .heartbeat(&id, &self.worker_id, self.config.lease, Some(&progress))
        {
            tracing::warn!("saving the start of job {id}: {e}");
        }
        let mut live = rec.clone();
        live.progress = progress;
        let webhook = (rec.request.wants(WebhookEvent::Start)
            || rec.request.wants(WebhookEvent::Progress))
        .then(|| live.clone());
        st.running.insert(
            id.clone(),
            Running {
                abort: abort.clone(),
                progress,
                webhook,
                last_webhook: None,
                webhooks_sent: 0,
                steps,
                cost,
                last_step_at: Instant::now(),
                last_saved: Instant::now(),
            },
        );
        let t = rec.started_at.unwrap_or_else(now);
        self.emit(&id, JobState::Running, t);
        self.push_running(&id, rec.attempts);
        if let Ok(view) = self.view(st) {
            self.queue_moved(&view, 0);
        }
        self.send_webhook(
            &live,
            WebhookEvent::Start,
            format!("start-{}", rec.attempts),
        );
        Some((rec, abort))
    }

    fn run_job(&self, rec: JobRecord, abort: Arc<AtomicU8>) {
        let id = rec.id.clone();
        let out_dir = self.output_dir(&id);
        let t0 = Instant::now();
        let outcome = match std::fs::create_dir_all(&out_dir) {
            Err(e) => Err(Some(JobFailure {
                code: "output_failed".into(),
                message: format!("the outputs folder cannot be written ({e})"),
            })),
            Ok(()) => {
                let mut on_progress = |p: JobProgress| self.on_progress(&id, p, &abort);
                let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.generator
                        .generate(&rec.request.params, &out_dir, &mut on_progress)
                }));
                match run {
                    Ok(Ok(out)) => Ok(out),
                    Ok(Err(Error::Cancelled { .. })) => Err(None),
                    Ok(Err(e)) => Err(Some(JobFailure {
                        code: "generation_failed".into(),
                        message: self.scrub(&e.to_string()),
                    })),
                    Err(p) => Err(Some(JobFailure {
                        code: "panic".into(),
                        message: format!("generation panicked: {}", panic_message(p.as_ref())),
                    })),
                }
            }
        };
        let outcome = outcome.map(|mut out| {
            // Size and checksum, so that a download can tell a damaged or truncated file.
            for f in &mut out.files {
                match super::OutputFile::measure(&f.path) {
                    Ok((size, crc)) => {
                        f.size_bytes = Some(size);
                        f.crc32 = Some(crc);
                    }
                    Err(e) => tracing::warn!("measuring {}: {e}", f.path.display()),
                }
            }
            out
        });
        let elapsed = t0.elapsed().as_secs_f64();
        let flag = abort.load(Ordering::SeqCst);
        let mut st = lock(&self.state);
        let running = st.running.remove(&id);
        if st.stopping != RUN {
            // The lease keeper waits for the last job of a graceful stop.
            self.wake.notify_all();
        }
        let progress = running.map(|r| r.progress).unwrap_or_default();
        if flag == HALT || flag == LOST {
            // A crash-like stop, or the job is another process's now: its folder too.
            return;
        }
        if flag == SHUTDOWN && outcome.is_err() {
            // Stopped by a graceful shutdown: back to the queue for the next start.
            let _ = std::fs::remove_dir_all(&out_dir);
            if let Err(e) = self.store.requeue(&id, &self.worker_id, true) {
                tracing::error!("re-queueing job {id}: {e}");
            }
            return;
        }
        let t = now();
        let steps = progress.total;
        let (state, result, error, expires) = match outcome {
            Ok(out) if flag != CANCEL => (
                JobState::Succeeded,
                Some(JobResult {
                    files: out.files,
                    seeds: out.seeds,
                    info: out.info,
                    audio_duration: rec.request.params.audio_duration,
                    elapsed_seconds: elapsed,
                    expired: false,
                }),
                None,
                Some(t + self.config.retention.as_secs_f64()),
            ),
            Ok(_) | Err(None) if flag == CANCEL => (JobState::Cancelled, None, None, None),
            Ok(_) | Err(None) => (
                JobState::Failed,
                None,
                Some(JobFailure {
                    code: "generation_failed".into(),
                    message: "the generator stopped without being asked to".into(),
                }),
                None,
            ),
            Err(Some(f)) => (JobState::Failed, None, Some(f), None),
        };
        let progress = if state == JobState::Succeeded {
            JobProgress::done(steps)
        } else {
            progress
        };
        let end = Finish {
            state,
            expires_at: expires,
            progress: &progress,
            result: result.as_ref(),
            error: error.as_ref(),
        };
        // The store has the last word: a cancel asked after the last heartbeat still lands.
        let state = match self.store.finish(&id, &self.worker_id, &end) {
            Ok(Some(state)) => state,
            Ok(None) => {
                // Reaped while it ran (its lease lapsed): another worker has it now.
                tracing::warn!("job {id} ended here after its lease was lost; result dropped");
                return;
            }
            Err(e) => {
                tracing::error!("recording the end of job {id}: {e}");
                return;
            }
        };
        tracing::info!("job {id} {state} (worker {})", self.worker_id);
        if state != JobState::Succeeded {
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        match state {
            JobState::Succeeded => {
                st.metrics.succeeded += 1;
                st.metrics.generation_seconds.observe(elapsed);
            }
            JobState::Failed => st.metrics.failed += 1,
            JobState::Cancelled => st.metrics.cancelled += 1,
            _ => {}
        }
        self.emit(&id, state, t);
        drop(st);
        self.send_callbacks(vec![id]);
    }

    fn on_progress(&self, id: &str, p: JobProgress, abort: &AtomicU8) -> Control {
        let save = {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let mut save = false;
            if let Some(r) = st.running.get_mut(id) {
                if p.stage == super::Stage::Diffusion && p.step > r.progress.step {
                    let now = Instant::now();
                    // Only whole steps between two step reports are measured (the first report
                    // includes the encoding).
                    if r.progress.stage == super::Stage::Diffusion && r.cost > 0.0 {
                        let per = now.duration_since(r.last_step_at).as_secs_f64()
                            / (p.step - r.progress.step) as f64
                            / r.cost;
                        st.step_secs.push_back(per);
                        st.metrics.step_seconds.observe(per);
                        if st.step_secs.len() > STEP_WINDOW {
                            st.step_secs.pop_front();
                        }
                    }
                    r.last_step_at = now;
                }
                let before = r.progress;
                r.progress = p;
                let changed = p.stage != before.stage
                    || p.step != before.step
                    || (p.stage == super::Stage::Decoding && p.percent != before.percent);
                if changed {
                    self.progressed(id, r, &st.step_secs, &before);
                }
                // A shared store hears of a cancel through the heartbeat: at each step, at most
                // every beat interval / 2; its pollers read the saved progress.
                let every = if self.store.shared() {
                    (self.beat_interval() / 2).min(Duration::from_millis(250))
                } else {
                    Duration::from_secs(1)
                };
                if r.last_saved.elapsed() >= every {
                    r.last_saved = Instant::now();
                    save = true;
                }
            }
            save
        };
        if save {
            self.beat(id, Some(&p), abort);
        }
        match abort.load(Ordering::SeqCst) {
            RUN => Control::Continue,
            // A graceful stop lets a job that finished its diffusion decode and write its audio.
            SHUTDOWN if matches!(p.stage, super::Stage::Decoding | super::Stage::Writing) => {
                Control::Continue
            }
            _ => Control::Cancel,
        }
    }

    /// Renews the lease of running job `id` (saving `progress`) and applies what the store says:
    /// a cancel request, or the lease lost.
    fn beat(&self, id: &str, progress: Option<&JobProgress>, abort: &AtomicU8) {
        match self
            .store
            .heartbeat(id, &self.worker_id, self.config.lease, progress)
        {
            Ok(Beat::Held { cancel: true }) => {
                let _ = abort.compare_exchange(RUN, CANCEL, Ordering::SeqCst, Ordering::SeqCst);
            }
            Ok(Beat::Held { cancel: false }) => {}
            Ok(Beat::Lost) => {
                // A job that ended here meanwhile is not lost.
                let mine = lock(&self.state).running.contains_key(id);
                if mine && abort.load(Ordering::SeqCst) != HALT {
                    tracing::warn!("job {id}: lease lost (reaped by another process); stopping");
                    abort.store(LOST, Ordering::SeqCst);
                }
            }
            Err(e) => tracing::warn!("heartbeat of job {id}: {e}"),
        }
    }

    /// Sends the event of a running job's new progress `r.progress` (a diffusion step,
    /// decoding, writing) and, when its webhook wants progress, a delivery at most once a second
    /// and when decoding starts.
    fn progressed(
        &self,
        id: &str,
        r: &mut Running,
        step_secs: &VecDeque<f64>,
        before: &JobProgress,
    ) {
        let p = r.progress;
        let spu = store::median(step_secs.iter().copied().collect())
            .or(self.config.initial_seconds_per_step);
        let eta = spu.map(|spu| running_eta(r, spu));
        if !self.push_progress(id, &p, eta) {
            return;
        }
        let Some(live) = r.webhook.as_mut() else {
            return;
        };
        let entering_decoding =
            p.stage == super::Stage::Decoding && before.stage != super::Stage::Decoding;
        let due = r
            .last_webhook
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if live.request.wants(WebhookEvent::Progress) && (due || entering_decoding) {
            r.last_webhook = Some(Instant::now());
            live.progress = p;
            live.eta_seconds = eta;
            r.webhooks_sent += 1;
            let n = format!("progress-{}-{}", live.attempts, r.webhooks_sent);
            self.send_webhook(live, WebhookEvent::Progress, n);
        }
    }

    /// With a shared store: renews the leases of this process's running jobs (a long decode
    /// reports no progress), says the process is alive, reaps the jobs of dead workers and
    /// takes over the callbacks that dead processes left.
    fn lease_keeper(self: Arc<Self>) {
        loop {
            {
                // A graceful stop keeps the leases of the jobs let finish until they have.
                let st = lock(&self.state);
                let (st, _) = self
                    .wake
                    .wait_timeout_while(st, self.beat_interval(), |s| {
                        s.stopping == RUN || (s.stopping == SHUTDOWN && !s.running.is_empty())
                    })
                    .unwrap_or_else(|e| e.into_inner());
                if st.stopping == HALT || (st.stopping == SHUTDOWN && st.running.is_empty()) {
                    return;
                }
            }
            let running: Vec<(String, Arc<AtomicU8>)> = lock(&self.state)
                .running
                .iter()
                .map(|(id, r)| (id.clone(), r.abort.clone()))
                .collect();
            for (id, abort) in running {
                self.beat(&id, None, &abort);
            }
            // Every process says it is alive (a front end with 0 slots): a callback held by one
            // that is not is taken over.
            let spu = lock(&self.state).seconds_per_unit();
            if let Err(e) = self
                .store
                .worker_alive(&self.worker_id, self.config.workers, spu)
            {
                tracing::warn!("process heartbeat: {e}");
            }
            match self.store.reap(false) {
                Ok(r) => self.reaped(r),
                Err(e) => tracing::warn!("reaping lapsed leases: {e}"),
            }
            match self
                .store
                .claim_orphan_callbacks(false, self.callback_takeover())
            {
                Ok(ids) => self.send_callbacks(ids),
                Err(e) => tracing::warn!("taking over callbacks: {e}"),
            }
        }
    }

    /// With a shared store: relays to this process's event feeds what other processes do to
    /// the jobs it has feeds of (a front end's event streams and synchronous waits see the
    /// start, the progress and the end of jobs that workers elsewhere run), every poll interval.
    fn relay(self: Arc<Self>) {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let every = self.config.poll_interval.max(Duration::from_millis(100));
        loop {
            {
                let st = lock(&self.state);
                let (st, _) = self
                    .wake
                    .wait_timeout_while(st, every, |s| s.stopping == RUN)
                    .unwrap_or_else(|e| e.into_inner());
                if st.stopping != RUN {
                    return;
                }
            }
            let ids = self.feed.open_ids();
            let open: std::collections::HashSet<&String> = ids.iter().collect();
            seen.retain(|id, _| open.contains(id));
            if ids.is_empty() {
                continue;
            }
            let recs = match self.store.get_many(&ids) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("relaying job events: {e}");
                    continue;
                }
            };
            let mut st = lock(&self.state);
            let view = match self.view_for(&mut st, &recs) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("relaying job events: {e}");
                    continue;
                }
            };
            for mut rec in recs {
                // This process's own jobs send their events themselves (those it ended since
                // the read have a closed feed).
                if st.running.contains_key(&rec.id) || !self.feed.is_open(&rec.id) {
                    continue;
                }
                self.overlay(&st, view.as_ref(), &mut rec);
                let now_seen = Seen::of(&rec);
                let before = seen.insert(rec.id.clone(), now_seen);
                if before != Some(now_seen) {
                    self.relay_one(&rec, before);
                }
            }
        }
    }

    /// The events of `rec`'s change since `before` (None: first seen by the relay).
    fn relay_one(&self, rec: &JobRecord, before: Option<Seen>) {
        let id = &rec.id;
        match rec.state {
            JobState::Queued => {
                // A job first seen queued has its position already (from its submit, or the
                // stream's first snapshot).
                if before.is_some_and(|b| {
                    b.state != JobState::Queued || b.position != rec.queue_position
                }) {
                    self.feed.push(
                        id,
                        "queued",
                        serde_json::json!({
                            "id": id,
                            "state": JobState::Queued,
                            "queue_position": rec.queue_position,
                            "eta_seconds": rec.eta_seconds,
                        }),
                    );
                }
            }
            JobState::Running => {
                let p = rec.progress;
                if before.is_none_or(|b| b.state != JobState::Running || b.attempts != rec.attempts)
                {
                    self.emit(id, JobState::Running, rec.started_at.unwrap_or_else(now));
                    self.push_running(id, rec.attempts);
                }
                if before.is_none_or(|b| b.progress != (p.stage, p.step, p.percent)) {
                    self.push_progress(id, &p, rec.eta_seconds);
                }
            }
            s => {
                // A start that fell between two reads is told before the end.
                if let Some(started) = rec.started_at {
                    if before.is_none_or(|b| b.state != JobState::Running) {
                        self.emit(id, JobState::Running, started);
                        self.push_running(id, rec.attempts);
                    }
                }
                self.emit(id, s, rec.finished_at.unwrap_or_else(now));
            }
        }
    }

    fn sweeper(self: Arc<Self>) {
        loop {
            {
                let st = lock(&self.state);
                let (st, _) = self
                    .wake
                    .wait_timeout_while(st, self.config.sweep_interval, |s| s.stopping == RUN)
                    .unwrap_or_else(|e| e.into_inner());
                if st.stopping != RUN {
                    return;
                }
            }
            if let Err(e) = self.sweep() {
                tracing::warn!("sweeping expired outputs: {e}");
            }
        }
    }

    /// Claims the expired jobs (each by one process of a cluster) and deletes their outputs.
    fn sweep(&self) -> Result<usize> {
        let due = self.store.expire_due()?;
        for id in &due {
            // Deleted first, then said expired: a record that says so has no files left.
            let dir = self.output_dir(id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir, e).into()),
            }
            self.store.mark_expired(id)?;
        }
        Ok(due.len())
    }
}

/// What the relay last saw of a job.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    state: JobState,
    attempts: u32,
    progress: (super::Stage, usize, f64),
    position: usize,
}

impl Seen {
    fn of(rec: &JobRecord) -> Self {
        let p = rec.progress;
        Self {
            state: rec.state,
            attempts: rec.attempts,
            progress: (p.stage, p.step, p.percent),
            position: rec.queue_position,
        }
    }
}

/// Estimated seconds until the running job `r` ends its diffusion.
fn running_eta(r: &Running, spu: f64) -> f64 {
    let per_step = r.cost * spu;
    let left = r.steps.saturating_sub(r.progress.step) as f64 * per_step;
    (left - r.last_step_at.elapsed().as_secs_f64().min(per_step)).max(0.0)
}

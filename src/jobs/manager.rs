//! [`JobManager`]: the queue, the workers, the sweeper and the callback dispatcher.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::callback::{self, CallbackSender, Delivery, Message};
use super::store::{CallbackState, Finish, Store};
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

struct Queued {
    id: String,
    steps: usize,
    cost: f64,
}

struct State {
    store: Store,
    queue: VecDeque<Queued>,
    running: HashMap<String, Running>,
    /// Recent seconds per diffusion step per unit of step cost (a moving window).
    step_secs: VecDeque<f64>,
    /// 0 running, SHUTDOWN or HALT.
    stopping: u8,
    /// Counters and histograms since start.
    metrics: super::JobMetrics,
}

impl State {
    /// The median of the recent step times (robust to one late wake-up or a page fault, which
    /// would make a mean, and every ETA with it, jump), or `initial` before any was measured.
    fn seconds_per_unit(&self, initial: Option<f64>) -> Option<f64> {
        median(&self.step_secs).or(initial)
    }
}

/// The median of `v`; None when empty.
fn median(v: &VecDeque<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = v.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

struct Shared {
    config: ManagerConfig,
    generator: Arc<dyn Generator>,
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
    /// Opens (creating) the data directory, recovers the jobs of a previous run and starts the
    /// workers, the sweeper and the callback dispatcher.
    pub fn open(config: ManagerConfig, generator: Arc<dyn Generator>) -> Result<Self> {
        if config.workers == 0 {
            return Err(Error::InvalidArgument {
                name: "workers",
                value: "0".into(),
                expected: "at least 1".into(),
            }
            .into());
        }
        let outputs = config.data_dir.join("outputs");
        std::fs::create_dir_all(&outputs).map_err(|e| JobError::StorageUnavailable {
            path: outputs.clone(),
            message: e.to_string(),
        })?;
        check_writable(&outputs)?;
        check_writable(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("jobs.sqlite"))?;
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
            state: Mutex::new(State {
                store,
                queue: VecDeque::new(),
                running: HashMap::new(),
                step_secs: VecDeque::new(),
                stopping: RUN,
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
        shared.recover()?;
        let mut threads = Vec::new();
        let weak = Arc::downgrade(&shared);
        let cb_config = shared.config.callback.clone();
        let cb_tx = lock(&shared.callbacks).clone();
        threads.push(spawn("acestep-callbacks", move || {
            callback_thread(rx, cb_tx, cb_config, weak)
        })?);
        for i in 0..shared.config.workers {
            let s = shared.clone();
            threads.push(spawn(&format!("acestep-worker-{i}"), move || s.worker())?);
        }
        let s = shared.clone();
        threads.push(spawn("acestep-sweeper", move || s.sweeper())?);
        Ok(Self { shared, threads })
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.shared.config
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

    /// Validates `request`, checks `owner`'s quota and queues the job; returns its id at once.
    /// Nothing is stored when it fails ([`Error::InvalidArgument`] naming the field,
    /// [`JobError::QuotaExceeded`], [`JobError::ShuttingDown`]).
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
        {
            let mut st = lock(&sh.state);
            if st.stopping != RUN {
                return Err(JobError::ShuttingDown);
            }
            let limit = sh.config.max_queue;
            if limit > 0 && st.queue.len() >= limit {
                return Err(JobError::QueueFull {
                    depth: st.queue.len(),
                    limit,
                });
            }
            let active = st.store.active_count(owner)?;
            let limit = sh.config.max_active_per_owner;
            if active >= limit {
                return Err(JobError::QuotaExceeded {
                    owner: owner.to_string(),
                    active,
                    limit,
                });
            }
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
            st.store.insert(&rec)?;
            st.metrics.submitted += 1;
            st.queue.push_back(Queued {
                id: id.clone(),
                steps,
                cost,
            });
            // Events are sent under the state lock, so that they arrive in transition order.
            sh.emit(&id, JobState::Queued, created_at);
            sh.queue_moved(&st, st.queue.len() - 1);
        }
        sh.wake.notify_all();
        Ok(id)
    }

    /// The job's record with its live queue position, ETA and progress.
    pub fn poll(&self, id: &str) -> Result<JobRecord> {
        let st = lock(&self.shared.state);
        let mut rec = st.store.get(id)?.ok_or_else(|| not_found(id))?;
        // An output deleted behind the manager's back reads as expired, as its download does.
        if let Some(r) = rec.result.as_mut() {
            if !r.expired && r.files.iter().any(|f| !f.path.exists()) {
                st.store.mark_expired(id)?;
                r.expired = true;
            }
        }
        self.shared.overlay(&st, &mut rec);
        Ok(rec)
    }

    /// Records that the outputs of `id` are gone or damaged (found so by a download): its
    /// record then says `expired`, as the download does.
    pub fn mark_output_lost(&self, id: &str) -> Result<()> {
        let st = lock(&self.shared.state);
        st.store.mark_expired(id)
    }

    /// The records of `ids` that exist, in the order given (unknown ids are left out).
    pub fn retrieve_batch(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let st = lock(&self.shared.state);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(mut rec) = st.store.get(id)? {
                self.shared.overlay(&st, &mut rec);
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Jobs of `owner` (of every owner when None), newest first.
    pub fn list(&self, owner: Option<&str>, filter: &ListFilter) -> Result<Vec<JobRecord>> {
        let st = lock(&self.shared.state);
        let mut recs = st.store.list(owner, filter)?;
        for r in &mut recs {
            self.shared.overlay(&st, r);
        }
        Ok(recs)
    }

    /// Counters and histograms since start, with the queue depth and running jobs now.
    pub fn metrics(&self) -> super::JobMetrics {
        let st = lock(&self.shared.state);
        let mut m = st.metrics.clone();
        m.queued = st.queue.len();
        m.running = st.running.len();
        m
    }

    /// `owner`'s concurrency quota.
    pub fn quota(&self, owner: &str) -> Result<Quota> {
        let st = lock(&self.shared.state);
        let active = st.store.active_count(owner)?;
        let limit = self.shared.config.max_active_per_owner;
        Ok(Quota {
            limit,
            active,
            available: limit.saturating_sub(active),
        })
    }

    /// Cancels a job: a queued one at once, a running one at its next diffusion step (the record
    /// returned then says `cancel_requested`). Cancelling a cancelled job is a no-op; a succeeded
    /// or failed one is [`JobError::JobFinished`].
    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        let sh = &self.shared;
        let mut st = lock(&sh.state);
        let mut rec = st.store.get(id)?.ok_or_else(|| not_found(id))?;
        match rec.state {
            JobState::Queued => {
                let pos = st.queue.iter().position(|q| q.id == id);
                st.queue.retain(|q| q.id != id);
                if let Some(pos) = pos {
                    sh.queue_moved(&st, pos);
                }
                let t = now();
                st.store.finish(
                    id,
                    &Finish {
                        state: JobState::Cancelled,
                        finished_at: t,
                        expires_at: None,
                        progress: &rec.progress,
                        result: None,
                        error: None,
                    },
                )?;
                let mut rec = st.store.get(id)?.ok_or_else(|| not_found(id))?;
                sh.overlay(&st, &mut rec);
                st.metrics.cancelled += 1;
                sh.emit(id, JobState::Cancelled, t);
                drop(st);
                sh.send_callback(&rec);
                Ok(rec)
            }
            JobState::Running => {
                if let Some(r) = st.running.get(id) {
                    let _ =
                        r.abort
                            .compare_exchange(RUN, CANCEL, Ordering::SeqCst, Ordering::SeqCst);
                }
                sh.overlay(&st, &mut rec);
                Ok(rec)
            }
            JobState::Cancelled => {
                sh.overlay(&st, &mut rec);
                Ok(rec)
            }
            s @ (JobState::Succeeded | JobState::Failed) => Err(JobError::JobFinished {
                id: id.to_string(),
                state: s.as_str().to_string(),
            }),
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
                if let Err(e) = st.store.requeue(&id, true) {
                    tracing::error!("re-queueing job {id}: {e}");
                }
            }
            any_late
        };
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
    /// `running` on disk). For recovery tests only.
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
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(SHUTDOWN);
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::io(name, e).into())
}

/// Records job `id` failed with `failure` (at start, before any worker runs).
fn fail_stored(
    store: &Store,
    id: &str,
    progress: &JobProgress,
    failure: &JobFailure,
) -> Result<()> {
    store.finish(
        id,
        &Finish {
            state: JobState::Failed,
            finished_at: now(),
            expires_at: None,
            progress,
            result: None,
            error: Some(failure),
        },
    )
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
            let st = lock(&sh.state);
            if let Err(e) = st.store.set_callback_state(id, state) {
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

    /// Sends a `queued` event with its new position to every queued job from index `from` on
    /// (called under the state lock when the queue changed there).
    fn queue_moved(&self, st: &State, from: usize) {
        // One pass: the running jobs' time left once, the queued work ahead as a running sum.
        let spu = st.seconds_per_unit(self.config.initial_seconds_per_step);
        let secs = |q: &Queued, spu: f64| q.steps as f64 * q.cost * spu;
        let running_left = spu.map(|spu| self.running_left(st, spu));
        let mut ahead = spu.map_or(0.0, |spu| {
            st.queue.iter().take(from).map(|q| secs(q, spu)).sum()
        });
        for (i, q) in st.queue.iter().enumerate().skip(from) {
            let eta = spu.zip(running_left).map(|(spu, left)| {
                let own = secs(q, spu);
                let eta = self.eta_in_queue(st.running.len(), i, left, ahead, own);
                ahead += own;
                eta
            });
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

    /// Estimated seconds until the running job `r` ends its diffusion.
    fn running_eta(r: &Running, spu: f64) -> f64 {
        let per_step = r.cost * spu;
        let left = r.steps.saturating_sub(r.progress.step) as f64 * per_step;
        (left - r.last_step_at.elapsed().as_secs_f64().min(per_step)).max(0.0)
    }

    /// Estimated seconds until the job at queue index `pos` ends its diffusion.
    fn queued_eta(&self, st: &State, pos: usize, spu: f64) -> f64 {
        let secs = |q: &Queued| q.steps as f64 * q.cost * spu;
        let ahead: f64 = st.queue.iter().take(pos).map(secs).sum();
        let left = self.running_left(st, spu);
        self.eta_in_queue(st.running.len(), pos, left, ahead, secs(&st.queue[pos]))
    }

    /// Seconds of diffusion the running jobs have left, all together.
    fn running_left(&self, st: &State, spu: f64) -> f64 {
        st.running.values().map(|r| Self::running_eta(r, spu)).sum()
    }

    /// The ETA of the job at queue index `pos` (`own` seconds of work) behind `running` jobs
    /// with `running_left` seconds left and `ahead` seconds of queued work before it.
    fn eta_in_queue(
        &self,
        running: usize,
        pos: usize,
        running_left: f64,
        ahead: f64,
        own: f64,
    ) -> f64 {
        let workers = self.config.workers;
        if running + pos < workers {
            return own;
        }
        (running_left + ahead) / workers as f64 + own
    }

    /// Sends the terminal record to the job's webhook (when its filter has `completed`).
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

    /// Re-queues the jobs of a previous run and resends its pending callbacks.
    fn recover(&self) -> Result<()> {
        let mut st = lock(&self.state);
        for (id, attempts) in st.store.ids_in_state(JobState::Running)? {
            if attempts < 2 {
                tracing::info!("job {id} was interrupted while running; queued again");
                st.store.requeue(&id, false)?;
            } else {
                let rec = st.store.get(&id)?;
                let progress = rec.map(|r| r.progress).unwrap_or_default();
                let failure = JobFailure {
                    code: "interrupted".into(),
                    message: format!(
                        "the job was interrupted while running {attempts} times (process stopped)"
                    ),
                };
                fail_stored(&st.store, &id, &progress, &failure)?;
            }
        }
        for (id, _) in st.store.ids_in_state(JobState::Queued)? {
            let Some(rec) = st.store.get(&id)? else {
                continue;
            };
            // A record stored before today's bounds must not size work at start.
            if let Err(e) = self.generator.validate(&rec.request.params) {
                let failure = JobFailure {
                    code: "invalid_request".into(),
                    message: self.scrub(&e.to_string()),
                };
                fail_stored(&st.store, &id, &rec.progress, &failure)?;
                continue;
            }
            let steps = self.generator.diffusion_steps(&rec.request.params);
            let cost = self.generator.step_cost(&rec.request.params);
            st.queue.push_back(Queued { id, steps, cost });
        }
        self.queue_moved(&st, 0);
        for id in st.store.pending_callbacks()? {
            if let Some(rec) = st.store.get(&id)? {
                self.send_callback(&rec);
            }
        }
        Ok(())
    }

    /// Fills in the live fields: progress, queue position, ETA, cancel flag.
    fn overlay(&self, st: &State, rec: &mut JobRecord) {
        let spu = st.seconds_per_unit(self.config.initial_seconds_per_step);
        match rec.state {
            JobState::Running => {
                if let Some(r) = st.running.get(&rec.id) {
                    rec.progress = r.progress;
                    rec.cancel_requested = r.abort.load(Ordering::SeqCst) == CANCEL;
                    rec.eta_seconds = spu.map(|spu| Self::running_eta(r, spu));
                }
            }
            JobState::Queued => {
                if let Some(pos) = st.queue.iter().position(|q| q.id == rec.id) {
                    rec.queue_position = pos + 1;
                    rec.eta_seconds = spu.map(|spu| self.queued_eta(st, pos, spu));
                }
            }
            _ => {}
        }
    }

    fn worker(self: Arc<Self>) {
        loop {
            let (job, abort) = {
                let mut st = lock(&self.state);
                loop {
                    if st.stopping != RUN {
                        return;
                    }
                    if let Some(q) = st.queue.pop_front() {
                        break self.start(&mut st, q);
                    }
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(rec) = job else {
                continue;
            };
            self.run_job(rec, abort);
        }
    }

    /// Marks the job running; None (skipping it) when its record is gone or unreadable.
    fn start(&self, st: &mut State, q: Queued) -> (Option<JobRecord>, Arc<AtomicU8>) {
        let abort = Arc::new(AtomicU8::new(RUN));
        let t = now();
        let rec = match st.store.get(&q.id) {
            Ok(Some(r)) => r,
            Ok(None) => return (None, abort),
            Err(e) => {
                tracing::error!("reading job {}: {e}", q.id);
                return (None, abort);
            }
        };
        let attempt = match st.store.set_running(&q.id, t) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("starting job {}: {e}", q.id);
                return (None, abort);
            }
        };
        let progress = JobProgress::encoding(q.steps);
        let mut live = rec.clone();
        live.state = JobState::Running;
        live.started_at = Some(t);
        live.attempts = attempt;
        live.progress = progress;
        let webhook = (rec.request.wants(WebhookEvent::Start)
            || rec.request.wants(WebhookEvent::Progress))
        .then(|| live.clone());
        st.running.insert(
            q.id.clone(),
            Running {
                abort: abort.clone(),
                progress,
                webhook,
                last_webhook: None,
                webhooks_sent: 0,
                steps: q.steps,
                cost: q.cost,
                last_step_at: Instant::now(),
                last_saved: Instant::now(),
            },
        );
        self.emit(&q.id, JobState::Running, t);
        self.feed.push(
            &q.id,
            "running",
            serde_json::json!({"id": q.id, "state": JobState::Running, "attempt": attempt}),
        );
        self.queue_moved(st, 0);
        self.send_webhook(&live, WebhookEvent::Start, format!("start-{attempt}"));
        (Some(rec), abort)
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
        let progress = running.map(|r| r.progress).unwrap_or_default();
        if flag == HALT {
            return;
        }
        if flag == SHUTDOWN && outcome.is_err() {
            // Stopped by a graceful shutdown: back to the queue for the next start.
            let _ = std::fs::remove_dir_all(&out_dir);
            if let Err(e) = st.store.requeue(&id, true) {
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
        if state != JobState::Succeeded {
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        let progress = if state == JobState::Succeeded {
            JobProgress::done(steps)
        } else {
            progress
        };
        let end = Finish {
            state,
            finished_at: t,
            expires_at: expires,
            progress: &progress,
            result: result.as_ref(),
            error: error.as_ref(),
        };
        if let Err(e) = st.store.finish(&id, &end) {
            tracing::error!("recording the end of job {id}: {e}");
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
        let rec = st.store.get(&id).ok().flatten();
        self.emit(&id, state, t);
        drop(st);
        if let Some(rec) = rec {
            self.send_callback(&rec);
        }
    }

    fn on_progress(&self, id: &str, p: JobProgress, abort: &AtomicU8) -> Control {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
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
            if r.last_saved.elapsed() >= Duration::from_secs(1) {
                r.last_saved = Instant::now();
                if let Err(e) = st.store.set_progress(id, &p) {
                    tracing::warn!("saving progress of {id}: {e}");
                }
            }
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
        let kind = match p.stage {
            super::Stage::Diffusion => "progress",
            super::Stage::Decoding => "decoding",
            super::Stage::Writing => "writing",
            _ => return,
        };
        let spu = median(step_secs).or(self.config.initial_seconds_per_step);
        let eta = spu.map(|spu| Self::running_eta(r, spu));
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

    fn sweep(&self) -> Result<usize> {
        let st = lock(&self.state);
        let due = st.store.due_for_expiry(now())?;
        for id in &due {
            let dir = self.output_dir(id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir, e).into()),
            }
            st.store.mark_expired(id)?;
        }
        Ok(due.len())
    }
}

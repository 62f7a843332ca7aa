//! The job manager's behaviour suite, run on both job stores (`sqlite::*` and `postgres::*`):
//! with a fake generator (every transition, cancel, quota, ETA, restart recovery, retention,
//! callbacks, concurrency) and with the tiny real checkpoint. The PostgreSQL half needs a server:
//! run through `tools/with-postgres` (as README's test command does).

mod common;

use common::{Backend, Fake};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acestep::jobs::{
    JobError, JobManager, JobRecord, JobRequest, JobState, ListFilter, ManagerConfig, Stage,
    StoreLocation,
};
use acestep::pipeline::GenerationParams;
use acestep::Error;

fn request(prompt: &str, steps: usize) -> JobRequest {
    JobRequest {
        params: GenerationParams {
            prompt: prompt.into(),
            audio_duration: 0.5,
            infer_step: steps,
            format: "wav".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A test's data directory and store.
struct Env {
    dir: tempfile::TempDir,
    store: StoreLocation,
}

impl Env {
    fn new(b: Backend) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            store: b.store(),
        }
    }

    /// Waits until the leases of a crashed manager's jobs have lapsed (a shared store reaps a
    /// running job only then: another process may still be running it).
    fn after_crash(&self) {
        if matches!(self.store, StoreLocation::Postgres(_)) {
            std::thread::sleep(self.config().lease + Duration::from_millis(300));
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test settings over this directory and store (a PostgreSQL store with a 2 s lease,
    /// so that a halted manager's jobs are reaped soon).
    fn config(&self) -> ManagerConfig {
        let mut c = config(self.path());
        c.store = self.store.clone();
        c.lease = Duration::from_secs(2);
        c.poll_interval = Duration::from_millis(20);
        c
    }
}

fn config(dir: &Path) -> ManagerConfig {
    let mut c = ManagerConfig::new(dir);
    c.sweep_interval = Duration::from_millis(50);
    c.callback.initial_backoff = Duration::from_millis(50);
    c.callback.timeout = Duration::from_secs(5);
    c
}

/// Polls until `pred` holds (panics after 30 s).
fn wait_until(m: &JobManager, id: &str, pred: impl Fn(&JobRecord) -> bool) -> JobRecord {
    let t0 = Instant::now();
    loop {
        let r = m.poll(id).unwrap();
        if pred(&r) {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting on job {id}: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Collects events until each of `ids` had a terminal one (events are sent just after the
/// record is stored, so a poll may see the state first).
fn events_until_terminal(
    rx: &std::sync::mpsc::Receiver<acestep::jobs::JobEvent>,
    ids: &[&str],
) -> HashMap<String, Vec<JobState>> {
    let mut per_job: HashMap<String, Vec<JobState>> = HashMap::new();
    let done = |p: &HashMap<String, Vec<JobState>>| {
        ids.iter().all(|id| {
            p.get(*id)
                .is_some_and(|v| v.last().is_some_and(|s| s.is_terminal()))
        })
    };
    while !done(&per_job) {
        let e = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("terminal event");
        per_job.entry(e.id).or_default().push(e.state);
    }
    for e in rx.try_iter() {
        per_job.entry(e.id).or_default().push(e.state);
    }
    per_job
}

fn terminal(m: &JobManager, id: &str) -> JobRecord {
    wait_until(m, id, |r| r.state.is_terminal())
}

fn a_job_goes_queued_running_succeeded_with_timestamps_progress_and_files(b: Backend) {
    let dir = Env::new(b);
    let m = JobManager::open(dir.config(), Fake::new(5)).unwrap();
    let events = m.subscribe();
    let id = m.submit(request("song", 10), "alice").unwrap();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let running = wait_until(&m, &id, |r| {
        r.state == JobState::Running && r.progress.stage == Stage::Diffusion
    });
    assert_eq!(running.queue_position, 0);
    assert_eq!(running.progress.total, 10);
    assert!(running.started_at.unwrap() >= running.created_at);
    let done = terminal(&m, &id);
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    assert_eq!(done.progress.stage, Stage::Done);
    assert_eq!(done.progress.percent, 100.0);
    assert_eq!(done.eta_seconds, None);
    let result = done.result.unwrap();
    assert_eq!(result.seeds, vec![7]);
    assert!(result.elapsed_seconds >= 0.05);
    assert!(!result.expired);
    let audio = acestep::audio::read(&result.files[0].path).unwrap();
    assert_eq!(audio.sample_rate, 8000);
    assert!(result.files[0]
        .path
        .starts_with(dir.path().join("outputs").join(&id)));
    // 24 h default retention.
    let keep = done.expires_at.unwrap() - done.finished_at.unwrap();
    assert!((keep - 86400.0).abs() < 1.0);
    let states = events_until_terminal(&events, &[&id]);
    assert_eq!(
        states[&id],
        vec![JobState::Queued, JobState::Running, JobState::Succeeded]
    );
}

fn errors_and_panics_fail_the_job_not_the_manager(b: Backend) {
    let dir = Env::new(b);
    let m = JobManager::open(dir.config(), Fake::new(1)).unwrap();
    let a = m.submit(request("fail", 5), "bob").unwrap();
    let b = m.submit(request("panic", 5), "bob").unwrap();
    let c = m.submit(request("fine", 5), "bob").unwrap();
    let fa = terminal(&m, &a);
    assert_eq!(fa.state, JobState::Failed);
    let err = fa.error.unwrap();
    assert_eq!(err.code, "generation_failed");
    assert!(
        err.message.contains("invalid fake `fail`"),
        "{}",
        err.message
    );
    let fb = terminal(&m, &b);
    assert_eq!(fb.state, JobState::Failed);
    assert_eq!(fb.error.as_ref().unwrap().code, "panic");
    assert!(fb
        .error
        .unwrap()
        .message
        .contains("fake generator exploded"));
    assert_eq!(terminal(&m, &c).state, JobState::Succeeded);
    // Nothing of the failed jobs is left on disk.
    assert!(!m.output_dir(&a).exists());
}

fn bad_requests_are_rejected_naming_the_field_and_nothing_is_stored(b: Backend) {
    let dir = Env::new(b);
    let m = JobManager::open(dir.config(), Fake::new(1)).unwrap();
    let mut r = request("x", 0);
    match m.submit(r.clone(), "carol") {
        Err(JobError::Engine(Error::InvalidArgument { name, value, .. })) => {
            assert_eq!(name, "infer_step");
            assert_eq!(value, "0");
        }
        other => panic!("{other:?}"),
    }
    r.params.infer_step = 5;
    r.params.audio_duration = 999.0;
    assert!(matches!(
        m.submit(r.clone(), "carol"),
        Err(JobError::Engine(Error::InvalidArgument {
            name: "audio_duration",
            ..
        }))
    ));
    r.params.audio_duration = 1.0;
    r.callback_url = Some("ftp://example.com".into());
    assert!(matches!(
        m.submit(r, "carol"),
        Err(JobError::Engine(Error::InvalidArgument {
            name: "callback_url",
            ..
        }))
    ));
    assert!(m.list(None, &ListFilter::default()).unwrap().is_empty());
    assert!(matches!(m.poll("nope"), Err(JobError::JobNotFound { .. })));
}

fn cancel_while_queued_is_immediate_and_while_running_stops_within_one_step(b: Backend) {
    let dir = Env::new(b);
    let fake = Fake::new(20);
    let m = JobManager::open(dir.config(), fake.clone()).unwrap();
    let events = m.subscribe();
    let long = m.submit(request("long", 200), "dave").unwrap();
    let queued = m.submit(request("queued", 5), "dave").unwrap();
    let next = m.submit(request("next", 3), "dave").unwrap();
    wait_until(&m, &long, |r| r.progress.step >= 3);
    // Queued: cancelled at once, never runs.
    let q = m.cancel(&queued).unwrap();
    assert_eq!(q.state, JobState::Cancelled);
    assert!(q.finished_at.is_some());
    assert_eq!(m.poll(&next).unwrap().queue_position, 1);
    // Running: stops at the next step.
    let at = fake.executed("long");
    let r = m.cancel(&long).unwrap();
    assert!(r.cancel_requested);
    let r = terminal(&m, &long);
    assert_eq!(r.state, JobState::Cancelled);
    let stopped = fake.executed("long");
    assert!(
        stopped <= at + 2,
        "cancel requested after step {at}, generator ran to step {stopped}"
    );
    assert!(r.progress.step < 200);
    // The worker is free again: the next job runs and succeeds.
    assert_eq!(terminal(&m, &next).state, JobState::Succeeded);
    assert_eq!(fake.executed("queued"), 0);
    // Cancelling again is a no-op; a finished job cannot be cancelled; unknown id.
    assert_eq!(m.cancel(&queued).unwrap().state, JobState::Cancelled);
    assert!(matches!(
        m.cancel(&next),
        Err(JobError::JobFinished { state, .. }) if state == "succeeded"
    ));
    assert!(matches!(m.cancel("x"), Err(JobError::JobNotFound { .. })));
    let per_job = events_until_terminal(&events, &[&queued, &long, &next]);
    assert_eq!(
        per_job[&queued],
        vec![JobState::Queued, JobState::Cancelled]
    );
    assert_eq!(
        per_job[&long],
        vec![JobState::Queued, JobState::Running, JobState::Cancelled]
    );
}

fn quota_limits_queued_plus_running_jobs_per_owner(b: Backend) {
    let dir = Env::new(b);
    let mut c = dir.config();
    c.max_active_per_owner = 2;
    let m = JobManager::open(c, Fake::new(20)).unwrap();
    let a = m.submit(request("a", 100), "erin").unwrap();
    let _b = m.submit(request("b", 100), "erin").unwrap();
    let q = m.quota("erin").unwrap();
    assert_eq!((q.limit, q.active, q.available), (2, 2, 0));
    match m.submit(request("c", 5), "erin") {
        Err(JobError::QuotaExceeded {
            owner,
            active,
            limit,
        }) => assert_eq!((owner.as_str(), active, limit), ("erin", 2, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.list(Some("erin"), &ListFilter::default()).unwrap().len(),
        2
    );
    // Other owners have their own quota.
    let f = m.submit(request("f", 1), "frank").unwrap();
    assert_eq!(m.quota("frank").unwrap().active, 1);
    // A cancelled job frees its slot.
    m.cancel(&a).unwrap();
    terminal(&m, &a);
    assert_eq!(m.quota("erin").unwrap().available, 1);
    m.submit(request("c", 5), "erin").unwrap();
    // list filters and retrieve_batch.
    let cancelled = m
        .list(
            Some("erin"),
            &ListFilter {
                states: vec![JobState::Cancelled],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].id, a);
    let newest = m
        .list(
            None,
            &ListFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(newest[0].request.params.prompt, "c");
    let batch = m
        .retrieve_batch(&[f.clone(), "missing".into(), a.clone()])
        .unwrap();
    assert_eq!(
        batch.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![f, a]
    );
}

fn eta_decreases_on_a_steady_queue(b: Backend) {
    let dir = Env::new(b);
    let step: f64 = 20.0e-3;
    let m = JobManager::open(dir.config(), Fake::new(20)).unwrap();
    let ids: Vec<String> = (0..4)
        .map(|i| m.submit(request(&format!("j{i}"), 30), "gina").unwrap())
        .collect();
    let last = ids[3].clone();
    // Once a few steps were measured (a steady state), the last job's ETA and position only
    // go down.
    wait_until(&m, &ids[0], |r| r.progress.step >= 12);
    let mut prev: Option<(f64, usize)> = None;
    let mut first = None;
    let t0 = Instant::now();
    loop {
        let r = m.poll(&last).unwrap();
        if r.state != JobState::Queued {
            break;
        }
        let eta = r.eta_seconds.expect("eta known once a step was measured");
        if let Some((p_eta, p_pos)) = prev {
            assert!(r.queue_position <= p_pos);
            // Non-increasing, up to scheduling noise in the measured step times (a loaded CI
            // machine): two steps or 3 %.
            assert!(
                eta <= p_eta + (2.0 * step).max(0.03 * p_eta),
                "eta went up from {p_eta} to {eta}"
            );
        }
        first.get_or_insert((eta, t0));
        prev = Some((eta, r.queue_position));
        std::thread::sleep(Duration::from_millis(3));
    }
    // It predicted the wait: the first estimate vs the time the job actually took to start
    // plus its own 30 steps.
    let (eta0, t_first) = first.unwrap();
    let done = terminal(&m, &last);
    let actual = t_first.elapsed().as_secs_f64();
    let _ = done;
    assert!(
        (eta0 - actual).abs() / actual < 0.5,
        "first eta {eta0:.3} s vs {actual:.3} s"
    );
}

fn restart_requeues_running_jobs_once_and_keeps_queue_order(b: Backend) {
    let dir = Env::new(b);
    // A crash while job 0 runs.
    let m = JobManager::open(dir.config(), Fake::new(20)).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|i| m.submit(request(&format!("r{i}"), 100), "hank").unwrap())
        .collect();
    wait_until(&m, &ids[0], |r| r.progress.step >= 2);
    m.halt();
    dir.after_crash();
    // Second run: job 0 is queued again (attempt 2), then crashes again.
    let m = JobManager::open(dir.config(), Fake::new(20)).unwrap();
    let r0 = wait_until(&m, &ids[0], |r| {
        r.state == JobState::Running && r.progress.step >= 1
    });
    assert_eq!(r0.attempts, 2);
    assert_eq!(m.poll(&ids[1]).unwrap().queue_position, 1);
    assert_eq!(m.poll(&ids[2]).unwrap().queue_position, 2);
    m.halt();
    dir.after_crash();
    // Third run: job 0 was interrupted twice: failed; the others run in order.
    let fake = Fake::new(1);
    let m = JobManager::open(dir.config(), fake.clone()).unwrap();
    let f0 = m.poll(&ids[0]).unwrap();
    assert_eq!(f0.state, JobState::Failed);
    assert_eq!(f0.error.unwrap().code, "interrupted");
    let d1 = terminal(&m, &ids[1]);
    let d2 = terminal(&m, &ids[2]);
    assert_eq!(
        (d1.state, d2.state),
        (JobState::Succeeded, JobState::Succeeded)
    );
    assert!(d1.started_at.unwrap() <= d2.started_at.unwrap());
    assert_eq!((d1.attempts, d2.attempts), (1, 1));
    assert_eq!(fake.runs.load(Ordering::SeqCst), 2);
    // A graceful shutdown (drop) mid-run re-queues without using up an attempt.
    let id = m.submit(request("graceful", 100), "hank").unwrap();
    wait_until(&m, &id, |r| r.progress.step >= 1);
    drop(m);
    let m = JobManager::open(dir.config(), Fake::new(1)).unwrap();
    let r = terminal(&m, &id);
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.attempts, 1);
    assert_eq!(m.list(None, &ListFilter::default()).unwrap().len(), 4);
}

fn expired_results_are_swept_with_their_files(b: Backend) {
    let dir = Env::new(b);
    let mut c = dir.config();
    c.retention = Duration::from_millis(200);
    c.sweep_interval = Duration::from_secs(3600);
    let m = JobManager::open(c, Fake::new(1)).unwrap();
    let id = m.submit(request("keep", 3), "ivy").unwrap();
    let done = terminal(&m, &id);
    let path = done.result.unwrap().files[0].path.clone();
    assert!(path.exists());
    assert_eq!(m.sweep_now().unwrap(), 0, "not expired yet");
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(m.sweep_now().unwrap(), 1);
    assert!(!path.exists());
    assert!(!m.output_dir(&id).exists());
    let r = m.poll(&id).unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    assert!(r.result.unwrap().expired);
    assert_eq!(m.sweep_now().unwrap(), 0);
}

fn the_sweeper_thread_expires_results_on_its_own(b: Backend) {
    let dir = Env::new(b);
    let mut c = dir.config();
    c.retention = Duration::ZERO;
    let m = JobManager::open(c, Fake::new(1)).unwrap();
    let id = m.submit(request("gone", 2), "ivy").unwrap();
    terminal(&m, &id);
    let r = wait_until(&m, &id, |r| r.result.as_ref().is_some_and(|x| x.expired));
    assert!(!r.result.unwrap().files[0].path.exists());
}

/// A one-thread HTTP listener answering 500 to the first request and 200 after; returns the
/// URL and the bodies received.
fn flaky_listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            b.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

fn callbacks_are_delivered_with_a_retry_after_a_500(b: Backend) {
    let dir = Env::new(b);
    let (url, bodies) = flaky_listener();
    let mut c = dir.config();
    // The test's receiver is on loopback.
    c.callback.allow_private = true;
    c.callback.public_url = Some("https://music.example".into());
    let m = JobManager::open(c, Fake::new(1)).unwrap();
    let mut r = request("hooked", 3);
    r.callback_url = Some(url);
    let id = m.submit(r, "jack").unwrap();
    terminal(&m, &id);
    let t0 = Instant::now();
    while bodies.lock().unwrap().len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "callback not retried"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got[0], got[1], "the retry resends the same record");
    let rec: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(rec["id"], id.as_str());
    assert_eq!(rec["state"], "succeeded");
    // No owner digest and no server path leave in a callback: files are links.
    assert!(rec.get("owner").is_none(), "{rec}");
    assert!(rec["result"]["files"][0].get("path").is_none(), "{rec}");
    let file_id = rec["result"]["files"][0]["id"].as_str().unwrap();
    assert_eq!(
        rec["result"]["files"][0]["url"],
        format!("https://music.example/files/{id}/{file_id}.wav?d=async_task").as_str()
    );
    let dir_text = dir.path().to_string_lossy().into_owned();
    assert!(!got[1].contains(&dir_text), "{}", got[1]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(bodies.lock().unwrap().len(), 2, "no delivery after a 200");
}

fn eight_threads_two_hundred_jobs_each_terminal_exactly_once(b: Backend) {
    let dir = Env::new(b);
    let mut c = dir.config();
    c.workers = 3;
    c.max_active_per_owner = 1000;
    let m = Arc::new(JobManager::open(c, Fake::new(0)).unwrap());
    let events = m.subscribe();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let id = m
                        .submit(request(&format!("t{t}-{i}"), 3), &format!("owner{}", t % 3))
                        .unwrap();
                    if i % 7 == 3 {
                        // Some are cancelled, whatever state they reached.
                        match m.cancel(&id) {
                            Ok(_) | Err(JobError::JobFinished { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let _ = m.poll(&id).unwrap();
                    ids.push(id);
                }
                for id in &ids {
                    let _ = m.poll(id).unwrap();
                }
                ids
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 200);
    let mut finals = HashMap::new();
    for id in &ids {
        finals.insert(id.clone(), terminal(&m, id).state);
    }
    let refs: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let per_job = events_until_terminal(&events, &refs);
    assert_eq!(per_job.len(), 200);
    for (id, states) in &per_job {
        assert_eq!(states[0], JobState::Queued, "job {id}: {states:?}");
        let ends: Vec<_> = states.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(ends.len(), 1, "job {id} ended {states:?}");
        assert_eq!(*ends[0], finals[id]);
        assert!(states.last().unwrap().is_terminal(), "job {id}: {states:?}");
    }
    let all = m.list(None, &ListFilter::default()).unwrap();
    assert_eq!(all.len(), 200);
    let succeeded = all
        .iter()
        .filter(|r| r.state == JobState::Succeeded)
        .count();
    let cancelled = all
        .iter()
        .filter(|r| r.state == JobState::Cancelled)
        .count();
    assert_eq!(succeeded + cancelled, 200);
    assert!(succeeded >= 200 - 8 * 4);
}

fn the_tiny_real_checkpoint_runs_as_a_job(b: Backend) {
    use acestep::jobs::PipelineGenerator;
    let pipe = common::tiny_pipeline();
    let dir = Env::new(b);
    let m = JobManager::open(dir.config(), Arc::new(PipelineGenerator::new(pipe))).unwrap();
    let req = JobRequest {
        params: GenerationParams {
            prompt: "lofi hip hop".into(),
            audio_duration: 1.0,
            infer_step: 4,
            manual_seeds: vec![3],
            format: "flac".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let id = m.submit(req, "kim").unwrap();
    let done = terminal(&m, &id);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let result = done.result.unwrap();
    assert_eq!(result.seeds, vec![3]);
    let file = &result.files[0];
    assert_eq!(file.format, "flac");
    let audio = acestep::audio::read(&file.path).unwrap();
    assert_eq!(audio.sample_rate, 48000);
    assert_eq!(audio.channels.len(), 2);
    assert!((audio.duration() - file.duration_seconds).abs() < 1e-3);
    assert!(audio.duration() > 0.5);
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file.params_path.as_ref().unwrap()).unwrap())
            .unwrap();
    assert_eq!(sidecar["seed"], 3);
    assert_eq!(sidecar["prompt"], "lofi hip hop");
}

fn a_store_of_a_newer_schema_is_refused(b: Backend) {
    let dir = Env::new(b);
    drop(JobManager::open(dir.config(), Fake::new(1)).unwrap());
    // Reopening a migrated store changes nothing.
    drop(JobManager::open(dir.config(), Fake::new(1)).unwrap());
    let bump = "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)";
    match &dir.store {
        StoreLocation::Postgres(url) => {
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
            c.batch_execute(bump).unwrap();
        }
        _ => {
            let c = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
            c.execute_batch(bump).unwrap();
        }
    }
    let err = JobManager::open(dir.config(), Fake::new(1)).err().unwrap();
    assert!(matches!(err, JobError::Store { .. }), "{err}");
    assert!(
        err.to_string().contains("schema is version 99, newer"),
        "{err}"
    );
}

/// A database written by the single-process manager (schema version 1, before migrations were
/// recorded) is migrated in place: its queued job runs, its finished job is kept.
#[test]
fn an_sqlite_store_of_schema_1_is_migrated_and_its_jobs_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
        c.execute_batch(
            "CREATE TABLE jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                owner TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL,
                created_at REAL NOT NULL, started_at REAL, finished_at REAL, expires_at REAL,
                progress TEXT, result TEXT, error_code TEXT, error_message TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, callback_state TEXT,
                expired INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX jobs_owner_state ON jobs(owner, state);
             CREATE INDEX jobs_state ON jobs(state);",
        )
        .unwrap();
        let req = serde_json::to_string(&request("old queued", 3)).unwrap();
        c.execute(
            "INSERT INTO jobs (id, owner, state, request, created_at) \
             VALUES ('old-1', 'olga', 'queued', ?1, 1.0)",
            [&req],
        )
        .unwrap();
        c.execute(
            "INSERT INTO jobs (id, owner, state, request, created_at, finished_at, error_code, \
             error_message, attempts) VALUES ('old-0', 'olga', 'failed', ?1, 0.5, 0.7, \
             'generation_failed', 'boom', 1)",
            [&req],
        )
        .unwrap();
    }
    let m = JobManager::open(config(dir.path()), Fake::new(1)).unwrap();
    let done = terminal(&m, "old-1");
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    let old = m.poll("old-0").unwrap();
    assert_eq!(old.state, JobState::Failed);
    assert_eq!(old.error.unwrap().message, "boom");
    assert_eq!(
        m.list(Some("olga"), &ListFilter::default()).unwrap().len(),
        2
    );
}

on_both_stores!(
    a_job_goes_queued_running_succeeded_with_timestamps_progress_and_files,
    errors_and_panics_fail_the_job_not_the_manager,
    bad_requests_are_rejected_naming_the_field_and_nothing_is_stored,
    cancel_while_queued_is_immediate_and_while_running_stops_within_one_step,
    quota_limits_queued_plus_running_jobs_per_owner,
    eta_decreases_on_a_steady_queue,
    restart_requeues_running_jobs_once_and_keeps_queue_order,
    expired_results_are_swept_with_their_files,
    the_sweeper_thread_expires_results_on_its_own,
    callbacks_are_delivered_with_a_retry_after_a_500,
    eight_threads_two_hundred_jobs_each_terminal_exactly_once,
    the_tiny_real_checkpoint_runs_as_a_job,
    a_store_of_a_newer_schema_is_refused,
);

//! Live progress and operations of `acestep serve` (issue 20): server-sent events under each
//! dialect's task path (order, resume with `Last-Event-ID`, keep-alive, authorisation), signed
//! webhooks with an events filter, per-key submit rate limits, and 1000 concurrent event
//! subscribers with 200 submits against one server on the tiny checkpoint.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acestep::jobs::{JobManager, ManagerConfig};
use acestep::server::{AppState, RateLimit, ServerConfig};
use common::Fake;
use serde_json::{json, Value};

const KEY: &str = "events-key";
const OTHER: &str = "other-key";

/// An in-process server on a free port over the fake generator.
struct Live {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn live(step_ms: u64, config: ServerConfig, manager: impl FnOnce(&mut ManagerConfig)) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.max_active_per_owner = 10_000;
    manager(&mut c);
    let jobs = Arc::new(JobManager::open(c, Fake::new(step_ms)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(jobs, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(acestep::server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Live {
        url,
        stop: Some(tx),
        rt: Some(rt),
        _dir: dir,
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        api_keys: vec![KEY.into(), OTHER.into()],
        sse_keep_alive: Duration::from_millis(100),
        ..Default::default()
    }
}

/// POSTs JSON; the status and the JSON answer (errors included) with the headers asked for.
fn post(url: &str, key: &str, body: &Value) -> (u16, Value, HashMap<String, String>) {
    let resp = match ureq::post(url)
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(body.clone())
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|h| {
            resp.header(&h)
                .map(|v| (h.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let text = resp.into_string().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v, headers)
}

/// One server-sent event.
#[derive(Debug, Clone)]
struct Ev {
    id: String,
    event: String,
    data: Value,
}

impl Ev {
    fn seq(&self) -> u64 {
        self.id.rsplit('.').next().unwrap().parse().unwrap()
    }
}

/// A stream read to its end (or `max` events): the events and the keep-alive comments seen.
struct Stream {
    status: u16,
    content_type: String,
    events: Vec<Ev>,
    comments: usize,
    body: String,
}

fn events(url: &str, key: Option<&str>, last_id: Option<&str>, max: usize) -> Stream {
    let mut req = ureq::get(url).timeout(Duration::from_secs(120));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    if let Some(id) = last_id {
        req = req.set("Last-Event-ID", id);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            return Stream {
                status,
                content_type: r.content_type().to_string(),
                events: vec![],
                comments: 0,
                body: r.into_string().unwrap_or_default(),
            };
        }
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let content_type = resp.content_type().to_string();
    let mut out = Stream {
        status,
        content_type,
        events: vec![],
        comments: 0,
        body: String::new(),
    };
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    for line in BufReader::new(resp.into_reader()).lines() {
        let Ok(line) = line else { break };
        if line.is_empty() {
            if !data.is_empty() || !event.is_empty() {
                out.events.push(Ev {
                    id: std::mem::take(&mut id),
                    event: std::mem::take(&mut event),
                    data: serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
                });
                if out.events.len() >= max {
                    break;
                }
            }
        } else if line.starts_with(':') {
            out.comments += 1;
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    out
}

/// Checks that `evs` is one job's whole life in order: numbered 1, 2, ... without a gap,
/// queue positions only falling, one `running`, diffusion steps 1..=total, then decoding,
/// writing and one terminal event last. Returns the terminal event.
fn check_life(evs: &[Ev], steps: u64) -> &Ev {
    assert!(!evs.is_empty());
    let kinds: Vec<&str> = evs.iter().map(|e| e.event.as_str()).collect();
    let running = kinds.iter().position(|k| *k == "running").expect("running");
    // Numbered in order; a queue position may have been replaced by the next one before the
    // subscriber read it, but from the start on nothing is missing.
    assert!(evs.windows(2).all(|w| w[1].seq() > w[0].seq()), "{evs:?}");
    for w in evs[running - 1..].windows(2) {
        assert_eq!(w[1].seq(), w[0].seq() + 1, "{evs:?}");
    }
    assert!(kinds[..running].iter().all(|k| *k == "queued"), "{kinds:?}");
    assert!(running >= 1, "submitted as queued first: {kinds:?}");
    let positions: Vec<u64> = evs[..running]
        .iter()
        .map(|e| e.data["queue_position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[1] < w[0]), "{positions:?}");
    let progress: Vec<u64> = evs
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| e.data["step"].as_u64().unwrap())
        .collect();
    assert_eq!(progress, (1..=steps).collect::<Vec<_>>(), "{kinds:?}");
    let decoding = kinds
        .iter()
        .position(|k| *k == "decoding")
        .expect("decoding");
    let writing = kinds.iter().position(|k| *k == "writing").expect("writing");
    assert!(running < decoding && decoding < writing, "{kinds:?}");
    let last = evs.last().unwrap();
    assert_eq!(kinds.iter().filter(|k| **k == last.event).count(), 1);
    last
}

#[test]
fn event_streams_follow_each_job_in_every_dialect_and_resume() {
    let s = live(40, config(), |_| {});
    // A first job holds the only worker, so the second waits.
    let submit = |prompt: &str| {
        let (status, v, _) = post(
            &format!("{}/v1/async/music/generations", s.url),
            KEY,
            &json!({"prompt": prompt, "duration": 1, "infer_steps": 5, "output_format": "wav"}),
        );
        assert_eq!(status, 200, "{v}");
        v["task_id"].as_str().unwrap().to_string()
    };
    let a = submit("first");
    let b = submit("second");
    let stream = events(
        &format!("{}/api/v1/task/{b}/events", s.url),
        Some(KEY),
        None,
        1000,
    );
    assert_eq!(stream.status, 200);
    assert!(stream.content_type.starts_with("text/event-stream"));
    let end = check_life(&stream.events, 5);
    assert_eq!(end.event, "succeeded");
    // The end is the dialect's poll answer with the result links.
    assert_eq!(end.data["task_id"], b.as_str());
    assert_eq!(end.data["status"], "success");
    assert!(end.data["output"]["file_url"]
        .as_str()
        .unwrap()
        .contains(&format!("/files/{b}/")));
    // The wait behind the first job was kept alive with comments.
    assert!(stream.comments >= 1, "{}", stream.comments);
    let ev0 = &stream.events[0];
    assert_eq!(ev0.data["id"], b.as_str());
    // Second in line, or first once the worker took the first job.
    let pos = ev0.data["queue_position"].as_u64().unwrap();
    assert!(pos == 1 || pos == 2, "{pos}");
    let eta_seen = stream
        .events
        .iter()
        .filter(|e| e.event == "progress")
        .any(|e| e.data["eta_seconds"].as_f64().is_some());
    assert!(
        eta_seen,
        "progress events carry an ETA once steps were measured"
    );
    println!(
        "job b: {} events, {} keep-alive comments, kinds {:?}",
        stream.events.len(),
        stream.comments,
        stream
            .events
            .iter()
            .map(|e| e.event.as_str())
            .collect::<Vec<_>>()
    );

    // Resume after the third event: the rest, from the fourth on, and nothing before.
    let third = stream.events[2].id.clone();
    let rest = events(
        &format!("{}/api/v1/task/{b}/events", s.url),
        Some(KEY),
        Some(&third),
        1000,
    );
    assert_eq!(rest.events.len(), stream.events.len() - 3);
    assert_eq!(rest.events[0].seq(), stream.events[3].seq());
    // Resuming after the end: nothing more, the stream closes at once.
    let after_end = events(
        &format!("{}/api/v1/task/{b}/events", s.url),
        Some(KEY),
        Some(&end.id),
        1000,
    );
    assert_eq!((after_end.status, after_end.events.len()), (200, 0));
    // An id of another server run replays from the start.
    let foreign = events(
        &format!("{}/api/v1/task/{b}/events", s.url),
        Some(KEY),
        Some("0123456789ab.3"),
        1000,
    );
    assert_eq!(foreign.events.len(), stream.events.len());

    // The same job under the other dialects' paths: same events, each dialect's record last.
    let ace = events(
        &format!("{}/v1/jobs/{a}/events", s.url),
        Some(KEY),
        None,
        1000,
    );
    let end = check_life(&ace.events, 5);
    assert_eq!(end.data["job_id"], a.as_str());
    assert_eq!(end.data["status"], "succeeded");
    assert!(end.data["result"]["audio_paths"][0].as_str().is_some());
    let producer = events(
        &format!("{}/producer/tasks/{a}/events", s.url),
        Some(KEY),
        None,
        1000,
    );
    assert_eq!(producer.events.len(), ace.events.len());
    let end = producer.events.last().unwrap();
    assert_eq!(end.event, "succeeded");
    assert!(end.data.to_string().contains(&a), "{}", end.data);

    // Authorisation as the poll's: no key 401, another key's job 404, an unknown id 404, each
    // in its dialect's format.
    let no_key = events(&format!("{}/api/v1/task/{a}/events", s.url), None, None, 10);
    assert_eq!(no_key.status, 401);
    assert!(no_key.body.contains("invalid_token"), "{}", no_key.body);
    let other = events(
        &format!("{}/v1/jobs/{a}/events", s.url),
        Some(OTHER),
        None,
        10,
    );
    assert_eq!(other.status, 404);
    assert!(other.body.contains("detail"), "{}", other.body);
    let unknown = events(
        &format!("{}/producer/tasks/nope/events", s.url),
        Some(KEY),
        None,
        10,
    );
    // The producer dialect answers an unknown task as its poll does: 400 token_mismatched.
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body.contains("token_mismatched"),
        "{}",
        unknown.body
    );

    // A cancelled queued job: its stream ends with `cancelled`.
    let c1 = submit("long-one");
    let c2 = submit("to-cancel");
    let (status, _, _) = post(
        &format!("{}/api/v1/task/{c2}/cancel", s.url),
        KEY,
        &json!({}),
    );
    assert_eq!(status, 200);
    let cancelled = events(
        &format!("{}/api/v1/task/{c2}/events", s.url),
        Some(KEY),
        None,
        100,
    );
    let last = cancelled.events.last().unwrap();
    assert_eq!(last.event, "cancelled");
    assert_eq!(last.data["status"], "cancelled");
    let _ = post(
        &format!("{}/api/v1/task/{c1}/cancel", s.url),
        KEY,
        &json!({}),
    );
}

#[test]
fn event_streams_end_when_the_server_stops() {
    // A stop must not wait its whole grace (10 s) for open event streams.
    let mut s = live(500, config(), |_| {});
    let (status, v, _) = post(
        &format!("{}/v1/async/music/generations", s.url),
        KEY,
        &json!({"prompt": "long", "duration": 1, "infer_steps": 100, "output_format": "wav"}),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["task_id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/jobs/{id}/events", s.url);
    let reader = std::thread::spawn(move || {
        let got = events(&url, Some(KEY), None, 1000);
        (got, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(1200));
    let stopped = Instant::now();
    s.stop.take().unwrap().send(()).unwrap();
    let (got, ended) = reader.join().unwrap();
    let took = ended.duration_since(stopped);
    println!(
        "the stream ended {took:?} after the stop, with {} events",
        got.events.len()
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        got.events.iter().any(|e| e.event == "running"),
        "{:?}",
        got.events
    );
    // It ended without a terminal event: the job goes on (a client reconnects later).
    assert!(got
        .events
        .iter()
        .all(|e| !matches!(e.event.as_str(), "succeeded" | "failed" | "cancelled")));
}

#[test]
fn a_job_without_kept_events_starts_with_its_state() {
    // A job queued before this run (recovered from the database) has no events yet: the stream
    // begins with its state now.
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let mut c = ManagerConfig::new(dir.path());
        c.workers = 1;
        let jobs = JobManager::open(c, Fake::new(1000)).unwrap();
        let req = acestep::jobs::JobRequest {
            params: acestep::pipeline::GenerationParams {
                prompt: "recovered".into(),
                audio_duration: 1.0,
                infer_step: 3,
                format: "wav".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let a = jobs.submit(req.clone(), "local").unwrap();
        let b = jobs.submit(req, "local").unwrap();
        jobs.halt();
        (a, b)
    };
    let mut c = ManagerConfig::new(dir.path());
    c.workers = 1;
    let jobs = Arc::new(JobManager::open(c, Fake::new(20)).unwrap());
    let feed = jobs.events();
    // Recovery sent the queue positions.
    let mut f = feed
        .follow(&first.1, false)
        .expect("recovered jobs have events");
    let evs = f.after(0);
    assert_eq!(evs[0].kind, "queued");
    assert_eq!(
        serde_json::from_str::<Value>(&evs[0].data).unwrap()["queue_position"],
        2
    );
    drop(jobs);
}

#[test]
fn webhooks_are_signed_and_filtered() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let s = live(300, config(), |c| {
        c.callback.allow_private = true;
        c.callback.secret = Some(secret.into());
        c.callback.public_url = Some("http://music.local".into());
    });
    let (hook, got) = common::webhook_receiver();
    let submit = |filter: Value| {
        let (status, v, _) = post(
            &format!("{}/v1/async/music/generations", s.url),
            KEY,
            &json!({"prompt": "hooked", "duration": 1, "infer_steps": 5, "output_format": "wav",
                    "callback_url": hook, "webhook_events_filter": filter}),
        );
        (status, v)
    };
    let (status, v) = submit(json!(["start", "progress", "completed"]));
    assert_eq!(status, 200, "{v}");
    let all = v["task_id"].as_str().unwrap().to_string();
    // The default (no filter) is the terminal record only; a form-style string works too.
    let (_, v) = submit(Value::Null);
    let only_end = v["task_id"].as_str().unwrap().to_string();
    let (_, v) = submit(json!("start, completed"));
    let start_end = v["task_id"].as_str().unwrap().to_string();
    // Unknown events and a filter without a callback are refused.
    let (status, v) = submit(json!(["start", "finished"]));
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("webhook_events_filter"), "{v}");
    let (status, _, _) = post(
        &format!("{}/v1/music/generate", s.url),
        KEY,
        &json!({"caption": "x", "webhook_events_filter": ["start"]}),
    );
    assert_eq!(status, 400);

    let t0 = Instant::now();
    let done = |id: &str| {
        got.lock().unwrap().iter().any(|(h, b)| {
            h["x-acestep-event"] == "completed"
                && serde_json::from_str::<Value>(b).unwrap()["id"] == id
        })
    };
    while !(done(&all) && done(&only_end) && done(&start_end)) {
        assert!(t0.elapsed() < Duration::from_secs(60), "deliveries missing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deliveries = got.lock().unwrap().clone();
    let mut by_job: HashMap<String, Vec<String>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for (h, body) in &deliveries {
        // Every delivery verifies as a receiver would: HMAC over id, timestamp and raw body.
        let ts: u64 = h["webhook-timestamp"].parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(ts) <= acestep::jobs::WEBHOOK_TOLERANCE.as_secs());
        let expected = acestep::jobs::webhook_signature(secret, &h["webhook-id"], ts, body);
        assert_eq!(h["webhook-signature"], expected);
        assert_ne!(
            h["webhook-signature"],
            acestep::jobs::webhook_signature(
                secret,
                &h["webhook-id"],
                ts,
                &body.replace("hooked", "hacked")
            )
        );
        assert!(
            ids.insert(h["webhook-id"].clone()),
            "message ids are unique"
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"], h["x-acestep-event"].as_str());
        assert!(v.get("owner").is_none());
        by_job
            .entry(v["id"].as_str().unwrap().to_string())
            .or_default()
            .push(h["x-acestep-event"].clone());
    }
    println!("deliveries: {by_job:?}");
    // Deliveries run concurrently, so they may arrive out of order (the body's `state` and
    // `progress` say where the job was): count them.
    let all_events = &by_job[&all];
    let count = |e: &str| all_events.iter().filter(|x| *x == e).count();
    assert_eq!(
        (count("start"), count("completed")),
        (1, 1),
        "{all_events:?}"
    );
    // Five steps of 300 ms: progress at most once a second, plus one at decoding.
    let progress = all_events.iter().filter(|e| *e == "progress").count();
    assert!((2..=4).contains(&progress), "{all_events:?}");
    assert_eq!(by_job[&only_end], ["completed"]);
    let mut start_end_events = by_job[&start_end].clone();
    start_end_events.sort();
    assert_eq!(start_end_events, ["completed", "start"]);
    // The completed body is the public record with its links.
    let (_, body) = deliveries
        .iter()
        .find(|(h, b)| h["x-acestep-event"] == "completed" && b.contains(&all))
        .unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["state"], "succeeded");
    assert!(v["result"]["files"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("http://music.local/files/"));
    drop(s);
}

#[test]
fn submissions_are_rate_limited_per_key() {
    let s = live(
        1,
        ServerConfig {
            rate_limit: Some("2/min".parse().unwrap()),
            ..config()
        },
        |_| {},
    );
    assert_eq!(
        "30/min".parse::<RateLimit>().unwrap(),
        RateLimit {
            count: 30,
            period: Duration::from_secs(60)
        }
    );
    assert_eq!("10/90s".parse::<RateLimit>().unwrap().to_string(), "10/90s");
    for bad in ["0/min", "5", "x/min", "5/fortnight", "5/0s"] {
        assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
    }
    let body = json!({"prompt": "x", "duration": 1, "infer_steps": 2, "output_format": "wav"});
    let async_url = format!("{}/v1/async/music/generations", s.url);
    for _ in 0..2 {
        assert_eq!(post(&async_url, KEY, &body).0, 200);
    }
    // The third within the minute: 429 in each dialect's format, with Retry-After.
    let (status, v, headers) = post(&async_url, KEY, &body);
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "quota_exceeded");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("2/min"),
        "{v}"
    );
    let retry: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let (status, v, _) = post(
        &format!("{}/v1/music/generate", s.url),
        KEY,
        &json!({"caption": "x"}),
    );
    assert_eq!(status, 429);
    assert!(v["detail"].as_str().unwrap().contains("rate limit"), "{v}");
    let (status, _, _) = post(
        &format!("{}/producer/audios", s.url),
        KEY,
        &json!({"prompt": "x", "async": true}),
    );
    assert_eq!(status, 429);
    // Another key has its own budget; polls are not limited.
    assert_eq!(post(&async_url, OTHER, &body).0, 200);
    let metrics = ureq::get(&format!("{}/metrics", s.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("status=\"429\""), "{metrics}");
    drop(s);
}

/// Raises this process's open-file limit to its hard limit (children inherit it).
fn raise_fd_limit() {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[test]
fn a_thousand_subscribers_and_two_hundred_submits_lose_nothing() {
    raise_fd_limit();
    let data = tempfile::tempdir().unwrap();
    let served = common::spawn_serve(
        &[
            "--api-key",
            KEY,
            "--quota",
            "1000",
            "--workers",
            "2",
            "--sse-keep-alive",
            "1",
        ],
        data.path(),
    );
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let url = served.url.clone();
    let _server = Kill(served.child);
    const JOBS: usize = 200;
    const SUBSCRIBERS: usize = 1000;
    const STEPS: u64 = 3;
    let t0 = Instant::now();
    // 200 submits from 8 threads through the three dialects; five subscribers per job start
    // as soon as its id is known, each on its own connection, across the dialects' paths.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut ids = Vec::new();
    let results: Vec<(usize, Vec<Ev>)> = std::thread::scope(|scope| {
        for t in 0..8 {
            let (url, tx) = (url.clone(), tx.clone());
            scope.spawn(move || {
                for i in 0..JOBS / 8 {
                    let n = t * (JOBS / 8) + i;
                    let (path, body, field) = match n % 3 {
                        0 => ("/v1/async/music/generations", json!({"prompt": format!("job {n}"), "duration": 1, "infer_steps": STEPS, "output_format": "wav"}), "task_id"),
                        1 => ("/v1/music/generate", json!({"caption": format!("job {n}"), "audio_duration": 1, "inference_steps": STEPS, "audio_format": "wav"}), "job_id"),
                        _ => ("/producer/audios", json!({"prompt": format!("job {n}"), "duration": 1, "infer_steps": STEPS, "output_format": "wav", "async": true}), "task_id"),
                    };
                    let (status, v, _) = post(&format!("{url}{path}"), KEY, &body);
                    assert_eq!(status, 200, "{v}");
                    tx.send(v[field].as_str().unwrap().to_string()).unwrap();
                }
            });
        }
        drop(tx);
        let mut handles = Vec::new();
        for id in rx {
            let job = ids.len();
            ids.push(id.clone());
            for k in 0..SUBSCRIBERS / JOBS {
                let (url, id) = (url.clone(), id.clone());
                let h = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let path = match k % 3 {
                            0 => format!("/api/v1/task/{id}/events"),
                            1 => format!("/v1/jobs/{id}/events"),
                            _ => format!("/producer/tasks/{id}/events"),
                        };
                        let s = events(&format!("{url}{path}"), Some(KEY), None, 100_000);
                        assert_eq!(s.status, 200, "{}", s.body);
                        (job, s.events)
                    })
                    .unwrap();
                handles.push(h);
            }
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), JOBS);
    assert_eq!(results.len(), SUBSCRIBERS);
    let mut ended = 0;
    for (job, evs) in &results {
        let last = check_life(evs, STEPS);
        assert_eq!(last.event, "succeeded", "job {job}: {evs:?}");
        ended += 1;
    }
    assert_eq!(ended, SUBSCRIBERS);
    // Every subscriber of one job saw the very same events from its last queue position on
    // (earlier positions may have been superseded before a subscriber read them).
    for job in 0..JOBS {
        let lives: Vec<Vec<&str>> = results
            .iter()
            .filter(|(j, _)| *j == job)
            .map(|(_, evs)| {
                let from = evs.iter().position(|e| e.event == "running").unwrap() - 1;
                evs[from..].iter().map(|e| e.id.as_str()).collect()
            })
            .collect();
        assert!(lives.windows(2).all(|w| w[0] == w[1]), "job {job}");
    }
    let total_events: usize = results.iter().map(|(_, e)| e.len()).sum();
    println!(
        "{JOBS} jobs, {SUBSCRIBERS} subscribers received {total_events} events in order; all \
         done after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Every job ended exactly once in the store too.
    let metrics = ureq::get(&format!("{url}/metrics"))
        .set("Authorization", &format!("Bearer {KEY}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "acestep_jobs_finished_total{{state=\"succeeded\"}} {JOBS}"
        )),
        "{metrics}"
    );
}

//! Hostile input and faults (issue 19): one case per way an attacker with a valid key, a broken
//! client, a signal or a damaged disk once hurt the server, plus a bounded fuzz over the three
//! dialects' request parsers. Each case says which item of the issue it keeps fixed.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acestep::jobs::{JobManager, JobRequest, JobState, ManagerConfig};
use acestep::pipeline::GenerationParams;
use acestep::server::{router, AppState, BodyLimits, ServerConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{multipart, Fake};
use serde_json::{json, Value};
use tower::ServiceExt;

const KEY: &str = "hostile-key";

struct Server {
    app: Router,
    jobs: Arc<JobManager>,
    state: Arc<AppState>,
    dir: tempfile::TempDir,
}

fn server_with(step_ms: u64, config: ServerConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.max_active_per_owner = 10_000;
    c.sweep_interval = Duration::from_secs(3600);
    let jobs = Arc::new(JobManager::open(c, Fake::new(step_ms)).unwrap());
    let state = AppState::new(jobs.clone(), config);
    Server {
        app: router(state.clone()),
        jobs,
        state,
        dir,
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        api_keys: vec![KEY.into()],
        public_url: Some("http://music.local:8001".into()),
        sync_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn server() -> Server {
    server_with(1, config())
}

struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply { status, body }
}

fn req(method: &str, uri: &str, ctype: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {KEY}"));
    if let Some(c) = ctype {
        b = b.header("content-type", c);
    }
    b.body(body.into()).unwrap()
}

async fn post_json(app: &Router, uri: &str, v: &Value) -> Reply {
    send(
        app,
        req(
            "POST",
            uri,
            Some("application/json"),
            serde_json::to_vec(v).unwrap(),
        ),
    )
    .await
}

/// The three submit endpoints, each with its field names for prompt / duration / steps / lyrics.
const SUBMITS: [(&str, &str, &str, &str, &str); 3] = [
    (
        "/v1/async/music/generations",
        "prompt",
        "duration",
        "infer_steps",
        "lyrics",
    ),
    (
        "/producer/audios",
        "prompt",
        "duration",
        "infer_steps",
        "lyric",
    ),
    (
        "/v1/music/generate",
        "caption",
        "audio_duration",
        "inference_steps",
        "lyrics",
    ),
];

/// A submit body of dialect `i` with `extra` fields.
fn body(i: usize, extra: Value) -> Value {
    let (_, prompt, duration, steps, _) = SUBMITS[i];
    let mut v = json!({prompt: "x", duration: 1, steps: 1, "async": true, "action": "generate"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// The error message of a reply in any dialect's format.
fn message(r: &Reply) -> String {
    let v = r.json();
    v["detail"]
        .as_str()
        .or_else(|| v["error"]["message"].as_str())
        .unwrap_or_else(|| panic!("no error message in {v}"))
        .to_string()
}

/// The first 120 characters of a case's text.
fn acestep_short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// Asserts a 4xx in the dialect's JSON format whose message names `field`.
fn assert_refused(r: &Reply, status: StatusCode, field: &str, case: &str) {
    assert_eq!(r.status, status, "{case}: {}", r.text());
    let m = message(r);
    assert!(m.contains(field), "{case}: `{m}` does not name {field}");
}

/// A PCM WAV header (+ `data` bytes of silence) with any stated layout.
fn wav(channels: u16, rate: u32, bits: u16, frames: usize) -> Vec<u8> {
    let block = channels as u32 * bits as u32 / 8;
    let data = frames * block as usize;
    let mut v = Vec::with_capacity(44 + data);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * block).to_le_bytes());
    v.extend_from_slice(&(block as u16).to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data as u32).to_le_bytes());
    let silence = if bits == 8 { 128u8 } else { 0 };
    v.resize(44 + data, silence);
    v
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

// ---- 1. Every value that sizes work is bounded at submit ----

#[tokio::test(flavor = "multi_thread")]
async fn item01_values_that_size_work_are_bounded_at_submit() {
    let s = server();
    for (i, (uri, _, duration, steps, _)) in SUBMITS.iter().enumerate() {
        let cases = [
            ("oss_steps", json!({"oss_steps": [1, 4294967295u64]})),
            ("oss_steps", json!({"oss_steps": "1,18446744073709551615"})),
            ("oss_steps", json!({"oss_steps": "1,200000000"})),
            (
                "oss_steps",
                json!({"oss_steps": (1..=1001).collect::<Vec<u32>>()}),
            ),
            (steps, json!({*steps: 100000})),
            ("batch_size", json!({"batch_size": 65})),
            (duration, json!({*duration: 241})),
            ("seed", json!({"manual_seeds": vec![1; 5000]})),
        ];
        for (field, extra) in cases {
            let r = post_json(&s.app, uri, &body(i, extra.clone())).await;
            let case = format!("{uri} {}", acestep_short(&extra.to_string()));
            assert_refused(&r, StatusCode::BAD_REQUEST, field, &case);
            assert!(r.body.len() < 2048, "{uri}: the error echoes the input");
        }
    }
    // The bounds themselves are accepted.
    let ok = post_json(
        &s.app,
        SUBMITS[0].0,
        &body(0, json!({"oss_steps": [1, 1000], "infer_steps": 1000})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    // Nothing was queued by the refused requests.
    assert_eq!(s.jobs.list(None, &Default::default()).unwrap().len(), 1);
}

// ---- 2. Every body has a size limit; 413 in the dialect's format ----

#[tokio::test(flavor = "multi_thread")]
async fn item02_bodies_over_the_limit_are_413_in_each_dialects_format() {
    let s = server_with(
        1,
        ServerConfig {
            limits: BodyLimits {
                max_body_bytes: 64 << 10,
                ..Default::default()
            },
            ..config()
        },
    );
    let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(70 << 10));
    for (uri, _, _, _, _) in SUBMITS {
        for ctype in ["application/json", "text/plain"] {
            // Sized and streamed (no Content-Length) bodies alike.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
                .as_bytes()
                .chunks(4096)
                .map(|c| Ok(c.to_vec()))
                .collect();
            for b in [
                Body::from(big.clone()),
                Body::from_stream(futures_stream(chunks)),
            ] {
                let r = send(&s.app, req("POST", uri, Some(ctype), b)).await;
                assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri} {ctype}");
                let v = r.json();
                match uri {
                    "/producer/audios" => {
                        assert_eq!(v["success"], false);
                        assert_eq!(v["error"]["code"], "payload_too_large");
                    }
                    "/v1/music/generate" => assert!(v["detail"].is_string(), "{v}"),
                    _ => assert_eq!(v["error"]["code"], "payload_too_large"),
                }
            }
        }
        let form = format!("prompt={}", "a".repeat(70 << 10));
        let r = send(
            &s.app,
            req("POST", uri, Some("application/x-www-form-urlencoded"), form),
        )
        .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri} form");
    }
}

/// A stream of chunks as a body.
fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

// ---- 3. Prompt and lyrics are bounded; a record is not amplified ----

#[tokio::test(flavor = "multi_thread")]
async fn item03_prompt_and_lyrics_are_bounded_and_records_stay_small() {
    let s = server();
    for (i, (uri, prompt, _, _, lyrics)) in SUBMITS.iter().enumerate() {
        let r = post_json(
            &s.app,
            uri,
            &body(i, json!({*prompt: "p".repeat(17 << 10)})),
        )
        .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, prompt, uri);
        let r = post_json(
            &s.app,
            uri,
            &body(i, json!({*lyrics: "l".repeat(33 << 10)})),
        )
        .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, lyrics, uri);
    }
    // The largest accepted request at the largest batch: one retrieve stays a few MB.
    let v = json!({
        "action": "generate", "async": true, "prompt": "p".repeat(16 << 10),
        "lyric": "l".repeat(32 << 10), "duration": 0.2, "infer_steps": 1, "batch_size": 64,
    });
    let r = post_json(&s.app, "/producer/audios", &v).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["task_id"].as_str().unwrap().to_string();
    let r = post_json(
        &s.app,
        "/producer/tasks",
        &json!({"action": "retrieve", "id": id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.len() < 4 << 20, "retrieve is {} bytes", r.body.len());
    // retrieve_batch takes a bounded number of ids.
    let ids: Vec<&str> = vec![id.as_str(); 21];
    let r = post_json(
        &s.app,
        "/producer/tasks",
        &json!({"action": "retrieve_batch", "ids": ids}),
    )
    .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "ids", "retrieve_batch of 21");
    // The stored result does not copy the parameters again.
    let rec = loop {
        let rec = s.jobs.poll(&id).unwrap();
        if rec.state.is_terminal() {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stored = serde_json::to_string(&rec).unwrap();
    assert!(stored.len() < 200 << 10, "record is {} bytes", stored.len());
}

// ---- 4, 5, 10. Uploads are probed at submit; no file panics the decoder ----

#[tokio::test(flavor = "multi_thread")]
async fn item04_05_10_uploads_are_probed_at_submit_and_never_panic() {
    let s = server();
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(4096, 0);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(2048, 7);
    let mut truncated = wav(2, 44100, 16, 44100);
    truncated.truncate(40);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello, this is not audio\n".to_vec()),
        ("empty", Vec::new()),
        ("truncated wav", truncated),
        ("elf", elf),
        ("png", png),
        ("0 channels", wav(0, 44100, 16, 100)),
        ("32767 channels", wav(32767, 44100, 16, 1)),
        ("rate 0", wav(1, 0, 16, 1000)),
        ("100 Hz, 120 s, 8 bit", wav(1, 100, 8, 12000)),
        ("250 s at 8 kHz", wav(1, 8000, 8, 8000 * 250)),
    ];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            "/v1/async/music/generations",
            vec![
                ("task", "repaint"),
                ("repaint_start", "0"),
                ("repaint_end", "1"),
            ],
            "src_audio",
        ),
        ("/v1/async/music/generations", vec![], "ref_audio"),
        (
            "/v1/music/generate",
            vec![("task_type", "repaint")],
            "src_audio",
        ),
        (
            "/v1/music/generate",
            vec![("task_type", "cover")],
            "src_audio",
        ),
    ];
    for (uri, extra, field) in &cases {
        for (what, data) in &bad {
            let mut fields = vec![("prompt", "x"), ("caption", "x"), ("duration", "1")];
            fields.extend(extra.iter().copied());
            let (ct, b) = multipart(&fields, &[(field, "clip.wav", data)]);
            let r = send(&s.app, req("POST", uri, Some(&ct), b)).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{uri} {field} {what}: {}",
                r.text()
            );
            let m = message(&r);
            assert!(
                m.contains(field) || m.contains("ref_audio") || m.contains("src_audio"),
                "{uri} {what}: {m}"
            );
            assert!(
                !m.contains(&s.dir.path().to_string_lossy().into_owned()),
                "server path in {m}"
            );
        }
    }
    // A sane clip is accepted.
    let (ct, b) = multipart(
        &[("prompt", "x"), ("duration", "1")],
        &[("ref_audio", "ok.wav", &wav(1, 16000, 16, 16000))],
    );
    let r = send(&s.app, req("POST", cases[1].0, Some(&ct), b)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The library refuses a too-long source too (the CLI and embedders).
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.wav");
    std::fs::write(&long, wav(1, 8000, 8, 8000 * 250)).unwrap();
    let e = acestep::audio::probe_input("src_audio", &long).unwrap_err();
    assert!(e.to_string().contains("at most 240"), "{e}");
    let zero = dir.path().join("zero.wav");
    std::fs::write(&zero, wav(1, 0, 16, 100)).unwrap();
    assert!(acestep::audio::read(&zero).is_err());
}

// ---- 6. Nothing of a refused request stays on disk ----

#[tokio::test(flavor = "multi_thread")]
async fn item06_refused_requests_leave_no_uploads() {
    let s = server();
    let uploads = s.dir.path().join("uploads");
    let clip = wav(1, 16000, 16, 1600);
    // 200 parts named src_audio.
    let files: Vec<(&str, &str, &[u8])> = (0..200)
        .map(|_| ("src_audio", "a.wav", clip.as_slice()))
        .collect();
    let (ct, b) = multipart(&[("task_type", "repaint")], &files);
    let r = send(&s.app, req("POST", "/v1/music/generate", Some(&ct), b)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(files_in(&uploads), 0, "200 src_audio parts");
    // Files sent to /producer/tasks.
    let (ct, b) = multipart(
        &[("action", "retrieve"), ("id", "nope")],
        &[("src_audio", "a.wav", &clip)],
    );
    let r = send(&s.app, req("POST", "/producer/tasks", Some(&ct), b)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(files_in(&uploads), 0, "/producer/tasks upload");
    // A broken multipart body (cut off inside the second file).
    let (ct, mut b) = multipart(
        &[("task_type", "repaint")],
        &[("src_audio", "a.wav", &clip), ("ref_audio", "b.wav", &clip)],
    );
    b.truncate(b.len() - 500);
    let r = send(&s.app, req("POST", "/v1/music/generate", Some(&ct), b)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(files_in(&uploads), 0, "broken multipart");
    // A file that once panicked the decoder, and a refused parameter next to a good file.
    for (fields, data) in [
        (vec![("task_type", "repaint")], wav(1, 0, 16, 100)),
        (
            vec![("task_type", "repaint"), ("inference_steps", "0")],
            clip.clone(),
        ),
    ] {
        let (ct, b) = multipart(&fields, &[("src_audio", "a.wav", &data)]);
        let r = send(&s.app, req("POST", "/v1/music/generate", Some(&ct), b)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(files_in(&uploads), 0, "{fields:?}");
    }
    // An accepted request keeps its upload.
    let (ct, b) = multipart(
        &[("task_type", "repaint"), ("inference_steps", "1")],
        &[("src_audio", "a.wav", &clip)],
    );
    let r = send(&s.app, req("POST", "/v1/music/generate", Some(&ct), b)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(files_in(&uploads), 1);
}

// ---- 7. Callbacks: http(s) to public addresses only ----

#[tokio::test(flavor = "multi_thread")]
async fn item07_callback_targets_are_checked() {
    let s = server();
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://[::1]:80/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        for uri in ["/v1/async/music/generations", "/producer/audios"] {
            let i = if uri == "/producer/audios" { 1 } else { 0 };
            let r = post_json(&s.app, uri, &body(i, json!({"callback_url": url}))).await;
            assert_refused(&r, StatusCode::BAD_REQUEST, "callback_url", url);
        }
    }
    let r = post_json(
        &s.app,
        "/v1/async/music/generations",
        &body(
            0,
            json!({"callback_url": "https://hooks.example.com/acestep"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// A receiver that answers after `delay`, recording when each body arrived.
fn receiver(delay: Duration) -> (String, Arc<std::sync::Mutex<Vec<Instant>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.read(&mut buf);
                g.lock().unwrap().push(Instant::now());
                std::thread::sleep(delay);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            });
        }
    });
    (url, got)
}

#[test]
fn item07_a_slow_callback_target_does_not_delay_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.callback.allow_private = true;
    c.callback.timeout = Duration::from_secs(30);
    let m = JobManager::open(c, Fake::new(1)).unwrap();
    let (slow, slow_got) = receiver(Duration::from_secs(8));
    let (fast, fast_got) = receiver(Duration::ZERO);
    let job = |prompt: &str, url: &str| JobRequest {
        params: GenerationParams {
            prompt: prompt.into(),
            audio_duration: 0.2,
            infer_step: 1,
            format: "wav".into(),
            ..Default::default()
        },
        callback_url: Some(url.into()),
        ..Default::default()
    };
    let t0 = Instant::now();
    // Three slow deliveries first (more than one target may take at once), then a fast one.
    for i in 0..3 {
        m.submit(job(&format!("slow{i}"), &slow), "a").unwrap();
    }
    m.submit(job("fast", &fast), "a").unwrap();
    while fast_got.lock().unwrap().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the fast target waited behind the slow one"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let fast_after = t0.elapsed();
    println!("fast callback delivered after {fast_after:?}");
    assert!(fast_after < Duration::from_secs(3), "{fast_after:?}");
    // The slow target got at most two deliveries at once.
    std::thread::sleep(Duration::from_millis(300));
    assert!(slow_got.lock().unwrap().len() <= 2);
    m.halt();
}

// ---- 8. SIGTERM is a graceful stop ----

#[cfg(unix)]
#[test]
fn item08_sigterm_stops_the_server_gracefully() {
    let data = tempfile::tempdir().unwrap();
    let served = common::spawn_serve(&["--shutdown-grace", "20"], data.path());
    let (mut child, url) = (served.child, served.url);
    let addr = url.trim_start_matches("http://").to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = r#"{"prompt":"x","duration":30,"infer_steps":1000,"output_format":"wav"}"#;
        let resp = raw_http(
            &addr,
            &format!(
                "POST /v1/async/music/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        let json_start = resp.find('{').unwrap();
        let v: Value = serde_json::from_str(&resp[json_start..]).unwrap();
        ids.push(v["task_id"].as_str().unwrap().to_string());
    }
    std::thread::sleep(Duration::from_millis(1500));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    let err = served.stderr.lock().unwrap().clone();
    println!("stopped in {:?}: {err}", t0.elapsed());
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("shutting down"), "{err}");
    // No job lost its attempt or failed: each is queued again (attempts 0) or finished.
    let db = rusqlite::Connection::open(data.path().join("jobs.sqlite")).unwrap();
    for id in &ids {
        let (state, attempts): (String, u32) = db
            .query_row(
                "SELECT state, attempts FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        println!("{id}: {state}, attempts {attempts}");
        assert!(
            (state == "queued" && attempts == 0) || state == "succeeded",
            "{id}: {state} after {attempts} attempts"
        );
    }
}

/// Sends `request` on a new connection and returns the whole answer.
fn raw_http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

// ---- 9. Slow clients are timed out; a stop is bounded and keeps finished work ----

/// Whether the server closed `s` (read gives 0 bytes or an answer, then the end) within `within`.
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    let within = within.max(Duration::from_millis(10));
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return t0.elapsed() < within,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item09_slow_clients_time_out_and_a_stop_is_bounded() {
    let s = server_with(
        1,
        ServerConfig {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(2),
            ..config()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(acestep::server::serve(listener, s.state.clone(), async {
        let _ = stop_rx.await;
    }));
    let checks = tokio::task::spawn_blocking(move || {
        // Half-open connections: nothing sent, or headers never finished.
        let mut idle: Vec<std::net::TcpStream> = (0..100)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut partial = std::net::TcpStream::connect(addr).unwrap();
        partial
            .write_all(b"POST /v1/music/generate HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(
            closed_within(&mut partial, Duration::from_secs(4)),
            "partial headers held"
        );
        let t0 = Instant::now();
        let open = idle
            .iter_mut()
            .map(|c| closed_within(c, Duration::from_secs(4).saturating_sub(t0.elapsed())))
            .filter(|closed| !closed)
            .count();
        assert_eq!(open, 0, "idle connections still open");
        // A body that stops after 10 of 1000 bytes.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.write_all(
            format!(
                "POST /v1/music/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"caption\""
            )
            .as_bytes(),
        )
        .unwrap();
        let t0 = Instant::now();
        assert!(
            closed_within(&mut slow, Duration::from_secs(6)),
            "slow body held"
        );
        println!("slow body dropped after {:?}", t0.elapsed());
        // One more slow body, then a stop: bounded by the grace.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.write_all(
            format!("POST /v1/music/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{").as_bytes(),
        )
        .unwrap();
        // Let the server read the headers and start waiting for the body.
        std::thread::sleep(Duration::from_millis(300));
        slow
    });
    let slow = checks.await.unwrap();
    let t0 = Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(6), served)
        .await
        .expect("the stop waited past its grace")
        .unwrap()
        .unwrap();
    let took = t0.elapsed();
    println!("stopped in {took:?} with a slow client connected");
    assert!(
        took >= Duration::from_millis(500),
        "the stop did not wait for the request: {took:?}"
    );
    drop(slow);
}

#[test]
fn item09_a_stop_during_decoding_keeps_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let m = JobManager::open(ManagerConfig::new(dir.path()), Fake::new(1)).unwrap();
    let req = |prompt: &str, steps: usize| JobRequest {
        params: GenerationParams {
            prompt: prompt.into(),
            audio_duration: 0.2,
            infer_step: steps,
            format: "wav".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let decoding = m.submit(req("slow-decode", 2), "a").unwrap();
    let queued = m.submit(req("behind", 2), "a").unwrap();
    let t0 = Instant::now();
    while m.poll(&decoding).unwrap().progress.stage != acestep::jobs::Stage::Decoding {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    m.shutdown(Duration::from_secs(10));
    println!("stopped in {:?}", t0.elapsed());
    let m = JobManager::open(ManagerConfig::new(dir.path()), Fake::new(1000)).unwrap();
    let rec = m.poll(&decoding).unwrap();
    assert_eq!(rec.state, JobState::Succeeded, "{:?}", rec.error);
    assert_eq!(rec.attempts, 1);
    let q = m.poll(&queued).unwrap();
    assert!(matches!(q.state, JobState::Queued | JobState::Running));
    m.halt();
    // A stop whose grace runs out puts the job back in the queue, attempt refunded.
    let dir = tempfile::tempdir().unwrap();
    let m = JobManager::open(ManagerConfig::new(dir.path()), Fake::new(1)).unwrap();
    let id = m.submit(req("slow-decode", 2), "a").unwrap();
    while m.poll(&id).unwrap().progress.stage != acestep::jobs::Stage::Decoding {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    m.shutdown(Duration::from_millis(300));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(400));
    let db = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    let (state, attempts): (String, u32) = db
        .query_row(
            "SELECT state, attempts FROM jobs WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("queued", 0));
}

// ---- 11. Oversized multipart is 413 (the memory bound is in tests/server_memory.rs) ----

#[tokio::test(flavor = "multi_thread")]
async fn item11_oversized_multipart_is_413() {
    let s = server_with(
        1,
        ServerConfig {
            limits: BodyLimits {
                max_upload_bytes: 1 << 20,
                ..Default::default()
            },
            ..config()
        },
    );
    let big = vec![1u8; 2 << 20];
    for (uri, _, _, _, _) in SUBMITS {
        let (ct, b) = multipart(&[("prompt", "x")], &[("src_audio", "a.wav", &big)]);
        let r = send(&s.app, req("POST", uri, Some(&ct), b)).await;
        assert_eq!(
            r.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{uri}: {}",
            r.text()
        );
        assert!(r.json().is_object());
        let (ct, b) = multipart(&[("prompt", &"x".repeat(2 << 20))], &[]);
        let r = send(&s.app, req("POST", uri, Some(&ct), b)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri} text field");
    }
    assert_eq!(files_in(&s.dir.path().join("uploads")), 0);
}

// ---- 12. Every error in the dialect's format; no server paths; links; auth; storage ----

#[tokio::test(flavor = "multi_thread")]
async fn item12_errors_links_auth_and_storage() {
    let s = server();
    // Plain-text rejections become the dialect's JSON.
    let r = send(&s.app, req("GET", "/v1/jobs/%FF%FE", None, Body::empty())).await;
    assert!(r.status.is_client_error());
    assert!(r.json()["detail"].is_string(), "{}", r.text());
    let r = send(&s.app, req("GET", "/api/v1/task/%FF", None, Body::empty())).await;
    assert!(r.json()["error"]["code"].is_string(), "{}", r.text());
    let r = send(
        &s.app,
        req(
            "GET",
            "/files/a/b.wav?d=acestep&d=producer",
            None,
            Body::empty(),
        ),
    )
    .await;
    assert!(r.status.is_client_error());
    assert!(r.json().is_object(), "{}", r.text());
    for (method, uri, key) in [
        ("GET", "/v1/music/generate", "detail"),
        ("GET", "/producer/audios", "error"),
        ("DELETE", "/v1/async/music/generations", "error"),
    ] {
        let r = send(&s.app, req(method, uri, None, Body::empty())).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(!r.json()[key].is_null(), "{method} {uri}: {}", r.text());
    }
    let r = send(&s.app, req("GET", "/nope", None, Body::empty())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_object());

    // Auth: the scheme in any case; a bare key or another scheme is refused.
    for (header, ok) in [
        (format!("Bearer {KEY}"), true),
        (format!("BEARER {KEY}"), true),
        (format!("bearer   {KEY}"), true),
        (KEY.to_string(), false),
        (format!("Basic {KEY}"), false),
        ("Bearer".to_string(), false),
    ] {
        let r = send(
            &s.app,
            Request::builder()
                .uri("/v1/tasks/available-quota")
                .header("authorization", &header)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status == StatusCode::OK, ok, "`{header}`: {}", r.status);
    }

    // Links never come from the Host header.
    let open = server_with(
        1,
        ServerConfig {
            public_url: None,
            ..config()
        },
    );
    let r = send(
        &open.app,
        Request::builder()
            .method("POST")
            .uri("/v1/async/music/generations")
            .header("authorization", format!("Bearer {KEY}"))
            .header("host", "evil.example")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"prompt":"x","duration":0.2,"infer_steps":1}"#,
            ))
            .unwrap(),
    )
    .await;
    let v = r.json();
    assert!(
        v["urls"]["get"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1"),
        "{v}"
    );

    // No server path in a record, an error or a failed job.
    let clip = wav(1, 16000, 16, 1600);
    let (ct, b) = multipart(
        &[("prompt", "fail"), ("duration", "0.2")],
        &[("ref_audio", "mine.wav", &clip)],
    );
    let r = send(
        &s.app,
        req("POST", "/v1/async/music/generations", Some(&ct), b),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["task_id"].as_str().unwrap().to_string();
    loop {
        if s.jobs.poll(&id).unwrap().state.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir_text = s.dir.path().to_string_lossy().into_owned();
    let canon = s
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for uri in [format!("/v1/task/{id}"), format!("/api/v1/task/{id}")] {
        let r = send(&s.app, req("GET", &uri, None, Body::empty())).await;
        let t = r.text();
        assert!(!t.contains(&dir_text) && !t.contains(&canon), "{uri}: {t}");
        if uri.starts_with("/v1/task/") {
            assert_eq!(r.json()["parameters"]["ref_audio_input"], "mine.wav");
        }
    }

    // Storage: a data dir that cannot be written is refused at start, and submits get 503
    // while the outputs folder cannot be written.
    let bad = tempfile::tempdir().unwrap();
    let file = bad.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = JobManager::open(ManagerConfig::new(&file), Fake::new(1))
        .err()
        .expect("a file as data dir");
    assert!(e.to_string().contains("storage unavailable"), "{e}");
    let outputs = s.dir.path().join("outputs");
    std::fs::rename(&outputs, s.dir.path().join("outputs.moved")).unwrap();
    std::fs::write(&outputs, b"not a folder").unwrap();
    let r = post_json(&s.app, SUBMITS[2].0, &body(2, json!({}))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(!r.text().contains(&dir_text));
    std::fs::remove_file(&outputs).unwrap();
    std::fs::rename(s.dir.path().join("outputs.moved"), &outputs).unwrap();
    let r = post_json(&s.app, SUBMITS[2].0, &body(2, json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

// ---- 13. A deleted or damaged output reads as such everywhere ----

#[tokio::test(flavor = "multi_thread")]
async fn item13_deleted_and_damaged_outputs() {
    let s = server();
    let mut done = Vec::new();
    for _ in 0..2 {
        let r = post_json(
            &s.app,
            "/v1/async/music/generations",
            &json!({"prompt": "x", "duration": 0.3, "infer_steps": 1, "output_format": "wav"}),
        )
        .await;
        let id = r.json()["task_id"].as_str().unwrap().to_string();
        let rec = loop {
            let rec = s.jobs.poll(&id).unwrap();
            if rec.state.is_terminal() {
                break rec;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let f = &rec.result.as_ref().unwrap().files[0];
        assert!(f.size_bytes.is_some() && f.crc32.is_some());
        let url = format!("/files/{id}/{}.wav", f.id);
        let r = send(&s.app, req("GET", &url, None, Body::empty())).await;
        assert_eq!(r.status, StatusCode::OK);
        done.push((id, f.path.clone(), url));
    }
    // Deleted: the record says expired and the download is 410.
    let (id, path, url) = &done[0];
    std::fs::remove_file(path).unwrap();
    let r = send(
        &s.app,
        req("GET", &format!("/api/v1/task/{id}"), None, Body::empty()),
    )
    .await;
    assert_eq!(r.json()["output"]["expired"], true, "{}", r.text());
    let r = send(&s.app, req("GET", url, None, Body::empty())).await;
    assert_eq!(r.status, StatusCode::GONE);
    // Damaged (same size, one byte changed): 410, and the record follows.
    let (id, path, url) = &done[1];
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    std::fs::write(path, &bytes).unwrap();
    let r = send(&s.app, req("GET", url, None, Body::empty())).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text());
    assert!(message(&r).contains("damaged"));
    assert!(s.jobs.poll(id).unwrap().result.unwrap().expired);
}

// ---- Fuzz: the three dialects' request parsers never fail the server ----

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "prompt",
        "caption",
        "lyrics",
        "lyric",
        "duration",
        "audio_duration",
        "infer_steps",
        "inference_steps",
        "infer_step",
        "oss_steps",
        "manual_seeds",
        "seed",
        "seeds",
        "batch_size",
        "guidance_scale",
        "scheduler_type",
        "cfg_type",
        "task",
        "task_type",
        "repaint_start",
        "repaint_end",
        "retake_seeds",
        "retake_variance",
        "audio2audio_enable",
        "ref_audio_strength",
        "lora_name_or_path",
        "lora_weight",
        "format",
        "output_format",
        "audio_format",
        "callback_url",
        "async",
        "action",
        "id",
        "ids",
        "bpm",
        "key_scale",
        "use_random_seed",
        "vocal_language",
        "lyrics_language",
        "use_5hz_lm",
        "lm_temp",
        "edit_n_avg",
        "edit_target_prompt",
        "model",
        "instrumental",
        "src_audio_path",
    ];

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            "[ -~]{0,40}".prop_map(Value::from),
            "[0-9,\\-]{0,30}".prop_map(Value::from),
            prop::sample::select(vec![
                "None",
                "true",
                "text2music",
                "repaint",
                "cover",
                "edit",
                "euler",
                "heun",
                "apg",
                "cfg_star",
                "mp3",
                "wav",
                "1e308",
                "-1",
                "NaN",
                "inf",
                "generate",
                "retrieve",
                "retrieve_batch",
                "http://127.0.0.1/",
                "ace-step",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::hash_map("[a-z_]{1,8}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn request() -> impl Strategy<Value = (usize, u8, Vec<(String, Value)>, Vec<u8>)> {
        (
            0usize..4,
            0u8..5,
            prop::collection::vec(
                (
                    prop::sample::select(NAMES.to_vec()).prop_map(str::to_string),
                    value(),
                ),
                0..8,
            ),
            prop::collection::vec(any::<u8>(), 0..64),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn parsers_answer_every_request_in_format(
            (endpoint, encoding, fields, junk) in request()
        ) {
            static SERVER: std::sync::OnceLock<(Server, tokio::runtime::Runtime)> = std::sync::OnceLock::new();
            let (s, rt) = SERVER.get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                let s = rt.block_on(async { server_with(0, config()) });
                (s, rt)
            });
            let uri = ["/v1/async/music/generations", "/producer/audios", "/producer/tasks", "/v1/music/generate"][endpoint];
            let obj: serde_json::Map<String, Value> = fields.iter().cloned().collect();
            let as_text = |v: &Value| match v { Value::String(s) => s.clone(), o => o.to_string() };
            let (ctype, body): (String, Vec<u8>) = match encoding {
                0 => ("application/json".into(), serde_json::to_vec(&Value::Object(obj)).unwrap()),
                1 => {
                    let mut ser = url::form_urlencoded::Serializer::new(String::new());
                    for (k, v) in &fields { ser.append_pair(k, &as_text(v)); }
                    ("application/x-www-form-urlencoded".into(), ser.finish().into_bytes())
                }
                2 => {
                    let texts: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.clone(), as_text(v))).collect();
                    let refs: Vec<(&str, &str)> = texts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let (ct, b) = multipart(&refs, &[("src_audio", "j.wav", &junk)]);
                    (ct, b)
                }
                3 => ("application/json".into(), junk.clone()),
                _ => ("application/octet-stream".into(), junk.clone()),
            };
            let r = rt.block_on(send(&s.app, req("POST", uri, Some(&ctype), body)));
            prop_assert!(
                matches!(r.status.as_u16(), 200 | 400 | 413 | 429),
                "{uri} {ctype}: {} {}", r.status, r.text()
            );
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(format!("not JSON: {e}: {}", r.text())))?;
            prop_assert!(v.is_object());
            prop_assert!(r.body.len() < 64 << 10, "{} bytes", r.body.len());
        }
    }
}

// ---- 3. With the real pipeline, prompts are refused past the text encoder's 256 tokens ----

#[test]
fn item03_prompt_tokens_are_counted_at_submit() {
    use acestep::jobs::{Generator, PipelineGenerator};
    let pipe = common::tiny_pipeline();
    let generator = PipelineGenerator::new(pipe);
    let params = |prompt: String| GenerationParams {
        prompt,
        audio_duration: 1.0,
        ..Default::default()
    };
    // 2.4 KB of words: far under the byte bound, over 256 tokens.
    let long = "warm analog synth pads, ".repeat(100);
    assert!(long.len() < acestep::pipeline::params::MAX_PROMPT_BYTES);
    let e = generator.validate(&params(long)).unwrap_err().to_string();
    assert!(e.contains("prompt") && e.contains("256 tokens"), "{e}");
    generator
        .validate(&params("warm analog synth pads, ".repeat(8)))
        .unwrap();
}

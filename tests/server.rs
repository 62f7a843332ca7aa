//! The HTTP server's three dialects, in process (router + fake generator): request encodings,
//! response shapes, status words, error formats, auth, quota, downloads with ranges, expiry.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acestep::jobs::{JobManager, ManagerConfig};
use acestep::server::{router, AppState, ServerConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{multipart, Fake};
use serde_json::{json, Value};
use tower::ServiceExt;

const KEY: &str = "test-key";
const OTHER: &str = "other-key";

struct Server {
    app: Router,
    jobs: Arc<JobManager>,
    _dir: tempfile::TempDir,
}

fn server(step_ms: u64, quota: usize, retention: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.max_active_per_owner = quota;
    c.retention = retention;
    c.sweep_interval = Duration::from_secs(3600);
    let jobs = Arc::new(JobManager::open(c, Fake::new(step_ms)).unwrap());
    let config = ServerConfig {
        api_keys: vec![KEY.into(), OTHER.into()],
        sync_timeout: Duration::from_secs(20),
        public_url: Some("http://music.local:8001".into()),
        ..Default::default()
    };
    Server {
        app: router(AppState::new(jobs.clone(), config)),
        jobs,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "music.local:8001");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    if let Some(c) = ctype {
        b = b.header("content-type", c);
    }
    let resp = app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str, key: Option<&str>) -> Reply {
    call(app, "GET", uri, key, None, vec![]).await
}

async fn post_json(app: &Router, uri: &str, key: Option<&str>, v: Value) -> Reply {
    call(
        app,
        "POST",
        uri,
        key,
        Some("application/json"),
        serde_json::to_vec(&v).unwrap(),
    )
    .await
}

/// Path and query of an absolute URL of this server.
fn local(url: &str) -> String {
    url.strip_prefix("http://music.local:8001")
        .unwrap_or_else(|| panic!("not a link to this server: {url}"))
        .to_string()
}

async fn poll_until(app: &Router, uri: &str, key: &str, field: &str, done: &[&str]) -> Value {
    let t0 = Instant::now();
    loop {
        let r = get(app, uri, Some(key)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        if done.iter().any(|d| v[field] == *d) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "stuck: {v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The seed 000 client's payload, every value a string.
fn seed_000_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("model", "ACE-Step-v1-3.5B"),
        ("task", "text2music"),
        ("duration", "2"),
        ("prompt", "pop, synth, drums, guitar, 120 bpm"),
        ("lyrics", ""),
        ("infer_steps", "6"),
        ("lora_name", "None"),
        ("guidance_scale", "15"),
        ("guidance_scale_text", "0"),
        ("guidance_scale_lyric", "0"),
        ("scheduler_type", "euler"),
        ("cfg_type", "apg"),
        ("omega_scale", "10"),
        ("guidance_interval", "0.5"),
        ("guidance_interval_decay", "0"),
        ("min_guidance_scale", "3"),
        ("use_erg_tag", "true"),
        ("use_erg_lyric", "true"),
        ("use_erg_diffusion", "true"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn async_task_dialect_multipart_submit_poll_download() {
    let s = server(2, 10, Duration::from_secs(3600));
    let (ctype, body) = multipart(&seed_000_fields(), &[]);
    // No key: 401 in the dialect's format.
    let r = call(
        &s.app,
        "POST",
        "/v1/async/music/generations",
        None,
        Some(&ctype),
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "invalid_token");
    let r = call(
        &s.app,
        "POST",
        "/v1/async/music/generations",
        Some(KEY),
        Some(&ctype),
        body,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    let id = v["task_id"].as_str().unwrap().to_string();
    assert!(["waiting", "in_progress"].contains(&v["status"].as_str().unwrap()));
    assert_eq!(
        v["urls"]["get"],
        format!("http://music.local:8001/api/v1/task/{id}")
    );
    assert_eq!(
        v["urls"]["cancel"],
        format!("http://music.local:8001/api/v1/task/{id}/cancel")
    );
    let done = poll_until(
        &s.app,
        &local(v["urls"]["get"].as_str().unwrap()),
        KEY,
        "status",
        &["success", "failure"],
    )
    .await;
    assert_eq!(done["status"], "success", "{done}");
    let file_url = done["output"]["file_url"].as_str().unwrap();
    assert!(file_url.contains(".mp3"), "{file_url}");
    let full = get(&s.app, &local(file_url), None).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.headers["content-type"], "audio/mpeg");
    assert!(full.body.len() > 1000);
    // Range request.
    let req = Request::builder()
        .uri(local(file_url))
        .header("range", "bytes=10-109")
        .body(Body::empty())
        .unwrap();
    let part = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    let bytes = axum::body::to_bytes(part.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(&bytes[..], &full.body[10..110]);
    // Status, record, quota.
    let st = get(&s.app, &format!("/v1/task/{id}/status"), Some(KEY))
        .await
        .json();
    assert_eq!(st["status"], "success");
    let rec = get(&s.app, &format!("/v1/task/{id}"), Some(KEY))
        .await
        .json();
    assert_eq!(rec["request"]["infer_steps"], "6");
    assert_eq!(rec["parameters"]["infer_step"], 6);
    assert_eq!(rec["parameters"]["audio_duration"], 2.0);
    assert_eq!(rec["parameters"]["use_erg_tag"], true);
    assert_eq!(rec["parameters"]["format"], "mp3");
    let q = get(&s.app, "/v1/tasks/available-quota", Some(KEY))
        .await
        .json();
    assert_eq!(
        q,
        json!({"available_quota": 10, "total_quota": 10, "used_quota": 0})
    );
    // Another key cannot see the task.
    let r = get(&s.app, &format!("/api/v1/task/{id}"), Some(OTHER)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
    // Cancelling a finished task: 409 in the dialect's format.
    let r = call(
        &s.app,
        "POST",
        &format!("/api/v1/task/{id}/cancel"),
        Some(KEY),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already succeeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn async_task_dialect_json_cancel_and_bad_fields() {
    let s = server(20, 10, Duration::from_secs(3600));
    let mut payload = json!({"prompt": "ambient", "duration": 1, "infer_steps": 200});
    let a = post_json(
        &s.app,
        "/v1/async/music/generations",
        Some(KEY),
        payload.clone(),
    )
    .await
    .json();
    payload["infer_steps"] = json!(5);
    let b = post_json(&s.app, "/v1/async/music/generations", Some(KEY), payload)
        .await
        .json();
    let b_id = b["task_id"].as_str().unwrap();
    // b waits behind a: cancelled at once.
    let r = call(
        &s.app,
        "POST",
        &format!("/api/v1/task/{b_id}/cancel"),
        Some(KEY),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "cancelled");
    let a_id = a["task_id"].as_str().unwrap();
    poll_until(
        &s.app,
        &format!("/api/v1/task/{a_id}"),
        KEY,
        "status",
        &["in_progress"],
    )
    .await;
    call(
        &s.app,
        "POST",
        &format!("/api/v1/task/{a_id}/cancel"),
        Some(KEY),
        None,
        vec![],
    )
    .await;
    poll_until(
        &s.app,
        &format!("/api/v1/task/{a_id}"),
        KEY,
        "status",
        &["cancelled"],
    )
    .await;
    // Bad values name the field the client sent.
    for (field, value, needle) in [
        ("infer_steps", json!("many"), "infer_steps"),
        ("duration", json!(999), "duration"),
        ("scheduler_type", json!("ddim"), "scheduler_type"),
        ("use_erg_tag", json!("maybe"), "use_erg_tag"),
        ("task", json!("repaint"), "task"),
        ("lora_name", json!("my-lora"), "lora_name"),
        ("model", json!("other-model"), "model"),
    ] {
        let mut p = json!({"prompt": "x", "duration": 1});
        p[field] = value;
        let r = post_json(&s.app, "/v1/async/music/generations", Some(KEY), p).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{field}: {msg}");
    }
    let r = call(
        &s.app,
        "POST",
        "/v1/async/music/generations",
        Some(KEY),
        Some("application/json"),
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "invalid_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_dialect_generate_retrieve_batch_and_errors() {
    let s = server(2, 2, Duration::from_secs(3600));
    let lyric = "[Verse]\nWoke up with the sun in my eyes\n[Chorus]\nHappy days";
    // Synchronous generate: waits and returns the data.
    let r = post_json(
        &s.app,
        "/producer/audios",
        Some(KEY),
        json!({
            "action": "generate", "prompt": "happy pop", "lyric": lyric, "instrumental": true,
            "custom": true, "model": "FUZZ-2.0 Pro", "duration": 1.5, "infer_steps": 4,
        }),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["success"], true);
    let id = v["task_id"].as_str().unwrap().to_string();
    let item = &v["data"][0];
    assert_eq!(item["state"], "succeeded");
    assert_eq!(item["progress"], "100%");
    assert_eq!(item["model"], "FUZZ-2.0 Pro");
    assert_eq!(item["title"], "happy pop", "instrumental: no lyric title");
    assert_eq!(item["seed"], "7");
    assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
    let dl = get(&s.app, &local(item["audio_url"].as_str().unwrap()), None).await;
    assert_eq!(dl.status, StatusCode::OK);
    // Async generate returns the id at once; retrieve gives the seed's record shape.
    let a = post_json(&s.app, "/producer/audios", Some(KEY), json!({
        "action": "generate", "prompt": "rock", "lyric": lyric, "async": true, "duration": 1, "infer_steps": 3,
    })).await.json();
    assert_eq!(a["success"], true);
    let a_id = a["task_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let rec = loop {
        let rec = post_json(
            &s.app,
            "/producer/tasks",
            Some(KEY),
            json!({"action": "retrieve", "id": a_id}),
        )
        .await
        .json();
        if rec["response"]["data"][0]["state"] == "succeeded" {
            break rec;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{rec}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(rec["id"], a_id.as_str());
    assert_eq!(rec["type"], "audios");
    assert_eq!(rec["request"]["action"], "generate");
    assert_eq!(rec["response"]["task_id"], a_id.as_str());
    assert_eq!(rec["response"]["data"][0]["lyric"], lyric);
    assert_eq!(
        rec["response"]["data"][0]["title"],
        "Woke up with the sun in my eyes"
    );
    assert!(rec["duration"].as_f64().unwrap() > 0.0);
    assert!(rec["finished_at"].as_f64().unwrap() >= rec["created_at"].as_f64().unwrap());
    assert_eq!(rec["trace_id"], a["trace_id"]);
    let batch = post_json(
        &s.app,
        "/producer/tasks",
        Some(KEY),
        json!({"action": "retrieve_batch", "ids": [id, a_id]}),
    )
    .await
    .json();
    assert_eq!(batch["count"], 2);
    assert_eq!(batch["items"][1]["id"], a_id.as_str());
    // Errors in the seed's format and codes.
    let check = |r: Reply, status: StatusCode, code: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["code"], code);
        assert!(v["error"]["message"].is_string());
        assert!(v["trace_id"].is_string());
    };
    check(
        post_json(
            &s.app,
            "/producer/tasks",
            None,
            json!({"action": "retrieve", "id": id}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    check(
        post_json(
            &s.app,
            "/producer/tasks",
            Some("wrong"),
            json!({"action": "retrieve", "id": id}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    check(
        post_json(
            &s.app,
            "/producer/tasks",
            Some(KEY),
            json!({"action": "delete", "id": id}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "api_not_implemented",
    );
    check(
        post_json(
            &s.app,
            "/producer/audios",
            Some(KEY),
            json!({"action": "extend"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "api_not_implemented",
    );
    check(
        post_json(
            &s.app,
            "/producer/tasks",
            Some(KEY),
            json!({"action": "retrieve"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "token_mismatched",
    );
    check(
        post_json(
            &s.app,
            "/producer/tasks",
            Some(KEY),
            json!({"action": "retrieve", "id": "nope"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "token_mismatched",
    );
    check(
        post_json(
            &s.app,
            "/producer/audios",
            Some(KEY),
            json!({"prompt": "x", "duration": -1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "token_mismatched",
    );
    // Quota 2: two long async jobs fill it, the third is 429.
    for _ in 0..2 {
        let r = post_json(
            &s.app,
            "/producer/audios",
            Some(OTHER),
            json!({"prompt": "x", "duration": 1, "infer_steps": 500, "async": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    check(
        post_json(
            &s.app,
            "/producer/audios",
            Some(OTHER),
            json!({"prompt": "x", "duration": 1, "async": true}),
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    for rec in s.jobs.list(None, &Default::default()).unwrap() {
        let _ = s.jobs.cancel(&rec.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acestep_api_dialect_json_form_multipart_and_mapping() {
    let s = server(2, 10, Duration::from_secs(3600));
    // JSON with the seed's music attributes.
    let r = post_json(
        &s.app,
        "/v1/music/generate",
        Some(KEY),
        json!({
            "caption": "upbeat pop song", "lyrics": "", "bpm": 120, "key_scale": "C Major",
            "time_signature": "4/4", "audio_duration": 2, "use_random_seed": false, "seed": 42,
            "batch_size": 2, "vocal_language": "de",
        }),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    // As seed 002's example: `queued` with a 1-based position, whatever a worker does at once.
    assert_eq!(v["status"], "queued", "{v}");
    assert!(v["queue_position"].as_u64().is_some_and(|p| p >= 1), "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let done = poll_until(
        &s.app,
        &format!("/v1/jobs/{id}"),
        KEY,
        "status",
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["queue_position"], 0);
    let res = &done["result"];
    assert!(res["first_audio_path"]
        .as_str()
        .unwrap()
        .contains("/files/"));
    assert_eq!(
        res["audio_paths"].as_array().unwrap().len(),
        1,
        "the fake writes one file"
    );
    assert_eq!(res["seed_value"], "7");
    assert!(res["generation_info"]
        .as_str()
        .unwrap()
        .starts_with("Steps: 8, Scale: 7"));
    assert!(done["finished_at"].as_f64().is_some());
    let rec = get(&s.app, &format!("/v1/task/{id}"), Some(KEY))
        .await
        .json();
    let p = &rec["parameters"];
    assert_eq!(p["prompt"], "upbeat pop song, 120 bpm, C Major, 4/4 time");
    assert_eq!(p["manual_seeds"], json!([42]));
    assert_eq!(
        p["lyrics_language"], "de",
        "vocal_language drives the lyric language"
    );
    assert_eq!(
        (
            p["infer_step"].clone(),
            p["guidance_scale"].clone(),
            p["format"].clone(),
            p["batch_size"].clone()
        ),
        (json!(8), json!(7.0), json!("mp3"), json!(2))
    );
    // x-www-form-urlencoded.
    let r = call(&s.app, "POST", "/v1/music/generate", Some(KEY), Some("application/x-www-form-urlencoded"),
        b"caption=upbeat+pop+song&lyrics=Hello+world&inference_steps=16&audio_duration=1&audio_format=wav".to_vec()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let fid = r.json()["job_id"].as_str().unwrap().to_string();
    let rec = get(&s.app, &format!("/v1/task/{fid}"), Some(KEY))
        .await
        .json();
    assert_eq!(rec["parameters"]["infer_step"], 16);
    assert_eq!(rec["parameters"]["lyrics"], "Hello world");
    assert_eq!(rec["parameters"]["format"], "wav");
    // Multipart with fields only.
    let (ctype, body) = multipart(
        &[
            ("caption", "remix"),
            ("audio_duration", "1"),
            ("inference_steps", "3"),
        ],
        &[],
    );
    let r = call(
        &s.app,
        "POST",
        "/v1/music/generate",
        Some(KEY),
        Some(&ctype),
        body,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // Refusals with {"detail"}.
    let detail = |r: Reply, status: StatusCode, needle: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let d = r.json()["detail"].as_str().unwrap().to_string();
        assert!(d.contains(needle), "{d}");
    };
    detail(
        post_json(
            &s.app,
            "/v1/music/generate",
            Some(KEY),
            json!({"caption": "x", "use_5hz_lm": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "ACE-Step 1.5",
    );
    detail(
        post_json(
            &s.app,
            "/v1/music/generate",
            Some(KEY),
            json!({"caption": "x", "lm_temperature": 0.6}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "lm_temperature",
    );
    detail(
        post_json(
            &s.app,
            "/v1/music/generate",
            Some(KEY),
            json!({"caption": "x", "task_type": "cover"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "cover",
    );
    detail(
        post_json(
            &s.app,
            "/v1/music/generate",
            Some(KEY),
            json!({"caption": "x", "bpm": 5000}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bpm",
    );
    detail(
        post_json(
            &s.app,
            "/v1/music/generate",
            Some(KEY),
            json!({"caption": "x", "inference_steps": 0}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "inference_steps",
    );
    let (ctype, body) = multipart(
        &[("caption", "x"), ("task_type", "repaint")],
        &[("src_audio", "song.mp3", b"ID3")],
    );
    detail(
        call(
            &s.app,
            "POST",
            "/v1/music/generate",
            Some(KEY),
            Some(&ctype),
            body,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "src_audio",
    );
    detail(
        get(&s.app, "/v1/jobs/unknown", Some(KEY)).await,
        StatusCode::NOT_FOUND,
        "unknown",
    );
    detail(
        get(&s.app, &format!("/v1/jobs/{id}"), None).await,
        StatusCode::UNAUTHORIZED,
        "Bearer",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_downloads_are_410_in_the_dialects_format() {
    let s = server(1, 10, Duration::ZERO);
    let v = post_json(
        &s.app,
        "/v1/music/generate",
        Some(KEY),
        json!({"caption": "x", "audio_duration": 1, "inference_steps": 2}),
    )
    .await
    .json();
    let id = v["job_id"].as_str().unwrap().to_string();
    let done = poll_until(
        &s.app,
        &format!("/v1/jobs/{id}"),
        KEY,
        "status",
        &["succeeded"],
    )
    .await;
    let url = done["result"]["first_audio_path"]
        .as_str()
        .unwrap()
        .to_string();
    s.jobs.sweep_now().unwrap();
    let r = get(&s.app, &local(&url), None).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.json()["detail"].as_str().unwrap().contains("expired"));
    let r = get(
        &s.app,
        &local(&url.replace("?d=acestep", "?d=producer")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json()["success"], false);
    let r = get(&s.app, &format!("/files/{id}/nope.mp3"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]["message"].is_string());
}

/// POSTs a multipart body and requires 200; returns the JSON reply.
async fn post_multipart_ok(
    app: &Router,
    uri: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Value {
    let (ctype, body) = multipart(fields, files);
    let r = call(app, "POST", uri, Some(KEY), Some(&ctype), body).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// A 2-second stereo 44.1 kHz wav, as bytes.
fn wav_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let n = 88200;
    let tone: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let audio = acestep::audio::Audio {
        channels: vec![tone.clone(), tone],
        sample_rate: 44100,
    };
    let p = acestep::audio::write(dir.path().join("x.wav"), &audio, None).unwrap();
    std::fs::read(p).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_tasks_map_in_every_dialect() {
    let s = server(5, 50, Duration::from_secs(3600));
    let wav = wav_bytes();
    let params_of = |id: &str| s.jobs.poll(id).unwrap().request.params;
    // Async task API: reference names, the clip uploaded, `lora_name` a hub id.
    let r = post_multipart_ok(
        &s.app,
        "/v1/async/music/generations",
        &[
            ("prompt", "funk"),
            ("task", "repaint"),
            ("repaint_start", "0.5"),
            ("repaint_end", "1.5"),
            ("retake_variance", "0.4"),
            ("retake_seeds", "7"),
            ("lora_name", "someone/funk-lora"),
            ("lora_weight", "0.6"),
        ],
        &[("src_audio", "song.wav", &wav)],
    )
    .await;
    let p = params_of(r["task_id"].as_str().unwrap());
    assert_eq!(p.task, acestep::pipeline::Task::Repaint);
    assert_eq!(
        (p.repaint_start, p.repaint_end, p.retake_variance),
        (0.5, 1.5, 0.4)
    );
    assert_eq!(p.retake_seeds, vec![7]);
    assert_eq!(
        (p.lora_name_or_path.as_str(), p.lora_weight),
        ("someone/funk-lora", 0.6)
    );
    let src = p.src_audio_path.unwrap();
    assert!(
        src.contains("uploads") && std::fs::read(&src).unwrap() == wav,
        "{src}"
    );
    // Missing source, server paths without --allow-local-paths, bad LoRA names: 400 naming them.
    let bad = |r: Reply, needle: &str| {
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(body.contains(needle), "{needle}: {body}");
    };
    let uri = "/v1/async/music/generations";
    bad(
        post_json(
            &s.app,
            uri,
            Some(KEY),
            json!({"prompt": "x", "task": "repaint"}),
        )
        .await,
        "src_audio_path",
    );
    bad(
        post_json(
            &s.app,
            uri,
            Some(KEY),
            json!({"prompt": "x", "task": "repaint", "src_audio_path": src}),
        )
        .await,
        "--allow-local-paths",
    );
    bad(
        post_json(
            &s.app,
            uri,
            Some(KEY),
            json!({"prompt": "x", "lora_name": "not a repo"}),
        )
        .await,
        "lora_name",
    );
    bad(
        post_json(
            &s.app,
            uri,
            Some(KEY),
            json!({"prompt": "x", "task": "inpaint"}),
        )
        .await,
        "inpaint",
    );
    // Producer API: audio2audio from an uploaded reference.
    let r = post_multipart_ok(
        &s.app,
        "/producer/audios",
        &[
            ("action", "generate"),
            ("prompt", "funk"),
            ("async", "true"),
            ("ref_audio_strength", "0.3"),
        ],
        &[("ref_audio", "ref.wav", &wav)],
    )
    .await;
    let p = params_of(r["task_id"].as_str().unwrap());
    assert_eq!(p.effective_task(), acestep::pipeline::Task::Audio2audio);
    assert_eq!(p.ref_audio_strength, 0.3);
    // ACE-Step API: task_type repaint (inside: repaint; past the end: extend), cover.
    let api = |fields: Vec<(&'static str, &'static str)>, file: &'static str| {
        let (ctype, body) = multipart(&fields, &[(file, "song.wav", &wav)]);
        let app = s.app.clone();
        async move {
            call(
                &app,
                "POST",
                "/v1/music/generate",
                Some(KEY),
                Some(&ctype),
                body,
            )
            .await
        }
    };
    let id_of = |r: Reply| {
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["job_id"].as_str().unwrap().to_string()
    };
    let p = params_of(&id_of(
        api(
            vec![
                ("caption", "x"),
                ("task_type", "repaint"),
                ("repainting_start", "0.5"),
            ],
            "src_audio",
        )
        .await,
    ));
    assert_eq!(p.task, acestep::pipeline::Task::Repaint);
    assert!(
        (p.repaint_end - 2.0).abs() < 1e-9,
        "null end = the source's end: {}",
        p.repaint_end
    );
    let p = params_of(&id_of(
        api(
            vec![
                ("caption", "x"),
                ("task_type", "repaint"),
                ("repainting_end", "5"),
            ],
            "src_audio",
        )
        .await,
    ));
    assert_eq!(
        (p.task, p.repaint_start, p.repaint_end),
        (acestep::pipeline::Task::Extend, 0.0, 5.0)
    );
    let p = params_of(&id_of(
        api(
            vec![
                ("caption", "x"),
                ("task_type", "cover"),
                ("audio_cover_strength", "0.7"),
            ],
            "src_audio",
        )
        .await,
    ));
    assert_eq!(p.effective_task(), acestep::pipeline::Task::Audio2audio);
    assert_eq!(p.ref_audio_strength, 0.7);
    assert!(p.src_audio_path.is_none() && p.ref_audio_input.is_some());
    let p = params_of(&id_of(api(vec![("caption", "x")], "reference_audio").await));
    assert_eq!(p.effective_task(), acestep::pipeline::Task::Audio2audio);
    assert_eq!(p.ref_audio_strength, 0.5);
    bad(
        api(vec![("caption", "x")], "src_audio").await,
        "task_type cover or repaint",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bounded_queue_request_ids_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.max_queue = 1;
    c.max_active_per_owner = 100;
    let jobs = Arc::new(JobManager::open(c, Fake::new(100)).unwrap());
    let config = ServerConfig {
        api_keys: vec![KEY.into()],
        public_url: Some("http://music.local:8001".into()),
        ..Default::default()
    };
    let app = router(AppState::new(jobs.clone(), config));
    // A bounded queue: at most one waiting (plus one running); the rest get 429 in each
    // dialect's format, with the depth in the message.
    let mut accepted = 0;
    let mut refused = Vec::new();
    for i in 0..6 {
        let (uri, body) = match i % 3 {
            0 => (
                "/v1/async/music/generations",
                json!({"prompt": "q", "duration": 0.5, "infer_steps": 20}),
            ),
            1 => (
                "/producer/audios",
                json!({"prompt": "q", "duration": 0.5, "infer_steps": 20, "async": true}),
            ),
            _ => (
                "/v1/music/generate",
                json!({"caption": "q", "audio_duration": 0.5, "inference_steps": 20}),
            ),
        };
        let r = post_json(&app, uri, Some(KEY), body).await;
        match r.status {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused.push((uri, r)),
            s => panic!("{uri}: {s}"),
        }
    }
    assert!(accepted <= 2 && refused.len() >= 4, "{accepted} accepted");
    for (uri, r) in &refused {
        let v = r.json();
        let msg = v["detail"]
            .as_str()
            .or_else(|| v["error"]["message"].as_str())
            .unwrap_or_default();
        assert!(
            msg.contains("queue is full") && msg.contains("limit 1"),
            "{uri}: {v}"
        );
        // Every error carries the request id of its header.
        let id = r.headers["x-request-id"].to_str().unwrap();
        assert_eq!(v["request_id"], id, "{uri}");
    }
    // A client's own request id is kept; a bad one is replaced.
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/tasks/available-quota")
                .header("authorization", format!("Bearer {KEY}"))
                .header("x-request-id", "trace-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let r = get(&app, "/v1/jobs/nope", Some(KEY)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
    // Metrics.
    let t0 = Instant::now();
    while jobs.metrics().succeeded < accepted as u64 {
        assert!(t0.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = get(&app, "/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body.clone()).unwrap();
    for line in [
        "acestep_queue_depth 0".to_string(),
        "acestep_jobs_running 0".to_string(),
        format!("acestep_jobs_submitted_total {accepted}"),
        format!("acestep_jobs_finished_total{{state=\"succeeded\"}} {accepted}"),
        "acestep_http_requests_total{dialect=\"acestep\",status=\"404\"} 1".to_string(),
        format!("acestep_generation_seconds_count {accepted}"),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    assert!(text.contains("acestep_step_seconds_bucket{le=\"0.25\"}"));
    assert!(text.contains("acestep_http_request_seconds_count{dialect=\"producer\"}"));
}

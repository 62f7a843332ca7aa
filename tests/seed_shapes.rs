//! The three dialects' answers against the JSON examples of the seed documents
//! (`../shared/seeds/`), field by field (issue 20): every field of an example is in our answer
//! with the same JSON type (where both are set), and the fields we add are the ones the README
//! lists. Seed 000 (async task API) has no JSON example; its client's reads (`urls.get`,
//! `status`, `output.file_url`) are checked instead.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acestep::jobs::{JobManager, ManagerConfig};
use acestep::server::{router, AppState, ServerConfig};
use axum::Router;
use common::Fake;
use serde_json::{json, Value};

const KEY: &str = "seed-key";

/// Every JSON object in a seed document (code samples that are not JSON are skipped).
fn examples(seed: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds");
    let file = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(seed))
        .unwrap_or_else(|| panic!("seed {seed} in {}", dir.display()))
        .path();
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find('{') {
        let at = i + off;
        let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v @ Value::Object(_))) => {
                i = at + stream.byte_offset();
                out.push(v);
            }
            _ => i = at + 1,
        }
    }
    out
}

/// The JSON type of a value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares `ours` with the seed's `example`: fields of the example missing from ours, fields of
/// ours the example lacks, and fields whose JSON types differ (both set), as dotted paths.
fn compare(
    example: &Value,
    ours: &Value,
    at: &str,
    missing: &mut BTreeSet<String>,
    extra: &mut BTreeSet<String>,
    types: &mut BTreeSet<String>,
) {
    match (example, ours) {
        (Value::Object(e), Value::Object(o)) => {
            for (k, ev) in e {
                let path = format!("{at}{k}");
                match o.get(k) {
                    None => {
                        missing.insert(path);
                    }
                    // `request` echoes the caller's own body: only its type is compared.
                    Some(ov) if k == "request" => {
                        if kind(ev) != kind(ov) {
                            types.insert(path);
                        }
                    }
                    Some(ov) => compare(ev, ov, &format!("{path}."), missing, extra, types),
                }
            }
            for k in o.keys().filter(|k| !e.contains_key(*k)) {
                extra.insert(format!("{at}{k}"));
            }
        }
        (Value::Array(e), Value::Array(o)) => {
            if let (Some(e0), Some(o0)) = (e.first(), o.first()) {
                compare(e0, o0, &format!("{at}[]."), missing, extra, types);
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (e, o) if kind(e) != kind(o) => {
            types.insert(format!(
                "{} ({} vs {})",
                at.trim_end_matches('.'),
                kind(e),
                kind(o)
            ));
        }
        _ => {}
    }
}

/// Checks `ours` against `example`: no field missing, no type differing, and exactly the extra
/// fields `allowed_extra` (the README's list).
fn check(name: &str, example: &Value, ours: &Value, allowed_extra: &[&str]) {
    let (mut missing, mut extra, mut types) = Default::default();
    compare(example, ours, "", &mut missing, &mut extra, &mut types);
    println!("{name}: missing {missing:?}, added {extra:?}, types {types:?}");
    assert!(
        missing.is_empty(),
        "{name}: missing {missing:?}\nours: {ours}"
    );
    assert!(
        types.is_empty(),
        "{name}: types differ {types:?}\nours: {ours}"
    );
    let allowed: BTreeSet<String> = allowed_extra.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        extra, allowed,
        "{name}: added fields (update README)\nours: {ours}"
    );
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> Value {
    let answer = common::request(app, method, uri, Some(KEY), body).await;
    serde_json::from_slice(&answer.body).unwrap()
}

async fn until(app: &Router, uri: &str, field: &str, done: &[&str]) -> Value {
    let t0 = Instant::now();
    loop {
        let v = call(app, "GET", uri, None).await;
        if done.iter().any(|d| v[field] == *d) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_have_every_field_of_the_seed_examples() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Arc::new(JobManager::open(ManagerConfig::new(dir.path()), Fake::new(200)).unwrap());
    let config = ServerConfig {
        api_keys: vec![KEY.into()],
        public_url: Some("http://music.local".into()),
        ..Default::default()
    };
    let app = router(AppState::new(jobs, config));

    // Seed 002 (ACE-Step API): the submit answer, a queued job, a succeeded job.
    let ex = examples("002");
    let find = |pred: &dyn Fn(&Value) -> bool| {
        ex.iter()
            .find(|v| pred(v))
            .cloned()
            .expect("the seed has this example")
    };
    let submit_ex = find(&|v| v.get("job_id").is_some() && v.get("created_at").is_none());
    let queued_ex = find(&|v| v["status"] == "queued" && v.get("created_at").is_some());
    let done_ex = find(&|v| v["status"] == "succeeded");
    let body = json!({"caption": "x", "audio_duration": 1, "inference_steps": 3, "batch_size": 2});
    let first = call(&app, "POST", "/v1/music/generate", Some(body.clone())).await;
    check("002 submit", &submit_ex, &first, &[]);
    assert_eq!(first["status"], "queued");
    let second = call(&app, "POST", "/v1/music/generate", Some(body)).await;
    let id2 = second["job_id"].as_str().unwrap();
    let queued = call(&app, "GET", &format!("/v1/jobs/{id2}"), None).await;
    assert_eq!(queued["status"], "queued", "{queued}");
    check(
        "002 queued job",
        &queued_ex,
        &queued,
        &["finished_at", "progress", "started_at"],
    );
    let done = until(&app, &format!("/v1/jobs/{id2}"), "status", &["succeeded"]).await;
    check(
        "002 succeeded job",
        &done_ex,
        &done,
        &["eta_seconds", "progress", "started_at"],
    );

    // Seed 001 (producer tasks API): retrieve, retrieve_batch, an error.
    let ex = examples("001");
    let record_ex = ex
        .iter()
        .find(|v| v.get("_id").is_some() && v.get("response").is_some())
        .cloned()
        .unwrap();
    let batch_ex = ex
        .iter()
        .find(|v| v.get("items").is_some())
        .cloned()
        .unwrap();
    let error_ex = ex.iter().find(|v| v["success"] == false).cloned().unwrap();
    let sub = call(
        &app,
        "POST",
        "/producer/audios",
        Some(json!({"prompt": "x", "lyric": "[Verse]\nla", "duration": 1, "infer_steps": 2, "async": true})),
    )
    .await;
    let pid = sub["task_id"].as_str().unwrap().to_string();
    let retrieve = json!({"action": "retrieve", "id": pid});
    let t0 = Instant::now();
    let record = loop {
        let r = call(&app, "POST", "/producer/tasks", Some(retrieve.clone())).await;
        if r["state"] == "succeeded" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    check(
        "001 record",
        &record_ex,
        &record,
        &["error", "response.success", "response.trace_id", "state"],
    );
    let batch = call(
        &app,
        "POST",
        "/producer/tasks",
        Some(json!({"action": "retrieve_batch", "ids": [pid]})),
    )
    .await;
    check(
        "001 batch",
        &batch_ex,
        &batch,
        &[
            "items.[].error",
            "items.[].response.success",
            "items.[].response.trace_id",
            "items.[].state",
        ],
    );
    let error = call(
        &app,
        "POST",
        "/producer/tasks",
        Some(json!({"action": "retrieve"})),
    )
    .await;
    check("001 error", &error_ex, &error, &["request_id"]);

    // Seed 000 (async task API): what its client reads.
    let task = call(
        &app,
        "POST",
        "/v1/async/music/generations",
        Some(
            json!({"model": "ACE-Step-v1-3.5B", "task": "text2music", "duration": 1,
                    "prompt": "x", "infer_steps": 2}),
        ),
    )
    .await;
    let get = task["urls"]["get"].as_str().unwrap();
    assert!(get.starts_with("http://music.local/api/v1/task/"), "{task}");
    let path = get.strip_prefix("http://music.local").unwrap();
    let done = until(&app, path, "status", &["success", "failure"]).await;
    assert_eq!(done["status"], "success");
    assert!(done["output"]["file_url"].as_str().is_some(), "{done}");
}

//! `GET /openapi.json` (issue 20): an OpenAPI 3.1 document of every route, and real answers of
//! every endpoint (success and error statuses, the three dialects, event streams) validated
//! against the schemas it names for their path, method, status and content type.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acestep::jobs::{JobManager, ManagerConfig};
use acestep::server::{router, AppState, BodyLimits, ServerConfig};
use axum::Router;
use common::Fake;
use serde_json::{json, Value};

const KEY: &str = "openapi-key";

fn make_app(config: ServerConfig, quota: usize) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ManagerConfig::new(dir.path());
    c.max_active_per_owner = quota;
    let jobs = Arc::new(JobManager::open(c, Fake::new(5)).unwrap());
    (router(AppState::new(jobs, config)), dir)
}

fn config() -> ServerConfig {
    ServerConfig {
        api_keys: vec![KEY.into()],
        public_url: Some("http://music.local".into()),
        sync_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

use common::Answer as Reply;

async fn call(app: &Router, method: &str, uri: &str, key: bool, body: Option<Value>) -> Reply {
    common::request(app, method, uri, key.then_some(KEY), body).await
}

/// Validates answers against the document and records which (path, method, status) were seen.
struct Checker {
    spec: Value,
    seen: BTreeSet<(String, String, u16)>,
    checked: usize,
}

impl Checker {
    /// Validates `value` against `schema` (resolved in the document's components).
    fn validate(&mut self, schema: &Value, value: &Value, what: &str) {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.spec["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match its schema:\n{}\n{value}",
            errors.join("\n")
        );
        self.checked += 1;
    }

    /// Checks `reply` to `method path` (the documented path template) against the document.
    fn check(&mut self, path: &str, method: &str, reply: &Reply) -> Value {
        let what = format!("{method} {path} -> {}", reply.status);
        let op = &self.spec["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{what}: not documented");
        let resp = &op["responses"][reply.status.to_string()];
        assert!(resp.is_object(), "{what}: status not documented");
        self.seen.insert((path.into(), method.into(), reply.status));
        if reply.status == 206 {
            return Value::Null;
        }
        let content = &resp["content"][&reply.ctype];
        assert!(
            content.is_object(),
            "{what}: content type `{}` not documented",
            reply.ctype
        );
        let schema = content["schema"].clone();
        match reply.ctype.as_str() {
            "application/json" => {
                let v: Value = serde_json::from_slice(&reply.body).unwrap();
                self.validate(&schema, &v, &what);
                v
            }
            "text/event-stream" => {
                // Each event's data: the job event schema, or the dialect's record at the end.
                let text = String::from_utf8(reply.body.clone()).unwrap();
                let end = op["description"].as_str().unwrap_or_default();
                let end_schema = ["AsyncTask", "ProducerRecord", "AceJob"]
                    .into_iter()
                    .find(|s| end.contains(&format!("`{s}`")))
                    .expect("the end schema is named");
                let mut events = 0;
                for block in text.split("\n\n").filter(|b| b.contains("data:")) {
                    let kind = block
                        .lines()
                        .find_map(|l| l.strip_prefix("event:"))
                        .unwrap()
                        .trim();
                    let data: Value = serde_json::from_str(
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix("data:"))
                            .unwrap()
                            .trim(),
                    )
                    .unwrap();
                    let name = match kind {
                        "succeeded" | "failed" | "cancelled" => end_schema,
                        _ => "JobEventData",
                    };
                    let schema = json!({"$ref": format!("#/components/schemas/{name}")});
                    self.validate(&schema, &data, &format!("{what} event {kind}"));
                    events += 1;
                }
                assert!(events >= 3, "{what}: {text}");
                Value::Null
            }
            _ => Value::Null,
        }
    }
}

async fn wait_done(app: &Router, id: &str) {
    let t0 = Instant::now();
    loop {
        let r = call(app, "GET", &format!("/v1/jobs/{id}"), true, None).await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        if v["status"] == "succeeded" || v["status"] == "failed" {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_openapi_document() {
    let (app, _dir) = make_app(config(), 100);
    let spec_reply = call(&app, "GET", "/openapi.json", false, None).await;
    assert_eq!(spec_reply.status, 200);
    let spec: Value = serde_json::from_slice(&spec_reply.body).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut c = Checker {
        spec: spec.clone(),
        seen: BTreeSet::new(),
        checked: 0,
    };
    c.check("/openapi.json", "GET", &spec_reply);
    let gen = json!({"prompt": "x", "duration": 1, "infer_steps": 3, "output_format": "wav"});

    // Async task API.
    let r = call(
        &app,
        "POST",
        "/v1/async/music/generations",
        true,
        Some(gen.clone()),
    )
    .await;
    let id = c.check("/v1/async/music/generations", "POST", &r)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_done(&app, &id).await;
    for (path, uri) in [
        ("/api/v1/task/{id}", format!("/api/v1/task/{id}")),
        ("/v1/task/{id}/status", format!("/v1/task/{id}/status")),
        ("/v1/task/{id}", format!("/v1/task/{id}")),
        (
            "/api/v1/task/{id}/events",
            format!("/api/v1/task/{id}/events"),
        ),
        ("/v1/jobs/{id}", format!("/v1/jobs/{id}")),
        ("/v1/jobs/{id}/events", format!("/v1/jobs/{id}/events")),
        (
            "/producer/tasks/{id}/events",
            format!("/producer/tasks/{id}/events"),
        ),
    ] {
        let r = call(&app, "GET", &uri, true, None).await;
        assert_eq!(r.status, 200, "{uri}");
        c.check(path, "GET", &r);
    }
    let r = call(&app, "GET", "/v1/tasks/available-quota", true, None).await;
    c.check("/v1/tasks/available-quota", "GET", &r);
    // Cancel: a queued job (200), a finished one (409).
    let slow = json!({"prompt": "x", "duration": 1, "infer_steps": 400, "output_format": "wav"});
    let r = call(
        &app,
        "POST",
        "/v1/async/music/generations",
        true,
        Some(slow.clone()),
    )
    .await;
    let long = c.check("/v1/async/music/generations", "POST", &r)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/task/{long}/cancel"),
        true,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    c.check("/api/v1/task/{id}/cancel", "POST", &r);
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/task/{id}/cancel"),
        true,
        None,
    )
    .await;
    assert_eq!(r.status, 409);
    c.check("/api/v1/task/{id}/cancel", "POST", &r);
    // Errors: 400, 401, 404.
    let r = call(
        &app,
        "POST",
        "/v1/async/music/generations",
        true,
        Some(json!({"prompt": "x", "duration": -1})),
    )
    .await;
    assert_eq!(r.status, 400);
    c.check("/v1/async/music/generations", "POST", &r);
    let r = call(
        &app,
        "POST",
        "/v1/async/music/generations",
        false,
        Some(gen.clone()),
    )
    .await;
    assert_eq!(r.status, 401);
    c.check("/v1/async/music/generations", "POST", &r);
    for (path, uri) in [
        ("/api/v1/task/{id}", "/api/v1/task/nope"),
        ("/v1/task/{id}/status", "/v1/task/nope/status"),
        ("/v1/task/{id}", "/v1/task/nope"),
        ("/v1/jobs/{id}", "/v1/jobs/nope"),
    ] {
        let r = call(&app, "GET", uri, true, None).await;
        assert_eq!(r.status, 404, "{uri}");
        c.check(path, "GET", &r);
        let r = call(&app, "GET", uri, false, None).await;
        assert_eq!(r.status, 401, "{uri}");
        c.check(path, "GET", &r);
    }
    let r = call(&app, "GET", "/v1/tasks/available-quota", false, None).await;
    c.check("/v1/tasks/available-quota", "GET", &r);

    // Producer API: async, synchronous, retrieve, retrieve_batch, errors.
    let pgen = json!({"prompt": "x", "duration": 1, "infer_steps": 3, "output_format": "wav"});
    let mut body = pgen.clone();
    body["async"] = json!(true);
    let r = call(&app, "POST", "/producer/audios", true, Some(body)).await;
    let pid = c.check("/producer/audios", "POST", &r)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(&app, "POST", "/producer/audios", true, Some(pgen.clone())).await;
    assert_eq!(r.status, 200);
    c.check("/producer/audios", "POST", &r);
    wait_done(&app, &pid).await;
    let r = call(
        &app,
        "POST",
        "/producer/tasks",
        true,
        Some(json!({"action": "retrieve", "id": pid})),
    )
    .await;
    c.check("/producer/tasks", "POST", &r);
    let r = call(
        &app,
        "POST",
        "/producer/tasks",
        true,
        Some(json!({"action": "retrieve_batch", "ids": [pid, id]})),
    )
    .await;
    let batch = c.check("/producer/tasks", "POST", &r);
    assert_eq!(batch["count"], 2);
    for (body, key, status) in [
        (json!({"action": "retrieve"}), true, 400),
        (json!({"action": "retrieve", "id": "x"}), false, 401),
    ] {
        let r = call(&app, "POST", "/producer/tasks", key, Some(body)).await;
        assert_eq!(r.status, status);
        c.check("/producer/tasks", "POST", &r);
    }
    let r = call(
        &app,
        "POST",
        "/producer/audios",
        true,
        Some(json!({"prompt": "x", "duration": "long"})),
    )
    .await;
    assert_eq!(r.status, 400);
    c.check("/producer/audios", "POST", &r);

    // ACE-Step API.
    let r = call(
        &app,
        "POST",
        "/v1/music/generate",
        true,
        Some(json!({"caption": "x", "audio_duration": 1, "inference_steps": 3, "audio_format": "wav"})),
    )
    .await;
    let aid = c.check("/v1/music/generate", "POST", &r)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_done(&app, &aid).await;
    let r = call(&app, "GET", &format!("/v1/jobs/{aid}"), true, None).await;
    let job = c.check("/v1/jobs/{id}", "GET", &r);
    let r = call(
        &app,
        "POST",
        "/v1/music/generate",
        true,
        Some(json!({"caption": "x", "bpm": 1000})),
    )
    .await;
    assert_eq!(r.status, 400);
    c.check("/v1/music/generate", "POST", &r);

    // Downloads, health, metrics.
    let link = job["result"]["audio_paths"][0].as_str().unwrap();
    let r = call(
        &app,
        "GET",
        link.strip_prefix("http://music.local").unwrap(),
        false,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    c.check("/files/{job}/{file}", "GET", &r);
    let r = call(&app, "GET", "/health", false, None).await;
    c.check("/health", "GET", &r);
    let r = call(&app, "GET", "/metrics", false, None).await;
    c.check("/metrics", "GET", &r);

    // 413 and 429 in each dialect: servers with 1 KiB bodies, and with one submit per hour per
    // key (the first submit takes it, every later one in any dialect is refused).
    let (small, _dir2) = make_app(
        ServerConfig {
            limits: BodyLimits {
                max_body_bytes: 1024,
                ..Default::default()
            },
            ..config()
        },
        100,
    );
    let (limited, _dir3) = make_app(
        ServerConfig {
            rate_limit: Some("1/h".parse().unwrap()),
            ..config()
        },
        100,
    );
    let r = call(
        &limited,
        "POST",
        "/v1/music/generate",
        true,
        Some(json!({"caption": "x"})),
    )
    .await;
    assert_eq!(r.status, 200);
    for (path, body) in [
        ("/v1/async/music/generations", gen.clone()),
        ("/producer/audios", pgen.clone()),
        ("/v1/music/generate", json!({"caption": "x"})),
    ] {
        let mut big = body.clone();
        big["lyrics"] = json!("la ".repeat(1000));
        let r = call(&small, "POST", path, true, Some(big)).await;
        assert_eq!(r.status, 413, "{path}");
        c.check(path, "POST", &r);
        let r = call(&limited, "POST", path, true, Some(body)).await;
        assert_eq!(r.status, 429, "{path}");
        c.check(path, "POST", &r);
    }

    // Every documented operation was answered with its 200.
    let mut missing = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = method.to_ascii_uppercase();
            if !c.seen.contains(&(path.clone(), m.clone(), 200)) {
                missing.push(format!("{m} {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "not exercised: {missing:?}");
    println!(
        "{} answers and events validated; {} (path, method, status) combinations: {:?}",
        c.checked,
        c.seen.len(),
        c.seen
    );
}

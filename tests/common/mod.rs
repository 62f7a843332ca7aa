//! Test helpers shared by the job manager and server tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acestep::audio::{Audio, Format};
use acestep::jobs::{GenerationOutput, Generator, JobProgress, OutputFile};
use acestep::pipeline::{Control, GenerationParams};
use acestep::Error;

/// A generator that takes `step` per diffusion step and writes a short sine wave.
/// Prompt `fail` makes it fail, `panic` makes it panic.
pub struct Fake {
    pub step: Duration,
    /// Steps executed, per prompt.
    pub executed: Mutex<HashMap<String, usize>>,
    pub runs: AtomicUsize,
}

impl Fake {
    pub fn new(step_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            step: Duration::from_millis(step_ms),
            executed: Mutex::new(HashMap::new()),
            runs: AtomicUsize::new(0),
        })
    }

    pub fn executed(&self, prompt: &str) -> usize {
        self.executed
            .lock()
            .unwrap()
            .get(prompt)
            .copied()
            .unwrap_or(0)
    }
}

impl Generator for Fake {
    fn generate(
        &self,
        params: &GenerationParams,
        out_dir: &Path,
        progress: &mut dyn FnMut(JobProgress) -> Control,
    ) -> acestep::Result<GenerationOutput> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let n = self.diffusion_steps(params);
        if progress(JobProgress::encoding(n)) == Control::Cancel {
            return Err(Error::Cancelled { step: 0, total: n });
        }
        if params.prompt == "panic" {
            panic!("fake generator exploded");
        }
        // Steps end on a fixed grid (start + i * step), so that late wake-ups do not add up and
        // the average step time is steady.
        let t0 = Instant::now();
        for i in 1..=n {
            let due = t0 + self.step * i as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            *self
                .executed
                .lock()
                .unwrap()
                .entry(params.prompt.clone())
                .or_default() = i;
            if params.prompt == "fail" && i == 2 {
                return Err(Error::InvalidArgument {
                    name: "fake",
                    value: "fail".into(),
                    expected: "not fail".into(),
                });
            }
            if progress(JobProgress::diffusion(i, n)) == Control::Cancel {
                return Err(Error::Cancelled { step: i, total: n });
            }
        }
        // Prompt `slow-decode`: 1.5 s of decoding in ten reports, stopping when asked.
        let parts = if params.prompt == "slow-decode" {
            10
        } else {
            1
        };
        for i in 0..parts {
            if progress(JobProgress::decoding(i, parts, n)) == Control::Cancel {
                return Err(Error::Cancelled { step: n, total: n });
            }
            if parts > 1 {
                std::thread::sleep(Duration::from_millis(150));
            }
        }
        progress(JobProgress::writing(n));
        let sr = 8000;
        let len = (params.audio_duration * sr as f64) as usize;
        let wave: Vec<f32> = (0..len)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / sr as f32).sin() * 0.3)
            .collect();
        let audio = Audio {
            channels: vec![wave.clone(), wave],
            sample_rate: sr,
        };
        let format = Format::from_name(&params.format)?;
        let path = acestep::audio::write(
            out_dir.join(format!("out.{}", format.extension())),
            &audio,
            Some(format),
        )?;
        Ok(GenerationOutput {
            files: vec![OutputFile {
                id: "f0".into(),
                path,
                params_path: None,
                seed: 7,
                duration_seconds: audio.duration(),
                sample_rate: sr,
                format: params.format.clone(),
                size_bytes: None,
                crc32: None,
            }],
            seeds: vec![7],
            info: serde_json::json!({"fake": true}),
        })
    }
}

/// A Python that runs `probe` successfully: `python3` when it does, else the virtual
/// environment `target/<venv>`, made and given `packages` from PyPI when it lacks them.
/// Panics with `hint` when that fails.
pub fn python_with(probe: &str, venv: &str, packages: &[&str], hint: &str) -> String {
    use std::process::Command;
    let runs = |python: &str| {
        Command::new(python)
            .args(["-c", probe])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("python3") {
        return "python3".into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(venv);
    let py = venv.join("bin/python").to_string_lossy().into_owned();
    if !runs(&py) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&py)
                .args(["-m", "pip", "install", "-q"])
                .args(packages)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not install {} into {}; {hint}",
            packages.join(" "),
            venv.display()
        );
    }
    py
}

/// A multipart body of text fields (as requests-toolbelt's MultipartEncoder sends them), plus
/// optional files: the content type and the body.
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "------------------------acestepboundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, name, data) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The tiny real checkpoint (`tests/fixtures/tiny`) loaded on the CPU in f32.
pub fn tiny_pipeline() -> acestep::pipeline::Pipeline {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    acestep::Pipeline::load(
        &acestep::Checkpoint::from_dir(dir).unwrap(),
        &Default::default(),
    )
    .unwrap()
}

/// A running `acestep serve`: the process, the URL it printed, and what it has written to
/// stderr so far (collected by a thread, so the pipe never fills).
pub struct Served {
    pub child: std::process::Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

/// Starts `acestep serve` on any free port over the tiny checkpoint with `args` and `data`,
/// and waits for the URL it prints once ready.
pub fn spawn_serve(args: &[&str], data: &Path) -> Served {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = root.join("tests/fixtures/tiny");
    let data = data.to_string_lossy();
    let mut all = vec!["serve", "--port", "0", "--threads", "2"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--checkpoint-dir",
        tiny.to_str().unwrap(),
        "--data-dir",
        &data,
    ]);
    spawn_acestep(&all, "listening on ", &[])
}

/// Starts `acestep <args>` with `env` and waits for the stdout line that holds `ready`; `url`
/// is the first word after it (a server's URL, a worker's id). Its stderr is echoed and kept.
pub fn spawn_acestep(args: &[&str], ready: &str, env: &[(&str, &str)]) -> Served {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_acestep"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let t0 = Instant::now();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120).saturating_sub(t0.elapsed()))
            .unwrap_or_else(|_| panic!("`acestep {}` did not print `{ready}`", args.join(" ")));
        if let Some(rest) = line.split(ready).nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    Served { child, url, stderr }
}

/// An answer of the in-process router: status, content type (without parameters), body.
pub struct Answer {
    pub status: u16,
    pub ctype: String,
    pub body: Vec<u8>,
}

/// Sends `method uri` to `app` with `Authorization: Bearer <key>` when given and `json` as an
/// `application/json` body when given.
pub async fn request(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    json: Option<serde_json::Value>,
) -> Answer {
    use tower::ServiceExt;
    let mut b = axum::http::Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let body = match json {
        Some(v) => {
            b = b.header("content-type", "application/json");
            axum::body::Body::from(serde_json::to_vec(&v).unwrap())
        }
        None => axum::body::Body::empty(),
    };
    let resp = app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        ctype,
        body,
    }
}

/// Which job store a test of the behaviour suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The data directory's `jobs.sqlite`.
    Sqlite,
    /// A new database on the server of `ACESTEP_TEST_POSTGRES`.
    Postgres,
}

impl Backend {
    /// The store of a new test: the data directory's SQLite file, or a new, empty PostgreSQL
    /// database.
    pub fn store(self) -> acestep::jobs::StoreLocation {
        match self {
            Backend::Sqlite => acestep::jobs::StoreLocation::DataDir,
            Backend::Postgres => acestep::jobs::StoreLocation::Postgres(postgres_database()),
        }
    }
}

/// The server the PostgreSQL tests use (`tools/with-postgres` starts one and sets it).
pub fn postgres_server() -> String {
    std::env::var("ACESTEP_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "ACESTEP_TEST_POSTGRES is not set: the PostgreSQL job-store tests need a server; run \
             the tests through `tools/with-postgres cargo test` (it starts a throwaway one), or \
             set ACESTEP_TEST_POSTGRES=postgres://user@host/db (a role that may CREATE DATABASE)"
        )
    })
}

/// A new, empty database on the test server; its URL.
pub fn postgres_database() -> String {
    let server = postgres_server();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut client = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let mut url = url::Url::parse(&server).expect("ACESTEP_TEST_POSTGRES is a postgres:// URL");
    url.set_path(&name);
    url.to_string()
}

/// Runs each named `fn(Backend)` as two tests: `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::common::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::common::Backend::Postgres) })*
        }
    };
}

/// The deliveries a receiver got: headers (lower-case names) and body of each.
pub type Deliveries = Arc<Mutex<Vec<(HashMap<String, String>, String)>>>;

/// Receives webhook deliveries, answered 200.
pub fn webhook_receiver() -> (String, Deliveries) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut headers = HashMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers["content-length"].parse().unwrap();
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                sink.lock()
                    .unwrap()
                    .push((headers, String::from_utf8(body).unwrap()));
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    (url, got)
}

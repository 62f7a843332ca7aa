//! Client compatibility: `acestep serve` on the tiny real checkpoint, driven by Python clients
//! written as the three seed documents write them (requests + requests-toolbelt: `.ci/run`
//! installs them; the interpreter is `$ACESTEP_TEST_PYTHON`, else `python3` when it has them,
//! else a virtual environment the test creates under `target/`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn has_client_modules(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import requests, requests_toolbelt"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `$ACESTEP_TEST_PYTHON`, else `python3` if it has the modules, else a virtual environment
/// under `target/` with them installed from PyPI.
fn python() -> String {
    if let Ok(p) = std::env::var("ACESTEP_TEST_PYTHON") {
        assert!(
            has_client_modules(&p),
            "ACESTEP_TEST_PYTHON={p} lacks requests / requests-toolbelt"
        );
        return p;
    }
    common::python_with(
        "import requests, requests_toolbelt",
        "py-client-venv",
        &["requests", "requests-toolbelt"],
        "install them for python3 or set ACESTEP_TEST_PYTHON",
    )
}

#[test]
fn the_seed_clients_work_against_acestep_serve() {
    let python = python();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_acestep"))
        .args([
            "serve",
            "--port",
            "0",
            "--api-key",
            "seed-key",
            "--threads",
            "2",
        ])
        .arg("--checkpoint-dir")
        .arg(root.join("tests/fixtures/tiny"))
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let t0 = Instant::now();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120).saturating_sub(t0.elapsed()))
            .expect("the server prints its URL once ready");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(&python)
        .arg(root.join("tests/clients/seed_clients.py"))
        .arg(&url)
        .arg("seed-key")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "seed clients failed:\n{stdout}");
    assert!(stdout.contains("OK: all three seed clients work"));
    let mp3 = acestep::audio::read(out.path().join("output.mp3")).unwrap();
    assert_eq!(mp3.sample_rate, 48000);
    assert!(mp3.duration() > 1.5, "{}", mp3.duration());
    drop(server);
}

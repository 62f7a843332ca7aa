//! Client compatibility: `acestep serve` on the tiny real checkpoint, driven by Python clients
//! written as the three seed documents write them (requests + requests-toolbelt: `.ci/run`
//! installs them; the interpreter is `$ACESTEP_TEST_PYTHON`, else `python3` when it has them,
//! else a virtual environment the test creates under `target/`).

mod common;

use std::path::Path;
use std::process::{Child, Command};

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
    let served = common::spawn_serve(&["--api-key", "seed-key"], data.path());
    let url = served.url.clone();
    let server = Kill(served.child);
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

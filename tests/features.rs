//! The feature matrix: the engine alone (`default-features = false`) compiles and its dependency
//! tree holds none of the service crates (HTTP, SQLite, CLI, progress bars); the CLI builds
//! without the server. Runs cargo itself, in its own target directory.

use std::path::Path;
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target/features"))
        .output()
        .expect("cargo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The crates only the service layers may pull in.
const SERVICE_CRATES: &[&str] = &[
    "axum",
    "tokio",
    "hyper",
    "tower",
    "tower-http",
    "rusqlite",
    "postgres",
    "tokio-postgres",
    "ureq",
    "reqwest",
    "hf-hub",
    "clap",
    "indicatif",
    "tracing-subscriber",
    "governor",
    "utoipa",
    "uuid",
];

#[test]
fn the_engine_builds_without_the_service_stack() {
    let tree = cargo(&[
        "tree",
        "--locked",
        "--offline",
        "--no-default-features",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-p",
        "acestep",
    ]);
    let crates: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let found: Vec<&&str> = SERVICE_CRATES
        .iter()
        .filter(|c| crates.contains(**c))
        .collect();
    println!("engine alone: {} crates in its tree", crates.len());
    assert!(
        found.is_empty(),
        "service crates in the engine's tree: {found:?}"
    );
    // The default build does have them (the check above sees real names).
    let full = cargo(&[
        "tree",
        "--locked",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-p",
        "acestep",
    ]);
    assert!(full.lines().any(|l| l.starts_with("axum ")));
    // It compiles: the library without the hub and the server (the `cli` feature adds nothing
    // to it) and the CLI binary without the server, in one check.
    cargo(&[
        "check",
        "--locked",
        "--offline",
        "--no-default-features",
        "--features",
        "cli",
        "--lib",
        "--bins",
    ]);
}

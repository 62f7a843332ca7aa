//! The `acestep` binary, end to end on the tiny checkpoint.

use std::path::PathBuf;
use std::process::Command;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn acestep() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_acestep"));
    c.env_remove("ACESTEP_CHECKPOINT_DIR");
    c
}

#[test]
fn encode_text_prints_shape_and_checksum() {
    let out = acestep()
        .args([
            "encode-text",
            "lofi hip hop, mellow piano",
            "--device",
            "cpu",
            "--checkpoint-dir",
        ])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shape: Vec<u64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(shape[0], 1);
    assert_eq!(shape[2], 64);
    assert_eq!(shape[1], v["tokens"].as_u64().unwrap());
    assert!(v["checksum_abs_mean"].as_f64().unwrap() > 0.0);
    assert_eq!(v["dtype"], "f32");

    // The ERG-tag variant gives another checksum; the environment variable works like the flag.
    let erg = acestep()
        .args([
            "encode-text",
            "lofi hip hop, mellow piano",
            "--erg",
            "--device",
            "cpu",
        ])
        .env("ACESTEP_CHECKPOINT_DIR", tiny())
        .output()
        .unwrap();
    assert!(
        erg.status.success(),
        "{}",
        String::from_utf8_lossy(&erg.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&erg.stdout).unwrap();
    assert_ne!(e["checksum_sum"], v["checksum_sum"]);
}

#[test]
fn bad_arguments_give_one_clear_line() {
    let out = acestep()
        .args(["encode-text", "x", "--checkpoint-dir", "/nonexistent/ckpt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ckpt"), "{err}");

    let out = acestep()
        .args(["encode-text", "x", "--device", "tpu", "--checkpoint-dir"])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");

    let out = acestep()
        .args([
            "encode-text",
            "x",
            "--dtype",
            "int4",
            "--device",
            "cpu",
            "--checkpoint-dir",
        ])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("int4"));
}

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

/// Runs `cmd`, requires success, and parses the JSON line it prints.
fn run_ok(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn encode_text_prints_shape_and_checksum() {
    let v = run_ok(
        acestep()
            .args([
                "encode-text",
                "lofi hip hop, mellow piano",
                "--device",
                "cpu",
                "--checkpoint-dir",
            ])
            .arg(tiny()),
    );
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
    let e = run_ok(
        acestep()
            .args([
                "encode-text",
                "lofi hip hop, mellow piano",
                "--erg",
                "--device",
                "cpu",
            ])
            .env("ACESTEP_CHECKPOINT_DIR", tiny()),
    );
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

    // The cluster flags: a worker and an API-only front end need a shared store, a store is a
    // PostgreSQL URL or an SQLite path, a lease at least a second; each refused before any
    // model loads, naming the flag.
    let data = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (&["worker"], &["store", "postgres://"]),
        (&["serve", "--workers", "0"], &["workers", "postgres://"]),
        (
            &["serve", "--store", "mysql://db/x"],
            &["store", "mysql://db/x"],
        ),
        (
            &[
                "worker",
                "--store",
                "postgres://u:secret@127.0.0.1:1/x",
                "--workers",
                "0",
            ],
            &["workers", "at least 1"],
        ),
        (
            &["serve", "--lease-seconds", "0.5"],
            &["lease-seconds", "0.5"],
        ),
    ];
    for (args, wanted) in cases {
        let out = acestep()
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--port", "0"].iter().filter(|_| args[0] == "serve"))
            .arg("--checkpoint-dir")
            .arg("/nonexistent/ckpt")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in wanted {
            assert!(err.contains(w), "{args:?}: {err}");
        }
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn reconstruct_round_trips_an_audio_file() {
    let dir = tempfile::tempdir().unwrap();
    // A mono 22.05 kHz ogg goes in; a stereo 48 kHz flac comes out.
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio/tone440_mono_22050.ogg");
    let output = dir.path().join("out.flac");
    let v = run_ok(
        acestep()
            .args([
                "reconstruct",
                "--device",
                "cpu",
                "--sample-rate",
                "48000",
                "-o",
            ])
            .arg(&output)
            .arg(&input)
            .arg("--checkpoint-dir")
            .arg(tiny()),
    );
    // 0.5 s at 44.1 kHz pads to 6 latent frames of 4096 samples.
    assert_eq!(v["latent_shape"], serde_json::json!([1, 8, 16, 6]));
    let audio = acestep::audio::read(&output).unwrap();
    assert_eq!(audio.sample_rate, 48000);
    assert_eq!(audio.channels.len(), 2);
    // As long as the input (about 0.5 s; the latent padding is cut off again).
    let input_len = acestep::audio::read(&input).unwrap().len();
    assert_eq!(
        audio.len(),
        (input_len as f64 * 48000.0 / 22050.0).round() as usize
    );

    // A file that is not audio: a clear error naming it, and no output file.
    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "not audio").unwrap();
    let out = acestep()
        .args(["reconstruct", "--device", "cpu", "-o"])
        .arg(dir.path().join("x.wav"))
        .arg(&bad)
        .arg("--checkpoint-dir")
        .arg(tiny())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt"));
    assert!(!dir.path().join("x.wav").exists());
}

#[test]
fn generate_writes_audio_and_a_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("song.wav");
    let _ = run_ok(
        acestep()
            .args([
                "generate",
                "--prompt",
                "funk, groovy bass",
                "--duration",
                "1.2",
                "--steps",
                "4",
                "--seed",
                "42",
            ])
            .args([
                "--scheduler",
                "heun",
                "--params",
                r#"{"omega_scale": 5, "guidance_interval": 1.0}"#,
            ])
            .args(["--device", "cpu", "-o"])
            .arg(&output)
            .arg("--checkpoint-dir")
            .arg(tiny()),
    );
    let audio = acestep::audio::read(&output).unwrap();
    assert_eq!(audio.sample_rate, 48000);
    assert_eq!(audio.channels.len(), 2);
    assert_eq!(
        audio.len(),
        (12.0f64 * 4096.0 * 48000.0 / 44100.0).round() as usize
    );
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("song.json")).unwrap())
            .unwrap();
    assert_eq!(side["prompt"], "funk, groovy bass");
    assert_eq!(side["scheduler_type"], "heun");
    assert_eq!(side["omega_scale"], 5.0);
    assert_eq!(side["infer_step"], 4);
    assert_eq!(side["actual_seeds"], serde_json::json!([42]));

    // Out-of-range parameters: one clear line naming the parameter, no file.
    let bad = acestep()
        .args([
            "generate",
            "--prompt",
            "x",
            "--duration",
            "-3",
            "--device",
            "cpu",
            "-o",
        ])
        .arg(dir.path().join("bad.wav"))
        .arg("--checkpoint-dir")
        .arg(tiny())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("audio_duration") && err.contains("240"),
        "{err}"
    );
    assert!(!dir.path().join("bad.wav").exists());
}

#[test]
fn tokenize_lyrics_prints_languages_and_ids() {
    let vocab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/vocab.json");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("song.txt");
    std::fs::write(
        &file,
        "[verse]\nWe made $100 tonight\n\n사랑해\nПривет мир\nIch liebe dich mehr als alles\n",
    )
    .unwrap();
    let v = run_ok(
        acestep()
            .arg("tokenize-lyrics")
            .arg(&file)
            .arg("--lyric-vocab")
            .arg(&vocab),
    );
    let lines = v["lines"].as_array().unwrap();
    let langs: Vec<_> = lines.iter().map(|l| l["language"].clone()).collect();
    assert_eq!(
        langs,
        vec![
            serde_json::json!("en"),
            serde_json::json!("en"),
            serde_json::Value::Null,
            serde_json::json!("ko"),
            serde_json::json!("ru"),
            serde_json::json!("de"),
            serde_json::Value::Null,
        ]
    );
    // The reference's raw detection is shown too: `[verse]` reads as zh there, but tags are
    // English whatever their detected language.
    assert_eq!(lines[0]["detected"], "zh");
    assert_eq!(lines[5]["detected"], "de");
    assert_eq!(lines[0]["structure_tag"], true);
    assert_eq!(lines[1]["cleaned"], "we made one hundred dollars tonight");
    assert_eq!(lines[3]["cleaned"], "salanghae");
    let ids: Vec<u64> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids[0], 261);
    // The full sequence is 261 then each line's ids (with its 2), an empty line being a lone 2.
    let mut want = vec![261u64];
    for l in lines {
        want.extend(
            l["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap()),
        );
    }
    assert_eq!(ids, want);
    // A missing vocab and an unreachable hub: one clear line naming what to pass.
    let out = acestep()
        .env_remove("ACESTEP_LYRIC_VOCAB")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", dir.path())
        .arg("tokenize-lyrics")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--lyric-vocab") && err.contains("ACE-Step/ACE-Step"),
        "{err}"
    );
}

#[test]
fn generate_sings_lyrics_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let lyrics = dir.path().join("lyrics.txt");
    // Words whose ids fit the tiny DiT's 300-token lyric vocabulary.
    std::fs::write(&lyrics, "we are\n\noh oh\n").unwrap();
    let output = dir.path().join("song.flac");
    let vocab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/vocab.json");
    let _ = run_ok(
        acestep()
            .args([
                "generate",
                "--prompt",
                "pop",
                "--duration",
                "1",
                "--steps",
                "3",
            ])
            .arg("--lyrics")
            .arg(&lyrics)
            .args(["--lyrics-language", "en", "--device", "cpu", "-o"])
            .arg(&output)
            .arg("--lyric-vocab")
            .arg(&vocab)
            .arg("--checkpoint-dir")
            .arg(tiny()),
    );
    assert!(acestep::audio::read(&output).unwrap().duration() > 0.5);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("song.json")).unwrap())
            .unwrap();
    assert_eq!(side["lyrics"], "we are\n\noh oh\n");
    assert_eq!(side["lyrics_language"], "en");
}

#[test]
fn generate_runs_the_editing_tasks_and_lora() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |extra: &[&str], out: &str| {
        let mut c = acestep();
        c.args([
            "generate",
            "--prompt",
            "funk, groovy bass",
            "--duration",
            "1.2",
        ])
        .args(["--steps", "4", "--seed", "42", "--device", "cpu"])
        .args(extra)
        .arg("-o")
        .arg(dir.path().join(out))
        .arg("--checkpoint-dir")
        .arg(tiny());
        c
    };
    let _ = run_ok(&mut gen(&[], "src.wav"));
    let src = dir.path().join("src.wav");
    let src_s = src.to_string_lossy().into_owned();
    let lora = tiny()
        .parent()
        .unwrap()
        .join("lora/tiny_lora/pytorch_lora_weights.safetensors");
    let runs: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "--task",
                "repaint",
                "--src-audio",
                &src_s,
                "--repaint-start",
                "0.3",
                "--repaint-end",
                "0.8",
            ],
            "repaint.wav",
            "repaint",
        ),
        (
            vec![
                "--task",
                "extend",
                "--src-audio",
                &src_s,
                "--extend-right",
                "0.5",
            ],
            "extend.wav",
            "extend",
        ),
        (
            vec![
                "--task",
                "retake",
                "--retake-seeds",
                "7",
                "--retake-variance",
                "0.3",
            ],
            "retake.wav",
            "retake",
        ),
        (
            vec![
                "--task",
                "edit",
                "--src-audio",
                &src_s,
                "--edit-target-prompt",
                "jazz trio",
                "--edit-n-max",
                "0.5",
            ],
            "edit.wav",
            "edit",
        ),
        (
            vec!["--ref-audio", &src_s, "--ref-audio-strength", "0.5"],
            "a2a.wav",
            "audio2audio",
        ),
        (
            vec!["--lora", lora.to_str().unwrap(), "--lora-weight", "0.8"],
            "lora.wav",
            "text2music",
        ),
    ];
    let src_len = acestep::audio::read(&src).unwrap().len();
    for (args, out, task) in runs {
        let _ = run_ok(&mut gen(&args, out));
        let audio = acestep::audio::read(dir.path().join(out)).unwrap();
        let side: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(out).with_extension("json")).unwrap(),
        )
        .unwrap();
        assert_eq!(side["task"], task, "{out}");
        if task == "extend" {
            assert!(audio.len() > src_len, "{out}: extended");
            assert!((side["repaint_end"].as_f64().unwrap() - 1.6145).abs() < 0.01);
        } else {
            assert_eq!(audio.len(), src_len, "{out}");
        }
    }
    // Bad spans: one clear line naming the parameter, no file.
    let bad = gen(
        &[
            "--task",
            "repaint",
            "--src-audio",
            &src_s,
            "--repaint-start",
            "0.8",
            "--repaint-end",
            "0.3",
        ],
        "bad.wav",
    )
    .output()
    .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("repaint_start") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!dir.path().join("bad.wav").exists());
    let bad = gen(
        &["--task", "repaint", "--src-audio", "/nonexistent.wav"],
        "bad.wav",
    )
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.wav"));
}

#[test]
fn generate_flags_merge_over_params_and_unset_flags_keep_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("song.wav");
    // `--params` sets the steps, duration and scheduler; the flags given override the seed and
    // guidance only: the others keep the JSON's values, not a flag default.
    let _ = run_ok(
        acestep()
            .args(["generate", "--prompt", "pop", "--seed", "7"])
            .args(["--guidance-scale", "4", "--device", "cpu", "--params"])
            .arg(r#"{"infer_step": 3, "audio_duration": 1.0, "scheduler_type": "heun", "manual_seeds": "1", "omega_scale": 5}"#)
            .arg("-o")
            .arg(&output)
            .arg("--checkpoint-dir")
            .arg(tiny()),
    );
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("song.json")).unwrap())
            .unwrap();
    assert_eq!(side["infer_step"], 3);
    assert_eq!(side["audio_duration"], 1.0);
    assert_eq!(side["scheduler_type"], "heun");
    assert_eq!(side["omega_scale"], 5.0);
    assert_eq!(side["guidance_scale"], 4.0);
    assert_eq!(side["manual_seeds"], serde_json::json!([7]));
    // Unset everywhere: the reference's defaults, from `GenerationParams::default()`.
    assert_eq!(side["cfg_type"], "apg");
    assert_eq!(side["guidance_interval"], 0.5);
}

#[test]
fn debug_logging_shows_the_time_of_each_stage() {
    let dir = tempfile::tempdir().unwrap();
    let out = acestep()
        .env("RUST_LOG", "acestep=debug")
        .args([
            "generate",
            "--prompt",
            "pop",
            "--duration",
            "1",
            "--steps",
            "2",
        ])
        .args(["--device", "cpu", "-o"])
        .arg(dir.path().join("s.wav"))
        .arg("--checkpoint-dir")
        .arg(tiny())
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    for stage in [
        "load{model=\"dit\"}",
        "encode_prompt",
        "diffusion",
        "decode{item=0}",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(stage) && l.contains("close"))
            .unwrap_or_else(|| panic!("no closed span {stage} in:\n{log}"));
        assert!(line.contains("time.busy="), "{line}");
    }
}

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

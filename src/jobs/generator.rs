//! The [`Generator`] trait the job manager drives, its progress type, and
//! [`PipelineGenerator`], the implementation over the real [`Pipeline`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pipeline::{Control, GenerationParams, Pipeline, Progress};

/// What a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for a worker.
    #[default]
    Queued,
    /// Encoding the prompt and lyrics.
    Encoding,
    /// Running the diffusion steps.
    Diffusion,
    /// Decoding latents to audio.
    Decoding,
    /// Writing the output files.
    Writing,
    /// Finished (whatever the outcome).
    Done,
}

/// Progress of one job: stage, diffusion step `step` of `total`, overall percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct JobProgress {
    /// The stage.
    pub stage: Stage,
    /// Diffusion steps done.
    pub step: usize,
    /// Diffusion steps in all (0 while unknown).
    pub total: usize,
    /// Overall completion, 0 to 100: encoding 0-5, diffusion 5-90, decoding 90-98, writing 98-100.
    pub percent: f64,
}

impl JobProgress {
    /// Encoding the conditions.
    pub fn encoding(total: usize) -> Self {
        Self {
            stage: Stage::Encoding,
            step: 0,
            total,
            percent: 0.0,
        }
    }

    /// `step` of `total` diffusion steps done.
    pub fn diffusion(step: usize, total: usize) -> Self {
        let frac = if total == 0 {
            0.0
        } else {
            step.min(total) as f64 / total as f64
        };
        Self {
            stage: Stage::Diffusion,
            step,
            total,
            percent: 5.0 + 85.0 * frac,
        }
    }

    /// Decoding batch item `item` (0-based) of `of`, after `total` diffusion steps.
    pub fn decoding(item: usize, of: usize, total: usize) -> Self {
        let frac = if of == 0 {
            0.0
        } else {
            item.min(of) as f64 / of as f64
        };
        Self {
            stage: Stage::Decoding,
            step: total,
            total,
            percent: 90.0 + 8.0 * frac,
        }
    }

    /// Writing the files.
    pub fn writing(total: usize) -> Self {
        Self {
            stage: Stage::Writing,
            step: total,
            total,
            percent: 98.0,
        }
    }

    /// Finished.
    pub fn done(total: usize) -> Self {
        Self {
            stage: Stage::Done,
            step: total,
            total,
            percent: 100.0,
        }
    }
}

/// One file a job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    /// A stable id of this file (used in download URLs).
    pub id: String,
    /// Where it is (under the manager's data directory).
    pub path: PathBuf,
    /// Its `.json` parameter sidecar, when one was written.
    #[serde(default)]
    pub params_path: Option<PathBuf>,
    /// The seed of the song.
    pub seed: u64,
    /// Audio length in seconds.
    pub duration_seconds: f64,
    /// Sample rate.
    pub sample_rate: u32,
    /// `wav`, `wav16`, `flac` or `mp3`.
    pub format: String,
    /// Its size in bytes, recorded by the job manager when the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Its CRC-32, recorded by the job manager when the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

impl OutputFile {
    /// The size and CRC-32 of the file on disk now.
    pub fn measure(path: &Path) -> std::io::Result<(u64, u32)> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            n += k as u64;
            h.update(&buf[..k]);
        }
        Ok((n, h.finalize()))
    }

    /// Checks that the file is still there, whole: its size and CRC-32 are those recorded (what
    /// was not recorded is not checked). The error says what differs.
    pub fn verify(&self) -> std::result::Result<(), String> {
        let (size, crc) = match Self::measure(&self.path) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("the file was deleted".into())
            }
            Err(e) => return Err(format!("the file cannot be read: {}", e.kind())),
        };
        if self.size_bytes.is_some_and(|s| s != size) {
            return Err(format!(
                "the file is damaged: {size} bytes, {} written",
                self.size_bytes.unwrap_or_default()
            ));
        }
        if self.crc32.is_some_and(|c| c != crc) {
            return Err("the file is damaged: its checksum differs from the one written".into());
        }
        Ok(())
    }
}

/// What a finished generation returns to the manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOutput {
    /// The files, one per batch item.
    pub files: Vec<OutputFile>,
    /// The seeds actually used.
    pub seeds: Vec<u64>,
    /// Free-form generation details (the parameters, timings).
    pub info: serde_json::Value,
}

/// Something that turns [`GenerationParams`] into audio files: the real [`PipelineGenerator`], or
/// a fake in tests. Shared by every worker, so it must be `Send + Sync`.
pub trait Generator: Send + Sync {
    /// Checks a request before it is queued; the error names the bad field.
    fn validate(&self, params: &GenerationParams) -> Result<()> {
        params.validate()
    }

    /// Diffusion loop steps `params` takes (what progress `total` will say): the plan's
    /// [`crate::pipeline::GenerationPlan::loop_steps`].
    fn diffusion_steps(&self, params: &GenerationParams) -> usize {
        params
            .plan(|| 0)
            .map(|p| p.loop_steps)
            .unwrap_or(params.infer_step)
    }

    /// Relative cost of one diffusion step of `params` (the ETA scales the measured seconds per
    /// unit of cost by it). Default 1.
    fn step_cost(&self, _params: &GenerationParams) -> f64 {
        1.0
    }

    /// Runs the generation, writing its files into `out_dir` (which exists), reporting progress;
    /// when `progress` returns [`Control::Cancel`] it stops with [`crate::Error::Cancelled`].
    fn generate(
        &self,
        params: &GenerationParams,
        out_dir: &Path,
        progress: &mut dyn FnMut(JobProgress) -> Control,
    ) -> Result<GenerationOutput>;
}

/// The real generator: a [`Pipeline`] loaded once and kept resident.
pub struct PipelineGenerator {
    pipeline: Pipeline,
}

impl PipelineGenerator {
    /// Wraps a loaded pipeline.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

impl Generator for PipelineGenerator {
    fn validate(&self, params: &GenerationParams) -> Result<()> {
        params.validate()?;
        self.pipeline.check_lengths(params)
    }

    fn step_cost(&self, params: &GenerationParams) -> f64 {
        pipeline_step_cost(params)
    }

    fn generate(
        &self,
        params: &GenerationParams,
        out_dir: &Path,
        progress: &mut dyn FnMut(JobProgress) -> Control,
    ) -> Result<GenerationOutput> {
        let total = self.diffusion_steps(params);
        let t0 = std::time::Instant::now();
        let songs = self.pipeline.generate_with_progress(params, &mut |p| {
            progress(match p {
                Progress::Encoding => JobProgress::encoding(total),
                Progress::Step(s) => JobProgress::diffusion(s.step, s.total),
                Progress::Decoding { item, of } => JobProgress::decoding(item, of, total),
            })
        })?;
        let generate_seconds = t0.elapsed().as_secs_f64();
        if progress(JobProgress::writing(total)) == Control::Cancel {
            return Err(crate::Error::Cancelled { step: total, total });
        }
        let format = crate::audio::Format::from_name(&params.format)?;
        let output = out_dir.join(format!("output.{}", format.extension()));
        let info = serde_json::json!({ "generate_seconds": generate_seconds });
        let written = crate::pipeline::write_songs(&songs, params, &output, &info)?;
        // The parameters are in the job's request already: not copied again here.
        let info = serde_json::json!({ "generate_seconds": generate_seconds });
        Ok(GenerationOutput {
            seeds: written.iter().map(|w| w.seed).collect(),
            files: written
                .into_iter()
                .map(|w| OutputFile {
                    id: uuid::Uuid::new_v4().to_string(),
                    path: w.audio_path,
                    params_path: Some(w.params_path),
                    seed: w.seed,
                    duration_seconds: w.duration_seconds,
                    sample_rate: w.sample_rate,
                    format: params.format.clone(),
                    size_bytes: None,
                    crc32: None,
                })
                .collect(),
            info,
        })
    }
}

/// The relative cost of one diffusion step of `params` on the real pipeline: the DiT's linear
/// attention is linear in frames; one unit is one 10 s song.
fn pipeline_step_cost(params: &GenerationParams) -> f64 {
    (params.batch_size * params.frame_length()).max(1) as f64 / 107.0
}

/// The generator of an API-only front end (`acestep serve --workers 0` over a shared store):
/// it checks requests as far as that is possible without the model (the parameters' bounds;
/// the text and lyric lengths are checked by the worker that takes the job, which fails it
/// `invalid_request` when they do not fit) and sizes them as [`PipelineGenerator`] does, but
/// never generates.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueOnly;

impl Generator for QueueOnly {
    fn step_cost(&self, params: &GenerationParams) -> f64 {
        pipeline_step_cost(params)
    }

    fn generate(
        &self,
        _params: &GenerationParams,
        _out_dir: &Path,
        _progress: &mut dyn FnMut(JobProgress) -> Control,
    ) -> Result<GenerationOutput> {
        Err(crate::Error::Internal {
            message: "an API-only front end runs no jobs (it has no workers)".into(),
        })
    }
}

//! [`GenerationParams`]: the text2music parameters of the reference `__call__`, under its names.

use candle_core::Tensor;
use serde::{Deserialize, Deserializer, Serialize};

use super::diffusion::DiffusionSettings;
use super::flowedit::FlowEditSettings;
use crate::error::{Error, Result};
use crate::guidance::CfgType;
use crate::schedulers::SchedulerType;

/// Longest audio the model generates (seconds), as the reference's frame limit.
pub const MAX_DURATION_SECONDS: f64 = 240.0;
/// Most diffusion steps (`infer_step`, and every `oss_steps` position).
pub const MAX_STEPS: usize = 1000;
/// Longest prompt (and `edit_target_prompt`) in bytes; the text encoder reads at most 256
/// tokens of it (a service also refuses longer token counts).
pub const MAX_PROMPT_BYTES: usize = 16 << 10;
/// Longest lyrics (and `edit_target_lyrics`) in bytes; the DiT reads at most 32 768 lyric
/// tokens.
pub const MAX_LYRICS_BYTES: usize = 32 << 10;

/// A list for an error message: its first items and its length.
fn list_text(v: &[impl std::fmt::Debug]) -> String {
    if v.len() <= 8 {
        format!("{v:?}")
    } else {
        format!("{:?}... ({} items)", &v[..8], v.len())
    }
}

/// The task of a generation (the reference's `task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A new song from the prompt and lyrics.
    #[default]
    Text2music,
    /// The same song with a variation of its noise (`retake_seeds`, `retake_variance`).
    Retake,
    /// Re-generate `repaint_start..repaint_end` seconds of `src_audio_path`.
    Repaint,
    /// Generate past the start (`repaint_start < 0`) or the end (`repaint_end` past the source)
    /// of `src_audio_path`.
    Extend,
    /// FlowEdit `src_audio_path` from `prompt` / `lyrics` to `edit_target_prompt` /
    /// `edit_target_lyrics`.
    Edit,
    /// A new song that keeps `ref_audio_strength` of `ref_audio_input`.
    Audio2audio,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 6] = [
        Task::Text2music,
        Task::Retake,
        Task::Repaint,
        Task::Extend,
        Task::Edit,
        Task::Audio2audio,
    ];

    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Text2music => "text2music",
            Task::Retake => "retake",
            Task::Repaint => "repaint",
            Task::Extend => "extend",
            Task::Edit => "edit",
            Task::Audio2audio => "audio2audio",
        }
    }

    /// Whether the task reads `src_audio_path`.
    pub fn needs_source(self) -> bool {
        matches!(self, Task::Repaint | Task::Extend | Task::Edit)
    }

    /// Whether the task mixes in the retake noise (`add_retake_noise` of the reference).
    pub fn uses_retake_noise(self) -> bool {
        matches!(self, Task::Retake | Task::Repaint | Task::Extend)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                bad(
                    "task",
                    s,
                    "one of text2music, retake, repaint, extend, edit, audio2audio",
                )
            })
    }
}

/// Parameters of one generation, named and defaulted as the reference's
/// `ACEStepPipeline.__call__`. Serialises to the reference's `input_params` JSON (the noise
/// tensors are skipped); missing fields take the defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct GenerationParams {
    /// Output container: wav, flac, mp3 (wav16 for 16-bit wav).
    pub format: String,
    /// Seconds of audio, in (0, 240].
    pub audio_duration: f64,
    /// The prompt (tags).
    pub prompt: String,
    /// The lyrics (empty: instrumental).
    pub lyrics: String,
    /// Ours, not the reference's: read every lyric line (structure tags excepted, which are
    /// English) in this language (`en`, `de`, `zh`, ...) instead of detecting each line's
    /// language as the reference does. Unset, empty or `auto`: per-line detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyrics_language: Option<String>,
    /// Diffusion steps.
    pub infer_step: usize,
    /// Guidance scale (0 or 1: no guidance).
    pub guidance_scale: f64,
    /// euler, heun or pingpong.
    pub scheduler_type: SchedulerType,
    /// apg, cfg or cfg_star.
    pub cfg_type: CfgType,
    /// Step rescaling strength.
    pub omega_scale: f64,
    /// Seeds: one per batch item, or one for every item; empty: random seeds.
    #[serde(deserialize_with = "list_or_csv")]
    pub manual_seeds: Vec<u64>,
    /// Fraction of the steps, centred, that are guided.
    pub guidance_interval: f64,
    /// Linear decay of the guidance scale over the interval.
    pub guidance_interval_decay: f64,
    /// The scale the decay reaches.
    pub min_guidance_scale: f64,
    /// ERG on the prompt (text encoder) for the null condition.
    pub use_erg_tag: bool,
    /// ERG on the lyrics (lyric encoder) for the null condition.
    pub use_erg_lyric: bool,
    /// ERG in the DiT for the unconditional prediction.
    pub use_erg_diffusion: bool,
    /// Optimal step positions, e.g. `[16, 29, 52, 60]` or "16,29,52,60"; empty: off.
    #[serde(deserialize_with = "list_or_csv")]
    pub oss_steps: Vec<usize>,
    /// Double-condition guidance: text scale (with `guidance_scale_lyric`, both > 1).
    pub guidance_scale_text: f64,
    /// Double-condition guidance: lyric scale.
    pub guidance_scale_lyric: f64,
    /// Number of songs.
    pub batch_size: usize,
    /// The task (`audio2audio_enable` with `ref_audio_input` makes it audio2audio, as the
    /// reference).
    pub task: Task,
    /// Seeds of the retake noise (retake, repaint, extend; edit's FlowEdit noise): as
    /// `manual_seeds`.
    #[serde(deserialize_with = "list_or_csv")]
    pub retake_seeds: Vec<u64>,
    /// How far the retake noise moves from the original (0 to 1); repaint and extend also start
    /// at step `int(infer_step * (1 - retake_variance))`.
    pub retake_variance: f64,
    /// Repaint / extend span start in seconds (extend: negative = seconds added before).
    pub repaint_start: f64,
    /// Repaint / extend span end in seconds (extend: past the source = seconds added after).
    pub repaint_end: f64,
    /// The source audio of repaint, extend and edit (any format the audio module reads).
    pub src_audio_path: Option<String>,
    /// edit: the prompt to move the source to.
    pub edit_target_prompt: Option<String>,
    /// edit: the lyrics to move the source to (empty: none).
    pub edit_target_lyrics: Option<String>,
    /// edit: fraction of the steps skipped at the start.
    pub edit_n_min: f64,
    /// edit: fraction of the steps after which plain sampling takes over.
    pub edit_n_max: f64,
    /// edit: velocity differences averaged per step.
    pub edit_n_avg: usize,
    /// audio2audio on (with `ref_audio_input`).
    pub audio2audio_enable: bool,
    /// audio2audio: how much of the reference audio to keep, in [0, 1).
    pub ref_audio_strength: f64,
    /// audio2audio: the reference audio.
    pub ref_audio_input: Option<String>,
    /// A LoRA adapter: a `pytorch_lora_weights.safetensors`, its folder, or a hub repo id;
    /// "none" (or empty): no LoRA.
    pub lora_name_or_path: String,
    /// The LoRA's weight.
    pub lora_weight: f64,
    /// Initial noise `[batch, 8, 16, frames]` replacing the seeded draw (to reproduce a run of
    /// another implementation).
    #[serde(skip)]
    pub init_noise: Option<Tensor>,
    /// Retake noise `[batch, 8, 16, frames]` replacing the draw from `retake_seeds` (retake,
    /// repaint, extend).
    #[serde(skip)]
    pub retake_noise: Option<Tensor>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            format: "wav".into(),
            audio_duration: 60.0,
            prompt: String::new(),
            lyrics: String::new(),
            lyrics_language: None,
            infer_step: 60,
            guidance_scale: 15.0,
            scheduler_type: SchedulerType::Euler,
            cfg_type: CfgType::Apg,
            omega_scale: 10.0,
            manual_seeds: Vec::new(),
            guidance_interval: 0.5,
            guidance_interval_decay: 0.0,
            min_guidance_scale: 3.0,
            use_erg_tag: true,
            use_erg_lyric: true,
            use_erg_diffusion: true,
            oss_steps: Vec::new(),
            guidance_scale_text: 0.0,
            guidance_scale_lyric: 0.0,
            batch_size: 1,
            task: Task::Text2music,
            retake_seeds: Vec::new(),
            retake_variance: 0.5,
            repaint_start: 0.0,
            repaint_end: 0.0,
            src_audio_path: None,
            edit_target_prompt: None,
            edit_target_lyrics: None,
            edit_n_min: 0.0,
            edit_n_max: 1.0,
            edit_n_avg: 1,
            audio2audio_enable: false,
            ref_audio_strength: 0.5,
            ref_audio_input: None,
            lora_name_or_path: "none".into(),
            lora_weight: 1.0,
            init_noise: None,
            retake_noise: None,
        }
    }
}

/// The loop a generation samples with.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// `text2music_diffusion_process` (text2music, retake, repaint, extend, audio2audio).
    Diffusion(DiffusionSettings),
    /// `flowedit_diffusion_process` (edit).
    FlowEdit(FlowEditSettings),
}

/// [`GenerationParams`] resolved once ([`GenerationParams::plan`]): what the sampling loops and
/// the job manager's estimates read, so that no rule of the scheduler or the frame arithmetic is
/// derived twice.
#[derive(Debug, Clone)]
pub struct GenerationPlan {
    /// The task that runs ([`GenerationParams::effective_task`]).
    pub task: Task,
    /// The language every lyric line is read in; None: detected per line.
    pub lyric_language: Option<crate::lyrics::Language>,
    /// The seed of each item's initial noise.
    pub seeds: Vec<u64>,
    /// The seed of each item's retake noise (retake, repaint, extend, edit).
    pub retake_seeds: Option<Vec<u64>>,
    /// Latent frames to generate; None: the source (or reference) audio's.
    pub frames: Option<usize>,
    /// The sampling loop and its settings.
    pub sampler: Sampler,
    /// Iterations of the sampling loop: what [`crate::pipeline::StepProgress::total`] says
    /// (Heun's 2n - 1, audio2audio's share of the steps, FlowEdit's Euler schedule).
    pub loop_steps: usize,
}

/// A list given as a JSON array, a number, or a comma-separated string (the reference's
/// `manual_seeds` / `oss_steps` arrive as strings from its UI).
fn list_or_csv<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr<T> {
        List(Vec<T>),
        One(T),
        Text(String),
        Null(()),
    }
    match Repr::<T>::deserialize(d)? {
        Repr::List(v) => Ok(v),
        Repr::One(x) => Ok(vec![x]),
        Repr::Null(()) => Ok(Vec::new()),
        Repr::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<T>().map_err(serde::de::Error::custom))
            .collect(),
    }
}

fn bad(name: &'static str, value: impl ToString, expected: impl Into<String>) -> Error {
    Error::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// `b` seeds from `given`: one per item, one repeated for every item (as the reference), or
/// `random`'s draws when none is given.
fn batch_seeds(given: &[u64], b: usize, mut random: impl FnMut() -> u64) -> Vec<u64> {
    match given {
        [] => (0..b).map(|_| random()).collect(),
        [one] => vec![*one; b],
        many => many.to_vec(),
    }
}

/// Seeds must be none, one, or one per batch item.
fn check_seed_count(name: &'static str, given: &[u64], b: usize) -> Result<()> {
    if given.len() > 1 && given.len() != b {
        return Err(bad(
            name,
            list_text(given),
            "none, one seed, or one per batch item",
        ));
    }
    Ok(())
}

impl GenerationParams {
    /// Latent frames for `audio_duration`: `int(frames_of_seconds(duration))`
    /// ([`crate::dcae::frames_of_seconds`]).
    pub fn frame_length(&self) -> usize {
        crate::dcae::frames_of_seconds(self.audio_duration) as usize
    }

    /// Checks every parameter; the error names the first bad one and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let d = self.audio_duration;
        if !(d.is_finite() && d > 0.0 && d <= MAX_DURATION_SECONDS) {
            return Err(bad("audio_duration", d, "seconds in (0, 240]"));
        }
        if self.frame_length() == 0 {
            return Err(bad(
                "audio_duration",
                d,
                "at least 0.093 s (one latent frame)",
            ));
        }
        if self.infer_step == 0 || self.infer_step > MAX_STEPS {
            return Err(bad("infer_step", self.infer_step, "1 to 1000"));
        }
        for (name, text, max) in [
            ("prompt", Some(&self.prompt), MAX_PROMPT_BYTES),
            (
                "edit_target_prompt",
                self.edit_target_prompt.as_ref(),
                MAX_PROMPT_BYTES,
            ),
            ("lyrics", Some(&self.lyrics), MAX_LYRICS_BYTES),
            (
                "edit_target_lyrics",
                self.edit_target_lyrics.as_ref(),
                MAX_LYRICS_BYTES,
            ),
        ] {
            if let Some(t) = text.filter(|t| t.len() > max) {
                return Err(bad(
                    name,
                    format!("{} bytes", t.len()),
                    format!("at most {max} bytes"),
                ));
            }
        }
        if self.lora_name_or_path.len() > 1024 {
            return Err(bad(
                "lora_name_or_path",
                format!("{} bytes", self.lora_name_or_path.len()),
                "a hub repo id or path of at most 1024 bytes",
            ));
        }
        for (name, v) in [
            ("guidance_scale", self.guidance_scale),
            ("min_guidance_scale", self.min_guidance_scale),
            ("guidance_scale_text", self.guidance_scale_text),
            ("guidance_scale_lyric", self.guidance_scale_lyric),
            ("omega_scale", self.omega_scale),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, v, "a finite number >= 0"));
            }
        }
        if !(0.0..=1.0).contains(&self.guidance_interval) {
            return Err(bad("guidance_interval", self.guidance_interval, "0 to 1"));
        }
        if !(0.0..=1.0).contains(&self.guidance_interval_decay) {
            return Err(bad(
                "guidance_interval_decay",
                self.guidance_interval_decay,
                "0 to 1",
            ));
        }
        if self.batch_size == 0 || self.batch_size > 64 {
            return Err(bad("batch_size", self.batch_size, "1 to 64"));
        }
        check_seed_count("manual_seeds", &self.manual_seeds, self.batch_size)?;
        if self.oss_steps.len() > MAX_STEPS
            || self.oss_steps.iter().any(|&s| s == 0 || s > MAX_STEPS)
        {
            return Err(bad(
                "oss_steps",
                list_text(&self.oss_steps),
                "at most 1000 1-based step positions, each 1 to 1000",
            ));
        }
        if !self.oss_steps.is_empty() && self.scheduler_type == SchedulerType::Heun {
            return Err(bad(
                "oss_steps",
                list_text(&self.oss_steps),
                "the euler or pingpong scheduler",
            ));
        }
        crate::audio::Format::from_name(&self.format)?;
        self.lyric_language()?;
        self.validate_task()
    }

    /// The task that runs: `audio2audio_enable` with a `ref_audio_input` turns any task into
    /// audio2audio, as in the reference's `__call__`.
    pub fn effective_task(&self) -> Task {
        if self.audio2audio_enable && self.ref_audio_input.is_some() {
            Task::Audio2audio
        } else {
            self.task
        }
    }

    /// The LoRA to apply (None for "none" in any case, or empty).
    pub fn lora(&self) -> Option<&str> {
        match self.lora_name_or_path.trim() {
            s if s.is_empty() || s.eq_ignore_ascii_case("none") => None,
            s => Some(s),
        }
    }

    fn validate_task(&self) -> Result<()> {
        let task = self.effective_task();
        if !(0.0..=1.0).contains(&self.retake_variance) {
            return Err(bad("retake_variance", self.retake_variance, "0 to 1"));
        }
        check_seed_count("retake_seeds", &self.retake_seeds, self.batch_size)?;
        if !self.lora_weight.is_finite() {
            return Err(bad("lora_weight", self.lora_weight, "a finite number"));
        }
        for (name, v) in [
            ("repaint_start", self.repaint_start),
            ("repaint_end", self.repaint_end),
        ] {
            if !v.is_finite() {
                return Err(bad(name, v, "a finite number of seconds"));
            }
        }
        if task.needs_source() && self.src_audio_path.as_deref().unwrap_or("").is_empty() {
            return Err(bad(
                "src_audio_path",
                "none",
                format!("the source audio of task {task}"),
            ));
        }
        if !task.needs_source() && task != Task::Audio2audio && self.src_audio_path.is_some() {
            return Err(bad(
                "src_audio_path",
                self.src_audio_path.as_deref().unwrap_or(""),
                "no source audio: only repaint, extend and edit read one",
            ));
        }
        match task {
            Task::Repaint => {
                if self.repaint_start < 0.0 || self.repaint_start >= self.repaint_end {
                    return Err(bad(
                        "repaint_start",
                        self.repaint_start,
                        format!(
                            "0 <= repaint_start < repaint_end ({}) (the span to re-generate, in \
                             seconds of the source; task extend goes past its ends)",
                            self.repaint_end
                        ),
                    ));
                }
            }
            Task::Extend => {
                if self.repaint_start > 0.0 || self.repaint_end < self.repaint_start {
                    return Err(bad(
                        "repaint_start",
                        self.repaint_start,
                        "<= 0 (minus the seconds to add before the source), with repaint_end \
                         the source's length plus the seconds to add after",
                    ));
                }
            }
            Task::Edit => {
                if self.edit_target_prompt.as_deref().unwrap_or("").is_empty() {
                    return Err(bad(
                        "edit_target_prompt",
                        "none",
                        "the prompt to edit the source towards",
                    ));
                }
                self.flowedit_settings().validate()?;
                if !self.oss_steps.is_empty() {
                    return Err(bad(
                        "oss_steps",
                        list_text(&self.oss_steps),
                        "none with task edit (FlowEdit runs its own Euler schedule)",
                    ));
                }
            }
            Task::Audio2audio => {
                if self.ref_audio_input.as_deref().unwrap_or("").is_empty() {
                    return Err(bad(
                        "ref_audio_input",
                        "none",
                        "the reference audio of audio2audio",
                    ));
                }
                if !(0.0..1.0).contains(&self.ref_audio_strength) {
                    return Err(bad(
                        "ref_audio_strength",
                        self.ref_audio_strength,
                        "a value in [0, 1)",
                    ));
                }
                self.diffusion_settings()
                    .audio2audio_scheduler(self.ref_audio_strength)?;
            }
            Task::Text2music | Task::Retake => {}
        }
        Ok(())
    }

    /// Resolves the parameters once into what the sampling loops run ([`GenerationPlan`]),
    /// after [`GenerationParams::validate`]; `random` draws the seeds not given.
    pub fn plan(&self, mut random: impl FnMut() -> u64) -> Result<GenerationPlan> {
        self.validate()?;
        let task = self.effective_task();
        let seeds = self.seeds(&mut random);
        let retake_seeds = (task.uses_retake_noise() || task == Task::Edit)
            .then(|| self.retake_seeds(&mut random));
        let (sampler, loop_steps) = match task {
            Task::Edit => {
                let s = self.flowedit_settings();
                let n = s.scheduler()?.timesteps().len();
                (Sampler::FlowEdit(s), n)
            }
            Task::Audio2audio => {
                let s = self.diffusion_settings();
                let n = s
                    .audio2audio_scheduler(self.ref_audio_strength)?
                    .0
                    .timesteps()
                    .len();
                (Sampler::Diffusion(s), n)
            }
            _ => {
                let s = self.diffusion_settings();
                let n = s.scheduler()?.timesteps().len();
                (Sampler::Diffusion(s), n)
            }
        };
        Ok(GenerationPlan {
            task,
            lyric_language: self.lyric_language()?,
            seeds,
            retake_seeds,
            frames: (!task.needs_source() && task != Task::Audio2audio)
                .then(|| self.frame_length()),
            sampler,
            loop_steps,
        })
    }

    /// The FlowEdit settings of task edit.
    pub fn flowedit_settings(&self) -> FlowEditSettings {
        FlowEditSettings {
            infer_steps: self.infer_step,
            guidance_scale: self.guidance_scale,
            n_min: self.edit_n_min,
            n_max: self.edit_n_max,
            n_avg: self.edit_n_avg,
            scheduler_type: self.scheduler_type,
        }
    }

    /// The retake seeds of the batch (as [`GenerationParams::seeds`]).
    pub fn retake_seeds(&self, random: impl FnMut() -> u64) -> Vec<u64> {
        batch_seeds(&self.retake_seeds, self.batch_size, random)
    }

    /// The language every lyric line is read in ([`GenerationParams::lyrics_language`]); None:
    /// each line's language is detected, as the reference does.
    pub fn lyric_language(&self) -> Result<Option<crate::lyrics::Language>> {
        crate::lyrics::Language::parse_forced(self.lyrics_language.as_deref()).map_err(|code| {
            bad(
                "lyrics_language",
                code,
                "auto, or one of en de fr es it pt pl tr ru cs nl ar zh ja hu ko hi",
            )
        })
    }

    /// The seeds of the batch: the given ones (one seed repeats for every item, as the
    /// reference does), else `random`'s draws.
    pub fn seeds(&self, random: impl FnMut() -> u64) -> Vec<u64> {
        batch_seeds(&self.manual_seeds, self.batch_size, random)
    }

    /// The sampling settings (`text2music_diffusion_process` arguments) of these parameters.
    pub fn diffusion_settings(&self) -> DiffusionSettings {
        DiffusionSettings {
            infer_steps: self.infer_step,
            guidance_scale: self.guidance_scale,
            omega_scale: self.omega_scale,
            scheduler_type: self.scheduler_type,
            cfg_type: self.cfg_type,
            zero_steps: 1,
            use_zero_init: true,
            guidance_interval: self.guidance_interval,
            guidance_interval_decay: self.guidance_interval_decay,
            min_guidance_scale: self.min_guidance_scale,
            oss_steps: self.oss_steps.clone(),
            use_erg_lyric: self.use_erg_lyric,
            use_erg_diffusion: self.use_erg_diffusion,
            guidance_scale_text: self.guidance_scale_text,
            guidance_scale_lyric: self.guidance_scale_lyric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_json_round_trips_with_defaults_and_string_lists() {
        let p: GenerationParams = serde_json::from_str(
            r#"{"prompt": "funk", "audio_duration": 30, "oss_steps": "16, 29,52", "manual_seeds": "7", "scheduler_type": "pingpong", "cfg_type": "cfg_star"}"#,
        )
        .unwrap();
        assert_eq!(p.oss_steps, vec![16, 29, 52]);
        assert_eq!(p.manual_seeds, vec![7]);
        assert_eq!(p.infer_step, 60);
        assert_eq!(p.scheduler_type, SchedulerType::PingPong);
        assert_eq!(p.cfg_type, CfgType::CfgStar);
        assert_eq!(p.frame_length(), 322); // int(30 * 44100 / 4096) = int(322.998)
        p.validate().unwrap();
        let back: GenerationParams =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.oss_steps, p.oss_steps);
        let q: GenerationParams =
            serde_json::from_str(r#"{"manual_seeds": [1, 2], "batch_size": 2, "oss_steps": null}"#)
                .unwrap();
        assert_eq!(q.seeds(|| 0), vec![1, 2]);
        assert!(q.oss_steps.is_empty());
    }

    #[test]
    fn tasks_and_lora_names_read_as_the_reference() {
        let p: GenerationParams = serde_json::from_str(
            r#"{"task": "repaint", "retake_seeds": "3,4", "batch_size": 2, "lora_name_or_path": "None",
                "audio2audio_enable": true, "ref_audio_input": "ref.wav"}"#,
        )
        .unwrap();
        assert_eq!(p.task, Task::Repaint);
        assert_eq!(p.retake_seeds(|| 0), vec![3, 4]);
        // audio2audio_enable with a reference overrides the task, as the reference's __call__.
        assert_eq!(p.effective_task(), Task::Audio2audio);
        for none in ["None", "none", "", "  "] {
            let q = GenerationParams {
                lora_name_or_path: none.into(),
                ..Default::default()
            };
            assert_eq!(q.lora(), None, "{none:?}");
        }
        let q = GenerationParams {
            lora_name_or_path: "ACE-Step/ACE-Step-v1-chinese-rap-LoRA".into(),
            ..Default::default()
        };
        assert_eq!(q.lora(), Some("ACE-Step/ACE-Step-v1-chinese-rap-LoRA"));
        assert_eq!(
            serde_json::to_value(GenerationParams::default()).unwrap()["task"],
            "text2music"
        );
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let cases: Vec<(GenerationParams, &str)> = vec![
            (
                GenerationParams {
                    audio_duration: -1.0,
                    ..Default::default()
                },
                "audio_duration",
            ),
            (
                GenerationParams {
                    audio_duration: 241.0,
                    ..Default::default()
                },
                "audio_duration",
            ),
            (
                GenerationParams {
                    infer_step: 0,
                    ..Default::default()
                },
                "infer_step",
            ),
            (
                GenerationParams {
                    guidance_interval: 1.5,
                    ..Default::default()
                },
                "guidance_interval",
            ),
            (
                GenerationParams {
                    batch_size: 0,
                    ..Default::default()
                },
                "batch_size",
            ),
            (
                GenerationParams {
                    manual_seeds: vec![1, 2],
                    batch_size: 3,
                    ..Default::default()
                },
                "manual_seeds",
            ),
            (
                GenerationParams {
                    oss_steps: vec![3],
                    scheduler_type: SchedulerType::Heun,
                    ..Default::default()
                },
                "oss_steps",
            ),
            (
                GenerationParams {
                    format: "ogg".into(),
                    ..Default::default()
                },
                "format",
            ),
        ];
        for (p, name) in cases {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        assert!(serde_json::from_str::<GenerationParams>(r#"{"scheduler_type": "ddim"}"#).is_err());
    }

    #[test]
    fn the_plan_counts_the_loop_steps_and_frames_once() {
        let base = GenerationParams {
            audio_duration: 30.0,
            ..Default::default()
        };
        let steps = |p: GenerationParams| p.plan(|| 7).unwrap().loop_steps;
        let euler = GenerationParams {
            infer_step: 27,
            ..base.clone()
        };
        let plan = euler.plan(|| 7).unwrap();
        assert_eq!((plan.loop_steps, plan.frames), (27, Some(322)));
        assert_eq!(plan.seeds, vec![7]);
        assert!(plan.retake_seeds.is_none());
        let heun = GenerationParams {
            infer_step: 10,
            scheduler_type: SchedulerType::Heun,
            ..base.clone()
        };
        assert_eq!(steps(heun), 19); // 2n - 1 model calls
        let oss = GenerationParams {
            oss_steps: vec![16, 29, 52],
            ..base.clone()
        };
        assert_eq!(steps(oss), 3);
        let a2a = GenerationParams {
            audio2audio_enable: true,
            ref_audio_input: Some("ref.wav".into()),
            ref_audio_strength: 0.5,
            ..base.clone()
        };
        let plan = a2a.plan(|| 7).unwrap();
        assert_eq!((plan.loop_steps, plan.frames), (30, None)); // int(0.5 * 60)
        let edit = GenerationParams {
            task: Task::Edit,
            src_audio_path: Some("src.wav".into()),
            edit_target_prompt: Some("jazz".into()),
            infer_step: 12,
            scheduler_type: SchedulerType::Heun,
            ..base
        };
        let plan = edit.plan(|| 9).unwrap();
        assert_eq!(plan.loop_steps, 12); // FlowEdit walks its own Euler schedule
        assert_eq!(plan.retake_seeds, Some(vec![9]));
        assert!(matches!(plan.sampler, Sampler::FlowEdit(_)));
    }
}

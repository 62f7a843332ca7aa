//! `acestep generate`: the flags are merged over `--params` into one JSON object of the
//! reference's parameters, which is read as [`GenerationParams`] (so the defaults are those of
//! [`GenerationParams::default`], and a flag and its `--params` key cannot disagree).

use std::path::PathBuf;
use std::time::Instant;

use acestep::pipeline::{write_songs, Task};
use acestep::{Control, GenerationParams, Progress};
use serde_json::{Map, Value};

use crate::model::{LyricArgs, ModelArgs};
use crate::read_text_arg;

/// Options of `acestep generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The prompt (tags), e.g. "funk, groovy bass, 110 bpm".
    #[arg(long)]
    prompt: String,
    /// Lyrics: a text file, or `-` for standard input (structure tags such as [verse] on
    /// their own lines). Without it the song is instrumental.
    #[arg(long)]
    lyrics: Option<String>,
    /// Read every lyric line in this language (en de fr es it pt pl tr ru cs nl ar zh ja hu
    /// ko hi) instead of detecting each line's language as the reference does (default:
    /// auto, detection).
    #[arg(long)]
    lyrics_language: Option<String>,
    #[command(flatten)]
    lyric: LyricArgs,
    /// Seconds of audio, up to 240 (default 60, as the reference).
    #[arg(long, allow_negative_numbers = true)]
    duration: Option<f64>,
    /// Diffusion steps (default 60).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed(s): one, or a comma list with one per batch item.
    #[arg(long)]
    seed: Option<String>,
    /// euler (default), heun or pingpong.
    #[arg(long)]
    scheduler: Option<String>,
    /// apg (default), cfg or cfg_star.
    #[arg(long)]
    cfg_type: Option<String>,
    /// Guidance scale (default 15).
    #[arg(long)]
    guidance_scale: Option<f64>,
    /// Songs to generate (files get _0, _1, ... suffixes when more than one; default 1).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Every parameter, as the reference's JSON (e.g. '{"omega_scale": 5, "oss_steps":
    /// "16,29,52"}'); the flags given override its keys.
    #[arg(long)]
    params: Option<String>,
    /// Output file (.wav, .flac, .mp3).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    edit: EditArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// The editing tasks and LoRA options of `acestep generate` (the reference's parameters).
#[derive(clap::Args, Debug)]
struct EditArgs {
    /// text2music (default), retake, repaint, extend, edit or audio2audio (--ref-audio implies
    /// audio2audio).
    #[arg(long)]
    task: Option<String>,
    /// Source audio of repaint, extend and edit (wav, flac, mp3, ogg).
    #[arg(long)]
    src_audio: Option<PathBuf>,
    /// repaint: start of the span to re-generate (seconds); extend: negative = seconds added
    /// before the source.
    #[arg(long, allow_negative_numbers = true)]
    repaint_start: Option<f64>,
    /// repaint: end of the span (seconds); extend: past the source's length = seconds added
    /// after.
    #[arg(long, allow_negative_numbers = true)]
    repaint_end: Option<f64>,
    /// extend: seconds to add before the source (sets repaint_start = -SECONDS).
    #[arg(long)]
    extend_left: Option<f64>,
    /// extend: seconds to add after the source (sets repaint_end = source length + SECONDS).
    #[arg(long)]
    extend_right: Option<f64>,
    /// Retake seed(s): one, or one per batch item (retake, repaint, extend, edit).
    #[arg(long)]
    retake_seeds: Option<String>,
    /// How far a retake moves from the original, 0 to 1 (default 0.5).
    #[arg(long)]
    retake_variance: Option<f64>,
    /// edit: the prompt to move the source to.
    #[arg(long)]
    edit_target_prompt: Option<String>,
    /// edit: the lyrics to move the source to: a file, or `-` for standard input.
    #[arg(long)]
    edit_target_lyrics: Option<String>,
    /// edit: fraction of the steps skipped at the start (default 0).
    #[arg(long)]
    edit_n_min: Option<f64>,
    /// edit: fraction of the steps after which plain sampling takes over (default 1).
    #[arg(long)]
    edit_n_max: Option<f64>,
    /// edit: velocity differences averaged per step (default 1).
    #[arg(long)]
    edit_n_avg: Option<usize>,
    /// audio2audio: the reference audio.
    #[arg(long)]
    ref_audio: Option<PathBuf>,
    /// audio2audio: how much of the reference to keep, in [0, 1) (default 0.5).
    #[arg(long)]
    ref_audio_strength: Option<f64>,
    /// A LoRA: pytorch_lora_weights.safetensors, its folder, or a hub repo id.
    #[arg(long)]
    lora: Option<String>,
    /// The LoRA's weight (default 1).
    #[arg(long, allow_negative_numbers = true)]
    lora_weight: Option<f64>,
}

/// A comma list of seeds.
fn parse_seeds(name: &'static str, s: &str) -> acestep::Result<Vec<u64>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| acestep::Error::InvalidArgument {
                    name,
                    value: x.to_string(),
                    expected: "a non-negative integer (or a comma list)".into(),
                })
        })
        .collect()
}

/// An input audio file given as a flag: it must exist.
fn existing(what: &str, path: &std::path::Path) -> acestep::Result<Value> {
    if !path.is_file() {
        return Err(acestep::Error::MissingPath {
            what: what.into(),
            path: path.to_path_buf(),
        });
    }
    Ok(Value::String(path.to_string_lossy().into_owned()))
}

/// A value that serialises (the enums parsed from flags).
fn json(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Args {
    /// The parameters: `--params`, with every flag given set over it under its reference name.
    fn params(&self) -> acestep::Result<GenerationParams> {
        let mut obj = match &self.params {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(_) | Err(_) => return Err(bad_params(text, "not a JSON object")),
            },
            None => Map::new(),
        };
        let mut set = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                obj.insert(key.to_string(), v);
            }
        };
        set("prompt", Some(Value::String(self.prompt.clone())));
        set(
            "lyrics",
            self.lyrics
                .as_deref()
                .map(read_text_arg)
                .transpose()?
                .map(Value::String),
        );
        set(
            "lyrics_language",
            self.lyrics_language.clone().map(Value::String),
        );
        set("audio_duration", self.duration.map(Value::from));
        set("infer_step", self.steps.map(Value::from));
        let seeds = self
            .seed
            .as_deref()
            .map(|s| parse_seeds("seed", s))
            .transpose()?;
        set("manual_seeds", seeds.map(json));
        let scheduler = self
            .scheduler
            .as_deref()
            .map(str::parse::<acestep::schedulers::SchedulerType>);
        set("scheduler_type", scheduler.transpose()?.map(json));
        let cfg = self
            .cfg_type
            .as_deref()
            .map(str::parse::<acestep::guidance::CfgType>);
        set("cfg_type", cfg.transpose()?.map(json));
        set("guidance_scale", self.guidance_scale.map(Value::from));
        set("batch_size", self.batch_size.map(Value::from));
        let format = acestep::audio::Format::from_path(&self.output)?;
        set(
            "format",
            Some(Value::String(format.extension().to_string())),
        );
        self.edit.set(&mut obj)?;
        let text = Value::Object(obj);
        let p: GenerationParams = serde_json::from_value(text.clone())
            .map_err(|e| bad_params(&text.to_string(), &e.to_string()))?;
        p.validate()?;
        Ok(p)
    }
}

fn bad_params(value: &str, why: &str) -> acestep::Error {
    acestep::Error::InvalidArgument {
        name: "params",
        value: value.to_string(),
        expected: format!("a JSON object of generation parameters ({why})"),
    }
}

impl EditArgs {
    /// Sets the editing parameters given as flags in `obj`.
    fn set(&self, obj: &mut Map<String, Value>) -> acestep::Result<()> {
        let mut set = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                obj.insert(key.to_string(), v);
            }
        };
        let task = self.task.as_deref().map(str::parse::<Task>).transpose()?;
        set("task", task.map(json));
        let src = self.src_audio.as_ref();
        set(
            "src_audio_path",
            src.map(|s| existing("source audio (--src-audio)", s))
                .transpose()?,
        );
        if let Some(r) = &self.ref_audio {
            set(
                "ref_audio_input",
                Some(existing("reference audio (--ref-audio)", r)?),
            );
            set("audio2audio_enable", Some(Value::Bool(true)));
        }
        set("repaint_start", self.repaint_start.map(Value::from));
        set("repaint_end", self.repaint_end.map(Value::from));
        set("retake_variance", self.retake_variance.map(Value::from));
        set("edit_n_min", self.edit_n_min.map(Value::from));
        set("edit_n_max", self.edit_n_max.map(Value::from));
        set("edit_n_avg", self.edit_n_avg.map(Value::from));
        set(
            "ref_audio_strength",
            self.ref_audio_strength.map(Value::from),
        );
        set("lora_weight", self.lora_weight.map(Value::from));
        set("lora_name_or_path", self.lora.clone().map(Value::String));
        let retake = self.retake_seeds.as_deref();
        set(
            "retake_seeds",
            retake
                .map(|s| parse_seeds("retake_seeds", s))
                .transpose()?
                .map(json),
        );
        set(
            "edit_target_prompt",
            self.edit_target_prompt.clone().map(Value::String),
        );
        let target = self.edit_target_lyrics.as_deref();
        set(
            "edit_target_lyrics",
            target.map(read_text_arg).transpose()?.map(Value::String),
        );
        if self.extend_left.is_some() || self.extend_right.is_some() {
            let task = obj
                .get("task")
                .and_then(Value::as_str)
                .unwrap_or("text2music");
            if task != Task::Extend.name() {
                return Err(acestep::Error::InvalidArgument {
                    name: "extend_left/extend_right",
                    value: task.to_string(),
                    expected: "--task extend".into(),
                });
            }
            let src = obj
                .get("src_audio_path")
                .and_then(Value::as_str)
                .ok_or_else(|| acestep::Error::InvalidArgument {
                    name: "src_audio_path",
                    value: "none".into(),
                    expected: "--src-audio: the clip to extend".into(),
                })?;
            let seconds = acestep::audio::read(src)?.duration();
            obj.insert(
                "repaint_start".into(),
                Value::from(-self.extend_left.unwrap_or(0.0)),
            );
            obj.insert(
                "repaint_end".into(),
                Value::from(seconds + self.extend_right.unwrap_or(0.0)),
            );
        }
        Ok(())
    }
}

/// Generates the songs and writes them with their sidecars.
pub fn run(a: Args) -> acestep::Result<()> {
    let p = a.params()?;
    let mut m = a.model.resolve()?;
    m.options.lyric_vocab = a.lyric.lyric_vocab.clone();
    m.options.ja_dict = a.lyric.ja_dict.clone();
    let t0 = Instant::now();
    let pipe = m.pipeline()?;
    let load_s = t0.elapsed().as_secs_f64();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t1 = Instant::now();
    let songs = pipe.generate_with_progress(&p, &mut |pr| {
        match pr {
            Progress::Encoding => bar.set_message("encoding"),
            Progress::Step(s) => {
                bar.set_message("diffusion");
                bar.set_length(s.total as u64);
                bar.set_position(s.step as u64);
            }
            Progress::Decoding { item, of } => {
                bar.set_message("decoding");
                bar.set_length(of as u64);
                bar.set_position(item as u64);
            }
        }
        Control::Continue
    })?;
    bar.finish_and_clear();
    let gen_s = t1.elapsed().as_secs_f64();
    let written = write_songs(
        &songs,
        &p,
        &a.output,
        &serde_json::json!({"load_seconds": load_s, "generate_seconds": gen_s}),
    )?;
    let files: Vec<_> = written
        .iter()
        .map(
            |w| serde_json::json!({"audio": w.audio_path, "params": w.params_path, "seed": w.seed}),
        )
        .collect();
    println!(
        "{}",
        serde_json::json!({"files": files, "load_seconds": load_s, "generate_seconds": gen_s})
    );
    Ok(())
}

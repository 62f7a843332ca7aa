//! The measurements of the GPU check (`tools/gpu-check.sh` runs them on a GPU machine; they run
//! on any device): timings of each component at the full configs with random weights, a whole
//! generation from a full-size random checkpoint, and that checkpoint's writer.
//!
//! ```sh
//! gpu_check components [--device cuda] [--dtype bf16] [--reps 3] [--tiny]
//! gpu_check checkpoint OUT_DIR                      # ~15 GB of seeded random f32 weights
//! gpu_check generate --checkpoint DIR --seconds 60 [--steps 27] [--device cuda] [--dtype bf16]
//!                    [--vocab vocab.json]
//! gpu_check drift --checkpoint DIR --seconds 10 [--steps 27] [--device cuda] [--dtype bf16]
//! ```
//!
//! `drift` is the whole pipeline's reduced-precision drift: the same generation (same seed) in
//! `--dtype` and in f32 on the same device, final latents and audio compared.
//!
//! Every timing is the median of `--reps` calls after one warm-up call, each ended by a device
//! synchronization. A generation runs text2music with the defaults of the reference's pipeline
//! (Euler, APG at 15, ERG on for tag, lyric and diffusion) after a 2-step warm-up generation
//! (the first use of each GPU kernel loads its module). `--tiny` (components) uses the tiny
//! fixture configs, for a dry run on the CPU. Fixtures are read from `$ACESTEP_FIXTURES`, else
//! `tests/fixtures` of this crate.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use acestep::dcae::{AutoencoderDcConfig, MusicDcae};
use acestep::dit::{AceStepTransformer2DModel, AceStepTransformerConfig};
use acestep::testing::random_var_builder;
use acestep::text_encoder::{Umt5Config, Umt5EncoderModel};
use acestep::vocoder::VocoderConfig;
use acestep::{Checkpoint, Control, GenerationParams, Pipeline, PipelineOptions, Progress};
use candle_core::{DType, Device, Tensor};

type Res<T> = Result<T, Box<dyn Error>>;

/// Command-line options (`--name value` pairs and flags after the command).
struct Args {
    command: String,
    positional: Vec<String>,
    device: Device,
    dtype: DType,
    reps: usize,
    tiny: bool,
    checkpoint: Option<PathBuf>,
    seconds: f64,
    steps: usize,
    vocab: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let command = it
        .next()
        .ok_or("usage: gpu_check components|checkpoint|generate ...")?;
    let (mut device, mut dtype) = ("cpu".to_string(), "f32".to_string());
    let mut a = Args {
        command,
        positional: Vec::new(),
        device: Device::Cpu,
        dtype: DType::F32,
        reps: 3,
        tiny: false,
        checkpoint: None,
        seconds: 60.0,
        steps: 27,
        vocab: None,
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--device" => device = value()?,
            "--dtype" => dtype = value()?,
            "--reps" => a.reps = value()?.parse()?,
            "--tiny" => a.tiny = true,
            "--checkpoint" => a.checkpoint = Some(value()?.into()),
            "--seconds" => a.seconds = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--vocab" => a.vocab = Some(value()?.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}").into()),
            s => a.positional.push(s.to_string()),
        }
    }
    a.device = acestep::device::parse_device(&device)?;
    // The test switches' parser: bf16 is allowed on the CPU here (a dry run).
    a.dtype = acestep::testing::parse_float_dtype("--dtype", &dtype)?;
    a.reps = a.reps.max(1);
    Ok(a)
}

/// The config of `component`: the full one from its manifest, or the tiny fixture's.
fn config<T: serde::de::DeserializeOwned>(component: &str, tiny: bool) -> Res<T> {
    let value = if tiny {
        let path = acestep::testing::fixtures_dir().join(format!("tiny/{component}/config.json"));
        serde_json::from_str(&std::fs::read_to_string(path)?)?
    } else {
        let path = acestep::testing::fixtures_dir().join(format!("manifests/{component}.json"));
        acestep::testing::read_manifest(&path)?.config
    };
    Ok(serde_json::from_value(value)?)
}

/// Median seconds of `reps` calls of `f` after one warm-up call, each synchronized.
fn time(dev: &Device, reps: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    dev.synchronize()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        dev.synchronize()?;
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn report(name: &str, secs: f64, audio_seconds: Option<f64>) {
    match audio_seconds {
        Some(a) => println!(
            "gpu_check {name}: {:.1} ms ({:.1}x real time)",
            secs * 1e3,
            a / secs
        ),
        None => println!("gpu_check {name}: {:.1} ms", secs * 1e3),
    }
}

/// The lengths timed: (latent frames, seconds of audio) of 10 s and 60 s as the benches have
/// them (T = 107 and 646), or short ones for a dry run at the tiny configs.
fn lengths(tiny: bool) -> [(usize, f64); 2] {
    let secs = |t: usize| t as f64 * 4096.0 / 44100.0;
    if tiny {
        [(16, secs(16)), (64, secs(64))]
    } else {
        [(107, 10.0), (646, 60.0)]
    }
}

fn components(a: &Args) -> Res<()> {
    let (dev, dt, reps) = (&a.device, a.dtype, a.reps);
    let vb = || random_var_builder(0.02, dt, dev);
    {
        let cfg: Umt5Config = config("umt5-base", a.tiny)?;
        let model = Umt5EncoderModel::new(&cfg, vb())?;
        for len in [64usize, 256] {
            let ids: Vec<u32> = (0..len as u32)
                .map(|i| i * 37 % cfg.vocab_size as u32)
                .collect();
            let ids = Tensor::from_vec(ids, (1, len), dev)?;
            let mask = Tensor::ones((1, len), dt, dev)?;
            let s = time(dev, reps, || {
                model.forward(&ids, &mask, None)?;
                Ok(())
            })?;
            report(&format!("umt5 encode {len} tokens"), s, None);
        }
    }
    {
        let cfg: AceStepTransformerConfig = config("ace_step_transformer", a.tiny)?;
        let model = AceStepTransformer2DModel::new(&cfg, vb())?;
        let (text_tokens, lyric_tokens) = (64usize, 256usize);
        let text = Tensor::randn(0f32, 1.0, (1, text_tokens, cfg.text_embedding_dim), dev)?
            .to_dtype(dt)?;
        let text_mask = Tensor::ones((1, text_tokens), dt, dev)?;
        let speaker = Tensor::zeros((1, cfg.speaker_embedding_dim), dt, dev)?;
        let ids: Vec<u32> = (0..lyric_tokens as u32)
            .map(|i| i * 7 % cfg.lyric_encoder_vocab_size as u32)
            .collect();
        let lyrics = Tensor::from_vec(ids, (1, lyric_tokens), dev)?;
        let lyric_mask = Tensor::ones((1, lyric_tokens), dt, dev)?;
        let s = time(dev, reps, || {
            model.encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)?;
            Ok(())
        })?;
        report("dit encode (64 prompt + 256 lyric tokens)", s, None);
        let (enc, enc_mask) =
            model.encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)?;
        let cond = model.prepare_condition(&enc, &enc_mask)?;
        let timestep = Tensor::new(&[500f32], dev)?;
        for (t, secs) in lengths(a.tiny) {
            let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), dev)?.to_dtype(dt)?;
            let mask = Tensor::ones((1, t), dt, dev)?;
            let s = time(dev, reps, || {
                model.decode_with(&latents, &mask, &cond, &timestep, t, None)?;
                Ok(())
            })?;
            report(
                &format!("dit decode T={t} ({secs:.1} s), one pass"),
                s,
                None,
            );
        }
    }
    {
        let dcae_cfg: AutoencoderDcConfig = config("music_dcae_f8c8", a.tiny)?;
        let voc_cfg: VocoderConfig = config("music_vocoder", a.tiny)?;
        let model = MusicDcae::new(&dcae_cfg, &voc_cfg, vb(), vb())?;
        for (t, secs) in lengths(a.tiny) {
            let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), dev)?.to_dtype(dt)?;
            let s = time(dev, reps, || {
                model.decode(&latents)?;
                Ok(())
            })?;
            report(&format!("MusicDCAE.decode {secs:.1} s"), s, Some(secs));
        }
        let [(_, short), (t, secs)] = lengths(a.tiny);
        let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), dev)?.to_dtype(dt)?;
        let s = time(dev, reps, || {
            model.decode_overlap(&latents)?;
            Ok(())
        })?;
        report(
            &format!("MusicDCAE.decode_overlap {secs:.1} s"),
            s,
            Some(secs),
        );
        let samples = (short * 44100.0) as usize;
        let audio = Tensor::randn(0f32, 0.1, (1, 2, samples), dev)?.to_dtype(dt)?;
        let s = time(dev, reps, || {
            model.encode(&audio, None)?;
            Ok(())
        })?;
        report(&format!("MusicDCAE.encode {short:.1} s"), s, Some(short));
    }
    Ok(())
}

const PROMPT: &str =
    "pop, rock, upbeat, electric guitar, drums, bass, energetic male vocals, 120 bpm";
const LYRICS: &str = "[verse]\nWe ran along the river when the night was young\n\
    Every light was singing and the road had just begun\n\
    [chorus]\nHold on, hold on, the morning's coming soon\n\
    We'll dance across the rooftops underneath the moon\n";

/// The timed song: text2music with the pipeline's defaults, seed 42, lyrics when a vocab is given.
fn song(a: &Args, seconds: f64, steps: usize) -> GenerationParams {
    GenerationParams {
        prompt: PROMPT.into(),
        lyrics: if a.vocab.is_some() { LYRICS } else { "" }.into(),
        audio_duration: seconds,
        infer_step: steps,
        manual_seeds: vec![42],
        ..Default::default()
    }
}

fn generate(a: &Args) -> Res<()> {
    let dir = a
        .checkpoint
        .clone()
        .ok_or("generate needs --checkpoint DIR")?;
    let options = PipelineOptions {
        device: a.device.clone(),
        dtype: Some(a.dtype),
        lyric_vocab: a.vocab.clone(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let pipe = Pipeline::load(&Checkpoint::from_dir(&dir)?, &options)?;
    a.device.synchronize()?;
    println!("gpu_check load: {:.1} s", t0.elapsed().as_secs_f64());
    let params = |seconds: f64, steps: usize| song(a, seconds, steps);
    let t0 = Instant::now();
    pipe.generate(&params(a.seconds.min(10.0), 2))?;
    a.device.synchronize()?;
    println!(
        "gpu_check warm-up (2 steps): {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let (mut first_step, mut decode_start) = (None, None);
    let t0 = Instant::now();
    let songs = pipe.generate_with_progress(&params(a.seconds, a.steps), &mut |p| {
        match p {
            Progress::Step(s) if s.step == 1 => first_step = Some(Instant::now()),
            Progress::Decoding { .. } if decode_start.is_none() => {
                decode_start = Some(Instant::now())
            }
            _ => {}
        }
        Control::Continue
    })?;
    a.device.synchronize()?;
    let total = t0.elapsed().as_secs_f64();
    let audio = &songs[0].audio;
    let finite = audio.channels.iter().flatten().all(|x| x.is_finite());
    println!(
        "gpu_check generate {} s, {} steps: {total:.2} s = {:.1}x real time ({} samples, finite: {finite})",
        a.seconds,
        a.steps,
        a.seconds / total,
        audio.len()
    );
    if let (Some(s1), Some(d)) = (first_step, decode_start) {
        let per_step = (d - s1).as_secs_f64() / (a.steps.max(2) - 1) as f64;
        println!(
            "gpu_check   encode + step 1: {:.2} s, {per_step:.3} s per step after, decode: {:.2} s",
            (s1 - t0).as_secs_f64(),
            (Instant::now() - d).as_secs_f64()
        );
    }
    if !finite {
        return Err("the generated audio has non-finite samples".into());
    }
    Ok(())
}

fn drift(a: &Args) -> Res<()> {
    let dir = a.checkpoint.clone().ok_or("drift needs --checkpoint DIR")?;
    let checkpoint = Checkpoint::from_dir(&dir)?;
    let params = song(a, a.seconds, a.steps);
    let run = |dtype: DType| -> Res<acestep::GeneratedAudio> {
        let options = PipelineOptions {
            device: a.device.clone(),
            dtype: Some(dtype),
            lyric_vocab: a.vocab.clone(),
            ..Default::default()
        };
        let pipe = Pipeline::load(&checkpoint, &options)?;
        let mut songs = pipe.generate(&params)?;
        Ok(songs.remove(0))
    };
    let reduced = run(a.dtype)?;
    let full = run(DType::F32)?;
    let c = acestep::testing::compare(&reduced.latents, &full.latents)?;
    println!(
        "gpu_check drift {:?} vs f32, {} s, {} steps: final latents max_rel {:.3e} (max_abs {:.3e})",
        a.dtype, a.seconds, a.steps, c.max_rel, c.max_abs
    );
    let (x, y) = (&reduced.audio.channels[0], &full.audio.channels[0]);
    let peak = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let err = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    println!(
        "gpu_check drift audio (left channel): max_rel {:.3e}",
        err / peak
    );
    Ok(())
}

fn main() -> Res<()> {
    let a = parse_args()?;
    println!("gpu_check device {:?}, dtype {:?}", a.device, a.dtype);
    match a.command.as_str() {
        "components" => components(&a),
        "generate" => generate(&a),
        "drift" => drift(&a),
        "checkpoint" => {
            let out = a.positional.first().ok_or("checkpoint needs OUT_DIR")?;
            Ok(acestep::testing::write_random_checkpoint(
                &PathBuf::from(out),
                &acestep::testing::fixtures_dir(),
            )?)
        }
        other => Err(
            format!("unknown command {other}: components, checkpoint, generate or drift").into(),
        ),
    }
}

//! The `acestep` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use acestep::device::{parse_device, parse_dtype};
use acestep::{Checkpoint, QueryScale, TextEncoder};
use clap::{Args, Parser, Subcommand};

/// ACE-Step v1 3.5B music generation, in pure Rust.
#[derive(Parser, Debug)]
#[command(name = "acestep", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that loads the model.
#[derive(Args, Debug)]
struct ModelArgs {
    /// Local checkpoint directory (ace_step_transformer/, music_dcae_f8c8/, music_vocoder/,
    /// umt5-base/). Without it, the hub repository is downloaded into the Hugging Face cache.
    #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Hub repository to download when no directory is given.
    #[arg(long, default_value = acestep::DEFAULT_REPO_ID)]
    repo_id: String,
    /// auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// auto (bf16 on GPU, f32 on CPU), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Quantize the DiT's and the text encoder's linear layers and embedding as they load:
    /// q8_0, q6k, q5k or q4k (a checkpoint written by `acestep quantize` is read as stored).
    #[arg(long)]
    quantize: Option<String>,
    /// Keep each model in memory only while its stage runs (text encoder, DiT, DCAE + vocoder):
    /// the smallest peak, for a reload of each model per generation.
    #[arg(long)]
    offload: bool,
}

/// The pipeline options of `m`.
fn pipeline_options(m: &ModelArgs) -> acestep::Result<acestep::pipeline::PipelineOptions> {
    Ok(acestep::pipeline::PipelineOptions {
        quantize: m.quantize.as_deref().map(str::parse).transpose()?,
        offload: m.offload,
    })
}

// Parsed once per run: the variants' sizes do not matter (without the `server` feature the
// largest one stands out).
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Encode a prompt with the UMT5 text encoder and print the shape and a checksum.
    EncodeText {
        /// The prompt (tags), e.g. "funk, groovy bass, 110 bpm".
        prompt: String,
        /// Also compute the ERG-tag null condition (queries of layers 8..10 scaled by 0.01).
        #[arg(long)]
        erg: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Generate music from a prompt (text2music) and write it with a `.json` sidecar of every
    /// parameter and the seeds used.
    Generate {
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
        /// The lyric vocab.json (else $ACESTEP_LYRIC_VOCAB, <checkpoint>/lyric_tokenizer/, or a
        /// download from the ACE-Step Space).
        #[arg(long, env = "ACESTEP_LYRIC_VOCAB")]
        lyric_vocab: Option<PathBuf>,
        /// The UniDic dictionary folder of unidic-lite 1.0.8 for Japanese lyric lines (romaji);
        /// `pip install unidic-lite==1.0.8`, its `unidic_lite.DICDIR`.
        #[arg(long, env = "ACESTEP_JA_DICT")]
        ja_dict: Option<PathBuf>,
        /// Seconds of audio, up to 240.
        #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
        duration: f64,
        /// Diffusion steps.
        #[arg(long, default_value_t = 60)]
        steps: usize,
        /// Seed(s): one, or a comma list with one per batch item.
        #[arg(long)]
        seed: Option<String>,
        /// euler, heun or pingpong.
        #[arg(long, default_value = "euler")]
        scheduler: String,
        /// apg, cfg or cfg_star.
        #[arg(long, default_value = "apg")]
        cfg_type: String,
        /// Guidance scale.
        #[arg(long, default_value_t = 15.0)]
        guidance_scale: f64,
        /// Songs to generate (files get _0, _1, ... suffixes when more than one).
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        /// Every other parameter, as the reference's JSON (e.g. '{"omega_scale": 5, "oss_steps": "16,29,52"}');
        /// the flags above override it.
        #[arg(long)]
        params: Option<String>,
        /// Output file (.wav, .flac, .mp3).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        edit: Box<EditArgs>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Encode an audio file to latents with the music DCAE and decode it back (the autoencoder's
    /// round trip; long files decode in overlapping windows).
    Reconstruct {
        /// Input audio (wav, flac, mp3, ogg; any rate, mono or stereo).
        input: PathBuf,
        /// Output file; the format follows the extension (wav = 32-bit float, flac, mp3).
        #[arg(short, long)]
        output: PathBuf,
        /// Output sample rate (the model works at 44100).
        #[arg(long, default_value_t = 44100)]
        sample_rate: u32,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Tokenize lyrics as the model reads them and print, as JSON, each line's language and token
    /// ids and the full id sequence.
    TokenizeLyrics {
        /// A lyrics file, or `-` (default) for standard input.
        #[arg(default_value = "-")]
        input: String,
        /// `auto` (default): each line's language detected as the reference does; or one of en
        /// de fr es it pt pl tr ru cs nl ar zh ja hu ko hi for every line.
        #[arg(long, default_value = "auto")]
        lang: String,
        /// The lyric vocab.json (else $ACESTEP_LYRIC_VOCAB, <checkpoint>/lyric_tokenizer/, or a
        /// download from the ACE-Step Space).
        #[arg(long, env = "ACESTEP_LYRIC_VOCAB")]
        lyric_vocab: Option<PathBuf>,
        /// The UniDic dictionary folder of unidic-lite 1.0.8 for Japanese lyric lines (romaji);
        /// `pip install unidic-lite==1.0.8`, its `unidic_lite.DICDIR`.
        #[arg(long, env = "ACESTEP_JA_DICT")]
        ja_dict: Option<PathBuf>,
        /// A checkpoint directory to look for lyric_tokenizer/vocab.json in.
        #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
        checkpoint_dir: Option<PathBuf>,
    },
    /// Serve the three async-task API dialects over HTTP (job queue, persistence, downloads).
    #[cfg(feature = "server")]
    Serve(ServeArgs),
    /// Write a quantized copy of a checkpoint (the DiT's and the text encoder's weights as GGUF
    /// in the same folder layout; `--checkpoint-dir OUT` then loads it).
    Quantize {
        /// The float checkpoint to read.
        #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
        checkpoint_dir: PathBuf,
        /// q8_0, q6k, q5k or q4k.
        #[arg(long)]
        to: String,
        /// The new checkpoint folder (must not exist or be empty).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// The editing tasks and LoRA options of `acestep generate` (the reference's parameters).
#[derive(Args, Debug)]
struct EditArgs {
    /// text2music, retake, repaint, extend, edit or audio2audio (--ref-audio implies
    /// audio2audio).
    #[arg(long, default_value = "text2music")]
    task: String,
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

/// A text argument that is a file, or `-` for standard input.
fn read_text_arg(src: &str) -> acestep::Result<String> {
    if src == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| acestep::Error::io("<stdin>", e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(src).map_err(|e| acestep::Error::io(src, e))
    }
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

impl EditArgs {
    /// Sets the editing parameters of `p`.
    fn apply(self, p: &mut acestep::pipeline::GenerationParams) -> acestep::Result<()> {
        p.task = self.task.parse()?;
        let path = |x: PathBuf| x.to_string_lossy().into_owned();
        if let Some(src) = self.src_audio {
            if !src.is_file() {
                return Err(acestep::Error::MissingPath {
                    what: "source audio (--src-audio)".into(),
                    path: src,
                });
            }
            p.src_audio_path = Some(path(src));
        }
        if let Some(r) = self.ref_audio {
            if !r.is_file() {
                return Err(acestep::Error::MissingPath {
                    what: "reference audio (--ref-audio)".into(),
                    path: r,
                });
            }
            p.ref_audio_input = Some(path(r));
            p.audio2audio_enable = true;
        }
        macro_rules! set {
            ($($field:ident = $v:expr),*) => { $(if let Some(v) = $v { p.$field = v; })* };
        }
        set!(
            repaint_start = self.repaint_start,
            repaint_end = self.repaint_end,
            retake_variance = self.retake_variance,
            edit_n_min = self.edit_n_min,
            edit_n_max = self.edit_n_max,
            edit_n_avg = self.edit_n_avg,
            ref_audio_strength = self.ref_audio_strength,
            lora_weight = self.lora_weight,
            lora_name_or_path = self.lora
        );
        if let Some(s) = &self.retake_seeds {
            p.retake_seeds = parse_seeds("retake_seeds", s)?;
        }
        if self.edit_target_prompt.is_some() {
            p.edit_target_prompt = self.edit_target_prompt;
        }
        if let Some(src) = &self.edit_target_lyrics {
            p.edit_target_lyrics = Some(read_text_arg(src)?);
        }
        if self.extend_left.is_some() || self.extend_right.is_some() {
            if p.task != acestep::pipeline::Task::Extend {
                return Err(acestep::Error::InvalidArgument {
                    name: "extend_left/extend_right",
                    value: p.task.to_string(),
                    expected: "--task extend".into(),
                });
            }
            let src = p
                .src_audio_path
                .clone()
                .ok_or_else(|| acestep::Error::InvalidArgument {
                    name: "src_audio_path",
                    value: "none".into(),
                    expected: "--src-audio: the clip to extend".into(),
                })?;
            let seconds = acestep::audio::read(&src)?.duration();
            p.repaint_start = -self.extend_left.unwrap_or(0.0);
            p.repaint_end = seconds + self.extend_right.unwrap_or(0.0);
        }
        Ok(())
    }
}

#[cfg(feature = "server")]
/// Options of `acestep serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to bind (use 0.0.0.0 to listen on every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Where jobs.sqlite, outputs/ and uploads/ live.
    #[arg(long, env = "ACESTEP_DATA_DIR", default_value = "acestep-data")]
    data_dir: PathBuf,
    /// Accepted API key (repeatable); when any is set every API call needs
    /// `Authorization: Bearer <key>`. Also ACESTEP_API_KEYS=key1,key2.
    #[arg(long = "api-key", env = "ACESTEP_API_KEYS", value_delimiter = ',')]
    api_keys: Vec<String>,
    /// Generation workers sharing the loaded model.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Maximum queued + running jobs per API key.
    #[arg(long, default_value_t = 10)]
    quota: usize,
    /// Most jobs waiting in the queue, all keys together (429 beyond it; 0: no limit).
    #[arg(long, default_value_t = 1000)]
    max_queue: usize,
    /// Hours outputs are kept (download links expire after it).
    #[arg(long, default_value_t = 24.0)]
    retention_hours: f64,
    /// Seconds a synchronous `POST /producer/audios` waits before returning the running task.
    #[arg(long, default_value_t = 600)]
    sync_timeout: u64,
    /// Base URL put in links (default: http://<Host header>).
    #[arg(long)]
    public_url: Option<String>,
    /// Accept server-side file paths for source / reference audio (`src_audio_path`,
    /// `reference_audio_path`, `ref_audio_input`) and LoRA; without it only uploads and hub
    /// LoRA ids are accepted.
    #[arg(long)]
    allow_local_paths: bool,
    /// Deliver completion callbacks to loopback, private and link-local addresses too (off:
    /// such `callback_url`s are refused).
    #[arg(long)]
    allow_private_callbacks: bool,
    /// Largest JSON, text or x-www-form-urlencoded request body, in KiB (413 beyond it).
    #[arg(long, default_value_t = 1024)]
    max_body_kb: usize,
    /// Largest multipart/form-data request (uploads included), in MiB (413 beyond it).
    #[arg(long, default_value_t = 100)]
    max_upload_mb: usize,
    /// Seconds a client may take to send a request's headers, and (x6) its body.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Seconds a stop (Ctrl-C, SIGTERM) waits for requests in flight and for a running job to
    /// finish decoding before the job is put back in the queue.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Submissions per API key, e.g. `30/min`, `5/s`, `1000/h` (429 with Retry-After beyond
    /// it; bursts up to the count). Default: no rate limit (the quota still holds).
    #[arg(long, env = "ACESTEP_RATE_LIMIT")]
    rate_limit: Option<acestep::server::RateLimit>,
    /// Key that signs every webhook delivery (HMAC-SHA256, Standard Webhooks headers
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`); `whsec_<base64>` or any string.
    #[arg(long, env = "ACESTEP_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Seconds between keep-alive comments on an idle event stream (`.../events`).
    #[arg(long, default_value_t = 15)]
    sse_keep_alive: u64,
    #[command(flatten)]
    model: ModelArgs,
}

fn checkpoint(m: &ModelArgs) -> acestep::Result<Checkpoint> {
    match &m.checkpoint_dir {
        Some(d) => Checkpoint::from_dir(d),
        None => Checkpoint::download(&m.repo_id),
    }
}

fn setup_threads(n: Option<usize>) -> acestep::Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(acestep::Error::InvalidArgument {
                name: "threads",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        // candle's CPU kernels use rayon's global pool and gemm's own threading.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
    }
    Ok(())
}

fn run(cli: Cli) -> acestep::Result<()> {
    match cli.command {
        Command::EncodeText { prompt, erg, model } => {
            setup_threads(model.threads)?;
            let device = parse_device(&model.device)?;
            let dtype = parse_dtype(&model.dtype, &device)?;
            let ckpt = checkpoint(&model)?;
            let t0 = Instant::now();
            let enc = TextEncoder::load(&ckpt, &device, dtype)?;
            let load_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let out = if erg {
                enc.encode_null(&[prompt.as_str()], &QueryScale::text_default())?
            } else {
                enc.encode(&[prompt.as_str()])?
            };
            let h = out.hidden_states.to_dtype(candle_core::DType::F32)?;
            let sum = h.sum_all()?.to_scalar::<f32>()?;
            let abs_mean = h.abs()?.mean_all()?.to_scalar::<f32>()?;
            let enc_s = t1.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "shape": h.dims(),
                    "dtype": format!("{dtype:?}").to_lowercase(),
                    "device": format!("{device:?}"),
                    "tokens": out.attention_mask.sum_all()?.to_scalar::<f32>()? as usize,
                    "erg_tag": erg,
                    "checksum_sum": sum,
                    "checksum_abs_mean": abs_mean,
                    "load_seconds": load_s,
                    "encode_seconds": enc_s,
                })
            );
            Ok(())
        }
        Command::Generate {
            prompt,
            lyrics,
            lyrics_language,
            lyric_vocab,
            ja_dict,
            duration,
            steps,
            seed,
            scheduler,
            cfg_type,
            guidance_scale,
            batch_size,
            params,
            output,
            edit,
            model,
        } => {
            setup_threads(model.threads)?;
            let mut p: acestep::pipeline::GenerationParams = match &params {
                Some(json) => {
                    serde_json::from_str(json).map_err(|e| acestep::Error::InvalidArgument {
                        name: "params",
                        value: json.clone(),
                        expected: format!("a JSON object of generation parameters ({e})"),
                    })?
                }
                None => Default::default(),
            };
            p.prompt = prompt;
            if let Some(src) = &lyrics {
                p.lyrics = read_text_arg(src)?;
            }
            if lyrics_language.is_some() {
                p.lyrics_language = lyrics_language;
            }
            p.audio_duration = duration;
            p.infer_step = steps;
            p.scheduler_type = scheduler.parse()?;
            p.cfg_type = cfg_type.parse()?;
            p.guidance_scale = guidance_scale;
            p.batch_size = batch_size;
            if let Some(s) = seed {
                p.manual_seeds = parse_seeds("seed", &s)?;
            }
            edit.apply(&mut p)?;
            let format = acestep::audio::Format::from_path(&output)?;
            p.format = format.extension().to_string();
            p.validate()?;
            let device = parse_device(&model.device)?;
            let dtype = parse_dtype(&model.dtype, &device)?;
            let ckpt = checkpoint(&model)?;
            let t0 = Instant::now();
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message("loading the text encoder, DiT, DCAE and vocoder");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let pipe = acestep::pipeline::Pipeline::load_with(
                &ckpt,
                &device,
                dtype,
                &pipeline_options(&model)?,
            );
            spinner.finish_and_clear();
            let mut pipe = pipe?;
            if let Some(d) = &ja_dict {
                pipe = pipe.with_japanese_dict(d);
            }
            if let Some(v) = &lyric_vocab {
                pipe = pipe.with_lyric_vocab(v)?;
            }
            let load_s = t0.elapsed().as_secs_f64();
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let t1 = Instant::now();
            let songs = pipe.generate(&p, &mut |pr| {
                match pr {
                    acestep::pipeline::Progress::Encoding => bar.set_message("encoding"),
                    acestep::pipeline::Progress::Step(s) => {
                        bar.set_message("diffusion");
                        bar.set_length(s.total as u64);
                        bar.set_position(s.step as u64);
                    }
                    acestep::pipeline::Progress::Decoding { item, of } => {
                        bar.set_message("decoding");
                        bar.set_length(of as u64);
                        bar.set_position(item as u64);
                    }
                }
                acestep::pipeline::Control::Continue
            })?;
            bar.finish_and_clear();
            let gen_s = t1.elapsed().as_secs_f64();
            let written = acestep::pipeline::write_songs(
                &songs,
                &p,
                &output,
                &serde_json::json!({"load_seconds": load_s, "generate_seconds": gen_s}),
            )?;
            let files: Vec<_> = written
                .iter()
                .map(|w| serde_json::json!({"audio": w.audio_path, "params": w.params_path, "seed": w.seed}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"files": files, "load_seconds": load_s, "generate_seconds": gen_s})
            );
            Ok(())
        }
        Command::TokenizeLyrics {
            input,
            lang,
            lyric_vocab,
            ja_dict,
            checkpoint_dir,
        } => {
            use acestep::lyrics::{self, lang_segment, Language, LyricTokenizer};
            let forced = Language::parse_forced(Some(&lang)).map_err(|value| {
                acestep::Error::InvalidArgument {
                    name: "lang",
                    value,
                    expected: "auto, or one of en de fr es it pt pl tr ru cs nl ar zh ja hu ko hi"
                        .into(),
                }
            })?;
            let text = read_text_arg(&input)?;
            let vocab = lyrics::find_vocab(
                lyric_vocab.as_deref(),
                checkpoint_dir.as_deref(),
                Some(&acestep::HubOptions::default()),
            )?;
            let mut tok = LyricTokenizer::from_file(&vocab)?;
            if let Some(d) = &ja_dict {
                tok = tok.with_japanese_dict(d);
            }
            let mut language_of =
                |line: &str| forced.unwrap_or_else(|| lang_segment::detect_language(line));
            let mut lines = Vec::new();
            for line in text.split('\n') {
                let t = line.trim();
                if t.is_empty() {
                    lines.push(serde_json::json!({"line": line, "empty": true, "ids": [lyrics::LINE_TOKEN]}));
                    continue;
                }
                let tag = lyrics::is_structure_tag(t);
                let lang = if tag { Language::En } else { language_of(t) };
                let detected = forced.is_none().then(|| lang_segment::get_lang(t));
                let Some(cleaned) = tok.preprocess(t, lang)? else {
                    // The reference drops a line cutlet cannot spell.
                    lines.push(serde_json::json!({
                        "line": line, "detected": detected, "language": lang.code(),
                        "dropped": true, "ids": [],
                    }));
                    continue;
                };
                let mut ids = tok.encode_preprocessed(&cleaned, lang)?;
                ids.push(lyrics::LINE_TOKEN);
                lines.push(serde_json::json!({
                    "line": line,
                    "detected": detected,
                    "language": lang.code(),
                    "structure_tag": tag,
                    "cleaned": cleaned,
                    "ids": ids,
                }));
            }
            let ids = tok.tokenize_lyrics(&text, &mut language_of)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "vocab": vocab,
                    "language_detection": match forced {
                        Some(l) => format!("off: every line read as {}", l.code()),
                        None => "per line, as the reference (LangSegment + py3langid)".into(),
                    },
                    "lines": lines,
                    "ids": ids,
                    "tokens": ids.len(),
                }))
                .unwrap_or_default()
            );
            Ok(())
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => serve(args),
        Command::Quantize {
            checkpoint_dir,
            to,
            output,
        } => {
            let q: acestep::quant::Quantization = to.parse()?;
            let src = Checkpoint::from_dir(&checkpoint_dir)?;
            let t0 = Instant::now();
            acestep::quant::quantize_checkpoint(&src, q, &output)?;
            println!(
                "wrote {} ({q}) in {:.1} s",
                output.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Reconstruct {
            input,
            output,
            sample_rate,
            model,
        } => {
            setup_threads(model.threads)?;
            let format = acestep::audio::Format::from_path(&output)?;
            let device = parse_device(&model.device)?;
            let dtype = parse_dtype(&model.dtype, &device)?;
            let clip = acestep::audio::read(&input)?;
            let ckpt = checkpoint(&model)?;
            let t0 = Instant::now();
            let dcae = acestep::dcae::MusicDcae::load(&ckpt, &device, dtype)?;
            let load_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let (latents, lengths) = dcae.encode_audio(std::slice::from_ref(&clip))?;
            let encode_s = t1.elapsed().as_secs_f64();
            let t2 = Instant::now();
            let audio = dcae.decode_audio(&latents, sample_rate)?;
            let decode_s = t2.elapsed().as_secs_f64();
            let audio =
                audio
                    .into_iter()
                    .next()
                    .ok_or_else(|| acestep::Error::InvalidArgument {
                        name: "decoded batch",
                        value: "0 items".into(),
                        expected: "one item".into(),
                    })?;
            // The latents cover whole 4096-sample blocks; cut the padding off again.
            let mut audio = audio;
            let keep = (clip.duration() * audio.sample_rate as f64).round() as usize;
            audio.channels.iter_mut().for_each(|c| c.truncate(keep));
            let path = acestep::audio::write(&output, &audio, Some(format))?;
            println!(
                "{}",
                serde_json::json!({
                    "input": input,
                    "input_seconds": clip.duration(),
                    "latent_shape": latents.dims(),
                    "latent_frames": lengths.first(),
                    "output": path,
                    "output_seconds": audio.duration(),
                    "sample_rate": audio.sample_rate,
                    "load_seconds": load_s,
                    "encode_seconds": encode_s,
                    "decode_seconds": decode_s,
                })
            );
            Ok(())
        }
    }
}

/// Runs `acestep serve`.
#[cfg(feature = "server")]
fn serve(args: ServeArgs) -> acestep::Result<()> {
    use std::sync::Arc;
    let ServeArgs {
        host,
        port,
        data_dir,
        api_keys,
        workers,
        quota,
        max_queue,
        rate_limit,
        webhook_secret,
        sse_keep_alive,
        retention_hours,
        sync_timeout,
        public_url,
        allow_local_paths,
        allow_private_callbacks,
        max_body_kb,
        max_upload_mb,
        request_timeout,
        shutdown_grace,
        model,
    } = args;
    setup_threads(model.threads)?;
    if !(retention_hours.is_finite() && retention_hours >= 0.0) {
        return Err(acestep::Error::InvalidArgument {
            name: "retention-hours",
            value: retention_hours.to_string(),
            expected: "a number of hours >= 0".into(),
        });
    }
    let api_keys: Vec<String> = api_keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let device = parse_device(&model.device)?;
    let dtype = parse_dtype(&model.dtype, &device)?;
    let ckpt = checkpoint(&model)?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("loading the text encoder, DiT, DCAE and vocoder");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let pipe =
        acestep::pipeline::Pipeline::load_with(&ckpt, &device, dtype, &pipeline_options(&model)?);
    spinner.finish_and_clear();
    let generator = acestep::jobs::PipelineGenerator::new(pipe?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| acestep::Error::io("tokio runtime", e))?;
    let addr = format!("{host}:{port}");
    // Bound first, so that links and callbacks can name the address actually listened on.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|e| acestep::Error::io(&addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| acestep::Error::io(&addr, e))?;
    let link_host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    let base_url = public_url
        .clone()
        .unwrap_or_else(|| format!("http://{link_host}:{}", local.port()));
    let mut config = acestep::jobs::ManagerConfig::new(&data_dir);
    config.workers = workers;
    config.max_active_per_owner = quota;
    config.max_queue = max_queue;
    config.retention = std::time::Duration::from_secs_f64(retention_hours * 3600.0);
    config.callback.allow_private = allow_private_callbacks;
    config.callback.public_url = Some(base_url);
    config.callback.secret = webhook_secret;
    let jobs = Arc::new(acestep::jobs::JobManager::open(
        config,
        Arc::new(generator),
    )?);
    let grace = std::time::Duration::from_secs(shutdown_grace);
    let server_config = acestep::server::ServerConfig {
        api_keys,
        sync_timeout: std::time::Duration::from_secs(sync_timeout),
        public_url,
        allow_local_paths,
        limits: acestep::server::BodyLimits {
            max_body_bytes: max_body_kb.saturating_mul(1024),
            max_upload_bytes: max_upload_mb.saturating_mul(1 << 20),
            ..Default::default()
        },
        header_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
        body_timeout: std::time::Duration::from_secs(request_timeout.max(1).saturating_mul(6)),
        shutdown_grace: grace,
        sse_keep_alive: std::time::Duration::from_secs(sse_keep_alive.max(1)),
        rate_limit,
        ..Default::default()
    };
    let auth = !server_config.api_keys.is_empty();
    let state = acestep::server::AppState::new(jobs.clone(), server_config);
    rt.block_on(async move {
        println!(
            "acestep serve: listening on http://{local} (data dir {}, {})",
            data_dir.display(),
            if auth {
                "API keys required"
            } else {
                "no authentication"
            }
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        acestep::server::serve(listener, state, stop_signal()).await
    })?;
    eprintln!(
        "acestep serve: stopping (a job decoding gets {shutdown_grace} s to finish; others are \
         re-queued for the next start)"
    );
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match Arc::try_unwrap(jobs) {
        Ok(jobs) => jobs.shutdown(grace),
        Err(jobs) => drop(jobs),
    }
    Ok(())
}

#[cfg(feature = "server")]
/// Resolves on Ctrl-C (SIGINT) or SIGTERM: both stop the server gracefully.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("acestep serve: shutting down");
}

fn main() -> ExitCode {
    acestep::device::tune_cpu_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

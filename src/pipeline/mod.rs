//! The generation pipeline of the reference (`pipeline_ace_step.py`).
//!
//! - [`diffusion`]: `text2music_diffusion_process`, the sampling loop over the DiT with the
//!   schedulers, guidance and ERG null conditions, from given conditions and initial noise;
//!   [`editing`] its retake / repaint / extend / audio2audio inputs ([`EditInputs`]).
//! - [`flowedit`]: `flowedit_diffusion_process`, the edit task.
//! - [`Pipeline`]: loads the checkpoint and runs [`GenerationParams`] end to end (prompt, source
//!   or reference audio -> latents -> audio) for every [`Task`], with an optional LoRA, progress
//!   and cancellation.
//!
//! ```no_run
//! use acestep::dit::AceStepTransformer2DModel;
//! use acestep::pipeline::{text2music_diffusion_process, ConditionInputs, Control, DiffusionSettings, EditInputs};
//! use acestep::schedulers::SchedulerType;
//! use candle_core::Tensor;
//! # fn f(dit: &AceStepTransformer2DModel, inputs: &ConditionInputs, noise: &Tensor) -> acestep::Result<()> {
//! let settings = DiffusionSettings { infer_steps: 27, scheduler_type: SchedulerType::Heun, ..Default::default() };
//! let latents = text2music_diffusion_process(dit, inputs, &settings, &EditInputs::default(), noise, &mut |s| Ok(Tensor::randn(0f32, 1.0, s, noise.device())?), &mut |p| {
//!     eprintln!("step {}/{}", p.step, p.total);
//!     Control::Continue
//! })?;
//! # Ok(()) }
//! ```

pub mod diffusion;
pub mod editing;
pub mod flowedit;
pub mod output;
pub mod params;

use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use rand::{Rng, SeedableRng};

pub use diffusion::{
    text2music_diffusion_process, ConditionInputs, Control, DiffusionSettings, StepProgress,
};
pub use editing::EditInputs;
pub use flowedit::{flowedit_diffusion_process, FlowEditSettings};
pub use output::{write_songs, WrittenSong};
pub use params::{GenerationParams, GenerationPlan, Sampler, Task, MAX_DURATION_SECONDS};

use crate::audio::Audio;
use crate::checkpoint::Checkpoint;
use crate::dcae::MusicDcae;
use crate::dit::AceStepTransformer2DModel;
use crate::erg::QueryScale;
use crate::error::{Error, Result};
use crate::lora::LoraAdapter;
use crate::lyrics::LyricTokenizer;
use crate::text_encoder::TextEncoder;

/// Sample rate of generated audio: the reference pipeline resamples its 44.1 kHz output to 48 kHz.
pub const OUTPUT_SAMPLE_RATE: u32 = 48000;

/// What a generation is doing, reported to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Encoding the prompt and lyrics.
    Encoding,
    /// A diffusion step finished.
    Step(StepProgress),
    /// Decoding batch item `item` (0-based) of `of` to audio.
    Decoding {
        /// The item.
        item: usize,
        /// Items in all.
        of: usize,
    },
}

/// One generated song.
#[derive(Debug, Clone)]
pub struct GeneratedAudio {
    /// Stereo samples at [`OUTPUT_SAMPLE_RATE`].
    pub audio: Audio,
    /// The seed of its initial noise.
    pub seed: u64,
    /// The seed of its retake noise (retake, repaint, extend, edit).
    pub retake_seed: Option<u64>,
    /// Its final latents `[1, 8, 16, frames]`.
    pub latents: Tensor,
}

/// The text2music pipeline: UMT5 text encoder, DiT, DCAE and vocoder, loaded once.
///
/// ```no_run
/// use acestep::{audio, Checkpoint, GenerationParams, Pipeline, PipelineOptions};
///
/// let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
/// let pipe = Pipeline::load(&ckpt, &PipelineOptions::default())?; // CPU, f32
/// let params = GenerationParams {
///     prompt: "funk, groovy bass, 110 bpm".into(),
///     audio_duration: 30.0,
///     manual_seeds: vec![42],
///     ..Default::default()
/// };
/// let songs = pipe.generate(&params)?;
/// audio::write("song.wav", &songs[0].audio, None)?;
/// # Ok::<(), acestep::Error>(())
/// ```
///
/// With progress and cancellation, [`Pipeline::generate_with_progress`]:
///
/// ```no_run
/// # use acestep::{Control, GenerationParams, Pipeline, Progress};
/// # fn f(pipe: &Pipeline, params: &GenerationParams) -> acestep::Result<()> {
/// let songs = pipe.generate_with_progress(params, &mut |p| {
///     if let Progress::Step(s) = p {
///         eprintln!("{}/{}", s.step, s.total);
///     }
///     Control::Continue
/// })?;
/// # Ok(()) }
/// ```
pub struct Pipeline {
    text: Resident<TextEncoder>,
    /// The prompt tokenizer, kept apart from the encoder (length checks need no model).
    text_tokenizer: crate::text_encoder::TextTokenizer,
    dit: Resident<AceStepTransformer2DModel>,
    dit_config: crate::dit::AceStepTransformerConfig,
    lora: std::sync::Mutex<Option<LoraSlot>>,
    dcae: Resident<MusicDcae>,
    dtype: DType,
    device: Device,
    checkpoint_root: std::path::PathBuf,
    lyric_tokenizer: std::sync::Mutex<Option<Arc<LyricTokenizer>>>,
    ja_dict: Option<std::path::PathBuf>,
    hub: crate::HubOptions,
}

/// Whether a model slot holds a model.
fn is_some<T>(slot: &std::sync::Mutex<Option<Arc<T>>>) -> bool {
    slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// A model kept in memory, or with offload loaded for each stage that uses it and dropped after
/// (memory-mapped weights make the reload cheap).
struct Resident<T> {
    /// The model's name in trace spans.
    name: &'static str,
    slot: std::sync::Mutex<Option<Arc<T>>>,
    load: Box<dyn Fn() -> Result<T> + Send + Sync>,
    offload: bool,
}

impl<T> Resident<T> {
    /// Loaded now, unless `offload` (then on first use).
    fn new(
        name: &'static str,
        load: impl Fn() -> Result<T> + Send + Sync + 'static,
        offload: bool,
    ) -> Result<Self> {
        let slot = if offload {
            None
        } else {
            let _load = tracing::debug_span!("load", model = name).entered();
            Some(Arc::new(load()?))
        };
        Ok(Self {
            name,
            slot: std::sync::Mutex::new(slot),
            load: Box::new(load),
            offload,
        })
    }

    /// The model, loaded if it is not in memory.
    fn get(&self) -> Result<Arc<T>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let _load = tracing::debug_span!("load", model = self.name).entered();
        let m = Arc::new((self.load)()?);
        *slot = Some(m.clone());
        Ok(m)
    }

    /// With offload, drops the pipeline's hold on the model (it leaves memory once the stages
    /// using it finish).
    fn release(&self) {
        if self.offload {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The loaded LoRA: the adapter and the DiT copy carrying it at `weight`.
struct LoraSlot {
    name: String,
    weight: f64,
    adapter: Arc<LoraAdapter>,
    model: Arc<AceStepTransformer2DModel>,
}

/// Standard-normal noise `[1, 8, 16, frames]` from `seed` (ChaCha-based `StdRng`; the
/// reference's torch generator is not reproduced; use `init_noise` to replay its noise).
pub fn seeded_noise(seed: u64, frames: usize, device: &Device) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    normal(&mut rng, &Shape::from((1, 8, 16, frames)), device)
}

/// A standard-normal tensor of `shape`: item `i` of the first dimension from `rngs[i]` when
/// there is one generator per item (as the reference's `randn_tensor` with a generator list),
/// else all from the first.
fn batch_normal(rngs: &mut [rand::rngs::StdRng], shape: &Shape, device: &Device) -> Result<Tensor> {
    let dims = shape.dims();
    match (dims.first(), rngs.len()) {
        (Some(&b), n) if b == n && b > 1 => {
            let item = Shape::from(&[&[1], &dims[1..]].concat()[..]);
            let parts = rngs
                .iter_mut()
                .map(|r| normal(r, &item, device))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        }
        (_, 0) => normal(&mut rand::rngs::StdRng::seed_from_u64(0), shape, device),
        _ => normal(&mut rngs[0], shape, device),
    }
}

/// Checks the repaint / extend span against the source's `frames` latent frames.
fn check_span(params: &GenerationParams, task: Task, frames: usize) -> Result<()> {
    let start = editing::seconds_to_frame(params.repaint_start);
    let end = editing::seconds_to_frame(params.repaint_end);
    let seconds = MusicDcae::latent_seconds(frames);
    match task {
        Task::Repaint if end > frames as i64 => Err(Error::InvalidArgument {
            name: "repaint_end",
            value: params.repaint_end.to_string(),
            expected: format!(
                "within the source ({seconds:.2} s); task extend generates past its end"
            ),
        }),
        Task::Repaint if start >= end => Err(Error::InvalidArgument {
            name: "repaint_start",
            value: params.repaint_start.to_string(),
            expected: format!(
                "a span of at least one latent frame (0.093 s) before repaint_end {}",
                params.repaint_end
            ),
        }),
        Task::Extend if !(start < 0 || end > frames as i64) => Err(Error::InvalidArgument {
            name: "repaint_end",
            value: format!(
                "{} (repaint_start {})",
                params.repaint_end, params.repaint_start
            ),
            expected: format!(
                "past the source's end ({seconds:.2} s), or repaint_start below 0: the seconds \
                 to add"
            ),
        }),
        _ => Ok(()),
    }
}

/// A standard-normal f32 tensor of `shape` drawn from `rng`.
fn normal(rng: &mut impl Rng, shape: &Shape, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.sample(rand_distr::StandardNormal))
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}

/// How [`Pipeline::load`] loads the models: the device and dtype, quantization, offload, and
/// where the lyric vocab, the Japanese dictionary and hub downloads come from.
///
/// ```
/// use acestep::PipelineOptions;
/// let opts = PipelineOptions { offload: true, ..Default::default() }; // CPU, f32
/// assert_eq!(opts.dtype(), candle_core::DType::F32);
/// ```
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The device every model runs on (default: the CPU; see [`crate::device::default_device`]).
    pub device: Device,
    /// The weights' and activations' dtype; None: [`crate::device::default_dtype`] of the device
    /// (bf16 on a GPU, f32 on the CPU).
    pub dtype: Option<DType>,
    /// Quantize the DiT's and the text encoder's linear layers and embedding as they load from a
    /// float checkpoint (a quantized checkpoint, see [`crate::quant`], is read as stored
    /// whatever this says).
    pub quantize: Option<crate::quant::Quantization>,
    /// Keep each model in memory only while its stage runs (text encoder, then DCAE for source
    /// audio, then the DiT, then DCAE + vocoder), as the reference's `cpu_offload`: the peak is
    /// the largest model instead of all of them, for a reload of each per generation.
    pub offload: bool,
    /// The lyric vocab.json; None: looked up on first use with lyrics
    /// ([`crate::lyrics::find_vocab`]: `$ACESTEP_LYRIC_VOCAB`,
    /// `<checkpoint>/lyric_tokenizer/vocab.json`, then a download from the ACE-Step Space).
    pub lyric_vocab: Option<std::path::PathBuf>,
    /// The UniDic dictionary folder (unidic-lite 1.0.8's `dicdir`) for Japanese lyric lines;
    /// None: `$ACESTEP_JA_DICT`, else fetched on first use ([`crate::lyrics::japanese`]).
    pub ja_dict: Option<std::path::PathBuf>,
    /// Hub access for downloads made while generating (the lyric vocab, hub LoRA ids).
    pub hub: crate::HubOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: None,
            quantize: None,
            offload: false,
            lyric_vocab: None,
            ja_dict: None,
            hub: crate::HubOptions::default(),
        }
    }
}

impl PipelineOptions {
    /// The dtype the models load in: [`PipelineOptions::dtype`], else the device's default.
    pub fn dtype(&self) -> DType {
        self.dtype
            .unwrap_or_else(|| crate::device::default_dtype(&self.device))
    }
}

/// The final latents of a generation ([`Pipeline::generate_latents`]) and the seeds that drew them.
#[derive(Debug, Clone)]
pub struct Latents {
    /// The latents `[batch, 8, 16, frames]`.
    pub latents: Tensor,
    /// The seed of each item's initial noise.
    pub seeds: Vec<u64>,
    /// The seed of each item's retake noise, for the tasks that draw one (retake, repaint,
    /// extend, edit).
    pub retake_seeds: Option<Vec<u64>>,
}

impl Pipeline {
    /// Loads every component of `checkpoint` as `options` say.
    pub fn load(checkpoint: &Checkpoint, options: &PipelineOptions) -> Result<Self> {
        let device = &options.device;
        let dtype = options.dtype();
        crate::device::check_dtype(device, dtype)?;
        if options.offload {
            // Every file and config now, not at the first generation's reload.
            checkpoint.validate()?;
            crate::dcae::AutoencoderDcConfig::from_checkpoint(checkpoint)?;
            crate::vocoder::VocoderConfig::from_checkpoint(checkpoint)?;
            crate::text_encoder::Umt5Config::from_checkpoint(checkpoint)?;
        }
        let quantize = options.quantize;
        let (c, d) = (checkpoint.clone(), device.clone());
        let text = Resident::new(
            "text_encoder",
            move || match quantize {
                Some(q) => crate::quant::quantizing(q, || TextEncoder::load(&c, &d, dtype)),
                None => TextEncoder::load(&c, &d, dtype),
            },
            options.offload,
        )?;
        let (c, d) = (checkpoint.clone(), device.clone());
        let dit = Resident::new(
            "dit",
            move || match quantize {
                Some(q) => {
                    crate::quant::quantizing(q, || AceStepTransformer2DModel::load(&c, &d, dtype))
                }
                None => AceStepTransformer2DModel::load(&c, &d, dtype),
            },
            options.offload,
        )?;
        let (c, d) = (checkpoint.clone(), device.clone());
        let dcae = Resident::new(
            "dcae",
            move || MusicDcae::load(&c, &d, dtype),
            options.offload,
        )?;
        let text_tokenizer = crate::text_encoder::TextTokenizer::from_file(
            &checkpoint.file(crate::Component::TextEncoder, "tokenizer.json")?,
            crate::text_encoder::TEXT_MAX_LENGTH,
        )?;
        let lyric_tokenizer = match &options.lyric_vocab {
            Some(path) => {
                let tok = LyricTokenizer::from_file(path)?;
                if let Some(d) = &options.ja_dict {
                    tok.set_japanese_dict(d);
                }
                Some(Arc::new(tok))
            }
            None => None,
        };
        Ok(Self {
            text,
            text_tokenizer,
            dit,
            dit_config: crate::dit::AceStepTransformerConfig::from_checkpoint(checkpoint)?,
            lora: std::sync::Mutex::new(None),
            dcae,
            dtype,
            device: device.clone(),
            checkpoint_root: checkpoint.root().to_path_buf(),
            lyric_tokenizer: std::sync::Mutex::new(lyric_tokenizer),
            ja_dict: options.ja_dict.clone(),
            hub: options.hub.clone(),
        })
    }

    /// The lyric tokenizer, loaded on first use.
    fn lyric_tokenizer(&self) -> Result<Arc<LyricTokenizer>> {
        let mut slot = self
            .lyric_tokenizer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let path = crate::lyrics::find_vocab(None, Some(&self.checkpoint_root), Some(&self.hub))?;
        let tok = Arc::new(LyricTokenizer::from_file(&path)?);
        if let Some(d) = &self.ja_dict {
            tok.set_japanese_dict(d);
        }
        *slot = Some(tok.clone());
        Ok(tok)
    }

    /// Checks at submit what only the loaded models can tell: the prompts fit the text
    /// encoder's 256 tokens (the reference silently cuts longer ones; a service refuses them)
    /// and the lyrics the DiT's lyric positions.
    pub fn check_lengths(&self, params: &GenerationParams) -> Result<()> {
        let tok = &self.text_tokenizer;
        for (name, text) in [
            ("prompt", Some(params.prompt.as_str())),
            ("edit_target_prompt", params.edit_target_prompt.as_deref()),
        ] {
            let Some(text) = text else { continue };
            if !tok.fits(text)? {
                return Err(Error::InvalidArgument {
                    name,
                    value: format!("{} bytes", text.len()),
                    expected: format!(
                        "at most {} tokens (the text encoder's limit)",
                        crate::text_encoder::TEXT_MAX_LENGTH
                    ),
                });
            }
        }
        self.lyric_token_ids(params)?;
        if let Some(l) = params.edit_target_lyrics.as_deref() {
            self.lyric_ids_of(l, params)?;
        }
        Ok(())
    }

    /// The lyric token ids of `params.lyrics` as the reference's `tokenize_lyrics` (None for no
    /// lyrics), checked against the DiT's lyric vocabulary and position range.
    pub fn lyric_token_ids(&self, params: &GenerationParams) -> Result<Option<Vec<u32>>> {
        self.lyric_ids_of(&params.lyrics, params)
    }

    fn lyric_ids_of(&self, lyrics: &str, params: &GenerationParams) -> Result<Option<Vec<u32>>> {
        if lyrics.is_empty() {
            return Ok(None);
        }
        let forced = params.lyric_language()?;
        let tok = self.lyric_tokenizer()?;
        let ids = tok.tokenize_lyrics(lyrics, &mut |line| {
            forced.unwrap_or_else(|| crate::lyrics::lang_segment::detect_language(line))
        })?;
        let cfg = &self.dit_config;
        if let Some(&bad) = ids
            .iter()
            .find(|&&i| i as usize >= cfg.lyric_encoder_vocab_size)
        {
            return Err(Error::InvalidArgument {
                name: "lyrics",
                value: format!("lyric token id {bad}"),
                expected: format!(
                    "ids below the DiT's lyric vocabulary size {} (lyric_encoder_vocab_size of \
                     the checkpoint does not match the lyric vocab.json)",
                    cfg.lyric_encoder_vocab_size
                ),
            });
        }
        if ids.len() > cfg.max_position {
            return Err(Error::InvalidArgument {
                name: "lyrics",
                value: format!("{} lyric tokens", ids.len()),
                expected: format!(
                    "at most {} tokens (the DiT's max_position)",
                    cfg.max_position
                ),
            });
        }
        Ok(Some(ids))
    }

    /// The DiT with the LoRA of `params` (the base model without one). The last adapter and
    /// weight are kept loaded; switching builds a new copy from the untouched base.
    pub fn dit_for(&self, params: &GenerationParams) -> Result<Arc<AceStepTransformer2DModel>> {
        let Some(name) = params.lora() else {
            return self.dit.get();
        };
        let mut slot = self.lora.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref() {
            if s.name == name && s.weight == params.lora_weight {
                return Ok(s.model.clone());
            }
        }
        let adapter = match slot.as_ref() {
            Some(s) if s.name == name => s.adapter.clone(),
            _ => Arc::new(LoraAdapter::from_name_or_path(name, &self.hub)?),
        };
        let model = Arc::new(self.dit.get()?.with_lora(&adapter, params.lora_weight)?);
        *slot = Some(LoraSlot {
            name: name.to_string(),
            weight: params.lora_weight,
            adapter,
            model: model.clone(),
        });
        Ok(model)
    }

    /// The DCAE latents `[b, 8, 16, frames]` of an audio file (the reference's `infer_latents`),
    /// repeated over the batch.
    pub fn audio_latents(&self, name: &'static str, path: &str, b: usize) -> Result<Tensor> {
        let audio = crate::audio::read(path).map_err(|e| Error::InvalidArgument {
            name,
            value: path.to_string(),
            expected: format!("a readable audio file ({e})"),
        })?;
        if audio.duration() > MAX_DURATION_SECONDS {
            return Err(Error::InvalidArgument {
                name,
                value: format!("{path} ({:.1} s)", audio.duration()),
                expected: format!(
                    "audio of at most {} s (the longest song the model makes)",
                    MAX_DURATION_SECONDS
                ),
            });
        }
        let (lat, _) = self.dcae.get()?.encode_audio(&[audio])?;
        if lat.dim(3)? == 0 {
            return Err(Error::InvalidArgument {
                name,
                value: path.to_string(),
                expected: "audio of at least one latent frame (0.093 s)".into(),
            });
        }
        Ok(lat.to_device(&self.device)?.repeat((b, 1, 1, 1))?)
    }

    /// The conditioning inputs of a prompt and lyric ids for a batch of `b`.
    fn conditions(
        &self,
        prompt: &str,
        lyric_ids: Option<Vec<u32>>,
        b: usize,
        use_erg_tag: bool,
    ) -> Result<ConditionInputs> {
        // One prompt for the whole batch: encoded once, repeated (as the reference).
        let prompt = [prompt];
        let encoder = self.text.get()?;
        let text = encoder.encode(&prompt)?;
        let text_null = if use_erg_tag {
            let null = encoder.encode_null(&prompt, &QueryScale::text_default())?;
            Some(null.hidden_states.repeat((b, 1, 1))?)
        } else {
            None
        };
        let dtype = self.dtype;
        let speaker_dim = self.dit_config.speaker_embedding_dim;
        // No lyrics: one token 0 with mask 0, as the reference; else the ids, all unmasked.
        let (lyric_token_ids, lyric_mask) = match lyric_ids {
            None => (
                Tensor::zeros((b, 1), DType::U32, &self.device)?,
                Tensor::zeros((b, 1), dtype, &self.device)?,
            ),
            Some(ids) => {
                let n = ids.len();
                (
                    Tensor::from_vec(ids, (1, n), &self.device)?.repeat((b, 1))?,
                    Tensor::ones((b, n), dtype, &self.device)?,
                )
            }
        };
        Ok(ConditionInputs {
            text_hidden_states: text.hidden_states.repeat((b, 1, 1))?.to_dtype(dtype)?,
            text_mask: text.attention_mask.repeat((b, 1))?.to_dtype(dtype)?,
            text_hidden_states_null: text_null.map(|t| t.to_dtype(dtype)).transpose()?,
            speaker_embeds: Tensor::zeros((b, speaker_dim), dtype, &self.device)?,
            lyric_token_ids,
            lyric_mask,
        })
    }

    /// Noise `[b, 8, 16, frames]`: `given` (checked), else one seeded draw per item.
    fn noise(
        &self,
        name: &'static str,
        given: Option<&Tensor>,
        seeds: &[u64],
        frames: usize,
    ) -> Result<Tensor> {
        let want = [seeds.len(), 8, 16, frames];
        match given {
            Some(n) if n.dims() != want => Err(Error::InvalidArgument {
                name,
                value: format!("{:?}", n.dims()),
                expected: format!("shape {want:?} (batch_size, 8, 16, latent frames of the audio)"),
            }),
            Some(n) => Ok(n.to_device(&self.device)?),
            None => {
                let items = seeds
                    .iter()
                    .map(|&s| seeded_noise(s, frames, &self.device))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::cat(&items, 0)?)
            }
        }
    }

    /// The final latents `[batch, 8, 16, frames]` of a generation, the seeds used and, for the
    /// tasks that draw one, the retake seeds.
    pub fn generate_latents(
        &self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Latents> {
        let mut rng = rand::rng();
        let plan = params.plan(|| rng.random_range(0..u32::MAX as u64))?;
        // With offload, whatever way this returns, the DiT's stage is over.
        struct ReleaseDit<'a>(&'a Pipeline);
        impl Drop for ReleaseDit<'_> {
            fn drop(&mut self) {
                self.0.release_dit();
            }
        }
        let _release = ReleaseDit(self);
        let task = plan.task;
        let _generate = tracing::debug_span!(
            "generate_latents",
            %task,
            batch = params.batch_size,
            steps = plan.loop_steps
        )
        .entered();
        let lyric_span = tracing::debug_span!("lyrics").entered();
        let lyric_ids = self.lyric_token_ids(params)?;
        let target_ids = match task {
            Task::Edit => {
                self.lyric_ids_of(params.edit_target_lyrics.as_deref().unwrap_or(""), params)?
            }
            _ => None,
        };
        drop(lyric_span);
        if progress(Progress::Encoding) == Control::Cancel {
            return Err(Error::Cancelled { step: 0, total: 0 });
        }
        let b = params.batch_size;
        let audio_span = tracing::debug_span!("encode_audio").entered();
        let src = match (&params.src_audio_path, task.needs_source()) {
            (Some(p), true) => Some(self.audio_latents("src_audio_path", p, b)?),
            _ => None,
        };
        let reference = match (&params.ref_audio_input, task) {
            (Some(p), Task::Audio2audio) => Some(self.audio_latents("ref_audio_input", p, b)?),
            _ => None,
        };
        let frames = match (&src, &reference, plan.frames) {
            (Some(s), _, _) | (None, Some(s), _) => s.dim(3)?,
            (None, None, Some(f)) => f,
            (None, None, None) => {
                return Err(Error::Internal {
                    message: format!("task {task} planned without its source audio"),
                })
            }
        };
        drop(audio_span);
        check_span(params, task, frames)?;
        let GenerationPlan {
            seeds,
            retake_seeds,
            sampler,
            ..
        } = plan;
        let prompt_span = tracing::debug_span!("encode_prompt").entered();
        let inputs = self.conditions(&params.prompt, lyric_ids, b, params.use_erg_tag)?;
        let target = match task {
            Task::Edit => Some(self.conditions(
                params.edit_target_prompt.as_deref().unwrap_or(""),
                target_ids,
                b,
                false,
            )?),
            _ => None,
        };
        drop(prompt_span);
        // The encoders' stages are over: with offload only the DiT stays for the diffusion.
        self.text.release();
        self.dcae.release();
        let dit = self.dit_for(params)?;
        let _diffusion = tracing::debug_span!("diffusion", frames).entered();
        let device = self.device.clone();
        let per_item = |seeds: &[u64]| -> Vec<rand::rngs::StdRng> {
            seeds
                .iter()
                .map(|&s| rand::rngs::StdRng::seed_from_u64(s ^ 0x5eed_5eed))
                .collect()
        };
        let latents = if let (Some(target), Sampler::FlowEdit(settings)) = (target, &sampler) {
            let mut rngs = per_item(retake_seeds.as_deref().unwrap_or(&seeds));
            let mut noise = |shape: &Shape| batch_normal(&mut rngs, shape, &device);
            let src = src.as_ref().ok_or_else(|| Error::InvalidArgument {
                name: "src_audio_path",
                value: "none".into(),
                expected: "the source audio of task edit".into(),
            })?;
            flowedit_diffusion_process(
                &dit,
                &inputs,
                &target,
                settings,
                src,
                &mut noise,
                &mut |p| progress(Progress::Step(p)),
            )?
        } else if let Sampler::Diffusion(settings) = &sampler {
            let init_noise =
                self.noise("init_noise", params.init_noise.as_ref(), &seeds, frames)?;
            let edit = EditInputs {
                retake_noise: match &retake_seeds {
                    Some(rs) if task.uses_retake_noise() => Some(self.noise(
                        "retake_noise",
                        params.retake_noise.as_ref(),
                        rs,
                        frames,
                    )?),
                    _ => None,
                },
                retake_variance: params.retake_variance,
                repaint_start: if task == Task::Retake {
                    0.0
                } else {
                    params.repaint_start
                },
                repaint_end: if task == Task::Retake {
                    params.audio_duration
                } else {
                    params.repaint_end
                },
                src_latents: src,
                ref_latents: reference,
                ref_audio_strength: params.ref_audio_strength,
            };
            let mut rngs = per_item(&seeds);
            let mut step_noise = |shape: &Shape| batch_normal(&mut rngs, shape, &device);
            text2music_diffusion_process(
                &dit,
                &inputs,
                settings,
                &edit,
                &init_noise,
                &mut step_noise,
                &mut |p| progress(Progress::Step(p)),
            )?
        } else {
            return Err(Error::Internal {
                message: format!("task {task} planned with another sampler"),
            });
        };
        drop(dit);
        Ok(Latents {
            latents,
            seeds,
            retake_seeds,
        })
    }

    /// The models the pipeline holds in memory now (`text_encoder`, `dit`, `dcae`): all of them
    /// without offload; with it, none between generations.
    pub fn resident_models(&self) -> Vec<&'static str> {
        let held = |r: bool, name| r.then_some(name);
        [
            held(is_some(&self.text.slot), "text_encoder"),
            held(is_some(&self.dit.slot), "dit"),
            held(is_some(&self.dcae.slot), "dcae"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// With offload, drops the DiT (and the LoRA'd copy of it) after its stage.
    fn release_dit(&self) {
        if self.dit.offload {
            self.dit.release();
            *self.lora.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Generates `batch_size` songs: latents, then audio (overlapping windows past 48 s).
    pub fn generate(&self, params: &GenerationParams) -> Result<Vec<GeneratedAudio>> {
        self.generate_with_progress(params, &mut |_| Control::Continue)
    }

    /// [`Pipeline::generate`], reporting each stage and step to `progress`, which may cancel
    /// (then [`Error::Cancelled`]).
    pub fn generate_with_progress(
        &self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Vec<GeneratedAudio>> {
        let Latents {
            latents,
            seeds,
            retake_seeds,
        } = self.generate_latents(params, progress)?;
        let b = latents.dim(0)?;
        let mut out = Vec::with_capacity(b);
        let dcae = self.dcae.get()?;
        for (i, seed) in seeds.into_iter().enumerate() {
            if progress(Progress::Decoding { item: i, of: b }) == Control::Cancel {
                return Err(Error::Cancelled { step: i, total: b });
            }
            let _decode = tracing::debug_span!("decode", item = i).entered();
            let lat = latents.narrow(0, i, 1)?;
            let audio = dcae
                .decode_audio(&lat, OUTPUT_SAMPLE_RATE)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Internal {
                    message: "the decoder returned no audio for a latent item".into(),
                })?;
            out.push(GeneratedAudio {
                audio,
                seed,
                retake_seed: retake_seeds.as_ref().map(|r| r[i]),
                latents: lat,
            });
        }
        drop(dcae);
        self.dcae.release();
        Ok(out)
    }
}

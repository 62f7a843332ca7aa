//! The generation pipeline of the reference (`pipeline_ace_step.py`).
//!
//! - [`diffusion`]: `text2music_diffusion_process`, the sampling loop over the DiT with the
//!   schedulers, guidance and ERG null conditions, from given conditions and initial noise.
//! - [`Pipeline`]: loads the checkpoint and runs [`GenerationParams`] end to end
//!   (prompt -> latents -> audio), with progress and cancellation.
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

use candle_core::{DType, Device, Shape, Tensor};
use rand::{Rng, SeedableRng};

pub use diffusion::{
    text2music_diffusion_process, ConditionInputs, Control, DiffusionSettings, StepProgress,
};
pub use editing::EditInputs;
pub use flowedit::{flowedit_diffusion_process, FlowEditSettings};
pub use output::{write_songs, WrittenSong};
pub use params::{GenerationParams, MAX_DURATION_SECONDS};

use crate::audio::Audio;
use crate::checkpoint::Checkpoint;
use crate::dcae::MusicDcae;
use crate::dit::AceStepTransformer2DModel;
use crate::erg::QueryScale;
use crate::error::{Error, Result};
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
    /// Its final latents `[1, 8, 16, frames]`.
    pub latents: Tensor,
}

/// The text2music pipeline: UMT5 text encoder, DiT, DCAE and vocoder, loaded once.
///
/// ```no_run
/// use acestep::pipeline::{Control, GenerationParams, Pipeline, Progress};
/// use acestep::{audio, Checkpoint};
/// use candle_core::{DType, Device};
///
/// let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
/// let pipe = Pipeline::load(&ckpt, &Device::Cpu, DType::F32)?;
/// let params = GenerationParams {
///     prompt: "funk, groovy bass, 110 bpm".into(),
///     audio_duration: 30.0,
///     manual_seeds: vec![42],
///     ..Default::default()
/// };
/// let songs = pipe.generate(&params, &mut |p| {
///     if let Progress::Step(s) = p {
///         eprintln!("{}/{}", s.step, s.total);
///     }
///     Control::Continue
/// })?;
/// audio::write("song.wav", &songs[0].audio, None)?;
/// # Ok::<(), acestep::Error>(())
/// ```
pub struct Pipeline {
    text: TextEncoder,
    dit: AceStepTransformer2DModel,
    dcae: MusicDcae,
    device: Device,
    checkpoint_root: std::path::PathBuf,
    lyric_tokenizer: std::sync::Mutex<Option<std::sync::Arc<LyricTokenizer>>>,
}

/// Standard-normal noise `[1, 8, 16, frames]` from `seed` (ChaCha-based `StdRng`; the
/// reference's torch generator is not reproduced; use `init_noise` to replay its noise).
pub fn seeded_noise(seed: u64, frames: usize, device: &Device) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    normal(&mut rng, &Shape::from((1, 8, 16, frames)), device)
}

/// A standard-normal f32 tensor of `shape` drawn from `rng`.
fn normal(rng: &mut impl Rng, shape: &Shape, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.sample(rand_distr::StandardNormal))
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}

impl Pipeline {
    /// Loads every component of `checkpoint` on `device` in `dtype`.
    pub fn load(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Self> {
        crate::device::check_dtype(device, dtype)?;
        Ok(Self {
            text: TextEncoder::load(checkpoint, device, dtype)?,
            dit: AceStepTransformer2DModel::load(checkpoint, device, dtype)?,
            dcae: MusicDcae::load(checkpoint, device, dtype)?,
            device: device.clone(),
            checkpoint_root: checkpoint.root().to_path_buf(),
            lyric_tokenizer: std::sync::Mutex::new(None),
        })
    }

    /// Uses the lyric vocab at `path` (else it is looked up on first use with lyrics:
    /// `$ACESTEP_LYRIC_VOCAB`, `<checkpoint>/lyric_tokenizer/vocab.json`, then a download from the
    /// ACE-Step Space).
    pub fn with_lyric_vocab(self, path: &std::path::Path) -> Result<Self> {
        let tok = std::sync::Arc::new(LyricTokenizer::from_file(path)?);
        *self
            .lyric_tokenizer
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tok);
        Ok(self)
    }

    /// The lyric tokenizer, loaded on first use.
    fn lyric_tokenizer(&self) -> Result<std::sync::Arc<LyricTokenizer>> {
        let mut slot = self
            .lyric_tokenizer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let path = crate::lyrics::find_vocab(
            None,
            Some(&self.checkpoint_root),
            Some(&crate::HubOptions::default()),
        )?;
        let tok = std::sync::Arc::new(LyricTokenizer::from_file(&path)?);
        *slot = Some(tok.clone());
        Ok(tok)
    }

    /// The lyric token ids of `params` as the reference's `tokenize_lyrics` (None for no lyrics),
    /// checked against the DiT's lyric vocabulary and position range.
    pub fn lyric_token_ids(&self, params: &GenerationParams) -> Result<Option<Vec<u32>>> {
        if params.lyrics.is_empty() {
            return Ok(None);
        }
        let default = params.lyric_language()?;
        let tok = self.lyric_tokenizer()?;
        let ids = tok.tokenize_lyrics(&params.lyrics, &mut |line| {
            crate::lyrics::script_language(line).unwrap_or(default)
        })?;
        let cfg = self.dit.config();
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

    /// The final latents `[batch, 8, 16, frames]` of a generation and the seeds used.
    pub fn generate_latents(
        &self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<(Tensor, Vec<u64>)> {
        params.validate()?;
        let lyric_ids = self.lyric_token_ids(params)?;
        if progress(Progress::Encoding) == Control::Cancel {
            return Err(Error::Cancelled { step: 0, total: 0 });
        }
        let b = params.batch_size;
        let frames = params.frame_length();
        let mut rng = rand::rng();
        let seeds = params.seeds(|| rng.random_range(0..u32::MAX as u64));
        let init_noise = match &params.init_noise {
            Some(n) => {
                let want = [b, 8, 16, frames];
                if n.dims() != want {
                    return Err(Error::InvalidArgument {
                        name: "init_noise",
                        value: format!("{:?}", n.dims()),
                        expected: format!(
                            "shape {want:?} (batch_size, 8, 16, frames of audio_duration)"
                        ),
                    });
                }
                n.to_device(&self.device)?
            }
            None => {
                let items = seeds
                    .iter()
                    .map(|&s| seeded_noise(s, frames, &self.device))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&items, 0)?
            }
        };
        // One prompt for the whole batch: encoded once, repeated (as the reference).
        let prompt = [params.prompt.as_str()];
        let text = self.text.encode(&prompt)?;
        let text_null = if params.use_erg_tag {
            let null = self
                .text
                .encode_null(&prompt, &QueryScale::text_default())?;
            Some(null.hidden_states.repeat((b, 1, 1))?)
        } else {
            None
        };
        let dtype = self.dit.dtype();
        let speaker_dim = self.dit.config().speaker_embedding_dim;
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
        let inputs = ConditionInputs {
            text_hidden_states: text.hidden_states.repeat((b, 1, 1))?.to_dtype(dtype)?,
            text_mask: text.attention_mask.repeat((b, 1))?.to_dtype(dtype)?,
            text_hidden_states_null: text_null.map(|t| t.to_dtype(dtype)).transpose()?,
            speaker_embeds: Tensor::zeros((b, speaker_dim), dtype, &self.device)?,
            lyric_token_ids,
            lyric_mask,
        };
        let mut rng_steps = rand::rngs::StdRng::seed_from_u64(seeds.first().copied().unwrap_or(0));
        let device = self.device.clone();
        let mut step_noise = |shape: &Shape| normal(&mut rng_steps, shape, &device);
        let latents = text2music_diffusion_process(
            &self.dit,
            &inputs,
            &params.diffusion_settings(),
            &EditInputs::default(),
            &init_noise,
            &mut step_noise,
            &mut |p| progress(Progress::Step(p)),
        )?;
        Ok((latents, seeds))
    }

    /// Generates `batch_size` songs: latents, then audio (overlapping windows past 48 s).
    pub fn generate(
        &self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Vec<GeneratedAudio>> {
        let (latents, seeds) = self.generate_latents(params, progress)?;
        let b = latents.dim(0)?;
        let mut out = Vec::with_capacity(b);
        for (i, seed) in seeds.into_iter().enumerate() {
            if progress(Progress::Decoding { item: i, of: b }) == Control::Cancel {
                return Err(Error::Cancelled { step: i, total: b });
            }
            let lat = latents.narrow(0, i, 1)?;
            let audio = self
                .dcae
                .decode_audio(&lat, OUTPUT_SAMPLE_RATE)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::InvalidArgument {
                    name: "decoded batch",
                    value: "0 items".into(),
                    expected: "one item".into(),
                })?;
            out.push(GeneratedAudio {
                audio,
                seed,
                latents: lat,
            });
        }
        Ok(out)
    }
}

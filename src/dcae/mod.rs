//! The music autoencoder: latents `[b, 8, 16, t]` <-> 44.1 kHz stereo audio, as the reference
//! `MusicDCAE` (`music_dcae_pipeline.py`).
//!
//! - [`MusicDcae::decode`]: un-scale the latents (`z / 0.1786 - 1.9091`), DCAE-decode to a
//!   2-channel mel image, de-normalise it to log-mel (`[-1, 1] -> [-11, 3]`), and vocode the
//!   two channels as one batch. [`MusicDcae::decode_overlap`] does the same in overlapping
//!   windows (DCAE: 512 latent frames, hop 256; vocoder: 512 mel frames with 1024-sample
//!   overlaps and 128-sample crossfades), holding one window of activations at a time.
//! - [`MusicDcae::encode`]: pad to a multiple of 8 x 512 samples, log-mel per channel, normalise,
//!   DCAE-encode, scale; plus the latent lengths.
//!
//! ```no_run
//! use acestep::dcae::MusicDcae;
//! use acestep::Checkpoint;
//! use candle_core::{DType, Device, Tensor};
//!
//! let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! let dcae = MusicDcae::load(&ckpt, &Device::Cpu, DType::F32)?;
//! let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, 107), &Device::Cpu)?;
//! let wavs = dcae.decode(&latents)?; // one [2, 107 * 8 * 512] tensor per batch item
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod autoencoder_dc;
pub mod mel;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::audio::Audio;
use crate::checkpoint::{Checkpoint, Component};
use crate::config::read_config;
pub use crate::config::OneOrMany;
use crate::error::{Error, Result};
use crate::vocoder::{Vocoder, VocoderConfig};
use crate::weights::load_safetensors;
pub use autoencoder_dc::AutoencoderDc;
pub use mel::LogMelSpectrogram;

/// `music_dcae_f8c8/config.json` (diffusers `AutoencoderDC` arguments, with diffusers' defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderDcConfig {
    /// Image channels (2: the stereo mel channels).
    pub in_channels: usize,
    /// Latent channels (8).
    pub latent_channels: usize,
    /// Head width of the EfficientViT linear attention.
    pub attention_head_dim: usize,
    /// Block type per encoder stage (`ResBlock` / `EfficientViTBlock`).
    pub encoder_block_types: OneOrMany<String>,
    /// Block type per decoder stage.
    pub decoder_block_types: OneOrMany<String>,
    /// Encoder stage widths.
    pub encoder_block_out_channels: Vec<usize>,
    /// Decoder stage widths.
    pub decoder_block_out_channels: Vec<usize>,
    /// Encoder blocks per stage.
    pub encoder_layers_per_block: Vec<usize>,
    /// Decoder blocks per stage.
    pub decoder_layers_per_block: Vec<usize>,
    /// Multi-scale kernel sizes per encoder stage.
    pub encoder_qkv_multiscales: Vec<Vec<usize>>,
    /// Multi-scale kernel sizes per decoder stage.
    pub decoder_qkv_multiscales: Vec<Vec<usize>>,
    /// `interpolate` or `pixel_shuffle`.
    pub upsample_block_type: String,
    /// `Conv` or `pixel_unshuffle`.
    pub downsample_block_type: String,
    /// Decoder norm per stage (`rms_norm` / `batch_norm`).
    pub decoder_norm_types: OneOrMany<String>,
    /// Decoder activation per stage.
    pub decoder_act_fns: OneOrMany<String>,
    /// Latent scaling factor.
    pub scaling_factor: f64,
}

impl AutoencoderDcConfig {
    /// Reads `{root}/music_dcae_f8c8/config.json` of `checkpoint`.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self> {
        read_config(&checkpoint.config_path(Component::Dcae)?)
    }
}

impl Default for AutoencoderDcConfig {
    fn default() -> Self {
        let widths = vec![128, 256, 512, 512, 1024, 1024];
        let scales = vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]];
        Self {
            in_channels: 3,
            latent_channels: 32,
            attention_head_dim: 32,
            encoder_block_types: OneOrMany::One("ResBlock".into()),
            decoder_block_types: OneOrMany::One("ResBlock".into()),
            encoder_block_out_channels: widths.clone(),
            decoder_block_out_channels: widths,
            encoder_layers_per_block: vec![2, 2, 2, 3, 3, 3],
            decoder_layers_per_block: vec![3, 3, 3, 3, 3, 3],
            encoder_qkv_multiscales: scales.clone(),
            decoder_qkv_multiscales: scales,
            upsample_block_type: "pixel_shuffle".into(),
            downsample_block_type: "pixel_unshuffle".into(),
            decoder_norm_types: OneOrMany::One("rms_norm".into()),
            decoder_act_fns: OneOrMany::One("silu".into()),
            scaling_factor: 1.0,
        }
    }
}

/// Audio length (seconds) past which [`MusicDcae::decode_auto`] decodes in overlapping windows,
/// the reference pipeline's threshold for `decode_overlap`.
pub const OVERLAP_THRESHOLD_SECONDS: f64 = 48.0;
/// Sample rate of the model's audio.
pub const SAMPLE_RATE: u32 = 44100;
/// Latent scaling (`scale_factor`).
pub const SCALE_FACTOR: f64 = 0.1786;
/// Latent shift (`shift_factor`).
pub const SHIFT_FACTOR: f64 = -1.9091;
/// Log-mel range the DCAE's `[-1, 1]` maps to.
pub const MIN_MEL: f64 = -11.0;
/// See [`MIN_MEL`].
pub const MAX_MEL: f64 = 3.0;
/// Mel frames per latent frame.
pub const MEL_PER_LATENT: usize = 8;
/// Audio samples per mel frame.
pub const SAMPLES_PER_MEL: usize = 512;

/// Latent frames (fractional) of `seconds` of audio as the reference computes them:
/// `seconds * 44100 / 512 / 8`, in that order (so `int()` of it matches the reference's frame
/// counts bit for bit). The one place of this arithmetic: durations, repaint spans and encoded
/// lengths all go through it.
pub fn frames_of_seconds(seconds: f64) -> f64 {
    seconds * SAMPLE_RATE as f64 / SAMPLES_PER_MEL as f64 / MEL_PER_LATENT as f64
}

/// The reference's audio decoder/encoder: DCAE + vocoder (+ the vocoder's mel transform).
#[derive(Debug, Clone)]
pub struct MusicDcae {
    /// The autoencoder.
    pub dcae: AutoencoderDc,
    /// The vocoder.
    pub vocoder: Vocoder,
    /// The mel transform (from the vocoder checkpoint).
    pub mel: LogMelSpectrogram,
    device: Device,
    dtype: DType,
}

fn load_dcae(dir: &Path, device: &Device, dtype: DType) -> Result<AutoencoderDc> {
    let cfg: AutoencoderDcConfig = read_config(&dir.join("config.json"))?;
    let weights = vec![dir.join(Component::Dcae.weights_file())];
    let loaded = load_safetensors(&weights, dtype, device, |vb| AutoencoderDc::new(&cfg, vb))?;
    if let Some(k) = loaded.unused.first() {
        tracing::warn!(
            "music_dcae_f8c8: {} unused tensors, e.g. {k}",
            loaded.unused.len()
        );
    }
    Ok(loaded.model)
}

fn load_vocoder(dir: &Path, device: &Device, dtype: DType) -> Result<(Vocoder, LogMelSpectrogram)> {
    let cfg_path = dir.join("config.json");
    let cfg: VocoderConfig = read_config(&cfg_path)?;
    cfg.validate().map_err(|message| Error::ConfigValue {
        path: cfg_path.clone(),
        message,
    })?;
    let weights = vec![dir.join(Component::Vocoder.weights_file())];
    let loaded = load_safetensors(&weights, dtype, device, |vb| {
        Ok((
            Vocoder::new(&cfg, vb.clone())?,
            LogMelSpectrogram::new(&cfg, vb.pp("mel_transform"))?,
        ))
    })?;
    if let Some(k) = loaded.unused.first() {
        tracing::warn!(
            "music_vocoder: {} unused tensors, e.g. {k}",
            loaded.unused.len()
        );
    }
    Ok(loaded.model)
}

impl MusicDcae {
    /// Loads `music_dcae_f8c8/` and `music_vocoder/` of `checkpoint`.
    pub fn load(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_dirs(
            &checkpoint.component_dir(Component::Dcae)?,
            &checkpoint.component_dir(Component::Vocoder)?,
            device,
            dtype,
        )
    }

    /// Builds from configs and weights (`dcae_vb` holds the `AutoencoderDC` tensors, `vocoder_vb`
    /// the vocoder's, `mel_transform.*` included); for loading, use [`MusicDcae::load`].
    pub fn new(
        dcae_config: &AutoencoderDcConfig,
        vocoder_config: &VocoderConfig,
        dcae_vb: candle_nn::VarBuilder,
        vocoder_vb: candle_nn::VarBuilder,
    ) -> Result<Self> {
        let (device, dtype) = (dcae_vb.device().clone(), dcae_vb.dtype());
        Ok(Self {
            dcae: AutoencoderDc::new(dcae_config, dcae_vb)?,
            vocoder: Vocoder::new(vocoder_config, vocoder_vb.clone())?,
            mel: LogMelSpectrogram::new(vocoder_config, vocoder_vb.pp("mel_transform"))?,
            device,
            dtype,
        })
    }

    /// Loads from a `music_dcae_f8c8`-style and a `music_vocoder`-style folder.
    pub fn load_dirs(
        dcae_dir: &Path,
        vocoder_dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let dcae = load_dcae(dcae_dir, device, dtype)?;
        let (vocoder, mel) = load_vocoder(vocoder_dir, device, dtype)?;
        Ok(Self {
            dcae,
            vocoder,
            mel,
            device: device.clone(),
            dtype,
        })
    }

    /// Latent `[8, 16, t]` (scaled) -> normalised-back log-mel `[1, 2, 128, 8t]`.
    fn latent_to_mel(&self, latent: &Tensor) -> candle_core::Result<Tensor> {
        let z = ((latent.to_dtype(self.dtype)? / SCALE_FACTOR)? + SHIFT_FACTOR)?.unsqueeze(0)?;
        self.mel_from_unscaled(&z)
    }

    fn mel_from_unscaled(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let mel = self.dcae.decoder.forward(z)?;
        (((mel * 0.5)? + 0.5)? * (MAX_MEL - MIN_MEL))? + MIN_MEL
    }

    /// Log-mel `[1, 2, 128, f]` -> stereo `[2, f * 512]` (f32): the two channels are one vocoder
    /// batch, as in the reference.
    fn vocode_stereo(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        self.vocoder
            .decode(&mel.squeeze(0)?)?
            .squeeze(1)?
            .to_dtype(DType::F32)
    }

    /// `decode`: latents `[b, 8, 16, t]` -> one `[2, t * 4096]` f32 waveform at 44.1 kHz per item.
    pub fn decode(&self, latents: &Tensor) -> Result<Vec<Tensor>> {
        let b = latents.dim(0)?;
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let mel = self.latent_to_mel(&latents.get(i)?)?;
            out.push(self.vocode_stereo(&mel)?);
        }
        Ok(out)
    }

    /// Seconds of 44.1 kHz audio that `frames` latent frames decode to.
    pub fn latent_seconds(frames: usize) -> f64 {
        (frames * MEL_PER_LATENT * SAMPLES_PER_MEL) as f64 / SAMPLE_RATE as f64
    }

    /// [`MusicDcae::decode_overlap`] past [`OVERLAP_THRESHOLD_SECONDS`] (bounded memory for long
    /// songs), [`MusicDcae::decode`] below it.
    pub fn decode_auto(&self, latents: &Tensor) -> Result<Vec<Tensor>> {
        if Self::latent_seconds(latents.dim(3)?) > OVERLAP_THRESHOLD_SECONDS {
            self.decode_overlap(latents)
        } else {
            self.decode(latents)
        }
    }

    /// [`MusicDcae::decode_auto`] to [`Audio`] at `sample_rate` (44100 keeps the model's rate;
    /// other rates, such as the reference pipeline's default 48000, are resampled).
    pub fn decode_audio(&self, latents: &Tensor, sample_rate: u32) -> Result<Vec<Audio>> {
        self.decode_auto(latents)?
            .iter()
            .map(|w| Audio::from_tensor(w, SAMPLE_RATE)?.resample(sample_rate))
            .collect()
    }

    /// [`MusicDcae::encode`] of audio clips at any rate and channel count: each is made stereo,
    /// resampled to 44.1 kHz and zero-padded to the longest; returns the latents and each clip's
    /// latent length.
    pub fn encode_audio(&self, clips: &[Audio]) -> Result<(Tensor, Vec<usize>)> {
        if clips.is_empty() {
            return Err(Error::InvalidArgument {
                name: "audio clips",
                value: "0".into(),
                expected: "at least one clip".into(),
            });
        }
        let clips = clips
            .iter()
            .map(|a| a.clone().to_stereo().resample(SAMPLE_RATE))
            .collect::<Result<Vec<_>>>()?;
        let lens: Vec<usize> = clips.iter().map(Audio::len).collect();
        let n = lens.iter().copied().max().unwrap_or(0);
        if n == 0 {
            return Err(Error::InvalidArgument {
                name: "audio length",
                value: "0 samples".into(),
                expected: "a non-empty clip".into(),
            });
        }
        let items = clips
            .iter()
            .map(|a| {
                let t = a.to_tensor(&Device::Cpu)?;
                Ok(t.pad_with_zeros(1, 0, n - a.len())?)
            })
            .collect::<Result<Vec<_>>>()?;
        let audio = Tensor::stack(&items, 0)?;
        self.encode(&audio, Some(&lens))
    }

    /// `decode_overlap`: [`MusicDcae::decode`] in overlapping windows, for long audio.
    pub fn decode_overlap(&self, latents: &Tensor) -> Result<Vec<Tensor>> {
        let b = latents.dim(0)?;
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let latent = latents.get(i)?;
            let mel = self.overlapped_mel(&latent)?;
            let wav = match mel {
                Some(mel) => self.overlapped_vocoder(&mel)?,
                None => Tensor::zeros((1, 0), DType::F32, &self.device)?,
            };
            let max_len = latent.dim(2)? * MEL_PER_LATENT * SAMPLES_PER_MEL;
            let len = wav.dim(1)?.min(max_len);
            out.push(wav.narrow(1, 0, len)?.contiguous()?);
        }
        Ok(out)
    }

    /// DCAE stage of `decode_overlap`: latent windows of 512, anchors every 256, mel overlaps
    /// of 1024 frames trimmed; returns the concatenated de-normalised mel `[1, 2, 128, f]`.
    fn overlapped_mel(&self, latent: &Tensor) -> candle_core::Result<Option<Tensor>> {
        const WIN: usize = 512;
        let offset = WIN / 4;
        let hop = WIN / 2;
        let mel_overlap = WIN * MEL_PER_LATENT / 4;
        let z = ((latent.to_dtype(self.dtype)? / SCALE_FACTOR)? + SHIFT_FACTOR)?.unsqueeze(0)?;
        let len = z.dim(3)?;
        if len == 0 {
            return Ok(None);
        }
        let mut anchors: Vec<usize> = if len > 2 * offset {
            (offset..len - offset).step_by(hop).collect()
        } else {
            Vec::new()
        };
        if anchors.is_empty() {
            anchors.push(offset);
        }
        let n = anchors.len();
        let mut segs = Vec::new();
        for (i, &a) in anchors.iter().enumerate() {
            let start = a.saturating_sub(offset);
            let end = (start + WIN).min(len);
            if end <= start {
                continue;
            }
            let seg = z.narrow(3, start, end - start)?;
            let full = self.dcae.decoder.forward(&seg)?;
            let w = full.dim(3)?;
            let (first, last) = (i == 0, i == n - 1);
            let keep = if first && last {
                full.narrow(3, 0, ((end - start) * MEL_PER_LATENT).min(w))?
            } else if first {
                full.narrow(3, 0, w.saturating_sub(mel_overlap))?
            } else if last {
                full.narrow(3, mel_overlap.min(w), w - mel_overlap.min(w))?
            } else {
                full.narrow(3, mel_overlap.min(w), w.saturating_sub(2 * mel_overlap))?
            };
            if keep.dim(3)? > 0 {
                segs.push(keep);
            }
        }
        if segs.is_empty() {
            return Ok(None);
        }
        let mel = Tensor::cat(&segs, 3)?;
        Ok(Some(
            ((((mel * 0.5)? + 0.5)? * (MAX_MEL - MIN_MEL))? + MIN_MEL)?,
        ))
    }

    /// Vocoder stage of `decode_overlap`: blocks of 512 mel frames (262144 samples), 1024-sample
    /// overlaps, 128-sample linear crossfades; both channels in one vocoder batch.
    fn overlapped_vocoder(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        const WIN_AUDIO: usize = 512 * 512;
        const OVERLAP: usize = 1024;
        const HOP: usize = WIN_AUDIO - 2 * OVERLAP;
        const FRAMES: usize = WIN_AUDIO / SAMPLES_PER_MEL;
        const CF: usize = 128;
        let mel = mel.squeeze(0)?; // [2, 128, f]
        let total_frames = mel.dim(2)?;
        let total_audio = total_frames * SAMPLES_PER_MEL;
        let block = |start: usize| -> candle_core::Result<Tensor> {
            let end = (start + FRAMES).min(total_frames);
            let mut m = mel.narrow(2, start, end - start)?;
            if end - start < FRAMES {
                m = m.pad_with_zeros(2, 0, FRAMES - (end - start))?;
            }
            // [2, 1, samples] -> [2, samples]
            self.vocoder.decode(&m)?.squeeze(1)?.to_dtype(DType::F32)
        };
        let first = block(0)?;
        // Finished pieces are kept as they are and joined once at the end; only the newest piece
        // is touched again (its last `cf` samples are crossfaded with the next block).
        let mut pieces: Vec<Tensor> = Vec::new();
        let mut cur = first.narrow(1, 0, first.dim(1)? - OVERLAP)?;
        let fade_out: Vec<f32> = (0..CF).map(|i| 1.0 - i as f32 / (CF - 1) as f32).collect();
        let fade_in: Vec<f32> = (0..CF).map(|i| i as f32 / (CF - 1) as f32).collect();
        let mut p = HOP;
        while p < total_audio {
            let start = p / SAMPLES_PER_MEL;
            if start >= total_frames {
                break;
            }
            let new = block(start)?;
            let cur_len = cur.dim(1)?;
            let cf = CF.min(cur_len).min(new.dim(1)? - (OVERLAP - CF));
            if cf > 0 {
                let dev = cur.device();
                let tail_w = Tensor::new(&fade_out[..cf], dev)?.unsqueeze(0)?;
                let head_w = Tensor::new(&fade_in[..cf], dev)?.unsqueeze(0)?;
                let tail = cur.narrow(1, cur_len - cf, cf)?;
                let head = new.narrow(1, OVERLAP - cf, cf)?;
                let mixed = (tail.broadcast_mul(&tail_w)? + head.broadcast_mul(&head_w)?)?;
                pieces.push(cur.narrow(1, 0, cur_len - cf)?);
                pieces.push(mixed);
            } else {
                pieces.push(cur);
            }
            let final_append = p + HOP >= total_audio;
            let nl = new.dim(1)?;
            cur = if final_append {
                new.narrow(1, OVERLAP, nl - OVERLAP)?
            } else {
                new.narrow(1, OVERLAP, nl - 2 * OVERLAP)?
            };
            p += HOP;
        }
        pieces.push(cur);
        Tensor::cat(&pieces, 1)
    }

    /// `encode`: stereo audio `[b, 2, n]` at 44.1 kHz (resample first for other rates) with the
    /// valid length of each item -> scaled latents `[b, 8, 16, ceil(n / 4096)]` and latent lengths
    /// (`int(len / 44100 * 44100 / 512 / 8)` as the reference computes them).
    pub fn encode(
        &self,
        audio: &Tensor,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Vec<usize>)> {
        let (b, c, n) = audio.dims3()?;
        if c != 2 {
            return Err(Error::InvalidArgument {
                name: "audio channels",
                value: c.to_string(),
                expected: "2 (stereo; duplicate mono to two channels first)".into(),
            });
        }
        let block = MEL_PER_LATENT * SAMPLES_PER_MEL;
        let audio = if n % block != 0 {
            audio.pad_with_zeros(2, 0, block - n % block)?
        } else {
            audio.clone()
        };
        let mut latents = Vec::with_capacity(b);
        for i in 0..b {
            let mel = self.mel.forward(&audio.get(i)?)?; // [2, 128, f]
            let mel = ((mel - MIN_MEL)? / (MAX_MEL - MIN_MEL))?;
            let mel = ((mel - 0.5)? / 0.5)?
                .to_dtype(self.dtype)?
                .to_device(&self.device)?;
            latents.push(self.dcae.encoder.forward(&mel.unsqueeze(0)?)?);
        }
        let latents = ((Tensor::cat(&latents, 0)? - SHIFT_FACTOR)? * SCALE_FACTOR)?;
        let lens = match lengths {
            Some(l) => l.to_vec(),
            None => vec![n; b],
        };
        let latent_lengths = lens
            .iter()
            .map(|&l| frames_of_seconds(l as f64 / SAMPLE_RATE as f64) as usize)
            .collect();
        Ok((latents, latent_lengths))
    }
}

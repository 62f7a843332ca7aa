//! The log-mel transform of the reference (`music_log_mel.py`, held by the vocoder as
//! `mel_transform`): reflect padding of `(win - hop) / 2` on both sides, a non-centred STFT
//! (n_fft 2048, hop 512, Hann window), magnitude `sqrt(re^2 + im^2 + 1e-6)`, a Slaney mel
//! filterbank, and `log(max(x, 1e-5))`.
//!
//! The window and the filterbank are read from the checkpoint (`mel_transform.spectrogram.window`,
//! `mel_transform.mel_scale.fb`), so they are exactly the reference's.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use rustfft::{num_complex::Complex, Fft, FftPlanner};

use crate::vocoder::VocoderConfig;

/// Frames whose magnitudes are held at once (1 MB of f64 spectra).
const MEL_BLOCK: usize = 128;

/// The log-mel spectrogram.
#[derive(Clone)]
pub struct LogMelSpectrogram {
    window: Vec<f64>,
    /// `[n_fft/2 + 1, n_mels]`, f64 on the CPU.
    fb: Tensor,
    n_fft: usize,
    hop: usize,
    win: usize,
    n_mels: usize,
    fft: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for LogMelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelSpectrogram")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("n_mels", &self.n_mels)
            .finish()
    }
}

/// On the host (not every device has f64).
fn to_f64(t: Tensor) -> Result<Vec<f64>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()
}

impl LogMelSpectrogram {
    /// Builds from `mel_transform.*` of the vocoder checkpoint.
    pub fn new(cfg: &VocoderConfig, vb: VarBuilder) -> Result<Self> {
        let bins = cfg.n_fft / 2 + 1;
        // As stored (f32), whatever the model's dtype: the transform computes in f64.
        let vb = vb.to_dtype(DType::F32);
        let window = to_f64(vb.get(cfg.win_length, "spectrogram.window")?)?;
        let fb = vb
            .get((bins, cfg.n_mels), "mel_scale.fb")?
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?;
        if cfg.win_length != cfg.n_fft {
            candle_core::bail!(
                "win_length {} must equal n_fft {}",
                cfg.win_length,
                cfg.n_fft
            );
        }
        let fft = FftPlanner::new().plan_fft_forward(cfg.n_fft);
        Ok(Self {
            window,
            fb,
            n_fft: cfg.n_fft,
            hop: cfg.hop_length,
            win: cfg.win_length,
            n_mels: cfg.n_mels,
            fft,
        })
    }

    /// Number of frames for `samples` input samples.
    pub fn frames(&self, samples: usize) -> usize {
        let padded = samples + self.win - self.hop;
        if padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop
        }
    }

    /// Log-mel of one signal: `[n_mels][frames]` row-major.
    pub fn forward_signal(&self, y: &[f32]) -> Result<Vec<f32>> {
        let left = (self.win - self.hop) / 2;
        let right = (self.win - self.hop).div_ceil(2);
        if y.len() <= left.max(right) {
            candle_core::bail!(
                "signal of {} samples is too short for the mel transform (needs more than {})",
                y.len(),
                left.max(right)
            );
        }
        // Reflect padding (the edge sample is not repeated).
        let n = y.len();
        let mut p = Vec::with_capacity(n + left + right);
        p.extend((1..=left).rev().map(|i| y[i] as f64));
        p.extend(y.iter().map(|&v| v as f64));
        p.extend((0..right).map(|i| y[n - 2 - i] as f64));
        let frames = self.frames(n);
        let bins = self.n_fft / 2 + 1;
        // Blocks of frames: the magnitudes of a block's frames (one FFT per frame, frames in
        // parallel), then the block's filterbank sums as one f64 matrix product.
        let n_mels = self.n_mels;
        let mut out = vec![0f32; n_mels * frames];
        for f0 in (0..frames).step_by(MEL_BLOCK) {
            let nf = MEL_BLOCK.min(frames - f0);
            let mut mags = vec![0f64; nf * bins];
            mags.par_chunks_mut(bins).enumerate().for_each_init(
                || vec![Complex::new(0f64, 0f64); self.n_fft],
                |buf, (i, dst)| {
                    let start = (f0 + i) * self.hop;
                    for (j, c) in buf.iter_mut().enumerate() {
                        *c = Complex::new(p[start + j] * self.window[j], 0.0);
                    }
                    self.fft.process(buf);
                    for (d, b) in dst.iter_mut().zip(buf.iter()) {
                        *d = (b.re * b.re + b.im * b.im + 1e-6).sqrt();
                    }
                },
            );
            let mel = Tensor::from_vec(mags, (nf, bins), &Device::Cpu)?
                .matmul(&self.fb)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            // [frames][n_mels] -> [n_mels][frames]
            for (i, row) in mel.chunks_exact(n_mels).enumerate() {
                for (m, &v) in row.iter().enumerate() {
                    out[m * frames + f0 + i] = v.max(1e-5).ln() as f32;
                }
            }
        }
        Ok(out)
    }

    /// Log-mel of `[c, samples]` (or `[samples]`) audio: `[c, n_mels, frames]` f32.
    pub fn forward(&self, audio: &Tensor) -> Result<Tensor> {
        let audio = if audio.rank() == 1 {
            audio.unsqueeze(0)?
        } else {
            audio.clone()
        };
        let (c, n) = audio.dims2()?;
        let rows: Vec<Vec<f32>> = audio.to_dtype(DType::F32)?.to_vec2()?;
        let frames = self.frames(n);
        let mut all = Vec::with_capacity(c * self.n_mels * frames);
        for r in &rows {
            all.extend(self.forward_signal(r)?);
        }
        Tensor::from_vec(all, (c, self.n_mels, frames), &Device::Cpu)?.to_device(audio.device())
    }
}

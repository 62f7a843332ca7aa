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

/// The log-mel spectrogram.
#[derive(Clone)]
pub struct LogMelSpectrogram {
    window: Vec<f64>,
    /// `[n_fft/2 + 1][n_mels]`, row-major.
    fb: Vec<f64>,
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
        let fb = to_f64(vb.get((bins, cfg.n_mels), "mel_scale.fb")?)?;
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
        // Frames in parallel; per frame the filterbank sums run over the bins in order (the
        // mel accumulators side by side, so the loop vectorises) as before.
        let n_mels = self.n_mels;
        let mut by_frame = vec![0f32; n_mels * frames];
        by_frame.par_chunks_mut(n_mels).enumerate().for_each_init(
            || {
                (
                    vec![Complex::new(0f64, 0f64); self.n_fft],
                    vec![0f64; n_mels],
                )
            },
            |(buf, acc), (f, dst)| {
                let start = f * self.hop;
                for (i, c) in buf.iter_mut().enumerate() {
                    *c = Complex::new(p[start + i] * self.window[i], 0.0);
                }
                self.fft.process(buf);
                acc.fill(0.0);
                for (k, b) in buf.iter().take(bins).enumerate() {
                    let v = (b.re * b.re + b.im * b.im + 1e-6).sqrt();
                    let row = &self.fb[k * n_mels..(k + 1) * n_mels];
                    for (a, w) in acc.iter_mut().zip(row) {
                        *a += v * w;
                    }
                }
                for (d, a) in dst.iter_mut().zip(acc.iter()) {
                    *d = a.max(1e-5).ln() as f32;
                }
            },
        );
        // [frames][n_mels] -> [n_mels][frames]
        let mut out = vec![0f32; n_mels * frames];
        for (f, row) in by_frame.chunks_exact(n_mels).enumerate() {
            for (m, &v) in row.iter().enumerate() {
                out[m * frames + f] = v;
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

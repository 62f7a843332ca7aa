//! The editing inputs of the reference's `text2music_diffusion_process`: retake (mixing the
//! initial noise with a second noise), repaint (re-generating a span of a source clip), extend
//! (generating past either end of a source clip) and audio2audio (`add_latents_noise`: starting
//! from a noised reference clip).
//!
//! [`EditInputs`] holds them under the reference's argument names; the sampling loop in
//! [`super::diffusion`] applies them.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::schedulers::ScheduleConfig;

/// Latent frames of the longest generation: `int(frames_of_seconds(240))`.
pub const MAX_FRAMES: usize = 2583;

/// The schedule of audio2audio (`add_latents_noise`): restarted at sigma `1 - strength` with
/// `int((1 - strength) * infer_steps)` steps (`infer_steps`: `max(oss_steps)` with oss_steps).
pub fn audio2audio_schedule(strength: f64, infer_steps: usize) -> Result<ScheduleConfig> {
    if !(0.0..1.0).contains(&strength) {
        return Err(bad("ref_audio_strength", strength, "a value in [0, 1)"));
    }
    let sigma_max = 1.0 - strength;
    let steps = (sigma_max * infer_steps as f64) as usize;
    if steps == 0 {
        return Err(bad(
            "ref_audio_strength",
            strength,
            format!(
                "a value that leaves at least one of the {infer_steps} steps \
                 (int((1 - strength) * steps) >= 1)"
            ),
        ));
    }
    Ok(ScheduleConfig {
        sigma_max,
        ..ScheduleConfig::steps(steps)
    })
}

/// Latent frame of a time in seconds as the reference computes it
/// ([`crate::dcae::frames_of_seconds`], truncated toward zero, so `-0.05 s` is frame 0).
pub fn seconds_to_frame(seconds: f64) -> i64 {
    crate::dcae::frames_of_seconds(seconds) as i64
}

/// The editing arguments of `text2music_diffusion_process` (the reference's `retake_*`,
/// `repaint_*`, `src_latents`, `audio2audio_enable` / `ref_latents` / `ref_audio_strength`).
/// `Default` is plain text2music.
#[derive(Debug, Clone)]
pub struct EditInputs {
    /// The retake noise `[b, 8, 16, frames]` (the reference's `add_retake_noise` when given:
    /// tasks retake, repaint and extend).
    pub retake_noise: Option<Tensor>,
    /// How far from the original noise (0 = same, 1 = the retake noise only); repaint and extend
    /// also skip the first `int(steps * (1 - retake_variance))` steps.
    pub retake_variance: f64,
    /// Start of the span to re-generate, in seconds (negative: extend to the left).
    pub repaint_start: f64,
    /// End of the span, in seconds (past the source: extend to the right).
    pub repaint_end: f64,
    /// The source clip's latents `[b, 8, 16, frames]` (repaint, extend).
    pub src_latents: Option<Tensor>,
    /// The reference clip's latents for audio2audio (`audio2audio_enable` when given).
    pub ref_latents: Option<Tensor>,
    /// audio2audio: how much of the reference to keep, in [0, 1): sampling starts at sigma
    /// `1 - ref_audio_strength`.
    pub ref_audio_strength: f64,
}

/// No editing; the numbers are [`crate::GenerationParams::default`]'s.
impl Default for EditInputs {
    fn default() -> Self {
        let p = super::GenerationParams::default();
        Self {
            retake_noise: None,
            retake_variance: p.retake_variance,
            repaint_start: p.repaint_start,
            repaint_end: p.repaint_end,
            src_latents: None,
            ref_latents: None,
            ref_audio_strength: p.ref_audio_strength,
        }
    }
}

fn bad(name: &'static str, value: impl ToString, expected: impl Into<String>) -> Error {
    Error::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// The repaint state of the loop: steps before `n_min` are skipped, then every step is a plain
/// Euler step whose frames outside `mask` are reset to the source noised to the next sigma.
pub(crate) struct Repaint {
    /// The (padded) source latents (f32).
    pub x0: Tensor,
    /// The noise the source is noised with (f32).
    pub z0: Tensor,
    /// 1 on the frames being generated, `[b, 8, 16, frames]` (u8).
    pub mask: Tensor,
    /// First step run.
    pub n_min: usize,
}

impl Repaint {
    /// `(1 - sigma) * x0 + sigma * z0`.
    pub fn noised_source(&self, sigma: f32) -> Result<Tensor> {
        Ok(((&self.x0 * (1.0 - sigma) as f64)? + (&self.z0 * sigma as f64)?)?)
    }

    /// The latents at the first step run: the source noised to `sigma`, written as the reference
    /// writes it (`zt_edit + zt_src - x0` with `zt_edit = x0`).
    pub fn start(&self, sigma: f32) -> Result<Tensor> {
        Ok(((&self.x0 + self.noised_source(sigma)?)? - &self.x0)?)
    }

    /// One repaint step from `latents` at `sigma` to `next` given the velocity `v`.
    pub fn step(&self, latents: &Tensor, v: &Tensor, sigma: f32, next: f32) -> Result<Tensor> {
        let dtype = latents.dtype();
        let lat = latents.to_dtype(DType::F32)?;
        let v = v.to_dtype(DType::F32)?;
        let prev = (lat + (v * (next - sigma) as f64)?)?.to_dtype(dtype)?;
        let src = self.noised_source(next)?.to_dtype(dtype)?;
        Ok(self.mask.where_cond(&prev, &src)?)
    }
}

/// The loop's starting point after the retake / repaint / extend set-up.
pub(crate) struct Prepared {
    /// Initial latents (f32).
    pub latents: Tensor,
    /// Repaint state (repaint and extend).
    pub repaint: Option<Repaint>,
    /// Source frames cut off on the left to fit 240 s (extend to the right), put back after.
    pub head: Option<Tensor>,
    /// Source frames cut off on the right (extend to the left), put back after.
    pub tail: Option<Tensor>,
}

/// `[b, 8, 16, n]` mask with ones on `ranges` of the last dimension.
fn frame_mask(like: &Tensor, ranges: &[(usize, usize)]) -> Result<Tensor> {
    let n = like.dim(3)?;
    let mut m = vec![0u8; n];
    for &(a, b) in ranges {
        m[a..b].iter_mut().for_each(|x| *x = 1);
    }
    let m = Tensor::from_vec(m, (1, 1, 1, n), like.device())?;
    Ok(m.broadcast_as(like.shape())?.contiguous()?)
}

fn same_shape(name: &'static str, t: &Tensor, want: &Tensor) -> Result<()> {
    if t.dims() != want.dims() {
        return Err(bad(
            name,
            format!("shape {:?}", t.dims()),
            format!("shape {:?} (the initial noise's)", want.dims()),
        ));
    }
    Ok(())
}

impl EditInputs {
    /// Checks the latents' shapes against the initial noise `[b, 8, 16, frames]`.
    pub(crate) fn check(&self, init_noise: &Tensor) -> Result<()> {
        if let Some(r) = &self.retake_noise {
            same_shape("retake_noise", r, init_noise)?;
        }
        if let Some(s) = &self.src_latents {
            same_shape("src_latents", s, init_noise)?;
        }
        if let Some(r) = &self.ref_latents {
            same_shape("ref_latents", r, init_noise)?;
        }
        if !(0.0..=1.0).contains(&self.retake_variance) {
            return Err(bad("retake_variance", self.retake_variance, "0 to 1"));
        }
        Ok(())
    }

    /// The retake / repaint / extend set-up of the reference (`add_retake_noise`), given the
    /// initial noise and the step count (`max(oss_steps)` with `oss_steps`).
    pub(crate) fn prepare(&self, init_noise: &Tensor, infer_steps: usize) -> Result<Prepared> {
        let noise = init_noise.to_dtype(DType::F32)?;
        let Some(retake) = &self.retake_noise else {
            return Ok(Prepared {
                latents: noise,
                repaint: None,
                head: None,
                tail: None,
            });
        };
        let retake = retake.to_dtype(DType::F32)?;
        let frames = noise.dim(3)?;
        let n_min = (infer_steps as f64 * (1.0 - self.retake_variance)) as usize;
        let angle = (self.retake_variance * std::f64::consts::PI / 2.0) as f32;
        let mix = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
            Ok(((a * angle.cos() as f64)? + (b * angle.sin() as f64)?)?)
        };
        let start = seconds_to_frame(self.repaint_start);
        let end = seconds_to_frame(self.repaint_end);
        let is_extend = start < 0 || end > frames as i64;
        let is_repaint = is_extend || end - start != frames as i64;
        if !is_repaint {
            // Retake: the whole clip from the mixed noise.
            return Ok(Prepared {
                latents: mix(&noise, &retake)?,
                repaint: None,
                head: None,
                tail: None,
            });
        }
        let src = self
            .src_latents
            .as_ref()
            .ok_or_else(|| {
                bad(
                    "src_latents",
                    "none",
                    "the source clip's latents for repaint / extend",
                )
            })?
            .to_dtype(DType::F32)?;
        if !is_extend {
            if start >= end {
                return Err(bad(
                    "repaint_start",
                    self.repaint_start,
                    format!("before repaint_end {}", self.repaint_end),
                ));
            }
            let (a, b) = (start as usize, end as usize);
            let mask = frame_mask(&noise, &[(a, b)])?;
            let z0 = mask.where_cond(&mix(&noise, &retake)?, &noise)?;
            return Ok(Prepared {
                latents: noise,
                repaint: Some(Repaint {
                    x0: src,
                    z0,
                    mask,
                    n_min,
                }),
                head: None,
                tail: None,
            });
        }
        // Extend: pad the source with `left` / `right` frames to generate. One side past
        // 240 s keeps the last / first 240 s window and puts the cut source frames back after.
        let left = (-start).max(0) as usize;
        let right = (end - frames as i64).max(0) as usize;
        if left > frames || right > frames {
            return Err(bad(
                "repaint_start/repaint_end",
                format!("{} / {}", self.repaint_start, self.repaint_end),
                format!("an extension of at most the source's length per side ({frames} frames)"),
            ));
        }
        let total = left + frames + right;
        if total > MAX_FRAMES && left > 0 && right > 0 {
            return Err(bad(
                "repaint_start/repaint_end",
                format!("{} / {}", self.repaint_start, self.repaint_end),
                "an extension on both sides that fits in 240 s".to_string(),
            ));
        }
        let padded = src.pad_with_zeros(3, left, right)?;
        let (mut head, mut tail) = (None, None);
        let (mut left_trim, mut right_trim) = (0, 0);
        let x0 = if total > MAX_FRAMES && left > 0 {
            right_trim = total - MAX_FRAMES;
            tail = Some(padded.narrow(3, MAX_FRAMES, right_trim)?);
            padded.narrow(3, 0, MAX_FRAMES)?
        } else if total > MAX_FRAMES {
            left_trim = total - MAX_FRAMES;
            head = Some(padded.narrow(3, 0, left_trim)?);
            padded.narrow(3, left_trim, MAX_FRAMES)?
        } else {
            padded
        };
        let window = x0.dim(3)?;
        let mut parts = Vec::new();
        if left > 0 {
            parts.push(retake.narrow(3, 0, left)?);
        }
        parts.push(noise.narrow(3, left_trim, frames - left_trim - right_trim)?);
        if right > 0 {
            parts.push(retake.narrow(3, frames - right, right)?);
        }
        let z0 = Tensor::cat(&parts, 3)?;
        let mask = frame_mask(&x0, &[(0, left), (window - right, window)])?;
        Ok(Prepared {
            latents: z0.clone(),
            repaint: Some(Repaint {
                x0,
                z0,
                mask,
                n_min,
            }),
            head,
            tail,
        })
    }

    /// audio2audio (`add_latents_noise`): the reference latents noised with `noise` to the
    /// start of the restarted schedule `cfg` ([`audio2audio_schedule`]).
    pub(crate) fn audio2audio(&self, noise: &Tensor, cfg: &ScheduleConfig) -> Result<Tensor> {
        let reference = self.ref_latents.as_ref().ok_or_else(|| Error::Internal {
            message: "audio2audio without reference latents".into(),
        })?;
        let s = cfg.shifted_sigma_max() as f64;
        let r = reference.to_dtype(DType::F32)?;
        Ok(((r * (1.0 - s))? + (noise.to_dtype(DType::F32)? * s)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(frames: usize, v: f32) -> Tensor {
        Tensor::full(v, (1, 8, 16, frames), &Device::Cpu).unwrap()
    }

    fn frame_values(x: &Tensor) -> Vec<f32> {
        x.get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn extend_past_240_s_keeps_a_window_and_the_cut_source() {
        let src_frames = 2500;
        let src = Tensor::arange(0f32, src_frames as f32, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, src_frames))
            .unwrap()
            .broadcast_as((1, 8, 16, src_frames))
            .unwrap()
            .contiguous()
            .unwrap();
        let secs = |f: f64| crate::dcae::MusicDcae::latent_seconds(f as usize) + 1e-6;
        // To the right by 200 frames: 2700 > 2583, so the first 117 source frames are cut off
        // and put back in front of the result.
        let e = EditInputs {
            retake_noise: Some(t(src_frames, 1.0)),
            src_latents: Some(src.clone()),
            repaint_start: 0.0,
            repaint_end: secs(2700.0),
            ..Default::default()
        };
        let p = e.prepare(&t(src_frames, 0.0), 10).unwrap();
        let r = p.repaint.as_ref().unwrap();
        assert_eq!(r.x0.dim(3).unwrap(), MAX_FRAMES);
        let head = p.head.as_ref().unwrap();
        assert_eq!(
            frame_values(head),
            (0..117).map(|x| x as f32).collect::<Vec<_>>()
        );
        assert!(p.tail.is_none());
        let mask = frame_values(&r.mask.to_dtype(DType::F32).unwrap());
        assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 200);
        assert_eq!(mask[MAX_FRAMES - 200..], vec![1.0; 200][..]);
        // The window starts at source frame 117 and ends with 200 frames to generate.
        assert_eq!(frame_values(&r.x0)[0], 117.0);
        // To the left by 100 frames: the last 17 source frames wait at the tail.
        let e = EditInputs {
            repaint_start: -secs(100.0),
            repaint_end: secs(2500.0),
            ..e
        };
        let p = e.prepare(&t(src_frames, 0.0), 10).unwrap();
        let tail = p.tail.as_ref().unwrap();
        assert_eq!(
            frame_values(tail),
            (2483..2500).map(|x| x as f32).collect::<Vec<_>>()
        );
        // Both sides past 240 s, or an extension longer than the source: errors.
        let both = EditInputs {
            repaint_start: -secs(100.0),
            repaint_end: secs(2600.0),
            ..e.clone()
        };
        assert!(both.prepare(&t(src_frames, 0.0), 10).is_err());
        let short = EditInputs {
            retake_noise: Some(t(10, 1.0)),
            src_latents: Some(t(10, 0.5)),
            repaint_start: -secs(20.0),
            repaint_end: secs(10.0),
            ..Default::default()
        };
        let err = short.prepare(&t(10, 0.0), 10).err().unwrap().to_string();
        assert!(err.contains("at most the source's length"), "{err}");
    }
}

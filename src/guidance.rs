//! Classifier-free guidance variants of the reference (`acestep/apg_guidance.py`) and the
//! guidance interval / decay arithmetic of `text2music_diffusion_process`.
//!
//! - [`apg`]: adaptive projected guidance. The (momentum-averaged, norm-clipped) difference
//!   between the conditional and unconditional velocities is split into parts parallel and
//!   orthogonal to the conditional velocity (per batch item and channel, over the last two
//!   dims, in f64); only the orthogonal part is added.
//! - [`cfg()`]: `uncond + s * (cond - uncond)`.
//! - [`cfg_zero_star`]: CFG with the optimised unconditional scale, and zero output on the
//!   first `zero_steps + 1` steps.
//! - [`cfg_double_condition`]: separate text and lyric scales with a text-only condition.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which guidance (`cfg_type` in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CfgType {
    /// Adaptive projected guidance (the default).
    #[default]
    Apg,
    /// Plain classifier-free guidance.
    Cfg,
    /// CFG-zero*.
    CfgStar,
}

impl fmt::Display for CfgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CfgType::Apg => "apg",
            CfgType::Cfg => "cfg",
            CfgType::CfgStar => "cfg_star",
        })
    }
}

impl FromStr for CfgType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "apg" => Ok(CfgType::Apg),
            "cfg" => Ok(CfgType::Cfg),
            "cfg_star" | "cfg-star" | "cfgstar" => Ok(CfgType::CfgStar),
            other => Err(Error::InvalidArgument {
                name: "cfg_type",
                value: other.to_string(),
                expected: "one of apg, cfg, cfg_star".into(),
            }),
        }
    }
}

/// APG's running average of guidance differences (`MomentumBuffer`, momentum -0.75).
#[derive(Debug, Clone)]
pub struct MomentumBuffer {
    /// The momentum.
    pub momentum: f64,
    running_average: Option<Tensor>,
}

impl Default for MomentumBuffer {
    fn default() -> Self {
        Self::new(-0.75)
    }
}

impl MomentumBuffer {
    /// An empty buffer.
    pub fn new(momentum: f64) -> Self {
        Self {
            momentum,
            running_average: None,
        }
    }

    /// `avg = value + momentum * avg`; returns the new average.
    pub fn update(&mut self, value: &Tensor) -> Result<Tensor> {
        let avg = match &self.running_average {
            None => value.clone(),
            Some(prev) => (value + prev.affine(self.momentum, 0.0)?)?,
        };
        self.running_average = Some(avg.clone());
        Ok(avg)
    }
}

/// APG's default norm threshold.
pub const APG_NORM_THRESHOLD: f64 = 2.5;

/// Adaptive projected guidance (`apg_forward` with eta 0 and norm threshold 2.5; pass `None` for
/// no momentum). Shapes `[b, c, h, w]`; norms and projections over `(h, w)`.
pub fn apg(
    pred_cond: &Tensor,
    pred_uncond: &Tensor,
    guidance_scale: f64,
    momentum: Option<&mut MomentumBuffer>,
    eta: f64,
    norm_threshold: f64,
) -> Result<Tensor> {
    let dtype = pred_cond.dtype();
    let mut diff = (pred_cond - pred_uncond)?;
    if let Some(m) = momentum {
        diff = m.update(&diff)?;
    }
    if norm_threshold > 0.0 {
        // The norm's sum in f32 whatever the dtype.
        let norm = diff
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sum_keepdim(D::Minus2)?
            .sqrt()?;
        // min(1, threshold / norm); a zero norm gives inf -> 1, as torch.minimum does.
        let scale = (norm.ones_like()?.affine(norm_threshold, 0.0)? / &norm)?.minimum(1.0)?;
        diff = diff.broadcast_mul(&scale.to_dtype(dtype)?)?;
    }
    // Projection in f64 (f32 on Metal, which has no f64): v1 = normalize(pred_cond) over
    // (h, w), eps 1e-12.
    let wide = if pred_cond.device().is_metal() {
        DType::F32
    } else {
        DType::F64
    };
    let v0 = diff.to_dtype(wide)?;
    let v1 = pred_cond.to_dtype(wide)?;
    let n1 = v1
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sum_keepdim(D::Minus2)?
        .sqrt()?
        .maximum(1e-12)?;
    let v1 = v1.broadcast_div(&n1)?;
    let dot = (&v0 * &v1)?
        .sum_keepdim(D::Minus1)?
        .sum_keepdim(D::Minus2)?;
    let parallel = v1.broadcast_mul(&dot)?;
    let orthogonal = (&v0 - &parallel)?;
    let (parallel, orthogonal) = (parallel.to_dtype(dtype)?, orthogonal.to_dtype(dtype)?);
    let update = (orthogonal + parallel.affine(eta, 0.0)?)?;
    Ok((pred_cond + update.affine(guidance_scale - 1.0, 0.0)?)?)
}

/// Plain CFG: `uncond + scale * (cond - uncond)`.
pub fn cfg(cond: &Tensor, uncond: &Tensor, scale: f64) -> Result<Tensor> {
    Ok((uncond + (cond - uncond)?.affine(scale, 0.0)?)?)
}

/// Double-condition guidance: `(1 - st) * uncond + (st - sl) * text_only + sl * cond`.
pub fn cfg_double_condition(
    cond: &Tensor,
    uncond: &Tensor,
    text_only: &Tensor,
    scale_text: f64,
    scale_lyric: f64,
) -> Result<Tensor> {
    let a = uncond.affine(1.0 - scale_text, 0.0)?;
    let b = text_only.affine(scale_text - scale_lyric, 0.0)?;
    let c = cond.affine(scale_lyric, 0.0)?;
    Ok(((a + b)? + c)?)
}

/// CFG-zero*: on step `i <= zero_steps` (with `use_zero_init`) the output is zero; otherwise
/// `alpha * uncond + scale * (cond - alpha * uncond)` with the per-item
/// `alpha = <cond, uncond> / (|uncond|^2 + 1e-8)`.
pub fn cfg_zero_star(
    cond: &Tensor,
    uncond: &Tensor,
    scale: f64,
    step: usize,
    zero_steps: usize,
    use_zero_init: bool,
) -> Result<Tensor> {
    if step <= zero_steps && use_zero_init {
        return Ok(cond.zeros_like()?);
    }
    let b = cond.dim(0)?;
    // The projection's sums in f32 whatever the dtype (a bf16 / f16 sum over a whole latent
    // loses most of its digits).
    let pos = cond.reshape((b, ()))?.to_dtype(DType::F32)?;
    let neg = uncond.reshape((b, ()))?.to_dtype(DType::F32)?;
    let dot = (&pos * &neg)?.sum_keepdim(1)?;
    let sq = (neg.sqr()?.sum_keepdim(1)? + 1e-8)?;
    let alpha = (dot / sq)?.reshape((b, 1, 1, 1))?.to_dtype(cond.dtype())?;
    let scaled_uncond = uncond.broadcast_mul(&alpha)?;
    Ok((&scaled_uncond + (cond - &scaled_uncond)?.affine(scale, 0.0)?)?)
}

/// The guidance interval of the reference: guidance applies on loop steps
/// `start <= i < end` with `start = int(n * (1 - interval) / 2)`, `end = int(n * (interval / 2 + 0.5))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuidanceSchedule {
    /// First guided step.
    pub start: usize,
    /// One past the last guided step.
    pub end: usize,
    /// The maximum scale.
    pub scale: f64,
    /// The scale reached at the end of the interval when `decay` is 1.
    pub min_scale: f64,
    /// Linear decay strength (0 = constant scale).
    pub decay: f64,
}

impl GuidanceSchedule {
    /// For `num_steps` loop steps.
    pub fn new(num_steps: usize, interval: f64, scale: f64, min_scale: f64, decay: f64) -> Self {
        let n = num_steps as f64;
        Self {
            start: (n * ((1.0 - interval) / 2.0)) as usize,
            end: (n * (interval / 2.0 + 0.5)) as usize,
            scale,
            min_scale,
            decay,
        }
    }

    /// Whether step `i` is guided.
    pub fn contains(&self, i: usize) -> bool {
        self.start <= i && i < self.end
    }

    /// The scale at step `i`: `scale - (scale - min) * progress * decay`, with
    /// `progress = (i - start) / (end - start - 1)` (an interval of one step has progress
    /// NaN in the reference's float division; here it is 0).
    pub fn scale_at(&self, i: usize) -> f64 {
        if self.decay > 0.0 {
            let span = self.end as f64 - self.start as f64 - 1.0;
            let progress = if span > 0.0 {
                (i as f64 - self.start as f64) / span
            } else {
                0.0
            };
            self.scale - (self.scale - self.min_scale) * progress * self.decay
        } else {
            self.scale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_indices_match_the_reference_formula() {
        let g = GuidanceSchedule::new(60, 0.5, 15.0, 3.0, 0.0);
        assert_eq!((g.start, g.end), (15, 45));
        assert!(g.contains(15) && g.contains(44) && !g.contains(45) && !g.contains(14));
        assert_eq!(g.scale_at(30), 15.0);
        let d = GuidanceSchedule::new(60, 0.5, 15.0, 3.0, 1.0);
        assert_eq!(d.scale_at(15), 15.0);
        assert!((d.scale_at(44) - 3.0).abs() < 1e-12);
        let full = GuidanceSchedule::new(27, 1.0, 7.0, 3.0, 0.0);
        assert_eq!((full.start, full.end), (0, 27));
    }

    #[test]
    fn names_parse() {
        for k in [CfgType::Apg, CfgType::Cfg, CfgType::CfgStar] {
            assert_eq!(k.to_string().parse::<CfgType>().unwrap(), k);
        }
        assert!("pag"
            .parse::<CfgType>()
            .unwrap_err()
            .to_string()
            .contains("pag"));
    }
}

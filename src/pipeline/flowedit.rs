//! The reference's `flowedit_diffusion_process` (task `edit`): FlowEdit, which moves a source
//! clip's latents along the difference of the target and source velocities, without inversion.
//!
//! Steps `[0, n_min)` are skipped; steps `[n_min, n_max)` average `n_avg` velocity differences
//! at the source noised to the step's sigma; from `n_max` on, the edited latents are noised to
//! that sigma and sampled plainly under the target condition. The schedule is always the Euler
//! one (as the reference), guidance always APG with the null condition of zeros.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::diffusion::{report_step, ConditionInputs, Control, StepProgress};
use crate::dit::{AceStepTransformer2DModel, PreparedCondition};
use crate::error::{Error, Result};
use crate::guidance::{self, MomentumBuffer, APG_NORM_THRESHOLD};
use crate::schedulers::{self, NoiseFn, ScheduleConfig, SchedulerType};

/// Settings of `flowedit_diffusion_process`, under the reference's names (`Default`: its
/// defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowEditSettings {
    /// Steps of the Euler schedule.
    pub infer_steps: usize,
    /// APG guidance scale (0 or 1: off), for the source and the target.
    pub guidance_scale: f64,
    /// Fraction of the steps skipped at the start.
    pub n_min: f64,
    /// Fraction of the steps after which FlowEdit hands over to plain sampling.
    pub n_max: f64,
    /// Velocity differences averaged per step.
    pub n_avg: usize,
    /// euler: ODE updates; pingpong: SDE updates (as the reference, the FlowEdit phase of a
    /// pingpong run computes its update but keeps the latents: only the steps from `n_max` on
    /// change them).
    pub scheduler_type: SchedulerType,
}

/// The reference's defaults, from [`crate::GenerationParams::default`].
impl Default for FlowEditSettings {
    fn default() -> Self {
        super::GenerationParams::default().flowedit_settings()
    }
}

/// A condition and its null (zero prompt, speaker and lyrics).
struct CondPair {
    cond: PreparedCondition,
    null: Option<PreparedCondition>,
}

fn prepare(dit: &AceStepTransformer2DModel, c: &ConditionInputs, cfg: bool) -> Result<CondPair> {
    let (enc, mask) = c.encode(dit)?;
    let null = if cfg {
        let (n, nmask) = dit.encode(
            &c.text_hidden_states.zeros_like()?,
            &c.text_mask,
            &c.speaker_embeds.zeros_like()?,
            &c.lyric_token_ids.zeros_like()?,
            &c.lyric_mask.zeros_like()?,
            None,
        )?;
        Some(dit.prepare_condition(&n, &nmask)?)
    } else {
        None
    };
    Ok(CondPair {
        cond: dit.prepare_condition(&enc, &mask)?,
        null,
    })
}

fn bad(name: &'static str, value: impl ToString, expected: impl Into<String>) -> Error {
    Error::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.into(),
    }
}

impl FlowEditSettings {
    /// The schedule FlowEdit walks: Euler over `infer_steps`, whatever `scheduler_type` says
    /// (it only picks the plain-sampling phase's update).
    pub fn scheduler(&self) -> Result<Box<dyn schedulers::Scheduler>> {
        schedulers::build(
            SchedulerType::Euler,
            &ScheduleConfig::steps(self.infer_steps),
        )
    }

    /// Checks the settings; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.infer_steps == 0 {
            return Err(bad("infer_step", 0, "at least 1"));
        }
        if !(0.0..=1.0).contains(&self.n_min) {
            return Err(bad("edit_n_min", self.n_min, "0 to 1"));
        }
        if !(0.0..=1.0).contains(&self.n_max) || self.n_max < self.n_min {
            return Err(bad(
                "edit_n_max",
                self.n_max,
                format!("edit_n_min ({}) to 1", self.n_min),
            ));
        }
        if self.n_avg == 0 || self.n_avg > 64 {
            return Err(bad("edit_n_avg", self.n_avg, "1 to 64"));
        }
        if !self.guidance_scale.is_finite() || self.guidance_scale < 0.0 {
            return Err(bad(
                "guidance_scale",
                self.guidance_scale,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// FlowEdit from `src_latents` `[b, 8, 16, t]` under the source condition `source` to the target
/// condition `target`. `noise` supplies every Gaussian draw in the reference's order (per
/// step: `n_avg` forward noises, then PingPong's step noise; at `n_max`, one forward noise).
#[allow(clippy::too_many_arguments)]
pub fn flowedit_diffusion_process(
    dit: &AceStepTransformer2DModel,
    source: &ConditionInputs,
    target: &ConditionInputs,
    settings: &FlowEditSettings,
    src_latents: &Tensor,
    noise: &mut NoiseFn,
    progress: &mut dyn FnMut(StepProgress) -> Control,
) -> Result<Tensor> {
    settings.validate()?;
    let (b, _, _, frames) = src_latents.dims4()?;
    let do_cfg = !(settings.guidance_scale == 0.0 || settings.guidance_scale == 1.0);
    let scale = settings.guidance_scale;
    let sched = settings.scheduler()?;
    let timesteps = sched.timesteps().to_vec();
    let sigmas = sched.sigmas().to_vec();
    let n = timesteps.len();
    let src = prepare(dit, source, do_cfg)?;
    let tar = prepare(dit, target, do_cfg)?;
    let dtype = dit.dtype();
    let device = src_latents.device().clone();
    let attention_mask = Tensor::ones((b, frames), dtype, &device)?;
    let velocity = |z: &Tensor,
                    t: f32,
                    c: &CondPair,
                    momentum: Option<&mut MomentumBuffer>|
     -> Result<Tensor> {
        let timestep = Tensor::full(t, b, &device)?;
        let z = z.to_dtype(dtype)?;
        let cond = dit.decode_with(&z, &attention_mask, &c.cond, &timestep, frames, None)?;
        let v = match &c.null {
            Some(null) => {
                let uncond = dit.decode_with(&z, &attention_mask, null, &timestep, frames, None)?;
                guidance::apg(&cond, &uncond, scale, momentum, 0.0, APG_NORM_THRESHOLD)?
            }
            None => cond,
        };
        Ok(v.to_dtype(DType::F32)?)
    };
    let n_min = (settings.infer_steps as f64 * settings.n_min) as usize;
    let n_max = (settings.infer_steps as f64 * settings.n_max) as usize;
    let x_src = src_latents.to_dtype(DType::F32)?;
    let shape = x_src.shape().clone();
    let mut zt_edit = x_src.clone();
    let mut xt_tar: Option<Tensor> = None;
    let mut momentum_src = MomentumBuffer::default();
    let mut momentum_tar = MomentumBuffer::default();
    let pingpong = settings.scheduler_type == SchedulerType::PingPong;
    let start = Instant::now();
    for (i, &t) in timesteps.iter().enumerate() {
        if i >= n_min {
            let t_i = t / 1000.0;
            let t_next = timesteps.get(i + 1).map_or(0.0, |t| t / 1000.0);
            if i < n_max {
                let mut v_delta = x_src.zeros_like()?;
                for _ in 0..settings.n_avg {
                    let fwd = noise(&shape)?.to_dtype(DType::F32)?;
                    let zt_src = ((&x_src * (1.0 - t_i) as f64)? + (fwd * t_i as f64)?)?;
                    let zt_tar = ((&zt_edit + &zt_src)? - &x_src)?;
                    let v_src = velocity(&zt_src, t, &src, Some(&mut momentum_src))?;
                    let v_tar = velocity(&zt_tar, t, &tar, None)?;
                    v_delta = (v_delta + ((v_tar - v_src)? * (1.0 / settings.n_avg as f64))?)?;
                }
                if pingpong {
                    // The reference draws the SDE noise and drops the update (see the settings).
                    noise(&shape)?;
                } else {
                    zt_edit = (&zt_edit + (v_delta * (t_next - t_i) as f64)?)?;
                }
            } else {
                if i == n_max {
                    let fwd = noise(&shape)?.to_dtype(DType::F32)?;
                    let sigma = sigmas[i];
                    let xt_src = ((fwd * sigma as f64)? + (&x_src * (1.0 - sigma) as f64)?)?;
                    xt_tar = Some(((&zt_edit + xt_src)? - &x_src)?);
                }
                let x = xt_tar.take().ok_or_else(|| {
                    bad(
                        "edit_n_min",
                        settings.n_min,
                        "at most edit_n_max (the plain-sampling phase needs its start step)",
                    )
                })?;
                let v = velocity(&x, t, &tar, Some(&mut momentum_tar))?;
                xt_tar = Some(if pingpong {
                    let denoised = (x - (v * t_i as f64)?)?;
                    let z = noise(&shape)?.to_dtype(DType::F32)?;
                    ((denoised * (1.0 - t_next) as f64)? + (z * t_next as f64)?)?
                } else {
                    (x + (v * (t_next - t_i) as f64)?)?
                });
            }
        }
        report_step(progress, i, n, start)?;
    }
    Ok(xt_tar.unwrap_or(zt_edit).to_dtype(dtype)?)
}

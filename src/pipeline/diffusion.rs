//! The reference's `text2music_diffusion_process`: conditions, null conditions (ERG or zeros),
//! the sampling loop with guidance inside the guidance interval, and the scheduler steps.

use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::editing::EditInputs;
use crate::dit::{AceStepTransformer2DModel, PreparedCondition};
use crate::erg::QueryScale;
use crate::error::{Error, Result};
use crate::guidance::{self, CfgType, GuidanceSchedule, MomentumBuffer, APG_NORM_THRESHOLD};
use crate::schedulers::{self, NoiseFn, ScheduleConfig, SchedulerType, DEFAULT_SHIFT};

/// Sampling settings of `text2music_diffusion_process`, under the reference's argument names.
/// `Default` is the reference `__call__`'s defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffusionSettings {
    /// Number of inference steps (ignored with `oss_steps`).
    pub infer_steps: usize,
    /// Guidance scale; 0 or 1 turns guidance off.
    pub guidance_scale: f64,
    /// Euler / Heun step rescaling strength.
    pub omega_scale: f64,
    /// The scheduler.
    pub scheduler_type: SchedulerType,
    /// The guidance.
    pub cfg_type: CfgType,
    /// CFG-zero*: steps `0..=zero_steps` output zero (with `use_zero_init`).
    pub zero_steps: usize,
    /// CFG-zero*: zero init on.
    pub use_zero_init: bool,
    /// Fraction of the steps (centred) that are guided.
    pub guidance_interval: f64,
    /// Linear decay of the scale over the interval (0 = off).
    pub guidance_interval_decay: f64,
    /// The scale the decay reaches.
    pub min_guidance_scale: f64,
    /// Optimal-step-size positions (1-based) in a `max(oss_steps)`-step schedule; empty = off.
    pub oss_steps: Vec<usize>,
    /// ERG-lyric for the null condition.
    pub use_erg_lyric: bool,
    /// ERG-diffusion for the unconditional prediction.
    pub use_erg_diffusion: bool,
    /// Double-condition guidance: text scale (active when both scales are > 1).
    pub guidance_scale_text: f64,
    /// Double-condition guidance: lyric scale.
    pub guidance_scale_lyric: f64,
}

/// The reference's `__call__` defaults, from [`crate::GenerationParams::default`] (the one place
/// they are written).
impl Default for DiffusionSettings {
    fn default() -> Self {
        super::GenerationParams::default().diffusion_settings()
    }
}

impl DiffusionSettings {
    /// The scheduler these settings describe (with the `oss_steps` remapping).
    pub fn scheduler(&self) -> Result<Box<dyn schedulers::Scheduler>> {
        let cfg = if self.oss_steps.is_empty() {
            ScheduleConfig::steps(self.infer_steps)
        } else {
            let sigmas = schedulers::oss_sigmas(&self.oss_steps, DEFAULT_SHIFT)?;
            ScheduleConfig {
                steps: sigmas.len(),
                sigmas: Some(sigmas),
                ..ScheduleConfig::steps(0)
            }
        };
        schedulers::build(self.scheduler_type, &cfg)
    }

    /// The step count the reference's editing arithmetic uses (retake's start step,
    /// audio2audio's share): `max(oss_steps)` with `oss_steps`, else `infer_steps`.
    pub fn edit_steps(&self) -> usize {
        self.oss_steps
            .iter()
            .copied()
            .max()
            .unwrap_or(self.infer_steps)
    }

    /// The scheduler of audio2audio at `ref_audio_strength`: the schedule restarted at sigma
    /// `1 - strength` with `int((1 - strength) * edit_steps)` steps.
    pub fn audio2audio_scheduler(
        &self,
        ref_audio_strength: f64,
    ) -> Result<(Box<dyn schedulers::Scheduler>, ScheduleConfig)> {
        let cfg = super::editing::audio2audio_schedule(ref_audio_strength, self.edit_steps())?;
        Ok((schedulers::build(self.scheduler_type, &cfg)?, cfg))
    }

    fn double_condition(&self) -> bool {
        self.guidance_scale_text > 1.0 && self.guidance_scale_lyric > 1.0
    }
}

/// The conditioning inputs of one generation (batch `b`).
#[derive(Debug, Clone)]
pub struct ConditionInputs {
    /// UMT5 prompt embeddings `[b, s, d]`.
    pub text_hidden_states: Tensor,
    /// `[b, s]` prompt mask.
    pub text_mask: Tensor,
    /// ERG-tag prompt embeddings for the null condition (`None`: zeros, or no ERG-tag).
    pub text_hidden_states_null: Option<Tensor>,
    /// `[b, speaker_dim]` (zeros for the released checkpoint).
    pub speaker_embeds: Tensor,
    /// `[b, l]` lyric token ids (u32).
    pub lyric_token_ids: Tensor,
    /// `[b, l]` lyric mask.
    pub lyric_mask: Tensor,
}

impl ConditionInputs {
    /// The DiT's `encode` of these inputs: the condition sequence and its mask.
    pub fn encode(&self, dit: &AceStepTransformer2DModel) -> Result<(Tensor, Tensor)> {
        Ok(dit.encode(
            &self.text_hidden_states,
            &self.text_mask,
            &self.speaker_embeds,
            &self.lyric_token_ids,
            &self.lyric_mask,
            None,
        )?)
    }
}

/// Where a run is, reported to the caller's callback once per loop step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// Steps done (1-based after the step).
    pub step: usize,
    /// Loop steps in all (Heun: `2n - 1`).
    pub total: usize,
    /// Seconds since the loop started.
    pub elapsed: f64,
}

/// What the callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop at this step boundary with [`Error::Cancelled`].
    Cancel,
}

/// Reports loop step `i` (0-based) of `total` to `progress`; [`Error::Cancelled`] when it asks
/// to stop.
pub(crate) fn report_step(
    progress: &mut dyn FnMut(StepProgress) -> Control,
    i: usize,
    total: usize,
    start: Instant,
) -> Result<()> {
    let p = StepProgress {
        step: i + 1,
        total,
        elapsed: start.elapsed().as_secs_f64(),
    };
    if progress(p) == Control::Cancel {
        return Err(Error::Cancelled { step: i + 1, total });
    }
    Ok(())
}

/// The encoded conditions of a run.
struct Conditions {
    cond: PreparedCondition,
    null: PreparedCondition,
    no_lyric: Option<PreparedCondition>,
}

fn encode_conditions(
    dit: &AceStepTransformer2DModel,
    c: &ConditionInputs,
    s: &DiffusionSettings,
) -> Result<Conditions> {
    let zeros_spk = c.speaker_embeds.zeros_like()?;
    let (enc, mask) = c.encode(dit)?;
    let erg_lyric = QueryScale::lyric_default();
    let zero_ids = c.lyric_token_ids.zeros_like()?;
    // Every other condition has a null speaker; with ERG-lyric the lyrics are weakened (lyric
    // encoder queries scaled), without it they are replaced by token 0.
    let with_null_speaker = |text: &Tensor| -> Result<Tensor> {
        let (ids, erg) = if s.use_erg_lyric {
            (&c.lyric_token_ids, Some(&erg_lyric))
        } else {
            (&zero_ids, None)
        };
        Ok(dit
            .encode(text, &c.text_mask, &zeros_spk, ids, &c.lyric_mask, erg)?
            .0)
    };
    // P(null speaker, weaker text, weaker lyric) or P(null speaker, null text, null lyric)
    let null_text = match (&c.text_hidden_states_null, s.use_erg_lyric) {
        (Some(t), true) => t.clone(),
        _ => c.text_hidden_states.zeros_like()?,
    };
    let null = with_null_speaker(&null_text)?;
    let no_lyric = if s.double_condition() {
        // P(null speaker, text, weaker lyric) or P(null speaker, text, no lyric)
        let h = with_null_speaker(&c.text_hidden_states)?;
        Some(dit.prepare_condition(&h, &mask)?)
    } else {
        None
    };
    Ok(Conditions {
        cond: dit.prepare_condition(&enc, &mask)?,
        null: dit.prepare_condition(&null, &mask)?,
        no_lyric,
    })
}

/// Runs the text2music sampling loop from `init_noise` `[b, 8, 16, t]` (the reference draws it
/// with `randn_tensor` from the per-item seeds) and returns the final latents.
///
/// `edit` carries the editing tasks' inputs (retake noise, repaint / extend span and source
/// latents, audio2audio reference); `EditInputs::default()` is text2music. `step_noise` supplies
/// PingPong's per-step noise; `progress` is called after every loop step and may cancel.
pub fn text2music_diffusion_process(
    dit: &AceStepTransformer2DModel,
    inputs: &ConditionInputs,
    settings: &DiffusionSettings,
    edit: &EditInputs,
    init_noise: &Tensor,
    step_noise: &mut NoiseFn,
    progress: &mut dyn FnMut(StepProgress) -> Control,
) -> Result<Tensor> {
    let (b, _, _, frames) = init_noise.dims4()?;
    if frames == 0 {
        return Err(Error::InvalidArgument {
            name: "frame length",
            value: "0".into(),
            expected: "at least one latent frame (audio_duration >= 0.1 s)".into(),
        });
    }
    edit.check(init_noise)?;
    let do_cfg = !(settings.guidance_scale == 0.0 || settings.guidance_scale == 1.0);
    let mut scheduler = settings.scheduler()?;
    let infer_steps = settings.edit_steps();
    // The guidance interval is laid over the nominal step count, as the reference's
    // `retrieve_timesteps` returns it: for Heun that is `infer_steps`, not the 2n - 1 loop steps.
    let mut nominal = if settings.oss_steps.is_empty() {
        settings.infer_steps
    } else {
        settings.oss_steps.len()
    };
    let prepared = edit.prepare(init_noise, infer_steps)?;
    let mut latents = prepared.latents;
    if let Some(strength) = edit.ref_latents.as_ref().map(|_| edit.ref_audio_strength) {
        let (restarted, cfg) = settings.audio2audio_scheduler(strength)?;
        latents = edit.audio2audio(&latents, &cfg)?;
        scheduler = restarted;
        nominal = cfg.steps;
    }
    let repaint = prepared.repaint;
    let frames = latents.dim(3)?;
    let timesteps: Vec<f32> = scheduler.timesteps().to_vec();
    let n = timesteps.len();
    let conds = encode_conditions(dit, inputs, settings)?;
    let dtype = dit.dtype();
    let device = init_noise.device().clone();
    let attention_mask = Tensor::ones((b, frames), dtype, &device)?;
    let schedule = GuidanceSchedule::new(
        nominal,
        settings.guidance_interval,
        settings.guidance_scale,
        settings.min_guidance_scale,
        settings.guidance_interval_decay,
    );
    let erg_diffusion = QueryScale::diffusion_default();
    let mut momentum = MomentumBuffer::default();
    let mut latents = latents.to_dtype(dtype)?;
    let start = Instant::now();
    let sigma_at = |i: usize| timesteps.get(i).map_or(0.0, |t| t / 1000.0);
    for (i, &t) in timesteps.iter().enumerate() {
        let report =
            |progress: &mut dyn FnMut(StepProgress) -> Control| report_step(progress, i, n, start);
        if let Some(r) = &repaint {
            if i < r.n_min {
                report(progress)?;
                continue;
            }
            if i == r.n_min {
                latents = r.start(sigma_at(i))?.to_dtype(dtype)?;
            }
        }
        let timestep = Tensor::full(t, b, &device)?.to_dtype(DType::F32)?;
        let decode = |cond: &PreparedCondition, erg: Option<&QueryScale>| {
            dit.decode_with(&latents, &attention_mask, cond, &timestep, frames, erg)
        };
        let noise_pred = if do_cfg && schedule.contains(i) {
            let scale = schedule.scale_at(i);
            let with_cond = decode(&conds.cond, None)?;
            let only_text = match &conds.no_lyric {
                Some(c) => Some(decode(c, None)?),
                None => None,
            };
            let uncond = decode(
                &conds.null,
                settings.use_erg_diffusion.then_some(&erg_diffusion),
            )?;
            match only_text {
                Some(text) => guidance::cfg_double_condition(
                    &with_cond,
                    &uncond,
                    &text,
                    settings.guidance_scale_text,
                    settings.guidance_scale_lyric,
                )?,
                None => match settings.cfg_type {
                    CfgType::Apg => guidance::apg(
                        &with_cond,
                        &uncond,
                        scale,
                        Some(&mut momentum),
                        0.0,
                        APG_NORM_THRESHOLD,
                    )?,
                    CfgType::Cfg => guidance::cfg(&with_cond, &uncond, scale)?,
                    CfgType::CfgStar => guidance::cfg_zero_star(
                        &with_cond,
                        &uncond,
                        scale,
                        i,
                        settings.zero_steps,
                        settings.use_zero_init,
                    )?,
                },
            }
        } else {
            decode(&conds.cond, None)?
        };
        latents = match &repaint {
            Some(r) => r.step(&latents, &noise_pred, sigma_at(i), sigma_at(i + 1))?,
            None => scheduler.step(&noise_pred, &latents, settings.omega_scale, step_noise)?,
        };
        report(progress)?;
    }
    let parts: Vec<Tensor> = [prepared.head, Some(latents), prepared.tail]
        .into_iter()
        .flatten()
        .map(|t| t.to_dtype(dtype))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&parts, 3)?)
}

//! Flow-matching schedulers of the reference (`acestep/schedulers/`): Euler with the omega-scaled
//! step, Heun (second order, each interior timestep visited twice) and PingPong (stochastic:
//! denoise, then re-noise to the next sigma).
//!
//! All three share the reference's sigma schedule: `num_train_timesteps = 1000`, `shift = 3`,
//! `sigma = shift * s / (1 + (shift - 1) * s)` over `s = linspace(sigma_max, sigma_min, n)`; the
//! DiT is called with `timestep = 1000 * sigma`. A [`Scheduler`] lists the loop's timesteps and
//! advances the sample one step at a time; the loop itself belongs to the pipeline.
//!
//! ```
//! use acestep::schedulers::{self, SchedulerType, ScheduleConfig};
//! use candle_core::{Device, Tensor};
//!
//! let mut s = schedulers::build(SchedulerType::Euler, &ScheduleConfig::steps(4))?;
//! let mut x = Tensor::ones((1, 8, 16, 5), candle_core::DType::F32, &Device::Cpu)?;
//! for _ in 0..s.timesteps().len() {
//!     let v = x.clone(); // the model's velocity prediction
//!     x = s.step(&v, &x, 10.0, &mut |shape| Ok(Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu)?))?;
//! }
//! assert_eq!(s.timesteps().len(), 4);
//! # Ok::<(), acestep::Error>(())
//! ```

mod euler;
mod heun;
mod pingpong;

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Shape, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use euler::FlowMatchEuler;
pub use heun::FlowMatchHeun;
pub use pingpong::FlowMatchPingPong;

/// Number of training timesteps of the flow-matching schedule.
pub const NUM_TRAIN_TIMESTEPS: usize = 1000;
/// The pipeline's schedule shift.
pub const DEFAULT_SHIFT: f64 = 3.0;

/// Source of Gaussian noise for stochastic steps (PingPong): returns a standard-normal tensor
/// of the given shape. The pipeline passes its seeded generator; tests pass recorded noise.
pub type NoiseFn<'a> = dyn FnMut(&Shape) -> Result<Tensor> + 'a;

/// A flow-matching scheduler: the timesteps of the sampling loop and one update per timestep.
pub trait Scheduler: Send {
    /// The schedule and the position in it.
    fn schedule(&self) -> &Schedule;

    /// Advances `sample` by one loop step given the model's velocity `model_output` at the
    /// current timestep. `omega` is the pipeline's `omega_scale` (Euler and Heun rescale the
    /// step's deviation from its mean by `0.9 + 0.2 * sigmoid(omega / 10)`); `noise` is drawn
    /// from by stochastic schedulers. Returns the next sample in `model_output`'s dtype.
    fn step(
        &mut self,
        model_output: &Tensor,
        sample: &Tensor,
        omega: f64,
        noise: &mut NoiseFn,
    ) -> Result<Tensor>;

    /// The timesteps the loop visits, in order (`1000 * sigma`, f32 as the reference).
    fn timesteps(&self) -> &[f32] {
        &self.schedule().timesteps
    }

    /// The sigmas, with the final 0 appended.
    fn sigmas(&self) -> &[f32] {
        &self.schedule().sigmas
    }

    /// Index of the next step.
    fn step_index(&self) -> usize {
        self.schedule().index
    }
}

/// Sigmas, timesteps and the step counter that every scheduler keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The sigmas, final 0 included.
    pub sigmas: Vec<f32>,
    /// The loop's timesteps.
    pub timesteps: Vec<f32>,
    /// The next step.
    pub index: usize,
}

impl Schedule {
    /// One timestep per sigma (`1000 * sigma`), and the final 0 appended to the sigmas.
    pub(crate) fn from_sigmas(mut sigmas: Vec<f32>) -> Self {
        let timesteps = timesteps_of(&sigmas);
        sigmas.push(0.0);
        Self {
            sigmas,
            timesteps,
            index: 0,
        }
    }

    /// The index of the step about to be taken, or an error past the end.
    pub(crate) fn current(&self) -> Result<usize> {
        if self.index < self.timesteps.len() {
            Ok(self.index)
        } else {
            Err(Error::InvalidArgument {
                name: "scheduler step",
                value: self.index.to_string(),
                expected: format!("fewer than {} steps", self.timesteps.len()),
            })
        }
    }
}

/// Which scheduler (`scheduler_type` in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SchedulerType {
    /// `FlowMatchEulerDiscreteScheduler` (the default).
    #[default]
    Euler,
    /// `FlowMatchHeunDiscreteScheduler`.
    Heun,
    /// `FlowMatchPingPongScheduler`.
    #[serde(rename = "pingpong")]
    PingPong,
}

impl fmt::Display for SchedulerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchedulerType::Euler => "euler",
            SchedulerType::Heun => "heun",
            SchedulerType::PingPong => "pingpong",
        })
    }
}

impl FromStr for SchedulerType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "euler" => Ok(SchedulerType::Euler),
            "heun" => Ok(SchedulerType::Heun),
            "pingpong" | "ping-pong" | "ping_pong" => Ok(SchedulerType::PingPong),
            other => Err(Error::InvalidArgument {
                name: "scheduler_type",
                value: other.to_string(),
                expected: "one of euler, heun, pingpong".into(),
            }),
        }
    }
}

/// How to build the schedule: a step count, or explicit sigmas (the `oss_steps` path).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// Number of inference steps (ignored when `sigmas` is given).
    pub steps: usize,
    /// The schedule shift (3.0 in the pipeline).
    pub shift: f64,
    /// Explicit sigmas before shifting, as the reference's `set_timesteps(sigmas=...)`.
    pub sigmas: Option<Vec<f32>>,
    /// The largest training sigma before shifting, in (0, 1]: the reference's `sigma_max`
    /// constructor argument (1.0; audio2audio passes `1 - ref_audio_strength`).
    pub sigma_max: f64,
}

impl ScheduleConfig {
    /// `steps` evenly spaced steps with the pipeline's shift.
    pub fn steps(steps: usize) -> Self {
        Self {
            steps,
            shift: DEFAULT_SHIFT,
            sigmas: None,
            sigma_max: 1.0,
        }
    }

    /// The shifted largest sigma of this schedule (f32, as the reference's `scheduler.sigma_max`).
    pub fn shifted_sigma_max(&self) -> f32 {
        shift_f32(f32_div_1000(self.sigma_max), self.shift as f32)
    }
}

/// `f32(f32(x * 1000) / 1000)`: a training sigma as the reference's f32 timestep table holds it.
fn f32_div_1000(x: f64) -> f32 {
    (x * NUM_TRAIN_TIMESTEPS as f64) as f32 / NUM_TRAIN_TIMESTEPS as f32
}

/// `shift * s / (1 + (shift - 1) * s)` in f32 (the reference's torch shift of its training table).
fn shift_f32(s: f32, shift: f32) -> f32 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// Builds a scheduler of `kind`.
pub fn build(kind: SchedulerType, cfg: &ScheduleConfig) -> Result<Box<dyn Scheduler>> {
    Ok(match kind {
        SchedulerType::Euler => Box::new(FlowMatchEuler::new(cfg)?),
        SchedulerType::Heun => Box::new(FlowMatchHeun::new(cfg)?),
        SchedulerType::PingPong => Box::new(FlowMatchPingPong::new(cfg)?),
    })
}

/// `shift * s / (1 + (shift - 1) * s)`.
fn shift_sigma(s: f64, shift: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// The shifted sigmas (f32) of a schedule, without the final 0.
///
/// As the reference: the smallest training sigma is `shift(1 / 1000)` computed in f32 (so the
/// last inference sigma is shifted twice, a quirk kept for parity); the schedule is `linspace(1000 * sigma_max, 1000 * sigma_min, n) / 1000` in f64, shifted in f64
/// and rounded to f32. Explicit sigmas are shifted in f32 (the reference shifts the numpy f32
/// array it is given, which the `oss_steps` path fills with already-shifted values).
pub(crate) fn shifted_sigmas(cfg: &ScheduleConfig) -> Result<Vec<f32>> {
    if !(cfg.shift.is_finite() && cfg.shift > 0.0) {
        return Err(Error::InvalidArgument {
            name: "shift",
            value: cfg.shift.to_string(),
            expected: "a positive number".into(),
        });
    }
    if let Some(s) = &cfg.sigmas {
        if s.is_empty() {
            return Err(Error::InvalidArgument {
                name: "sigmas",
                value: "[]".into(),
                expected: "at least one sigma".into(),
            });
        }
        let shift = cfg.shift as f32;
        return Ok(s
            .iter()
            .map(|&x| shift * x / (1.0 + (shift - 1.0) * x))
            .collect());
    }
    if !(cfg.sigma_max.is_finite() && cfg.sigma_max > 0.0 && cfg.sigma_max <= 1.0) {
        return Err(Error::InvalidArgument {
            name: "sigma_max",
            value: cfg.sigma_max.to_string(),
            expected: "a value in (0, 1] (audio2audio: ref_audio_strength in [0, 1))".into(),
        });
    }
    let n = cfg.steps;
    if n == 0 {
        return Err(Error::InvalidArgument {
            name: "infer_step",
            value: "0".into(),
            expected: "at least 1".into(),
        });
    }
    let shift32 = cfg.shift as f32;
    let s_min32 = shift_f32(1.0 / NUM_TRAIN_TIMESTEPS as f32, shift32);
    // sigma_max: the largest training sigma (shift(1) = 1 by default).
    let (t_max, t_min) = (
        cfg.shifted_sigma_max() as f64 * NUM_TRAIN_TIMESTEPS as f64,
        s_min32 as f64 * NUM_TRAIN_TIMESTEPS as f64,
    );
    let t = linspace(t_max, t_min, n);
    Ok(t.into_iter()
        .map(|t| shift_sigma(t / NUM_TRAIN_TIMESTEPS as f64, cfg.shift) as f32)
        .collect())
}

/// numpy's `linspace(start, stop, n)` (endpoint included, f64).
pub(crate) fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
            v[n - 1] = stop;
            v
        }
    }
}

/// `0.9 + 0.2 / (1 + exp(-0.1 * omega))`: the factor the Euler and Heun steps apply to the
/// deviation of the update from its mean.
pub fn omega_factor(omega: f64) -> f64 {
    0.9 + 0.2 / (1.0 + (-0.1 * omega).exp())
}

/// `x + ((dx - mean(dx)) * omega_factor + mean(dx))` in f32, as the reference (the mean is over
/// the whole tensor, batch included).
pub(crate) fn omega_update(sample: &Tensor, dx: &Tensor, omega: f64) -> Result<Tensor> {
    let m = dx.mean_all()?;
    let dx = dx
        .broadcast_sub(&m)?
        .affine(omega_factor(omega), 0.0)?
        .broadcast_add(&m)?;
    Ok((sample + dx)?)
}

/// The timestep values `1000 * sigma` (f32).
pub(crate) fn timesteps_of(sigmas: &[f32]) -> Vec<f32> {
    sigmas
        .iter()
        .map(|&s| s * NUM_TRAIN_TIMESTEPS as f32)
        .collect()
}

/// A sample in f32 (the schedulers compute in f32 and return the model's dtype).
pub(crate) fn f32_of(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?)
}

/// The `oss_steps` remapping: the reference takes the timesteps of a `max(oss_steps)`-step Euler
/// schedule at the 1-based positions `oss_steps`, divides by 1000 and passes them as sigmas
/// (which are then shifted again). Returns those sigmas for [`ScheduleConfig::sigmas`].
pub fn oss_sigmas(oss_steps: &[usize], shift: f64) -> Result<Vec<f32>> {
    let max = oss_steps.iter().copied().max().unwrap_or(0);
    if oss_steps.contains(&0) || max == 0 {
        return Err(Error::InvalidArgument {
            name: "oss_steps",
            value: format!("{oss_steps:?}"),
            expected: "1-based step positions (each >= 1)".into(),
        });
    }
    let base = shifted_sigmas(&ScheduleConfig {
        shift,
        ..ScheduleConfig::steps(max)
    })?;
    let ts = timesteps_of(&base);
    Ok(oss_steps
        .iter()
        .map(|&i| ts[i - 1] / NUM_TRAIN_TIMESTEPS as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omega_factor_matches_the_reference_logistic() {
        assert!((omega_factor(10.0) - (0.9 + 0.2 / (1.0 + (-1.0f64).exp()))).abs() < 1e-15);
        assert!((omega_factor(0.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn scheduler_names_parse_and_print() {
        for k in [
            SchedulerType::Euler,
            SchedulerType::Heun,
            SchedulerType::PingPong,
        ] {
            assert_eq!(k.to_string().parse::<SchedulerType>().unwrap(), k);
        }
        let e = "ddim".parse::<SchedulerType>().unwrap_err().to_string();
        assert!(e.contains("ddim") && e.contains("pingpong"), "{e}");
    }

    #[test]
    fn schedule_starts_at_one_and_ends_at_the_twice_shifted_min() {
        let s = shifted_sigmas(&ScheduleConfig::steps(60)).unwrap();
        assert_eq!(s.len(), 60);
        assert_eq!(s[0], 1.0);
        // The reference's sigma_min is already shifted (0.002994) and is shifted once more.
        let m = 3.0 * 0.002994012f64 / (1.0 + 2.0 * 0.002994012);
        assert!((s[59] as f64 - m).abs() < 1e-8, "{}", s[59]);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
    }
}

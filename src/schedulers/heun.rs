//! `FlowMatchHeunDiscreteScheduler`: a first-order (Euler) predictor and a second-order
//! corrector that averages the two derivatives. Every timestep but the first is visited twice,
//! so `n` steps take `2n - 1` model evaluations.

use candle_core::Tensor;

use super::{
    f32_of, omega_update, shifted_sigmas, timesteps_of, NoiseFn, Schedule, ScheduleConfig,
    Scheduler,
};
use crate::error::{Error, Result};

/// The Heun flow-matching scheduler.
#[derive(Debug, Clone)]
pub struct FlowMatchHeun {
    schedule: Schedule,
    /// Predictor state: derivative, dt and the sample it started from.
    pending: Option<(Tensor, f32, Tensor)>,
}

impl FlowMatchHeun {
    /// A schedule of `cfg.steps` steps; the reference's Heun scheduler has no custom-sigma path,
    /// so `cfg.sigmas` (the `oss_steps` remapping) is an error, as it is there.
    pub fn new(cfg: &ScheduleConfig) -> Result<Self> {
        if cfg.sigmas.is_some() {
            return Err(Error::InvalidArgument {
                name: "oss_steps",
                value: "given with scheduler_type heun".into(),
                expected: "the euler or pingpong scheduler (heun has no custom sigmas)".into(),
            });
        }
        let base = shifted_sigmas(cfg)?;
        let ts = timesteps_of(&base);
        let mut timesteps = vec![ts[0]];
        for &t in &ts[1..] {
            timesteps.extend([t, t]);
        }
        let mut sigmas = vec![base[0]];
        for &s in &base[1..] {
            sigmas.extend([s, s]);
        }
        sigmas.push(0.0);
        Ok(Self {
            schedule: Schedule {
                sigmas,
                timesteps,
                index: 0,
            },
            pending: None,
        })
    }
}

impl Scheduler for FlowMatchHeun {
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        sample: &Tensor,
        omega: f64,
        _noise: &mut NoiseFn,
    ) -> Result<Tensor> {
        let i = self.schedule.current()?;
        let v = f32_of(model_output)?;
        let (base, derivative, dt) = match self.pending.take() {
            None => {
                let (sigma, next) = (self.schedule.sigmas[i], self.schedule.sigmas[i + 1]);
                let sample = f32_of(sample)?;
                let denoised = (&sample - v.affine(sigma as f64, 0.0)?)?;
                let derivative = ((&sample - denoised)? / sigma as f64)?;
                let dt = next - sigma;
                self.pending = Some((derivative.clone(), dt, sample.clone()));
                (sample, derivative, dt)
            }
            Some((prev_derivative, dt, saved)) => {
                let next = self.schedule.sigmas[i];
                let sample = f32_of(sample)?;
                let denoised = (&sample - v.affine(next as f64, 0.0)?)?;
                let derivative = ((&sample - denoised)? / next as f64)?;
                let derivative = ((prev_derivative + derivative)? * 0.5)?;
                (saved, derivative, dt)
            }
        };
        let dx = derivative.affine(dt as f64, 0.0)?;
        let prev = omega_update(&base, &dx, omega)?;
        self.schedule.index += 1;
        Ok(prev.to_dtype(model_output.dtype())?)
    }
}

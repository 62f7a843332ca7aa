//! `FlowMatchPingPongScheduler`: predict the clean sample, then re-noise it to the next sigma
//! with fresh Gaussian noise (`x = (1 - s') * x0 + s' * eps`).

use candle_core::Tensor;

use super::{f32_of, shifted_sigmas, NoiseFn, Schedule, ScheduleConfig, Scheduler};
use crate::error::Result;

/// The PingPong flow-matching scheduler (stochastic; `omega` is not used, as in the reference).
#[derive(Debug, Clone)]
pub struct FlowMatchPingPong {
    schedule: Schedule,
}

impl FlowMatchPingPong {
    /// A schedule of `cfg.steps` steps (or `cfg.sigmas`).
    pub fn new(cfg: &ScheduleConfig) -> Result<Self> {
        Ok(Self {
            schedule: Schedule::from_sigmas(shifted_sigmas(cfg)?),
        })
    }
}

impl Scheduler for FlowMatchPingPong {
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        sample: &Tensor,
        _omega: f64,
        noise: &mut NoiseFn,
    ) -> Result<Tensor> {
        let i = self.schedule.current()?;
        let (sigma, next) = (self.schedule.sigmas[i], self.schedule.sigmas[i + 1]);
        let sample = f32_of(sample)?;
        let denoised = (&sample - f32_of(model_output)?.affine(sigma as f64, 0.0)?)?;
        let eps = f32_of(&noise(sample.shape())?)?;
        let prev = (denoised.affine(1.0 - next as f64, 0.0)? + eps.affine(next as f64, 0.0)?)?;
        self.schedule.index += 1;
        Ok(prev.to_dtype(model_output.dtype())?)
    }
}

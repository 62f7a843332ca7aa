//! `FlowMatchEulerDiscreteScheduler`: `x += omega-rescaled (sigma_next - sigma) * v`.

use candle_core::Tensor;

use super::{f32_of, omega_update, shifted_sigmas, NoiseFn, Schedule, ScheduleConfig, Scheduler};
use crate::error::Result;

/// The Euler flow-matching scheduler with the reference's omega-scaled step.
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    schedule: Schedule,
}

impl FlowMatchEuler {
    /// A schedule of `cfg.steps` steps (or `cfg.sigmas`).
    pub fn new(cfg: &ScheduleConfig) -> Result<Self> {
        Ok(Self {
            schedule: Schedule::from_sigmas(shifted_sigmas(cfg)?),
        })
    }
}

impl Scheduler for FlowMatchEuler {
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
        let (sigma, next) = (self.schedule.sigmas[i], self.schedule.sigmas[i + 1]);
        let dx = f32_of(model_output)?.affine((next - sigma) as f64, 0.0)?;
        let prev = omega_update(&f32_of(sample)?, &dx, omega)?;
        self.schedule.index += 1;
        Ok(prev.to_dtype(model_output.dtype())?)
    }
}

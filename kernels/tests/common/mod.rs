//! Error measures shared by the kernel tests.
#![allow(dead_code)]

use candle_core::Tensor;

/// max |t|.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.max_all())
        .and_then(|m| m.to_scalar::<f32>())
        .expect("max |t|")
}

/// max |a - b| (same shapes).
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    max_abs(&(a - b).expect("a - b"))
}

/// max |a - b| / max |b|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    max_diff(a, b) / max_abs(b).max(1e-30)
}

//! Error measures shared by the kernel tests.
#![allow(dead_code)]

use candle_core::{Device, Result, Shape, Tensor};
use std::cell::Cell;

thread_local! {
    /// The calling test's random stream, seeded by the thread's name (libtest names each test's
    /// thread after the test).
    static STATE: Cell<u64> = Cell::new(
        std::thread::current()
            .name()
            .unwrap_or("")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            }),
    );
}

/// splitmix64: the next 64 random bits of this thread's stream.
fn next_u64() -> u64 {
    STATE.with(|s| {
        let z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// Normal values as `Tensor::randn`, but drawn from a fixed seed per test (splitmix64 and
/// Box-Muller): every run of a test sees the same inputs, so a bound that holds once holds on
/// every machine instead of failing on the odd unlucky draw.
pub fn randn<S: Into<Shape>>(mean: f32, std: f32, shape: S, dev: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let uniform = || ((next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            mean + std * z as f32
        })
        .collect();
    Tensor::from_vec(v, shape, dev)
}

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

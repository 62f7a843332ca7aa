//! Element-wise activations, vectorised.

use super::simd::{self, dispatch, Simd};
use crate::Activation;

#[inline(always)]
unsafe fn apply_body<S: Simd>(act: Activation, x: &mut [f32]) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut i = 0;
    macro_rules! run {
        ($f:expr) => {{
            while i + S::LANES <= n {
                S::store(p.add(i), $f(S::load(p.add(i))));
                i += S::LANES;
            }
            if i < n {
                let mut tmp = [0f32; 16];
                tmp[..n - i].copy_from_slice(&x[i..]);
                S::store(tmp.as_mut_ptr(), $f(S::load(tmp.as_ptr())));
                x[i..].copy_from_slice(&tmp[..n - i]);
            }
        }};
    }
    match act {
        Activation::Identity => {}
        Activation::Silu => run!(|v| simd::silu::<S>(v)),
        Activation::Relu => run!(|v| S::max(v, S::splat(0.0))),
        Activation::Gelu => run!(|v| simd::gelu::<S>(v)),
        Activation::GeluTanh => run!(|v| simd::gelu_tanh::<S>(v)),
    }
}

dispatch!(
    /// Applies `act` in place.
    pub(crate) fn apply_inplace = apply_body(act: Activation, x: &mut [f32])
);

/// Applies `act` to `src` into `dst` (same length).
pub(crate) fn apply_into(act: Activation, src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
    apply_inplace(act, dst);
}

/// Parallel in-place activation over a large buffer.
pub(crate) fn apply_par(act: Activation, x: &mut [f32]) {
    use rayon::prelude::*;
    if matches!(act, Activation::Identity) {
        return;
    }
    const CHUNK: usize = 1 << 14;
    if x.len() <= CHUNK {
        apply_inplace(act, x);
    } else {
        x.par_chunks_mut(CHUNK).for_each(|c| apply_inplace(act, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silu_ref(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    /// `erfc(a)` for `a >= 0`: `2 / sqrt(pi)` times the integral of `e^{-t^2}` over `[a, a + 12]`
    /// by Simpson's rule (the rest of the tail is below `e^{-144}`): full relative precision on
    /// the tail, where `1 - erf` would cancel.
    fn erfc_ref(a: f64) -> f64 {
        let n = 24000;
        let h = 12.0 / n as f64;
        let mut s = 0.0;
        for i in 0..=n {
            let t = a + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            s += w * (-t * t).exp();
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn gelu_ref(x: f64) -> f64 {
        let c = erfc_ref(x.abs() / std::f64::consts::SQRT_2);
        0.5 * x * if x < 0.0 { c } else { 2.0 - c }
    }

    fn gelu_tanh_ref(x: f64) -> f64 {
        let z = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        x / (1.0 + (-2.0 * z).exp())
    }

    #[test]
    fn activations_match_f64() {
        let xs: Vec<f32> = (0..2001)
            .map(|i| (i as f32 - 1000.0) * 0.0123)
            .chain([-100.0, -88.5, 88.5, 100.0, 0.0, -0.0])
            .collect();
        for act in [
            Activation::Silu,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Relu,
        ] {
            let mut y = xs.clone();
            apply_inplace(act, &mut y);
            let f = |x: f64| match act {
                Activation::Silu => silu_ref(x),
                Activation::Gelu => gelu_ref(x),
                Activation::GeluTanh => gelu_tanh_ref(x),
                Activation::Relu => x.max(0.0),
                Activation::Identity => x,
            };
            let (mut worst, mut worst_rel) = (0f64, 0f64);
            for (&x, &v) in xs.iter().zip(&y) {
                let (x, v) = (x as f64, v as f64);
                let r = f(x);
                worst = worst.max((v - r).abs() / r.abs().max(1.0));
                // Relative error, in units of what rounding the input to f32 alone would cost
                // (the condition number |x f'(x) / f(x)| times 2^-24, at least one ulp).
                if r.abs() > 1e-30 {
                    let d = x.abs().max(1e-3) * 1e-6;
                    let cond = (x * (f(x + d) - f(x - d)) / (2.0 * d * r)).abs();
                    let rel = (v - r).abs() / r.abs() / (cond.max(1.0) * f32::EPSILON as f64);
                    worst_rel = worst_rel.max(rel);
                }
            }
            eprintln!(
                "{act:?}: max error {worst:.2e}, max relative error {worst_rel:.1} x cond x eps"
            );
            assert!(worst < 5e-7, "{act:?}: {worst}");
            // Measured: SiLU 0.9, GELU 2.6, tanh GELU 1.6 (the cancelling `1 + erf` / `1 + tanh`
            // forms were off by 100 % on the negative tail).
            assert!(worst_rel < 4.0, "{act:?}: {worst_rel} x cond x eps");
        }
    }
}

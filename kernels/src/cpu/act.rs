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

    fn gelu_ref(x: f64) -> f64 {
        // erf via a high-precision series / continued fraction is not in std: use the
        // relation with the complementary error function computed by numerical integration.
        let erf = {
            // erf(x / sqrt 2) by Simpson's rule.
            let n = 20000;
            let h = x / std::f64::consts::SQRT_2 / n as f64;
            let mut s = 0.0;
            for i in 0..=n {
                let t = i as f64 * h;
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
        };
        0.5 * x * (1.0 + erf)
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
            let mut worst = 0f64;
            for (&x, &v) in xs.iter().zip(&y) {
                let r = match act {
                    Activation::Silu => silu_ref(x as f64),
                    Activation::Gelu => gelu_ref(x as f64),
                    Activation::GeluTanh => {
                        let x = x as f64;
                        let z = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                        0.5 * x * (1.0 + z.tanh())
                    }
                    Activation::Relu => (x as f64).max(0.0),
                    Activation::Identity => x as f64,
                };
                let err = (v as f64 - r).abs() / r.abs().max(1.0);
                worst = worst.max(err);
            }
            eprintln!("{act:?}: max error {worst:.2e}");
            assert!(worst < 5e-7, "{act:?}: {worst}");
        }
    }
}

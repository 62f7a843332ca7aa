//! The fused tail of the convolutions: `act(acc + bias + residual)`, stored.

use super::simd::{self, dispatch, Simd};
use crate::Activation;

/// `act(v)`.
#[inline(always)]
pub(crate) unsafe fn apply_v<S: Simd>(act: Activation, v: S::V) -> S::V {
    match act {
        Activation::Identity => v,
        Activation::Silu => simd::silu::<S>(v),
        Activation::Relu => S::max(v, S::splat(0.0)),
        Activation::Gelu => simd::gelu::<S>(v),
        Activation::GeluTanh => simd::gelu_tanh::<S>(v),
    }
}

/// `n <= LANES` values from `p` (the rest zero).
#[inline(always)]
pub(crate) unsafe fn load_n<S: Simd>(p: *const f32, n: usize) -> S::V {
    if n == S::LANES {
        S::load(p)
    } else {
        let mut tmp = [0f32; 16];
        for (i, t) in tmp.iter_mut().enumerate().take(n) {
            *t = *p.add(i);
        }
        S::load(tmp.as_ptr())
    }
}

/// Stores the first `n <= LANES` lanes of `v` to `p`.
#[inline(always)]
pub(crate) unsafe fn store_n<S: Simd>(p: *mut f32, v: S::V, n: usize) {
    if n == S::LANES {
        S::store(p, v)
    } else {
        let mut tmp = [0f32; 16];
        S::store(tmp.as_mut_ptr(), v);
        for (i, t) in tmp.iter().enumerate().take(n) {
            *p.add(i) = *t;
        }
    }
}

/// `dst[i] = act(acc[i] + bias + res[i])` for `n <= LANES` lanes.
#[inline(always)]
pub(crate) unsafe fn store_epi<S: Simd>(
    acc: S::V,
    dst: *mut f32,
    n: usize,
    bias: f32,
    res: Option<*const f32>,
    act: Activation,
) {
    let mut v = S::add(acc, S::splat(bias));
    if let Some(r) = res {
        v = S::add(v, load_n::<S>(r, n));
    }
    store_n::<S>(dst, apply_v::<S>(act, v), n);
}

/// `y[i] = act(y[i] + bias + res[i])` over one row.
#[inline(always)]
unsafe fn finish_row_body<S: Simd>(y: &mut [f32], bias: f32, res: Option<&[f32]>, act: Activation) {
    let n = y.len();
    let p = y.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let m = (n - i).min(S::LANES);
        let v = load_n::<S>(p.add(i), m);
        store_epi::<S>(v, p.add(i), m, bias, res.map(|r| r.as_ptr().add(i)), act);
        i += S::LANES;
    }
}

dispatch!(
    /// `y[i] = act(y[i] + bias + res[i])` over one row, vectorised.
    pub(crate) fn finish_row = finish_row_body(y: &mut [f32], bias: f32, res: Option<&[f32]>, act: Activation)
);

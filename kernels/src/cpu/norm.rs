//! Norms over the channels of channel-first tensors (`[b, c, n]`, n = length or h * w), without
//! transposes: each pass walks the channels for a block of positions at a time.

use rayon::prelude::*;

use super::SendPtr;

use super::epilogue::{load_n, store_n};
use super::simd::{dispatch, Simd};

/// Which norm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// `x / sqrt(mean(x^2) + eps)`.
    Rms,
    /// `(x - mean) / sqrt(var + eps)`.
    Layer,
}

/// Positions per block: four vectors.
const BLOCK: usize = 64;

/// One block of positions `[p0, p0 + len)` of one batch item: `x`, `y` are `[c][n]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<S: Simd>(
    kind: Kind,
    x: &[f32],
    c: usize,
    n: usize,
    p0: usize,
    len: usize,
    w: &[f32],
    b: Option<&[f32]>,
    eps: f32,
    res: Option<&[f32]>,
    y: *mut f32,
) {
    let nv = len.div_ceil(S::LANES);
    let load = |ch: usize, v: usize| -> S::V {
        let off = ch * n + p0 + v * S::LANES;
        load_n::<S>(x.as_ptr().add(off), (len - v * S::LANES).min(S::LANES))
    };
    let inv_c = S::splat(1.0 / c as f32);
    let mut mean = [S::splat(0.0); BLOCK / 8];
    if kind == Kind::Layer {
        for ch in 0..c {
            for (v, m) in mean.iter_mut().enumerate().take(nv) {
                *m = S::add(*m, load(ch, v));
            }
        }
        for m in mean.iter_mut().take(nv) {
            *m = S::mul(*m, inv_c);
        }
    }
    let mut ss = [S::splat(0.0); BLOCK / 8];
    for ch in 0..c {
        for (v, s) in ss.iter_mut().enumerate().take(nv) {
            let d = S::sub(load(ch, v), mean[v]);
            *s = S::fma(d, d, *s);
        }
    }
    let mut scale = [S::splat(0.0); BLOCK / 8];
    for v in 0..nv {
        scale[v] = S::rsqrt(S::add(S::mul(ss[v], inv_c), S::splat(eps)));
    }
    for ch in 0..c {
        let wv = S::splat(w[ch]);
        let bv = S::splat(b.map_or(0.0, |b| b[ch]));
        for v in 0..nv {
            let off = ch * n + p0 + v * S::LANES;
            let m = (len - v * S::LANES).min(S::LANES);
            let mut o = S::fma(S::mul(S::sub(load(ch, v), mean[v]), scale[v]), wv, bv);
            if let Some(r) = res {
                o = S::add(o, load_n::<S>(r.as_ptr().add(off), m));
            }
            store_n::<S>(y.add(off), o, m);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn block_body<S: Simd>(
    kind: Kind,
    x: &[f32],
    c: usize,
    n: usize,
    p0: usize,
    len: usize,
    w: &[f32],
    b: Option<&[f32]>,
    eps: f32,
    res: Option<&[f32]>,
    y: *mut f32,
) {
    block::<S>(kind, x, c, n, p0, len, w, b, eps, res, y)
}

dispatch!(fn block_isa = block_body(kind: Kind, x: &[f32], c: usize, n: usize, p0: usize, len: usize, w: &[f32], b: Option<&[f32]>, eps: f32, res: Option<&[f32]>, y: *mut f32));

/// `norm(x) * w + b + res` over the channels of `x` `[batch, c, n]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_channels(
    kind: Kind,
    x: &[f32],
    batch: usize,
    c: usize,
    n: usize,
    w: &[f32],
    b: Option<&[f32]>,
    eps: f32,
    res: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = super::output_vec(batch * c * n);
    let yp = SendPtr::new(y.as_mut_ptr());
    let nblk = n.div_ceil(BLOCK);
    (0..batch * nblk).into_par_iter().for_each(|task| {
        let (bi, blk) = (task / nblk, task % nblk);
        let p0 = blk * BLOCK;
        let len = (n - p0).min(BLOCK);
        let xs = &x[bi * c * n..(bi + 1) * c * n];
        let rs = res.map(|r| &r[bi * c * n..(bi + 1) * c * n]);
        // SAFETY: each task writes its own positions of its batch item.
        block_isa(kind, xs, c, n, p0, len, w, b, eps, rs, unsafe {
            yp.get().add(bi * c * n)
        });
    });
    y
}

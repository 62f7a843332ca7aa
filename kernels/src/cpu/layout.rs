//! Memory-bound reshuffles of the DCAE done in one pass each (candle would copy two or three
//! times): GLU gating, nearest 2x upsampling, and the down / up blocks' shortcuts.

use rayon::prelude::*;

use super::epilogue::{apply_v, load_n, store_n};
use super::simd::{dispatch, Simd};
use crate::Activation;

#[inline(always)]
unsafe fn glu_row<S: Simd>(a: &[f32], gate: &[f32], act: Activation, y: &mut [f32]) {
    let n = y.len();
    let mut i = 0;
    while i < n {
        let m = (n - i).min(S::LANES);
        let g = apply_v::<S>(act, load_n::<S>(gate.as_ptr().add(i), m));
        let v = S::mul(load_n::<S>(a.as_ptr().add(i), m), g);
        store_n::<S>(y.as_mut_ptr().add(i), v, m);
        i += S::LANES;
    }
}

dispatch!(fn glu_row_isa = glu_row(a: &[f32], gate: &[f32], act: Activation, y: &mut [f32]));

/// `x[:, :c] * act(x[:, c:])` for `x` `[b, 2c, n]`.
pub(crate) fn glu(x: &[f32], b: usize, c: usize, n: usize, act: Activation) -> Vec<f32> {
    let mut y = super::output_vec(b * c * n);
    y.par_chunks_mut(n).enumerate().for_each(|(row, yr)| {
        let (bi, ch) = (row / c, row % c);
        let a = &x[(bi * 2 * c + ch) * n..(bi * 2 * c + ch + 1) * n];
        let g = &x[(bi * 2 * c + c + ch) * n..(bi * 2 * c + c + ch + 1) * n];
        glu_row_isa(a, g, act, yr);
    });
    y
}

/// Nearest-neighbour 2x upsampling of `[planes, h, w]`.
pub(crate) fn upsample2x(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut y = super::output_vec(planes * 4 * h * w);
    y.par_chunks_mut(2 * w).enumerate().for_each(|(row, yr)| {
        // Output row `row` of plane p is input row (row % 2h) / 2.
        let (p, r) = (row / (2 * h), (row % (2 * h)) / 2);
        let src = &x[(p * h + r) * w..(p * h + r + 1) * w];
        for (pair, &v) in yr.chunks_exact_mut(2).zip(src) {
            pair[0] = v;
            pair[1] = v;
        }
    });
    y
}

/// `mean over groups of g channels of pixel_unshuffle(x, 2)`: `[b, c, h, w]` ->
/// `[b, 4c / g, h / 2, w / 2]`, where unshuffled channel `4 ch + 2 i + j` at `(y, x)` is
/// `x[ch][2y + i][2x + j]`.
pub(crate) fn unshuffle_mean(
    x: &[f32],
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    g: usize,
) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let cout = 4 * c / g;
    let inv = 1.0 / g as f32;
    let mut y = vec![0f32; b * cout * ho * wo];
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, yp)| {
            let (bi, o) = (plane / cout, plane % cout);
            for k in 0..g {
                let uc = o * g + k;
                let (ch, i, j) = (uc / 4, (uc % 4) / 2, uc % 2);
                let src = &x[(bi * c + ch) * h * w..(bi * c + ch + 1) * h * w];
                for yy in 0..ho {
                    let srow = &src[(2 * yy + i) * w..(2 * yy + i + 1) * w];
                    let drow = &mut yp[yy * wo..(yy + 1) * wo];
                    for (xx, d) in drow.iter_mut().enumerate() {
                        *d += srow[2 * xx + j];
                    }
                }
            }
            for v in yp.iter_mut() {
                *v *= inv;
            }
        });
    y
}

/// `pixel_shuffle(repeat_interleave(x, r, dim 1), 2)`: `[b, c, h, w]` -> `[b, c r / 4, 2h, 2w]`,
/// output channel `o` at `(2y + i, 2x + j)` being input channel `(4 o + 2 i + j) / r` at `(y, x)`.
pub(crate) fn shuffle_repeat(
    x: &[f32],
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    r: usize,
) -> Vec<f32> {
    let cout = c * r / 4;
    let (ho, wo) = (2 * h, 2 * w);
    let mut y = super::output_vec(b * cout * ho * wo);
    y.par_chunks_mut(wo).enumerate().for_each(|(row, yr)| {
        let plane = row / ho;
        let (bi, o, yy) = (plane / cout, plane % cout, row % ho);
        let i = yy % 2;
        let s0 = (4 * o + 2 * i) / r;
        let s1 = (4 * o + 2 * i + 1) / r;
        let r0 = &x[((bi * c + s0) * h + yy / 2) * w..][..w];
        let r1 = &x[((bi * c + s1) * h + yy / 2) * w..][..w];
        for (xx, pair) in yr.chunks_exact_mut(2).enumerate() {
            pair[0] = r0[xx];
            pair[1] = r1[xx];
        }
    });
    y
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn seq_dw_row<S: Simd>(
    rows: &[Option<&[f32]>],
    w: &[f32],
    c: usize,
    bias: &[f32],
    glu: Option<Activation>,
    out: &mut [f32],
) {
    // out[ch] = bias[ch] + sum_k w[k][ch] * rows[k][ch] (missing rows are zero padding), then
    // the GLU over the two channel halves if asked.
    let k = rows.len();
    let half = c / 2;
    let width = if glu.is_some() { half } else { c };
    let mut i = 0;
    while i < width {
        let n = (width - i).min(S::LANES);
        let conv = |ch: usize| {
            let mut acc = load_n::<S>(bias.as_ptr().add(ch), n);
            for (kk, r) in rows.iter().enumerate().take(k) {
                if let Some(r) = r {
                    acc = S::fma(
                        load_n::<S>(w.as_ptr().add(kk * c + ch), n),
                        load_n::<S>(r.as_ptr().add(ch), n),
                        acc,
                    );
                }
            }
            acc
        };
        let v = match glu {
            Some(act) => S::mul(conv(i), apply_v::<S>(act, conv(half + i))),
            None => conv(i),
        };
        store_n::<S>(out.as_mut_ptr().add(i), v, n);
        i += S::LANES;
    }
}

dispatch!(fn seq_dw_row_isa = seq_dw_row(rows: &[Option<&[f32]>], w: &[f32], c: usize, bias: &[f32], glu: Option<Activation>, out: &mut [f32]));

/// A depthwise convolution along the sequence of a channel-last `[b, s, c]` tensor (`w`
/// `[k][c]`, zero padding `pad` before, same length out), plus bias, then optionally
/// `out[..c/2] * act(out[c/2..])`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seq_depthwise(
    x: &[f32],
    b: usize,
    s: usize,
    c: usize,
    w: &[f32],
    k: usize,
    pad: usize,
    bias: &[f32],
    glu: Option<Activation>,
) -> Vec<f32> {
    let width = if glu.is_some() { c / 2 } else { c };
    let mut y = super::output_vec(b * s * width);
    y.par_chunks_mut(width).enumerate().for_each(|(row, out)| {
        let (bi, t) = (row / s, row % s);
        let rows: Vec<Option<&[f32]>> = (0..k)
            .map(|kk| {
                let src = t as isize + kk as isize - pad as isize;
                (src >= 0 && (src as usize) < s).then(|| {
                    let r = bi * s + src as usize;
                    &x[r * c..(r + 1) * c]
                })
            })
            .collect();
        seq_dw_row_isa(&rows, w, c, bias, glu, out);
    });
    y
}

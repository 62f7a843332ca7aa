//! Sana's multi-scale ReLU linear attention core: per head group of `3 * hd` channels (q, k, v),
//! `out = (v relu(k)^T) relu(q) / (sum_j relu(k)_j . relu(q) + eps)`, as two small products per
//! group straight from the channel-first inputs.

use rayon::prelude::*;

use super::SendPtr;

use super::gemm::{sgemm, MatMut, MatRef, Threads};

/// One input tensor's layout: `[b, groups * 3 * hd, n]`.
pub(crate) struct Part<'a> {
    pub data: &'a [f32],
    pub groups: usize,
}

/// Output `[b, (sum of groups) * hd, n]`.
pub(crate) fn relu_linear_attention(
    parts: &[Part],
    b: usize,
    hd: usize,
    n: usize,
    eps: f32,
) -> Vec<f32> {
    let total: usize = parts.iter().map(|p| p.groups).sum();
    let mut y = super::output_vec(b * total * hd * n);
    let yp = SendPtr::new(y.as_mut_ptr());
    // (batch item, part, group within the part, output group index)
    let mut tasks = Vec::with_capacity(b * total);
    for bi in 0..b {
        let mut og = 0;
        for (pi, p) in parts.iter().enumerate() {
            for gi in 0..p.groups {
                tasks.push((bi, pi, gi, og));
                og += 1;
            }
        }
    }
    tasks.par_iter().for_each_init(
        || {
            (
                vec![0f32; hd * n],
                vec![0f32; hd * n],
                vec![0f32; hd * hd],
                vec![0f32; n],
            )
        },
        |(qr, kr, vk, den), &(bi, pi, gi, og)| {
            let p = &parts[pi];
            let base = (bi * p.groups * 3 + gi * 3) * hd * n;
            let q = &p.data[base..base + hd * n];
            let k = &p.data[base + hd * n..base + 2 * hd * n];
            let v = &p.data[base + 2 * hd * n..base + 3 * hd * n];
            for (d, s) in qr.iter_mut().zip(q) {
                *d = s.max(0.0);
            }
            for (d, s) in kr.iter_mut().zip(k) {
                *d = s.max(0.0);
            }
            let out = unsafe { yp.get().add((bi * total + og) * hd * n) };
            // SAFETY: the views stay inside the task's buffers and its own output rows.
            unsafe {
                // vk = v kr^T  (hd x hd)
                sgemm(
                    hd,
                    hd,
                    n,
                    MatMut::new(vk.as_mut_ptr(), hd, 1),
                    false,
                    MatRef::new(v.as_ptr(), n, 1),
                    MatRef::new(kr.as_ptr(), 1, n),
                    Threads::One,
                );
                // out = vk qr  (hd x n)
                sgemm(
                    hd,
                    n,
                    hd,
                    MatMut::new(out, n, 1),
                    false,
                    MatRef::new(vk.as_ptr(), hd, 1),
                    MatRef::new(qr.as_ptr(), n, 1),
                    Threads::One,
                );
            }
            // den[p] = sum_e (sum_j kr[e][j]) qr[e][p] + eps
            den.fill(0.0);
            for e in 0..hd {
                let ks: f32 = kr[e * n..(e + 1) * n].iter().sum();
                for (dd, &qv) in den.iter_mut().zip(&qr[e * n..(e + 1) * n]) {
                    *dd += ks * qv;
                }
            }
            for dd in den.iter_mut() {
                *dd += eps;
            }
            // SAFETY: this task's output rows.
            let o = unsafe { std::slice::from_raw_parts_mut(out, hd * n) };
            for row in o.chunks_exact_mut(n) {
                for (vv, &dd) in row.iter_mut().zip(den.iter()) {
                    *vv /= dd;
                }
            }
        },
    );
    y
}

#[inline(always)]
unsafe fn rel_row<S: super::simd::Simd>(
    ac: &[f32],
    bd: &[f32],
    bias: &[f32],
    scale: f32,
    out: &mut [f32],
) {
    use super::epilogue::{load_n, store_n};
    let t = out.len();
    let sv = S::splat(scale);
    // Scores, and their maximum over the keys that are not masked out (bias -inf).
    let mut mx = f32::NEG_INFINITY;
    let mut j = 0;
    while j < t {
        let n = (t - j).min(S::LANES);
        let v = S::fma(
            S::add(
                load_n::<S>(ac.as_ptr().add(j), n),
                load_n::<S>(bd.as_ptr().add(j), n),
            ),
            sv,
            load_n::<S>(bias.as_ptr().add(j), n),
        );
        store_n::<S>(out.as_mut_ptr().add(j), v, n);
        j += S::LANES;
    }
    for &v in out.iter() {
        if v > mx {
            mx = v;
        }
    }
    if mx == f32::NEG_INFINITY {
        // Every key masked: zero weights, as the reference's masked_fill after the softmax.
        out.fill(0.0);
        return;
    }
    let mut sum = 0f32;
    let mut j = 0;
    while j < t {
        let n = (t - j).min(S::LANES);
        let e = super::simd::exp::<S>(S::sub(load_n::<S>(out.as_ptr().add(j), n), S::splat(mx)));
        store_n::<S>(out.as_mut_ptr().add(j), e, n);
        j += S::LANES;
    }
    for &v in out.iter() {
        sum += v;
    }
    let inv = 1.0 / sum;
    for (v, &b) in out.iter_mut().zip(bias) {
        *v = if b == f32::NEG_INFINITY {
            0.0
        } else {
            *v * inv
        };
    }
}

super::simd::dispatch!(fn rel_row_isa = rel_row(ac: &[f32], bd: &[f32], bias: &[f32], scale: f32, out: &mut [f32]));

/// Transformer-XL relative-position attention weights: per row `i` of `[rows = b h t, t]`,
/// `softmax((ac[i][j] + bd[i][t - 1 - i + j]) * scale + bias[j])` with keys whose bias is
/// `-inf` at exactly zero (all-masked rows all zero). `bd` is `[b h t, 2t - 1]`, `bias`
/// `[b][t]`, heads `h`.
pub(crate) fn rel_position_softmax(
    ac: &[f32],
    bd: &[f32],
    bias: &[f32],
    b: usize,
    h: usize,
    t: usize,
    scale: f32,
) -> Vec<f32> {
    let n = 2 * t - 1;
    let mut y = super::output_vec(b * h * t * t);
    y.par_chunks_mut(t).enumerate().for_each(|(row, out)| {
        let i = row % t;
        let bi = row / (h * t);
        let a = &ac[row * t..(row + 1) * t];
        let d = &bd[row * n + (t - 1 - i)..row * n + (t - 1 - i) + t];
        rel_row_isa(a, d, &bias[bi * t..(bi + 1) * t], scale, out);
    });
    y
}

//! 1-D convolution on the CPU: `[b, cin, l] (*) w -> [b, cout, lout]` with the epilogue
//! `act_out(conv(act_in(x)) + bias + residual)` fused. Weights are tap-major:
//! `[k][cout][cin / groups]` (see `Conv1d::new`).
//!
//! Four algorithms, picked by shape (see [`plan`]):
//! - depthwise (`groups == cin == cout`): one vectorised pass per channel;
//! - direct: register-blocked tiles of 8 output channels x 32 samples, for few channels;
//! - FFT: overlap-save in blocks of 32 / 64 samples for kernels of 7 taps and more. The DFTs are
//!   matrix products with the DFT matrices, and the per-frequency channel mixing is a complex
//!   matrix product done as three real ones (Karatsuba): 5.3 to 7x fewer multiplies than the
//!   direct sum at 11 and 13 taps;
//! - taps: one strided matrix product per kernel tap straight from the input (no im2col buffer),
//!   for everything else (strides, groups, short inputs, 3 taps).

use rayon::prelude::*;

use super::SendPtr;

use super::act;
use super::epilogue::{finish_row, store_epi};
use super::gemm::{sgemm, MatMut, MatRef, Threads};
use super::scratch::Scratch;
use super::simd::{dispatch, Simd};
use crate::{Activation, ConvSpec};

/// Shape of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub b: usize,
    pub cin: usize,
    pub l: usize,
    pub cout: usize,
    pub k: usize,
    pub spec: ConvSpec,
}

impl Geom {
    pub(crate) fn lout(&self) -> usize {
        let s = self.spec;
        (self.l + 2 * s.padding).saturating_sub(s.dilation * (self.k - 1) + 1) / s.stride + 1
    }
}

/// What runs after the sum.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub act_in: Activation,
    pub act_out: Activation,
}

/// The CPU algorithm of a 1-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// One vectorised pass per channel (`groups == channels`).
    Depthwise,
    /// Register-blocked direct sums (few channels).
    Direct,
    /// Overlap-save FFT with matrix-product DFTs (7 taps and more, many channels).
    Fft,
    /// One strided matrix product per tap (everything else).
    Taps,
}

/// Whether `algo` can run `g`.
pub(crate) fn applies(algo: Algo, g: &Geom) -> bool {
    let s = g.spec;
    match algo {
        Algo::Depthwise => s.groups == g.cin && s.groups == g.cout,
        Algo::Direct | Algo::Fft if s.groups != 1 || s.stride != 1 => false,
        Algo::Direct => true,
        Algo::Fft => s.padding.is_multiple_of(s.dilation),
        Algo::Taps => true,
    }
}

/// Picks the algorithm for a shape.
pub(crate) fn plan(g: &Geom) -> Algo {
    let s = g.spec;
    if applies(Algo::Depthwise, g) {
        return Algo::Depthwise;
    }
    let lphase = g.lout() / s.dilation;
    if applies(Algo::Fft, g) && g.k >= 7 && g.cin >= 96 && g.cout >= 96 && lphase >= 256 {
        Algo::Fft
    } else if applies(Algo::Direct, g) && g.cin <= 64 && g.cout <= 64 {
        Algo::Direct
    } else {
        Algo::Taps
    }
}

/// Runs the convolution with `algo` (which must apply); `x` is `[b, cin, l]`, `wt` the tap-major
/// weights `[k][cout][cin / groups]`, the result `[b, cout, lout]`.
pub(crate) fn conv1d(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue, algo: Algo) -> Vec<f32> {
    match algo {
        Algo::Depthwise => depthwise(x, wt, g, ep),
        Algo::Direct => direct(x, wt, g, ep),
        Algo::Fft => fft(x, wt, g, ep),
        Algo::Taps => taps(x, wt, g, ep),
    }
}

/// `act_out(y + bias + residual)` over `[b, cout, lout]` in place.
fn finish(y: &mut [f32], g: &Geom, lout: usize, ep: &Epilogue) {
    if ep.bias.is_none() && ep.residual.is_none() && ep.act_out == Activation::Identity {
        return;
    }
    y.par_chunks_mut(lout).enumerate().for_each(|(row, yr)| {
        let bias = ep.bias.map_or(0.0, |b| b[row % g.cout]);
        let res = ep.residual.map(|r| &r[row * lout..(row + 1) * lout]);
        finish_row(yr, bias, res, ep.act_out);
    });
}

/// `dst[j] = act(src[start + j])` where `start + j` lies in `0..src.len()`, zero elsewhere.
fn fill_window(src: &[f32], start: isize, dst: &mut [f32], act: Activation) {
    let n = dst.len() as isize;
    let lo = (-start).clamp(0, n) as usize;
    let hi = (src.len() as isize - start).clamp(lo as isize, n) as usize;
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo < hi {
        let s0 = (start + lo as isize) as usize;
        act::apply_into(act, &src[s0..s0 + hi - lo], &mut dst[lo..hi]);
    }
}

// ---------------------------------------------------------------------------------------------
// Taps: one strided product per tap, accumulated into the output.

fn taps(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let s = g.spec;
    let lout = g.lout();
    let groups = s.groups;
    let (cig, cog) = (g.cin / groups, g.cout / groups);
    let mut xa;
    let x = if ep.act_in == Activation::Identity {
        x
    } else {
        xa = Scratch::uninit(x.len());
        xa.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(d, s)| act::apply_into(ep.act_in, s, d));
        &xa
    };
    let mut y = vec![0f32; g.b * g.cout * lout];
    for b in 0..g.b {
        for grp in 0..groups {
            for kk in 0..g.k {
                // Output t reads input t * stride + kk * dilation - padding.
                let off = (kk * s.dilation) as isize - s.padding as isize;
                let lo = if off >= 0 {
                    0
                } else {
                    ((-off) as usize).div_ceil(s.stride)
                };
                let hi = if (g.l as isize) <= off {
                    0
                } else {
                    ((g.l as isize - off) as usize).div_ceil(s.stride).min(lout)
                };
                if lo >= hi {
                    continue;
                }
                let in0 = (lo * s.stride) as isize + off;
                // SAFETY: rows and columns stay inside x, wt and y by construction of lo / hi.
                unsafe {
                    sgemm(
                        cog,
                        hi - lo,
                        cig,
                        MatMut::new(
                            y.as_mut_ptr().add((b * g.cout + grp * cog) * lout + lo),
                            lout,
                            1,
                        ),
                        true,
                        MatRef::new(wt.as_ptr().add((kk * g.cout + grp * cog) * cig), cig, 1),
                        MatRef::new(
                            x.as_ptr().add((b * g.cin + grp * cig) * g.l).offset(in0),
                            g.l,
                            s.stride,
                        ),
                        Threads::All,
                    );
                }
            }
        }
    }
    finish(&mut y, g, lout, ep);
    y
}

// ---------------------------------------------------------------------------------------------
// Depthwise.

#[inline(always)]
unsafe fn depthwise_row<S: Simd>(
    xp: &[f32],
    w: &[f32],
    d: usize,
    bias: f32,
    res: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let n = y.len();
    let yp = y.as_mut_ptr();
    let xp0 = xp.as_ptr();
    let mut t = 0;
    while t < n {
        let mut a = S::splat(0.0);
        for (kk, &wk) in w.iter().enumerate() {
            a = S::fma(S::splat(wk), S::load(xp0.add(t + kk * d)), a);
        }
        let m = (n - t).min(S::LANES);
        store_epi::<S>(a, yp.add(t), m, bias, res.map(|r| r.as_ptr().add(t)), act);
        t += S::LANES;
    }
}

dispatch!(fn depthwise_row_isa = depthwise_row(xp: &[f32], w: &[f32], d: usize, bias: f32, res: Option<&[f32]>, act: Activation, y: &mut [f32]));

fn depthwise(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let s = g.spec;
    let lout = g.lout();
    if s.stride != 1 {
        return taps(x, wt, g, ep);
    }
    // Vector loads read up to 16 values past the last output.
    let rowlen = lout + s.dilation * (g.k - 1) + 16;
    let mut y = super::output_vec(g.b * g.cout * lout);
    y.par_chunks_mut(lout)
        .enumerate()
        .for_each_init(Vec::new, |xp, (row, yr)| {
            let c = row % g.cout;
            xp.resize(rowlen, 0.0);
            fill_window(
                &x[row * g.l..(row + 1) * g.l],
                -(s.padding as isize),
                xp,
                ep.act_in,
            );
            let w: Vec<f32> = (0..g.k).map(|kk| wt[kk * g.cout + c]).collect();
            depthwise_row_isa(
                xp,
                &w,
                s.dilation,
                ep.bias.map_or(0.0, |b| b[c]),
                ep.residual.map(|r| &r[row * lout..(row + 1) * lout]),
                ep.act_out,
                yr,
            );
        });
    y
}

// ---------------------------------------------------------------------------------------------
// Direct: tiles of CO output channels x TV vectors of samples.

/// Output channels per tile of the direct kernel.
const CO: usize = 8;
/// Vectors of samples per tile.
const TV: usize = 2;
/// Samples per task.
const CHUNK: usize = 1024;

struct DirectArgs<'a> {
    /// Padded input rows of one chunk, `[cin][rowlen]` (row j holds input t0 - padding + j).
    xp: &'a [f32],
    rowlen: usize,
    /// Weights `[cout_blocks][cin][k][CO]`.
    wr: &'a [f32],
    cin: usize,
    k: usize,
    d: usize,
    /// Output rows `[cout][lout]` of the batch item, and its residual.
    y: *mut f32,
    res: Option<*const f32>,
    lout: usize,
    cout: usize,
    /// Output range `[t0, t1)`.
    t0: usize,
    t1: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
}

#[inline(always)]
unsafe fn direct_tile<S: Simd, const C: usize>(a: &DirectArgs, cob: usize, t: usize) {
    let mut acc = [[S::splat(0.0); TV]; C];
    let wb = a.wr.as_ptr().add(cob * a.cin * a.k * CO);
    for ci in 0..a.cin {
        let xrow = a.xp.as_ptr().add(ci * a.rowlen + (t - a.t0));
        let wrow = wb.add(ci * a.k * CO);
        for kk in 0..a.k {
            let xo = xrow.add(kk * a.d);
            let mut xv = [S::splat(0.0); TV];
            for (j, v) in xv.iter_mut().enumerate() {
                *v = S::load(xo.add(j * S::LANES));
            }
            let wk = wrow.add(kk * CO);
            for (c, accc) in acc.iter_mut().enumerate() {
                let wv = S::splat(*wk.add(c));
                for j in 0..TV {
                    accc[j] = S::fma(wv, xv[j], accc[j]);
                }
            }
        }
    }
    let nc = (a.cout - cob * CO).min(C);
    for (c, accc) in acc.iter().enumerate().take(nc) {
        let co = cob * CO + c;
        let bias = a.bias.map_or(0.0, |b| b[co]);
        for (j, v) in accc.iter().enumerate() {
            let tj = t + j * S::LANES;
            if tj >= a.t1 {
                break;
            }
            let n = (a.t1 - tj).min(S::LANES);
            let off = co * a.lout + tj;
            store_epi::<S>(*v, a.y.add(off), n, bias, a.res.map(|r| r.add(off)), a.act);
        }
    }
}

#[inline(always)]
unsafe fn direct_body<S: Simd>(a: &DirectArgs) {
    let ncob = a.cout.div_ceil(CO);
    for cob in 0..ncob {
        let nc = a.cout - cob * CO;
        let mut t = a.t0;
        while t < a.t1 {
            if nc > 4 {
                direct_tile::<S, CO>(a, cob, t);
            } else {
                direct_tile::<S, 4>(a, cob, t);
            }
            t += TV * S::LANES;
        }
    }
}

dispatch!(fn direct_isa = direct_body(a: &DirectArgs));

fn direct(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let s = g.spec;
    let lout = g.lout();
    let (cin, cout, k, d) = (g.cin, g.cout, g.k, s.dilation);
    let ncob = cout.div_ceil(CO);
    let mut wr = vec![0f32; ncob * cin * k * CO];
    for kk in 0..k {
        for co in 0..cout {
            for ci in 0..cin {
                wr[(((co / CO) * cin + ci) * k + kk) * CO + co % CO] =
                    wt[(kk * cout + co) * cin + ci];
            }
        }
    }
    // Tiles read up to 32 samples (two AVX-512 vectors) past the chunk.
    let rowlen = CHUNK + d * (k - 1) + 32;
    let nchunks = lout.div_ceil(CHUNK);
    let mut y = super::output_vec(g.b * cout * lout);
    let yptr = SendPtr::new(y.as_mut_ptr());
    let rptr = ep.residual.map(|r| SendPtr::new(r.as_ptr() as *mut f32));
    (0..g.b * nchunks)
        .into_par_iter()
        .for_each_init(Vec::new, |xp: &mut Vec<f32>, task| {
            let (b, chunk) = (task / nchunks, task % nchunks);
            let t0 = chunk * CHUNK;
            let t1 = (t0 + CHUNK).min(lout);
            xp.resize(cin * rowlen, 0.0);
            for ci in 0..cin {
                fill_window(
                    &x[(b * cin + ci) * g.l..(b * cin + ci + 1) * g.l],
                    t0 as isize - s.padding as isize,
                    &mut xp[ci * rowlen..(ci + 1) * rowlen],
                    ep.act_in,
                );
            }
            let a = DirectArgs {
                xp,
                rowlen,
                wr: &wr,
                cin,
                k,
                d,
                // SAFETY: tasks write disjoint (b, t0..t1) column ranges of y.
                y: unsafe { yptr.get().add(b * cout * lout) },
                res: rptr.map(|r| unsafe { r.get().add(b * cout * lout) as *const f32 }),
                lout,
                cout,
                t0,
                t1,
                bias: ep.bias,
                act: ep.act_out,
            };
            direct_isa(&a);
        });
    y
}

// ---------------------------------------------------------------------------------------------
// FFT: overlap-save with matrix-product DFTs and a three-product complex channel mix.

/// DFT matrices for FFT size `n` and kernel `k`. The complex channel mix `Y = H X` per
/// frequency runs as three real products `P1 = Hr Xr`, `P2 = Hi Xi`, `P3 = (Hr + Hi)(Xr + Xi)`
/// (`Yr = P1 - P2`, `Yi = P3 - P1 - P2`), so the forward tables give `Xr`, `Xi` and `Xr + Xi`
/// and the inverse table takes `P1`, `P2`, `P3` directly.
struct FftPlan {
    n: usize,
    /// Outputs per block (`n - k + 1`).
    s: usize,
    /// Frequency bins (`n / 2 + 1`).
    nb: usize,
    /// `[3][nb][n]`: re, im, re + im.
    fwd: Vec<f32>,
    /// `[s][3][nb]`: block outputs `k - 1 + j` from `P1`, `P2`, `P3`.
    inv: Vec<f32>,
    /// `[nb][3][k]`: re, im, re + im of the flipped taps' spectrum.
    ker: Vec<f32>,
}

impl FftPlan {
    fn new(n: usize, k: usize) -> Self {
        let s = n - k + 1;
        let nb = n / 2 + 1;
        // cos / sin of 2 pi f m / n with exact zeros on the axes.
        let cs = |f: usize, m: usize| {
            let r = (f * m) % n;
            let a = 2.0 * std::f64::consts::PI * r as f64 / n as f64;
            let snap = |v: f64| if v.abs() < 1e-12 { 0.0 } else { v };
            (snap(a.cos()), snap(a.sin()))
        };
        let mut fwd = vec![0f32; 3 * nb * n];
        for f in 0..nb {
            for m in 0..n {
                let (c, si) = cs(f, m);
                fwd[f * n + m] = c as f32;
                fwd[(nb + f) * n + m] = -si as f32;
                fwd[(2 * nb + f) * n + m] = (c - si) as f32;
            }
        }
        let mut inv = vec![0f32; s * 3 * nb];
        for j in 0..s {
            let m = k - 1 + j;
            for f in 0..nb {
                let w = if f == 0 || 2 * f == n { 1.0 } else { 2.0 } / n as f64;
                let (c, si) = cs(f, m);
                let (re, im) = (w * c, -w * si);
                inv[j * 3 * nb + f] = (re - im) as f32;
                inv[j * 3 * nb + nb + f] = (-re - im) as f32;
                inv[j * 3 * nb + 2 * nb + f] = im as f32;
            }
        }
        let mut ker = vec![0f32; nb * 3 * k];
        for f in 0..nb {
            for kk in 0..k {
                let (c, si) = cs(f, k - 1 - kk);
                ker[(f * 3) * k + kk] = c as f32;
                ker[(f * 3 + 1) * k + kk] = -si as f32;
                ker[(f * 3 + 2) * k + kk] = (c - si) as f32;
            }
        }
        Self {
            n,
            s,
            nb,
            fwd,
            inv,
            ker,
        }
    }

    /// Whether bin `f` is real (DC or Nyquist): only `P1` is non-zero there.
    fn real_bin(&self, f: usize) -> bool {
        f == 0 || 2 * f == self.n
    }
}

/// FFT size for a kernel of `k` taps.
fn fft_size(k: usize) -> usize {
    if let Some(n) = std::env::var("ACESTEP_FFT_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > k {
            return n;
        }
    }
    if k <= 7 {
        32
    } else if k <= 25 {
        64
    } else {
        (4 * k).next_power_of_two()
    }
}

/// `h[p][e] = sum_kk tab[p][kk] * wt[kk][e]` for the three planes of one frequency, over the
/// `cout * cin` weights `e` (tap-major rows of length `len`).
#[inline(always)]
unsafe fn kernel_spectrum<S: Simd>(tab: &[f32], wt: &[f32], k: usize, len: usize, h: &mut [f32]) {
    let (h0, rest) = h.split_at_mut(len);
    let (h1, h2) = rest.split_at_mut(len);
    let mut e = 0;
    while e + S::LANES <= len {
        let (mut a0, mut a1, mut a2) = (S::splat(0.0), S::splat(0.0), S::splat(0.0));
        for kk in 0..k {
            let w = S::load(wt.as_ptr().add(kk * len + e));
            a0 = S::fma(S::splat(tab[kk]), w, a0);
            a1 = S::fma(S::splat(tab[k + kk]), w, a1);
            a2 = S::fma(S::splat(tab[2 * k + kk]), w, a2);
        }
        S::store(h0.as_mut_ptr().add(e), a0);
        S::store(h1.as_mut_ptr().add(e), a1);
        S::store(h2.as_mut_ptr().add(e), a2);
        e += S::LANES;
    }
    for e in e..len {
        let (mut a0, mut a1, mut a2) = (0f32, 0f32, 0f32);
        for kk in 0..k {
            let w = wt[kk * len + e];
            a0 += tab[kk] * w;
            a1 += tab[k + kk] * w;
            a2 += tab[2 * k + kk] * w;
        }
        h0[e] = a0;
        h1[e] = a1;
        h2[e] = a2;
    }
}

dispatch!(fn kernel_spectrum_isa = kernel_spectrum(tab: &[f32], wt: &[f32], k: usize, len: usize, h: &mut [f32]));

/// One contiguous run of outputs `y[b][co][r + j * d]`, `j < len`, as a segment of blocks.
struct Segment {
    b: usize,
    r: usize,
    len: usize,
    /// First virtual block of the segment.
    col0: usize,
}

fn fft(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let sp = g.spec;
    let (cin, cout, k, d) = (g.cin, g.cout, g.k, sp.dilation);
    let lout = g.lout();
    let c = sp.padding / d;
    let plan = FftPlan::new(fft_size(k), k);
    let (n, s, nb) = (plan.n, plan.s, plan.nb);
    let extra = (n - s).div_ceil(s);

    // Segments: every (batch item, dilation phase) with outputs; each is a run of blocks of s
    // outputs plus `extra` junk blocks, so that every block's n inputs lie in its segment.
    let mut segs = Vec::new();
    let mut ncol = 0;
    for b in 0..g.b {
        for r in 0..d.min(lout) {
            let len = (lout - r).div_ceil(d);
            segs.push(Segment {
                b,
                r,
                len,
                col0: ncol,
            });
            ncol += len.div_ceil(s) + extra;
        }
    }
    let rowlen = ncol * s;

    // Input rows: a segment holds phase r of x (act applied) from index -c on.
    let mut xp = Scratch::uninit(cin * rowlen + n);
    xp[cin * rowlen..].fill(0.0);
    xp[..cin * rowlen]
        .par_chunks_mut(rowlen)
        .enumerate()
        .for_each(|(ci, row)| {
            for sg in &segs {
                let dst = &mut row[sg.col0 * s..(sg.col0 + sg.len.div_ceil(s) + extra) * s];
                let src = &x[(sg.b * cin + ci) * g.l..(sg.b * cin + ci + 1) * g.l];
                if d == 1 {
                    fill_window(src, -(c as isize), dst, ep.act_in);
                } else {
                    for (j, v) in dst.iter_mut().enumerate() {
                        let t = sg.r as isize + (j as isize - c as isize) * d as isize;
                        *v = if t >= 0 && (t as usize) < g.l {
                            src[t as usize]
                        } else {
                            0.0
                        };
                    }
                    act::apply_inplace(ep.act_in, dst);
                }
            }
        });

    // Forward transforms: xf[p][f][ci * ncol + col], p = re, im, re + im.
    let cols_in = cin * ncol;
    let mut xf = Scratch::uninit(3 * nb * cols_in);
    // SAFETY: block q reads xp[q*s .. q*s + n] (xp has n values of slack); writes inside xf.
    unsafe {
        sgemm(
            3 * nb,
            cols_in,
            n,
            MatMut::new(xf.as_mut_ptr(), cols_in, 1),
            false,
            MatRef::new(plan.fwd.as_ptr(), n, 1),
            MatRef::new(xp.as_ptr(), 1, s),
            Threads::All,
        );
    }
    drop(xp);

    // Channel mixing per frequency: yf[p][f] = H_p[f] * X_p[f] (cout x ncol).
    let cols_out = cout * ncol;
    let mut yf = Scratch::uninit(3 * nb * cols_out);
    let yfp = SendPtr::new(yf.as_mut_ptr());
    let wlen = cout * cin;
    (0..nb)
        .into_par_iter()
        .for_each_init(Vec::new, |h: &mut Vec<f32>, f| {
            let planes = if plan.real_bin(f) { 1 } else { 3 };
            h.resize(3 * wlen, 0.0);
            kernel_spectrum_isa(&plan.ker[f * 3 * k..(f + 1) * 3 * k], wt, k, wlen, h);
            for p in 0..3 {
                // SAFETY: each (p, f) slab of yf is written by this task only.
                let dst = unsafe { yfp.get().add((p * nb + f) * cols_out) };
                if p >= planes {
                    unsafe { std::ptr::write_bytes(dst, 0, cols_out) };
                    continue;
                }
                unsafe {
                    sgemm(
                        cout,
                        ncol,
                        cin,
                        MatMut::new(dst, ncol, 1),
                        false,
                        MatRef::new(h.as_ptr().add(p * wlen), cin, 1),
                        MatRef::new(xf.as_ptr().add((p * nb + f) * cols_in), ncol, 1),
                        Threads::One,
                    );
                }
            }
        });
    drop(xf);

    // Inverse transforms: z[q][j] (block outputs j < s) from the three products.
    let mut z = Scratch::uninit(cols_out * s);
    // SAFETY: reads inside yf, writes z[q*s + j] for q < cols_out, j < s.
    unsafe {
        sgemm(
            s,
            cols_out,
            3 * nb,
            MatMut::new(z.as_mut_ptr(), 1, s),
            false,
            MatRef::new(plan.inv.as_ptr(), 3 * nb, 1),
            MatRef::new(yf.as_ptr(), cols_out, 1),
            Threads::All,
        );
    }
    drop(yf);

    // Scatter the phases back with the epilogue.
    let mut y = super::output_vec(g.b * cout * lout);
    y.par_chunks_mut(lout).enumerate().for_each(|(row, yr)| {
        let (b, co) = (row / cout, row % cout);
        for sg in segs.iter().filter(|sg| sg.b == b) {
            let src = &z[(co * ncol + sg.col0) * s..];
            if d == 1 {
                yr.copy_from_slice(&src[..lout]);
            } else {
                for j in 0..sg.len {
                    yr[sg.r + j * d] = src[j];
                }
            }
        }
        let bias = ep.bias.map_or(0.0, |bb| bb[co]);
        let res = ep.residual.map(|r| &r[row * lout..(row + 1) * lout]);
        finish_row(yr, bias, res, ep.act_out);
    });
    y
}

//! 2-D convolution on the CPU, NCHW: `[b, cin, h, w] (*) [cout, cin / groups, kh, kw]`, with the
//! epilogue `act_out(conv(act_in(x)) + bias + residual)` fused.
//!
//! - Winograd F(2x2, 3x3) and F(4x4, 3x3) for dense 3x3 stride-1 padding-1 convolutions (every
//!   ResBlock and up convolution of the DCAE): 16 (36) matrix products over 4x4 (6x6) input
//!   tiles, 2.25x (4x) fewer multiplies than the direct sum, with the transforms vectorised over
//!   tiles and the tiles processed in cache-sized chunks;
//! - pointwise (1x1, any groups): one matrix product per group;
//! - depthwise (`groups == cin == cout`): a vectorised pass per channel plane;
//! - im2col: dense convolutions with a stride (the encoder's downsampling) or a few input
//!   channels, one product over the whole depth `cin * kh * kw` per chunk of output rows;
//! - taps: one strided matrix product per tap over the stride phases of a zero-padded input
//!   (everything else: dilations, groups, a few output channels).

use rayon::prelude::*;

use super::SendPtr;

use super::act;
use super::epilogue::{finish_row, store_epi, store_n};
use super::gemm::{sgemm, MatMut, MatRef, Threads};
use super::scratch::Scratch;
use super::simd::{dispatch, Simd};
use crate::{Activation, ConvSpec};

/// Shape of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub spec: ConvSpec,
}

impl Geom {
    pub(crate) fn hout(&self) -> usize {
        let s = self.spec;
        (self.h + 2 * s.padding).saturating_sub(s.dilation * (self.kh - 1) + 1) / s.stride + 1
    }
    pub(crate) fn wout(&self) -> usize {
        let s = self.spec;
        (self.w + 2 * s.padding).saturating_sub(s.dilation * (self.kw - 1) + 1) / s.stride + 1
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

/// The CPU algorithm of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Winograd F(2x2, 3x3) (dense 3x3, stride 1, padding 1).
    Winograd,
    /// Winograd F(4x4, 3x3) (same shapes): fewer multiplies, a little less accurate.
    Winograd4,
    /// 1x1: a matrix product per group.
    Pointwise,
    /// One vectorised pass per channel plane (`groups == channels`, stride 1).
    Depthwise,
    /// One strided matrix product per tap over the stride phases of a padded input (any
    /// stride, dilation and groups).
    Taps,
    /// One matrix product over the whole depth `cin * kh * kw` per chunk of output rows, from
    /// a column matrix copied out of the stride phases (`groups == 1`; any stride, dilation).
    Im2col,
}

/// Whether `algo` can run `g`.
pub(crate) fn applies(algo: Algo, g: &Geom) -> bool {
    let s = g.spec;
    match algo {
        Algo::Winograd | Algo::Winograd4 => {
            s.groups == 1
                && g.kh == 3
                && g.kw == 3
                && s.stride == 1
                && s.padding == 1
                && s.dilation == 1
        }
        Algo::Pointwise => g.kh == 1 && g.kw == 1 && s.stride == 1 && s.padding == 0,
        Algo::Depthwise => {
            s.groups == g.cin && s.groups == g.cout && s.stride == 1 && s.dilation == 1
        }
        Algo::Taps => true,
        Algo::Im2col => s.groups == 1,
    }
}

/// The algorithm for a shape: F(4x4, 3x3) where there are enough 4x4 tiles to amortise its
/// larger transforms (measured: faster from a few hundred tiles on), F(2x2, 3x3) below; one
/// product over the whole depth for dense strided convolutions and for inputs of a few
/// channels (too shallow for a product per Winograd component or per tap: the decoder's
/// 8 -> 1024 input conv 0.7 ms against 2.6 ms).
pub(crate) fn plan(g: &Geom) -> Algo {
    let tiles4 = g.h.div_ceil(4) * g.w.div_ceil(4);
    let wino = if tiles4 >= 256 {
        Algo::Winograd4
    } else {
        Algo::Winograd
    };
    let dense = g.spec.groups == 1 && !applies(Algo::Pointwise, g);
    if dense && (g.spec.stride > 1 || g.cin <= 8) {
        return Algo::Im2col;
    }
    // A few output channels (the encoder's 1024 -> 8 output conv): too few rows for the
    // Winograd components' products (measured: taps 2.6 ms against 5.4 ms).
    if dense && g.cout < 16 {
        return Algo::Taps;
    }
    [Algo::Pointwise, Algo::Depthwise, wino]
        .into_iter()
        .find(|a| applies(*a, g))
        .unwrap_or(Algo::Taps)
}

/// Runs the convolution with `algo` (which must apply); `wt` is the weight as stored
/// (`[cout][cin / groups][kh][kw]`).
pub(crate) fn conv2d(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue, algo: Algo) -> Vec<f32> {
    match algo {
        Algo::Winograd => winograd(x, wt, g, ep, 2),
        Algo::Winograd4 => winograd(x, wt, g, ep, 4),
        Algo::Pointwise => pointwise(x, wt, g, ep),
        Algo::Depthwise => depthwise(x, wt, g, ep),
        Algo::Taps => taps(x, wt, g, ep),
        Algo::Im2col => im2col(x, wt, g, ep),
    }
}

/// `x` with `act` applied (borrowed when `act` is the identity).
fn activated<'a>(x: &'a [f32], act: Activation, keep: &'a mut Option<Scratch>) -> &'a [f32] {
    if act == Activation::Identity {
        return x;
    }
    let mut xa = Scratch::uninit(x.len());
    xa.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(d, s)| act::apply_into(act, s, d));
    keep.insert(xa)
}

fn finish(y: &mut [f32], cout: usize, plane: usize, ep: &Epilogue) {
    if ep.bias.is_none() && ep.residual.is_none() && ep.act_out == Activation::Identity {
        return;
    }
    y.par_chunks_mut(plane).enumerate().for_each(|(row, yr)| {
        let bias = ep.bias.map_or(0.0, |b| b[row % cout]);
        let res = ep.residual.map(|r| &r[row * plane..(row + 1) * plane]);
        finish_row(yr, bias, res, ep.act_out);
    });
}

// ---------------------------------------------------------------------------------------------
// Pointwise.

fn pointwise(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let mut keep = None;
    let x = activated(x, ep.act_in, &mut keep);
    let hw = g.h * g.w;
    let groups = g.spec.groups;
    let (cig, cog) = (g.cin / groups, g.cout / groups);
    let mut y = super::output_vec(g.b * g.cout * hw);
    let yp = SendPtr::new(y.as_mut_ptr());
    let threads = if groups > 1 {
        Threads::One
    } else {
        Threads::All
    };
    let run = |task: usize| {
        let (b, grp) = (task / groups, task % groups);
        // SAFETY: each (b, group) writes its own rows of y; reads stay inside x and wt.
        unsafe {
            sgemm(
                cog,
                hw,
                cig,
                MatMut::new(yp.get().add((b * g.cout + grp * cog) * hw), hw, 1),
                false,
                MatRef::new(wt.as_ptr().add(grp * cog * cig), cig, 1),
                MatRef::new(x.as_ptr().add((b * g.cin + grp * cig) * hw), hw, 1),
                threads,
            );
        }
    };
    if groups > 1 {
        (0..g.b * groups).into_par_iter().for_each(run);
    } else {
        (0..g.b).for_each(run);
    }
    finish(&mut y, g.cout, hw, ep);
    y
}

// ---------------------------------------------------------------------------------------------
// Depthwise.

#[inline(always)]
unsafe fn depthwise_plane<S: Simd>(
    xp: &[f32],
    wp: usize,
    wk: &[f32],
    k: usize,
    y: &mut [f32],
    h: usize,
    w: usize,
) {
    for yy in 0..h {
        let yrow = y.as_mut_ptr().add(yy * w);
        let mut x0 = 0;
        while x0 < w {
            let mut a = S::splat(0.0);
            for dy in 0..k {
                let xr = xp.as_ptr().add((yy + dy) * wp + x0);
                for dx in 0..k {
                    a = S::fma(S::splat(wk[dy * k + dx]), S::load(xr.add(dx)), a);
                }
            }
            store_n::<S>(yrow.add(x0), a, (w - x0).min(S::LANES));
            x0 += S::LANES;
        }
    }
}

dispatch!(fn depthwise_plane_isa = depthwise_plane(xp: &[f32], wp: usize, wk: &[f32], k: usize, y: &mut [f32], h: usize, w: usize));

fn depthwise(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let p = g.spec.padding;
    let (h, w, k) = (g.h, g.w, g.kh);
    let (ho, wo) = (g.hout(), g.wout());
    if g.kh != g.kw {
        return taps(x, wt, g, ep);
    }
    let hp = h + 2 * p;
    // 16 values of slack after each row for the vector loads.
    let wp = w + 2 * p + 16;
    let mut y = super::output_vec(g.b * g.cout * ho * wo);
    y.par_chunks_mut(ho * wo).enumerate().for_each_init(
        Vec::new,
        |xp: &mut Vec<f32>, (plane, yp)| {
            let c = plane % g.cout;
            xp.clear();
            xp.resize(hp * wp + 16, 0.0);
            let src = &x[plane * h * w..(plane + 1) * h * w];
            for yy in 0..h {
                act::apply_into(
                    ep.act_in,
                    &src[yy * w..(yy + 1) * w],
                    &mut xp[(yy + p) * wp + p..(yy + p) * wp + p + w],
                );
            }
            depthwise_plane_isa(xp, wp, &wt[c * k * k..(c + 1) * k * k], k, yp, ho, wo);
            let bias = ep.bias.map_or(0.0, |b| b[c]);
            let res = ep
                .residual
                .map(|r| &r[plane * ho * wo..(plane + 1) * ho * wo]);
            finish_row(yp, bias, res, ep.act_out);
        },
    );
    y
}

// ---------------------------------------------------------------------------------------------
// Taps: the input is split into its stride x stride phases (x[a * s + pr][b * s + pc]), each
// zero-padded by a margin. Output (i, j) of tap (dy, dx) then reads one phase at
// (i + qy, j + qx), so on an output grid as wide as the padded phase every tap is one strided
// matrix product (columns past the output width are computed and dropped).

/// A batch item's input, activated, zero-padded and split into the stride phases of a
/// convolution (`stride^2` planes per channel, each with a margin of zeros), so that every tap
/// of output row `i` reads one contiguous run of the input: [`Phases::at`].
struct Phases {
    xp: Scratch,
    stride: usize,
    dil: isize,
    pad: isize,
    /// Zeros on each side of a phase, in phase rows / columns.
    m: usize,
    /// Phase row length: at least `wo` columns past every tap's start.
    wpp: usize,
    plane: usize,
    nph: usize,
}

impl Phases {
    fn new(g: &Geom) -> Self {
        let sp = g.spec;
        let (st, dil, pad) = (sp.stride, sp.dilation as isize, sp.padding as isize);
        let (ho, wo) = (g.hout(), g.wout());
        let split = |d: usize| (d as isize * dil - pad).div_euclid(st as isize);
        let qs: Vec<isize> = (0..g.kh.max(g.kw)).map(split).collect();
        let m = qs.iter().map(|q| (-q).max(0)).max().unwrap_or(0) as usize;
        let qmax = qs.iter().copied().max().unwrap_or(0).max(0) as usize;
        let nph = st * st;
        let (hph, wph) = (g.h.div_ceil(st), g.w.div_ceil(st));
        // Every read (i + q + m, j + q + m) with i < ho, j < wpp stays in the phase.
        let wpp = wph.max(wo + qmax) + 2 * m;
        let hpp = hph.max(ho + qmax) + 2 * m + 1;
        let plane = hpp * wpp;
        let mut xp = Scratch::uninit(g.cin * nph * plane + wpp);
        xp[g.cin * nph * plane..].fill(0.0);
        Self {
            xp,
            stride: st,
            dil,
            pad,
            m,
            wpp,
            plane,
            nph,
        }
    }

    /// Tap offset `d * dil - pad = stride * q + phase`: `(phase, q)`.
    fn split(&self, d: usize) -> (usize, isize) {
        let r = d as isize * self.dil - self.pad;
        let st = self.stride as isize;
        (r.rem_euclid(st) as usize, r.div_euclid(st))
    }

    /// Fills the phases with batch item `b` of `x`, `act` applied.
    fn fill(&mut self, x: &[f32], b: usize, g: &Geom, act: Activation) {
        let (st, m, wpp, plane) = (self.stride, self.m, self.wpp, self.plane);
        let nph = self.nph;
        self.xp
            .par_chunks_mut(nph * plane)
            .take(g.cin)
            .enumerate()
            .for_each(|(ci, dst)| {
                // Zero what the rows below leave: each phase's margin rows and columns.
                for pr in 0..st {
                    let rows = (g.h.saturating_sub(pr)).div_ceil(st);
                    for pc in 0..st {
                        let cols = (g.w.saturating_sub(pc)).div_ceil(st);
                        let p = &mut dst[(pr * st + pc) * plane..(pr * st + pc + 1) * plane];
                        p[..m * wpp].fill(0.0);
                        p[(m + rows) * wpp..].fill(0.0);
                        for r in p[m * wpp..(m + rows) * wpp].chunks_exact_mut(wpp) {
                            r[..m].fill(0.0);
                            r[m + cols..].fill(0.0);
                        }
                    }
                }
                let src = &x[(b * g.cin + ci) * g.h * g.w..(b * g.cin + ci + 1) * g.h * g.w];
                let mut row = vec![0f32; g.w];
                for yy in 0..g.h {
                    act::apply_into(act, &src[yy * g.w..(yy + 1) * g.w], &mut row);
                    let (pr, a) = (yy % st, yy / st);
                    // Column xx = st * bb + pc goes to phase (pr, pc), column bb.
                    for pc in 0..st.min(g.w) {
                        let at = (pr * st + pc) * plane + (a + m) * wpp + m;
                        let d = &mut dst[at..at + (g.w - pc).div_ceil(st)];
                        if st == 1 {
                            d.copy_from_slice(&row);
                        } else {
                            for (v, &r) in d.iter_mut().zip(row[pc..].iter().step_by(st)) {
                                *v = r;
                            }
                        }
                    }
                }
            });
    }

    /// Where tap `(dy, dx)` of channel `ci` reads for output row `i`, column 0 (column `j` at
    /// `+ j`).
    fn at(&self, ci: usize, dy: usize, dx: usize, i: usize) -> usize {
        let ((pr, qy), (pc, qx)) = (self.split(dy), self.split(dx));
        let m = self.m as isize;
        (ci * self.nph + pr * self.stride + pc) * self.plane
            + (i as isize + qy + m) as usize * self.wpp
            + (qx + m) as usize
    }
}

fn taps(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let groups = g.spec.groups;
    let (cig, cog) = (g.cin / groups, g.cout / groups);
    let (ho, wo) = (g.hout(), g.wout());
    let mut ph = Phases::new(g);
    let (nph, plane, wpp) = (ph.nph, ph.plane, ph.wpp);
    let ncol = ho * wpp;
    let mut y = super::output_vec(g.b * g.cout * ho * wo);
    let mut grid = Scratch::uninit(g.cout * ncol);
    for b in 0..g.b {
        ph.fill(x, b, g, ep.act_in);
        for grp in 0..groups {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let tap = dy * g.kw + dx;
                    let off = ph.at(grp * cig, dy, dx, 0);
                    // SAFETY: column i * wpp + j reads the phase at row i + qy + m < hpp and
                    // column j + qx + m (< wpp + wpp slack at the very end); writes inside grid.
                    unsafe {
                        sgemm(
                            cog,
                            ncol,
                            cig,
                            MatMut::new(grid.as_mut_ptr().add(grp * cog * ncol), ncol, 1),
                            tap > 0,
                            MatRef::new(
                                wt.as_ptr().add(grp * cog * cig * g.kh * g.kw + tap),
                                cig * g.kh * g.kw,
                                g.kh * g.kw,
                            ),
                            MatRef::new(ph.xp.as_ptr().add(off), nph * plane, 1),
                            Threads::All,
                        );
                    }
                }
            }
        }
        y[b * g.cout * ho * wo..(b + 1) * g.cout * ho * wo]
            .par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(co, yr)| {
                for yy in 0..ho {
                    yr[yy * wo..(yy + 1) * wo]
                        .copy_from_slice(&grid[co * ncol + yy * wpp..co * ncol + yy * wpp + wo]);
                }
                let bias = ep.bias.map_or(0.0, |bb| bb[co]);
                let pl = (b * g.cout + co) * ho * wo;
                let res = ep.residual.map(|r| &r[pl..pl + ho * wo]);
                finish_row(yr, bias, res, ep.act_out);
            });
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Im2col.

/// Bytes of the column matrix one chunk of [`im2col`] builds (a few MB: it stays in the
/// last-level cache while its product runs, and the weight is re-read once per chunk).
const IM2COL_CHUNK_BYTES: usize = 2 << 20;

/// A dense (`groups == 1`) convolution as one matrix product per chunk of output rows: the
/// chunk's column matrix (a row per input channel and tap, in the weight's order, each a copy
/// of a contiguous run of the stride phases) times the weight `[cout x cin*kh*kw]`, written
/// straight into the output's rows, epilogue fused per chunk. One product over the whole depth
/// `cin*kh*kw` instead of [`taps`]' product per tap accumulated through a grid.
fn im2col(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let (ho, wo) = (g.hout(), g.wout());
    let (kh, kw) = (g.kh, g.kw);
    let k = cin * kh * kw;
    let rows = (IM2COL_CHUNK_BYTES / (4 * k * wo).max(1)).clamp(1, ho.max(1));
    let nchunks = ho.div_ceil(rows);
    let per_chunk_parallel = nchunks >= 2 * rayon::current_num_threads();
    let mut y = super::output_vec(g.b * cout * ho * wo);
    let mut ph = Phases::new(g);
    for b in 0..g.b {
        ph.fill(x, b, g, ep.act_in);
        let ph = &ph;
        let yb = SendPtr::new(y[b * cout * ho * wo..].as_mut_ptr());
        let run = |chunk: usize, col: &mut [f32], threads: Threads| {
            let (i0, i1) = (chunk * rows, ((chunk + 1) * rows).min(ho));
            let n = (i1 - i0) * wo;
            col[..k * n]
                .par_chunks_mut(n)
                .enumerate()
                .for_each(|(r, dst)| {
                    let (ci, dy, dx) = (r / (kh * kw), r / kw % kh, r % kw);
                    for (i, d) in (i0..i1).zip(dst.chunks_exact_mut(wo)) {
                        let s = ph.at(ci, dy, dx, i);
                        d.copy_from_slice(&ph.xp[s..s + wo]);
                    }
                });
            // SAFETY: the chunk writes output rows [i0, i1) of each channel plane only; the
            // weight and the column matrix are read inside their buffers.
            unsafe {
                sgemm(
                    cout,
                    n,
                    k,
                    MatMut::new(yb.get().add(i0 * wo), ho * wo, 1),
                    false,
                    MatRef::new(wt.as_ptr(), k, 1),
                    MatRef::new(col.as_ptr(), n, 1),
                    threads,
                );
            }
            if ep.bias.is_some() || ep.residual.is_some() || ep.act_out != Activation::Identity {
                (0..cout).into_par_iter().for_each(|co| {
                    let off = co * ho * wo + i0 * wo;
                    // SAFETY: rows [i0, i1) of channel co: this chunk's, written above.
                    let seg = unsafe { std::slice::from_raw_parts_mut(yb.get().add(off), n) };
                    let pl = (b * cout + co) * ho * wo + i0 * wo;
                    let res = ep.residual.map(|r| &r[pl..pl + n]);
                    finish_row(seg, ep.bias.map_or(0.0, |bb| bb[co]), res, ep.act_out);
                });
            }
        };
        if per_chunk_parallel {
            (0..nchunks).into_par_iter().for_each_init(
                || Scratch::uninit(k * rows * wo),
                |col, chunk| run(chunk, col, Threads::One),
            );
        } else {
            let mut col = Scratch::uninit(k * rows * wo);
            for chunk in 0..nchunks {
                run(chunk, &mut col, Threads::All);
            }
        }
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Winograd F(m x m, 3x3), m = 2 or 4: tiles of a = m + 2 inputs give m x m outputs through
// `Y = A^T [(G g G^T) . (B^T d B)] A`; the a^2 element-wise products over all channels are a^2
// matrix products. F(2x2): 4 multiplies per output (9 direct); F(4x4): 2.25, with the
// transforms' larger coefficients costing some accuracy (measured in the tests).

/// `G` for m = 2 and m = 4 (rows of 3).
const G2: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
const G4: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Filters per block of the filter transform (one f64 vector of AVX-512).
const FT_LANES: usize = 8;

/// `U[e][co][ci] = (G g G^T)[e]` for tiles of `a` (4 or 6), computed in f64, vectorised over
/// blocks of [`FT_LANES`] filters (a 512 -> 512 layer has 262144 of them: done one by one this
/// was 40 % of the layer's time).
fn filter_transform(wt: &[f32], cout: usize, cin: usize, a: usize) -> Scratch {
    let n = cout * cin;
    let gm = filter_matrix(a);
    let mut u = Scratch::uninit(a * a * n);
    let up = SendPtr::new(u.as_mut_ptr());
    (0..n.div_ceil(FT_LANES))
        .into_par_iter()
        .with_min_len(64)
        .for_each(|blk| {
            // Block blk writes columns [blk * FT_LANES, ..) of u's a * a rows only.
            filter_block_isa(wt, &gm, blk * FT_LANES, n, up.get())
        });
    u
}

/// `G` for tiles of `a` (4 or 6), in f64.
fn filter_matrix(a: usize) -> Vec<[f64; 3]> {
    if a == 4 {
        G2.iter().map(|r| r.map(|v| v as f64)).collect()
    } else {
        G4.to_vec()
    }
}

/// [`filter_transform`] of the filters `e0 .. e0 + FT_LANES` (fewer at the end), lanes
/// innermost so that the f64 arithmetic vectorises; each value sums its three products in the
/// same order as the scalar formula.
#[inline(always)]
unsafe fn filter_block<S: Simd>(wt: &[f32], gm: &[[f64; 3]], e0: usize, n: usize, u: *mut f32) {
    let a = gm.len();
    let lanes = FT_LANES.min(n - e0);
    let mut gk = [[0f64; FT_LANES]; 9];
    for l in 0..lanes {
        for (k, g) in gk.iter_mut().enumerate() {
            g[l] = wt[(e0 + l) * 9 + k] as f64;
        }
    }
    // t = G g (a x 3), then t G^T (a x a).
    let mut t = [[[0f64; FT_LANES]; 3]; 6];
    for (ti, gi) in t.iter_mut().zip(gm) {
        for (j, tij) in ti.iter_mut().enumerate() {
            for l in 0..FT_LANES {
                tij[l] = gi[0] * gk[j][l] + gi[1] * gk[3 + j][l] + gi[2] * gk[6 + j][l];
            }
        }
    }
    for (i, ti) in t.iter().enumerate().take(a) {
        for (j, gj) in gm.iter().enumerate() {
            let mut v = [0f32; FT_LANES];
            for (l, vl) in v.iter_mut().enumerate() {
                *vl = (ti[0][l] * gj[0] + ti[1][l] * gj[1] + ti[2][l] * gj[2]) as f32;
            }
            let dst = u.add((i * a + j) * n + e0);
            for (l, &vl) in v.iter().enumerate().take(lanes) {
                *dst.add(l) = vl;
            }
        }
    }
}

dispatch!(fn filter_block_isa = filter_block(wt: &[f32], gm: &[[f64; 3]], e0: usize, n: usize, u: *mut f32));

/// `B^T d` for m = 2 (`B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`).
#[inline(always)]
unsafe fn bt2<S: Simd>(d: [S::V; 6]) -> [S::V; 6] {
    let z = S::splat(0.0);
    [
        S::sub(d[0], d[2]),
        S::add(d[1], d[2]),
        S::sub(d[2], d[1]),
        S::sub(d[1], d[3]),
        z,
        z,
    ]
}

/// `B^T d` for m = 4 (Lavin & Gray's points 0, +-1, +-2, inf).
#[inline(always)]
unsafe fn bt4<S: Simd>(d: [S::V; 6]) -> [S::V; 6] {
    let (c4, c5, c2) = (S::splat(4.0), S::splat(5.0), S::splat(2.0));
    // 4 d0 - 5 d2 + d4
    let t0 = S::add(S::sub(S::mul(c4, d[0]), S::mul(c5, d[2])), d[4]);
    // -4 (d1 + d2) + d3 + d4 ; 4 (d1 - d2) - d3 + d4
    let a = S::add(d[3], d[4]);
    let b = S::sub(d[4], d[3]);
    let t1 = S::sub(a, S::mul(c4, S::add(d[1], d[2])));
    let t2 = S::add(b, S::mul(c4, S::sub(d[1], d[2])));
    // 2 (d3 - d1) - d2 + d4 ; 2 (d1 - d3) - d2 + d4
    let e = S::sub(d[4], d[2]);
    let f = S::mul(c2, S::sub(d[3], d[1]));
    let t3 = S::add(e, f);
    let t4 = S::sub(e, f);
    // 4 d1 - 5 d3 + d5
    let t5 = S::add(S::sub(S::mul(c4, d[1]), S::mul(c5, d[3])), d[5]);
    [t0, t1, t2, t3, t4, t5]
}

/// Input transform of one channel over tile rows `[ty0, ty1)`: `v[e * stride + t]` for the
/// `a * a` components `e` of `B^T d B`. `ph[q]` holds the channel zero-padded by one on each
/// side, split by column phase: `ph[q][r * pw + i] = padded[r][m * i + q]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_tiles<S: Simd>(
    m: usize,
    ph: &[&[f32]],
    pw: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    v: *mut f32,
    stride: usize,
) {
    if m == 2 {
        input_tiles_m::<S, 2>(ph, pw, ty0, ty1, tw, v, stride)
    } else {
        input_tiles_m::<S, 4>(ph, pw, ty0, ty1, tw, v, stride)
    }
}

/// [`input_tiles`] for a tile size known at compile time (the loops unroll and the tile stays
/// in registers).
#[inline(always)]
unsafe fn input_tiles_m<S: Simd, const M: usize>(
    ph: &[&[f32]],
    pw: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    v: *mut f32,
    stride: usize,
) {
    let m = M;
    let a = m + 2;
    let bt = |d: [S::V; 6]| if m == 2 { bt2::<S>(d) } else { bt4::<S>(d) };
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        let mut tx = 0;
        while tx < tw {
            let n = (tw - tx).min(S::LANES);
            // Row-transformed values r[i][j] for padded rows m*ty + i.
            let mut r = [[S::splat(0.0); 6]; 6];
            for (i, ri) in r.iter_mut().enumerate().take(a) {
                let base = (m * ty + i) * pw + tx;
                let mut d = [S::splat(0.0); 6];
                for (j, dj) in d.iter_mut().enumerate().take(a) {
                    // Column m*tx + j: phase j (or j - m of the next tile).
                    *dj = if j < m {
                        S::load(ph[j].as_ptr().add(base))
                    } else {
                        S::load(ph[j - m].as_ptr().add(base + 1))
                    };
                }
                *ri = bt(d);
            }
            #[allow(clippy::needless_range_loop)]
            for j in 0..a {
                let col = bt([r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j]]);
                for (i, ci) in col.iter().enumerate().take(a) {
                    store_n::<S>(v.add((i * a + j) * stride + t0 + tx), *ci, n);
                }
            }
            tx += S::LANES;
        }
    }
}

dispatch!(fn input_tiles_isa = input_tiles(m: usize, ph: &[&[f32]], pw: usize, ty0: usize, ty1: usize, tw: usize, v: *mut f32, stride: usize));

/// `A^T s` for m = 2 (`[[1, 1, 1, 0], [0, 1, -1, -1]]`) and m = 4
/// (`[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]`).
#[inline(always)]
unsafe fn at<S: Simd>(m: usize, s: [S::V; 6]) -> [S::V; 4] {
    if m == 2 {
        let z = S::splat(0.0);
        return [
            S::add(S::add(s[0], s[1]), s[2]),
            S::sub(S::sub(s[1], s[2]), s[3]),
            z,
            z,
        ];
    }
    let p12 = S::add(s[1], s[2]);
    let m12 = S::sub(s[1], s[2]);
    let p34 = S::add(s[3], s[4]);
    let m34 = S::sub(s[3], s[4]);
    [
        S::add(S::add(s[0], p12), p34),
        S::fma(S::splat(2.0), m34, m12),
        S::fma(S::splat(4.0), p34, p12),
        S::add(S::fma(S::splat(8.0), m34, m12), s[5]),
    ]
}

/// Where an output transform writes: one channel's plane of `h x w` rows, with the epilogue.
struct OutPlane {
    y: *mut f32,
    res: Option<*const f32>,
    bias: f32,
    act: Activation,
    h: usize,
    w: usize,
}

/// Output transform of one channel: tiles `[ty0, ty1)` from `mm[e * stride + t]` (tile index
/// `t` counted from the chunk's first tile) into the channel's rows, epilogue applied.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_tiles<S: Simd>(
    m: usize,
    mm: *const f32,
    stride: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    out: &OutPlane,
) {
    if m == 2 {
        output_tiles_m::<S, 2>(mm, stride, ty0, ty1, tw, out)
    } else {
        output_tiles_m::<S, 4>(mm, stride, ty0, ty1, tw, out)
    }
}

/// [`output_tiles`] for a tile size known at compile time.
#[inline(always)]
unsafe fn output_tiles_m<S: Simd, const M: usize>(
    mm: *const f32,
    stride: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    out: &OutPlane,
) {
    let m = M;
    let a = m + 2;
    let (h, w) = (out.h, out.w);
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        let mut tx = 0;
        while tx < tw {
            let ld = |e: usize| S::load(mm.add(e * stride + t0 + tx));
            // Column transform first: c[r][j] = (A^T m)[r][j].
            let mut c = [[S::splat(0.0); 6]; 4];
            #[allow(clippy::needless_range_loop)]
            for j in 0..a {
                let mut col = [S::splat(0.0); 6];
                for (i, ci) in col.iter_mut().enumerate().take(a) {
                    *ci = ld(i * a + j);
                }
                let o = at::<S>(m, col);
                for r in 0..m {
                    c[r][j] = o[r];
                }
            }
            for (r, cr) in c.iter().enumerate().take(m) {
                let yy = m * ty + r;
                if yy >= h {
                    break;
                }
                let o = at::<S>(m, *cr);
                // Interleave the m output columns of each tile: x = m * t + q.
                let mut outs = [S::splat(0.0); 4];
                let nv = if m == 2 {
                    let (lo, hi) = S::interleave(o[0], o[1]);
                    outs[0] = lo;
                    outs[1] = hi;
                    2
                } else {
                    let (a_lo, a_hi) = S::interleave(o[0], o[2]);
                    let (b_lo, b_hi) = S::interleave(o[1], o[3]);
                    let (r0, r1) = S::interleave(a_lo, b_lo);
                    let (r2, r3) = S::interleave(a_hi, b_hi);
                    outs = [r0, r1, r2, r3];
                    4
                };
                for (k, ov) in outs.iter().enumerate().take(nv) {
                    let xs = m * tx + k * S::LANES;
                    if xs >= w {
                        break;
                    }
                    let off = yy * w + xs;
                    store_epi::<S>(
                        *ov,
                        out.y.add(off),
                        (w - xs).min(S::LANES),
                        out.bias,
                        out.res.map(|r| r.add(off)),
                        out.act,
                    );
                }
            }
            tx += S::LANES;
        }
    }
}

dispatch!(fn output_tiles_isa = output_tiles(m: usize, mm: *const f32, stride: usize, ty0: usize, ty1: usize, tw: usize, out: &OutPlane));

/// `dst[q * plane + i] = row[m * i + q]` for the `m` column phases `q` and `i < pw`: one padded
/// row split by column phase (`m` known at compile time, so the strided reads vectorise).
#[inline(always)]
unsafe fn split_phases<S: Simd>(m: usize, row: &[f32], dst: &mut [f32], plane: usize, pw: usize) {
    #[inline(always)]
    fn split<const M: usize>(row: &[f32], dst: &mut [f32], plane: usize, pw: usize) {
        let row = &row[..M * pw];
        for q in 0..M {
            let d = &mut dst[q * plane..q * plane + pw];
            for (v, c) in d.iter_mut().zip(row.chunks_exact(M)) {
                *v = c[q];
            }
        }
    }
    if m == 4 {
        split::<4>(row, dst, plane, pw)
    } else {
        split::<2>(row, dst, plane, pw)
    }
}

dispatch!(fn split_phases_isa = split_phases(m: usize, row: &[f32], dst: &mut [f32], plane: usize, pw: usize));

fn winograd(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue, m: usize) -> Vec<f32> {
    let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
    let a = m + 2;
    let aa = a * a;
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    // Padded planes cover m*th + 2 rows and m*(tw + 1) columns, split by column phase.
    let hp = m * th + 2;
    let pw = tw + 1;
    let plane = hp * pw;
    let u = filter_transform(wt, cout, cin, a);
    // Chunks of whole tile rows, at least 64 tiles (one micro-kernel panel; measured: 64 to
    // 144 tiles are 5 % faster than 256 at the DCAE's shapes, their buffers closer to the
    // cache). With enough chunks each runs on one thread, its transforms and products in
    // cache; else the chunks run one by one with the work inside spread over the threads.
    let rows_per_chunk = 64usize.div_ceil(tw).clamp(1, th);
    let nchunks = th.div_ceil(rows_per_chunk);
    let threads = rayon::current_num_threads();
    let per_chunk_parallel = nchunks < 2 * threads;
    let maxt = rows_per_chunk * tw;
    let mut y = super::output_vec(g.b * cout * h * w);
    // ph[ci][q][plane], with 16 values of slack for the vector loads.
    let mut ph = Scratch::uninit(cin * m * plane + 16);
    ph[cin * m * plane..].fill(0.0);
    for b in 0..g.b {
        // Padded, activated, phase-split input planes.
        ph.par_chunks_mut(m * plane)
            .take(cin)
            .enumerate()
            .for_each_init(Vec::new, |prow: &mut Vec<f32>, (ci, dst)| {
                // Rows 1..=h are written whole below: zero the padding rows only.
                for q in 0..m {
                    dst[q * plane..q * plane + pw].fill(0.0);
                    dst[q * plane + (h + 1) * pw..(q + 1) * plane].fill(0.0);
                }
                let src = &x[(b * cin + ci) * h * w..(b * cin + ci + 1) * h * w];
                prow.clear();
                prow.resize(m * pw, 0.0);
                for yy in 0..h {
                    // Padded column c = x + 1 goes to phase c % m, index c / m.
                    act::apply_into(ep.act_in, &src[yy * w..(yy + 1) * w], &mut prow[1..w + 1]);
                    let r = (yy + 1) * pw;
                    split_phases_isa(m, prow, &mut dst[r..], plane, pw);
                }
            });
        let yb = SendPtr::new(y[b * cout * h * w..].as_mut_ptr());
        let run_chunk = |chunk: usize, v: &mut [f32], mm: &mut [f32], inner: bool| {
            let ty0 = chunk * rows_per_chunk;
            let ty1 = (ty0 + rows_per_chunk).min(th);
            let nt = (ty1 - ty0) * tw;
            let vs = SendPtr::new(v.as_mut_ptr());
            let input = |ci: usize| {
                let base = ci * m * plane;
                let phases: Vec<&[f32]> = (0..m)
                    .map(|q| &ph[base + q * plane..base + (q + 1) * plane + 16])
                    .collect();
                // SAFETY: channel ci writes v[e][ci][..nt] only.
                input_tiles_isa(
                    m,
                    &phases,
                    pw,
                    ty0,
                    ty1,
                    tw,
                    unsafe { vs.get().add(ci * nt) },
                    cin * nt,
                );
            };
            let ms = SendPtr::new(mm.as_mut_ptr());
            let product = |e: usize, threads: Threads| {
                // SAFETY: component e writes its own [cout x nt] slab of mm.
                unsafe {
                    sgemm(
                        cout,
                        nt,
                        cin,
                        MatMut::new(ms.get().add(e * cout * nt), nt, 1),
                        false,
                        MatRef::new(u.as_ptr().add(e * cout * cin), cin, 1),
                        MatRef::new(vs.get().add(e * cin * nt), nt, 1),
                        threads,
                    );
                }
            };
            let output = |co: usize| {
                let plane_off = (b * cout + co) * h * w;
                let out = OutPlane {
                    // SAFETY: chunks write disjoint rows of each channel plane.
                    y: unsafe { yb.get().add(co * h * w) },
                    res: ep.residual.map(|r| unsafe { r.as_ptr().add(plane_off) }),
                    bias: ep.bias.map_or(0.0, |bb| bb[co]),
                    act: ep.act_out,
                    h,
                    w,
                };
                // SAFETY: the channel's slabs lie inside mm (16 values of slack).
                output_tiles_isa(
                    m,
                    unsafe { ms.get().add(co * nt) },
                    cout * nt,
                    ty0,
                    ty1,
                    tw,
                    &out,
                );
            };
            if inner {
                (0..cin).into_par_iter().for_each(input);
                (0..aa)
                    .into_par_iter()
                    .for_each(|e| product(e, Threads::One));
                (0..cout).into_par_iter().for_each(output);
            } else {
                (0..cin).for_each(input);
                (0..aa).for_each(|e| product(e, Threads::One));
                (0..cout).for_each(output);
            }
        };
        // Vector loads read up to 16 values past a slab.
        let (vlen, mlen) = (aa * cin * maxt + 16, aa * cout * maxt + 16);
        if per_chunk_parallel {
            let mut v = Scratch::uninit(vlen);
            let mut mm = Scratch::uninit(mlen);
            for chunk in 0..nchunks {
                run_chunk(chunk, &mut v, &mut mm, true);
            }
        } else {
            (0..nchunks).into_par_iter().for_each_init(
                || (Scratch::uninit(vlen), Scratch::uninit(mlen)),
                |(v, mm), chunk| run_chunk(chunk, v, mm, false),
            );
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised filter transform against the scalar formula (`G g G^T` in f64, each sum in
    /// the order written), on filter counts that leave a partial block.
    #[test]
    fn filter_transform_matches_the_scalar_formula() {
        for a in [4usize, 6] {
            let gm = filter_matrix(a);
            for (cout, cin) in [(1usize, 1usize), (3, 5), (8, 2), (7, 19)] {
                let n = cout * cin;
                let wt: Vec<f32> = (0..n * 9)
                    .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 37.0)
                    .collect();
                let u = filter_transform(&wt, cout, cin, a);
                for e in 0..n {
                    let g = &wt[e * 9..e * 9 + 9];
                    for i in 0..a {
                        let t: Vec<f64> = (0..3)
                            .map(|j| (0..3).map(|k| gm[i][k] * g[k * 3 + j] as f64).sum())
                            .collect();
                        for j in 0..a {
                            let v: f64 = (0..3).map(|k| t[k] * gm[j][k]).sum();
                            assert_eq!(
                                u[(i * a + j) * n + e],
                                v as f32,
                                "a {a}, filter {e}, ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}

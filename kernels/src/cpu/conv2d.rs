//! 2-D convolution on the CPU, NCHW: `[b, cin, h, w] (*) [cout, cin / groups, kh, kw]`, with the
//! epilogue `act_out(conv(act_in(x)) + bias + residual)` fused.
//!
//! - Winograd F(2x2, 3x3) for dense 3x3 stride-1 padding-1 convolutions (every ResBlock and
//!   up/in/out convolution of the DCAE): 16 matrix products over 4x4 input tiles, 2.25x fewer
//!   multiplies than the direct sum, with the transforms vectorised over tiles and the tiles
//!   processed in cache-sized chunks;
//! - pointwise (1x1, any groups): one matrix product per group;
//! - depthwise (`groups == cin == cout`): a vectorised pass per channel plane;
//! - taps: one strided matrix product per tap over a zero-padded input (dense, stride 1).

use rayon::prelude::*;

use super::act;
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
    /// 1x1: a matrix product per group.
    Pointwise,
    /// One vectorised pass per channel plane (`groups == channels`, stride 1).
    Depthwise,
    /// One strided matrix product per tap (dense, stride 1, dilation 1).
    Taps,
}

/// Whether `algo` can run `g`.
pub(crate) fn applies(algo: Algo, g: &Geom) -> bool {
    let s = g.spec;
    match algo {
        Algo::Winograd => {
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
        Algo::Taps => s.groups == 1 && s.stride == 1 && s.dilation == 1,
    }
}

/// The algorithm for a shape, `None` when no CPU kernel applies (candle's convolution runs).
pub(crate) fn plan(g: &Geom) -> Option<Algo> {
    [Algo::Pointwise, Algo::Depthwise, Algo::Winograd, Algo::Taps]
        .into_iter()
        .find(|a| applies(*a, g))
}

/// Runs the convolution with `algo` (which must apply); `wt` is the weight as stored
/// (`[cout][cin / groups][kh][kw]`).
pub(crate) fn conv2d(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue, algo: Algo) -> Vec<f32> {
    match algo {
        Algo::Winograd => winograd(x, wt, g, ep),
        Algo::Pointwise => pointwise(x, wt, g, ep),
        Algo::Depthwise => depthwise(x, wt, g, ep),
        Algo::Taps => taps(x, wt, g, ep),
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
    &**keep.insert(xa)
}

/// `act(y + bias + residual)` over rows of one channel.
#[inline(always)]
unsafe fn finish_row<S: Simd>(y: &mut [f32], bias: f32, res: Option<&[f32]>, act: Activation) {
    let n = y.len();
    let mut i = 0;
    while i < n {
        let m = (n - i).min(S::LANES);
        let mut tmp = [0f32; 16];
        tmp[..m].copy_from_slice(&y[i..i + m]);
        let mut v = S::add(S::load(tmp.as_ptr()), S::splat(bias));
        if let Some(r) = res {
            tmp[..m].copy_from_slice(&r[i..i + m]);
            v = S::add(v, S::load(tmp.as_ptr()));
        }
        let v = match act {
            Activation::Identity => v,
            Activation::Silu => super::simd::silu::<S>(v),
            Activation::Relu => S::max(v, S::splat(0.0)),
            Activation::Gelu => super::simd::gelu::<S>(v),
        };
        S::store(tmp.as_mut_ptr(), v);
        y[i..i + m].copy_from_slice(&tmp[..m]);
        i += S::LANES;
    }
}

dispatch!(fn finish_row_isa = finish_row(y: &mut [f32], bias: f32, res: Option<&[f32]>, act: Activation));

fn finish(y: &mut [f32], cout: usize, plane: usize, ep: &Epilogue) {
    if ep.bias.is_none() && ep.residual.is_none() && ep.act_out == Activation::Identity {
        return;
    }
    y.par_chunks_mut(plane).enumerate().for_each(|(row, yr)| {
        let bias = ep.bias.map_or(0.0, |b| b[row % cout]);
        let res = ep.residual.map(|r| &r[row * plane..(row + 1) * plane]);
        finish_row_isa(yr, bias, res, ep.act_out);
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
    let mut y = vec![0f32; g.b * g.cout * hw];
    let yp = SendPtr(y.as_mut_ptr());
    let threads = if groups > 1 {
        Threads::One
    } else {
        Threads::All
    };
    let run = |task: usize| {
        let (b, grp) = (task / groups, task % groups);
        let yp = yp;
        // SAFETY: each (b, group) writes its own rows of y; reads stay inside x and wt.
        unsafe {
            sgemm(
                cog,
                hw,
                cig,
                MatMut::new(yp.0.add((b * g.cout + grp * cog) * hw), hw, 1),
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
            let m = (w - x0).min(S::LANES);
            if m == S::LANES {
                S::store(yrow.add(x0), a);
            } else {
                let mut tmp = [0f32; 16];
                S::store(tmp.as_mut_ptr(), a);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), yrow.add(x0), m);
            }
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
        return taps_general(x, wt, g, ep);
    }
    let hp = h + 2 * p;
    // 16 values of slack after each row for the vector loads.
    let wp = w + 2 * p + 16;
    let mut y = vec![0f32; g.b * g.cout * ho * wo];
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
            finish_row_isa(yp, bias, res, ep.act_out);
        },
    );
    y
}

// ---------------------------------------------------------------------------------------------
// Taps over a zero-padded input: output row y, column x (on a grid as wide as the padded input)
// reads padded[(y + dy) * wp + x + dx], so each tap is one strided product.

fn taps(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    taps_general(x, wt, g, ep)
}

fn taps_general(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let s = g.spec;
    let p = s.padding;
    let groups = s.groups;
    let (cig, cog) = (g.cin / groups, g.cout / groups);
    let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
    let (ho, wo) = (g.hout(), g.wout());
    let ncol = ho * wp;
    let mut y = vec![0f32; g.b * g.cout * ho * wo];
    let mut xp = Scratch::uninit(g.cin * hp * wp + g.kw);
    let mut grid = Scratch::uninit(g.cout * ncol);
    for b in 0..g.b {
        xp.fill(0.0);
        xp[..g.cin * hp * wp]
            .par_chunks_mut(hp * wp)
            .enumerate()
            .for_each(|(ci, dst)| {
                let src = &x[(b * g.cin + ci) * g.h * g.w..];
                for yy in 0..g.h {
                    act::apply_into(
                        ep.act_in,
                        &src[yy * g.w..(yy + 1) * g.w],
                        &mut dst[(yy + p) * wp + p..(yy + p) * wp + p + g.w],
                    );
                }
            });
        for grp in 0..groups {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let tap = dy * g.kw + dx;
                    // SAFETY: column j of tap (dy, dx) reads xp[ci*hp*wp + dy*wp + dx + j] with
                    // j < ho*wp, inside xp (kw values of slack); writes inside grid.
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
                            MatRef::new(
                                xp.as_ptr().add(grp * cig * hp * wp + dy * wp + dx),
                                hp * wp,
                                1,
                            ),
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
                        .copy_from_slice(&grid[co * ncol + yy * wp..co * ncol + yy * wp + wo]);
                }
                let bias = ep.bias.map_or(0.0, |bb| bb[co]);
                let plane = (b * g.cout + co) * ho * wo;
                let res = ep.residual.map(|r| &r[plane..plane + ho * wo]);
                finish_row_isa(yr, bias, res, ep.act_out);
            });
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Winograd F(2x2, 3x3).

/// `U[e][co][ci] = (G g G^T)[e]`, `G = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]`.
fn filter_transform(wt: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let n = cout * cin;
    let mut u = vec![0f32; 16 * n];
    let up = SendPtr(u.as_mut_ptr());
    (0..n).into_par_iter().with_min_len(1024).for_each(|e| {
        let up = up;
        let gk = &wt[e * 9..e * 9 + 9];
        // t = G g (4 x 3)
        let mut t = [[0f32; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (gk[j], gk[3 + j], gk[6 + j]);
            t[0][j] = g0;
            t[1][j] = 0.5 * (g0 + g1 + g2);
            t[2][j] = 0.5 * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        for (i, ti) in t.iter().enumerate() {
            let (g0, g1, g2) = (ti[0], ti[1], ti[2]);
            let row = [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2];
            for (j, v) in row.iter().enumerate() {
                // SAFETY: (i*4 + j, e) is written by this task only.
                unsafe { *up.0.add((i * 4 + j) * n + e) = *v };
            }
        }
    });
    u
}

/// Input transform of one channel over tile rows `[ty0, ty1)`: `v[e * stride + t]` for the 16
/// components `e` of `B^T d B`, `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
/// `xp` is the channel zero-padded by one on each side (rows of `wp`), split into even / odd
/// columns: `ev[r][i] = xp[r][2i]`, `od[r][i] = xp[r][2i + 1]`, `tw + 1` per row.
#[inline(always)]
unsafe fn input_tiles<S: Simd>(
    ev: &[f32],
    od: &[f32],
    half: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    v: *mut f32,
    stride: usize,
) {
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        let mut tx = 0;
        while tx < tw {
            let m = (tw - tx).min(S::LANES);
            // Row-transformed values r[i][j] for rows 2ty + i.
            let mut r = [[S::splat(0.0); 4]; 4];
            for (i, ri) in r.iter_mut().enumerate() {
                let base = (2 * ty + i) * half + tx;
                let (e0, o0) = (
                    S::load(ev.as_ptr().add(base)),
                    S::load(od.as_ptr().add(base)),
                );
                let (e1, o1) = (
                    S::load(ev.as_ptr().add(base + 1)),
                    S::load(od.as_ptr().add(base + 1)),
                );
                ri[0] = S::sub(e0, e1);
                ri[1] = S::add(o0, e1);
                ri[2] = S::sub(e1, o0);
                ri[3] = S::sub(o0, o1);
            }
            for j in 0..4 {
                let c = [
                    S::sub(r[0][j], r[2][j]),
                    S::add(r[1][j], r[2][j]),
                    S::sub(r[2][j], r[1][j]),
                    S::sub(r[1][j], r[3][j]),
                ];
                for (i, ci) in c.iter().enumerate() {
                    let dst = v.add((i * 4 + j) * stride + t0 + tx);
                    if m == S::LANES {
                        S::store(dst, *ci);
                    } else {
                        let mut tmp = [0f32; 16];
                        S::store(tmp.as_mut_ptr(), *ci);
                        std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, m);
                    }
                }
            }
            tx += S::LANES;
        }
    }
}

dispatch!(fn input_tiles_isa = input_tiles(ev: &[f32], od: &[f32], half: usize, ty0: usize, ty1: usize, tw: usize, v: *mut f32, stride: usize));

/// Output transform of one channel: `A^T m A`, `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`, tiles
/// `[ty0, ty1)` from `m[e * stride + t]` into the rows of `y` (`h x w`), even / odd output
/// columns through `tmp`.
#[inline(always)]
unsafe fn output_tiles<S: Simd>(
    m: *const f32,
    stride: usize,
    ty0: usize,
    ty1: usize,
    tw: usize,
    y: &mut [f32],
    h: usize,
    w: usize,
) {
    let mut even = vec![0f32; tw + S::LANES];
    let mut odd = vec![0f32; tw + S::LANES];
    for ty in ty0..ty1 {
        let t0 = (ty - ty0) * tw;
        for a in 0..2 {
            let yy = 2 * ty + a;
            if yy >= h {
                break;
            }
            let mut tx = 0;
            while tx < tw {
                let ld = |e: usize| S::load(m.add(e * stride + t0 + tx));
                // Column sums for output row a: s[j] = A^T row a applied to m[.][j].
                let mut s = [S::splat(0.0); 4];
                for (j, sj) in s.iter_mut().enumerate() {
                    let (m0, m1, m2, m3) = (ld(j), ld(4 + j), ld(8 + j), ld(12 + j));
                    *sj = if a == 0 {
                        S::add(S::add(m0, m1), m2)
                    } else {
                        S::sub(S::sub(m1, m2), m3)
                    };
                }
                S::store(even.as_mut_ptr().add(tx), S::add(S::add(s[0], s[1]), s[2]));
                S::store(odd.as_mut_ptr().add(tx), S::sub(S::sub(s[1], s[2]), s[3]));
                tx += S::LANES;
            }
            let row = &mut y[yy * w..(yy + 1) * w];
            for (x, v) in row.iter_mut().enumerate() {
                *v = if x % 2 == 0 { even[x / 2] } else { odd[x / 2] };
            }
        }
    }
}

dispatch!(fn output_tiles_isa = output_tiles(m: *const f32, stride: usize, ty0: usize, ty1: usize, tw: usize, y: &mut [f32], h: usize, w: usize));

fn winograd(x: &[f32], wt: &[f32], g: &Geom, ep: &Epilogue) -> Vec<f32> {
    let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Padded planes cover 2*th + 2 rows and 2*tw + 2 columns; split into even / odd columns.
    let hp = 2 * th + 2;
    let half = tw + 1;
    let u = filter_transform(wt, cout, cin);
    // Tile rows per chunk: about 4 MB of input-transform values.
    let rows_per_chunk = ((1usize << 20) / (16 * cin * tw).max(1)).clamp(1, th);
    let mut y = vec![0f32; g.b * cout * h * w];
    let mut ev = Scratch::uninit(cin * hp * half + 16);
    let mut od = Scratch::uninit(cin * hp * half + 16);
    ev[cin * hp * half..].fill(0.0);
    od[cin * hp * half..].fill(0.0);
    let maxt = rows_per_chunk * tw;
    // Vector loads read up to 16 values past a slab.
    let mut v = Scratch::uninit(16 * cin * maxt + 16);
    let mut mm = Scratch::uninit(16 * cout * maxt + 16);
    for b in 0..g.b {
        // Padded, activated, even / odd split input planes.
        ev.par_chunks_mut(hp * half)
            .zip(od.par_chunks_mut(hp * half))
            .take(cin)
            .enumerate()
            .for_each(|(ci, (e, o))| {
                e.fill(0.0);
                o.fill(0.0);
                let src = &x[(b * cin + ci) * h * w..(b * cin + ci + 1) * h * w];
                let mut row = vec![0f32; w];
                for yy in 0..h {
                    act::apply_into(ep.act_in, &src[yy * w..(yy + 1) * w], &mut row);
                    // Padded column c = x + 1: even columns hold x odd, odd columns x even.
                    let r = (yy + 1) * half;
                    for (xx, &val) in row.iter().enumerate() {
                        let c = xx + 1;
                        if c % 2 == 0 {
                            e[r + c / 2] = val;
                        } else {
                            o[r + c / 2] = val;
                        }
                    }
                }
            });
        let mut ty0 = 0;
        while ty0 < th {
            let ty1 = (ty0 + rows_per_chunk).min(th);
            let nt = (ty1 - ty0) * tw;
            let vs = SendPtr(v.as_mut_ptr());
            (0..cin).into_par_iter().for_each(|ci| {
                let vs = vs;
                let e = &ev[ci * hp * half..(ci + 1) * hp * half + 16];
                let o = &od[ci * hp * half..(ci + 1) * hp * half + 16];
                // SAFETY: channel ci writes v[e][ci][..nt] only.
                input_tiles_isa(
                    e,
                    o,
                    half,
                    ty0,
                    ty1,
                    tw,
                    unsafe { vs.0.add(ci * nt) },
                    cin * nt,
                );
            });
            let ms = SendPtr(mm.as_mut_ptr());
            (0..16).into_par_iter().for_each(|e| {
                let ms = ms;
                // SAFETY: component e writes its own [cout x nt] slab of mm.
                unsafe {
                    sgemm(
                        cout,
                        nt,
                        cin,
                        MatMut::new(ms.0.add(e * cout * nt), nt, 1),
                        false,
                        MatRef::new(u.as_ptr().add(e * cout * cin), cin, 1),
                        MatRef::new(v.as_ptr().add(e * cin * nt), nt, 1),
                        Threads::One,
                    );
                }
            });
            let yb = &mut y[b * cout * h * w..(b + 1) * cout * h * w];
            yb.par_chunks_mut(h * w).enumerate().for_each(|(co, yc)| {
                output_tiles_isa(
                    unsafe { mm.as_ptr().add(co * nt) },
                    cout * nt,
                    ty0,
                    ty1,
                    tw,
                    yc,
                    h,
                    w,
                );
            });
            ty0 = ty1;
        }
        let yb = &mut y[b * cout * h * w..(b + 1) * cout * h * w];
        yb.par_chunks_mut(h * w).enumerate().for_each(|(co, yc)| {
            let bias = ep.bias.map_or(0.0, |bb| bb[co]);
            let plane = (b * cout + co) * h * w;
            let res = ep.residual.map(|r| &r[plane..plane + h * w]);
            finish_row_isa(yc, bias, res, ep.act_out);
        });
    }
    y
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to write disjoint ranges from parallel tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

//! `y = act(x W^T + b)` for a fixed weight `W` `[n, k]`, packed once into panels of 32 output
//! columns (`[k][32]` each, zero-padded), so that a call packs nothing: for small `m` (a few
//! dozen tokens) packing the weights on every call costs as much as the product itself.
//!
//! Each task takes a run of panels; for every block of `KC` inputs the panel's `KC x 32` slice
//! stays in L1 while register tiles of `MR x 32` outputs (`MR` rows of `x` broadcast) sweep all
//! rows.

use rayon::prelude::*;

use super::epilogue::{apply_v, load_n, store_n};
use super::simd::{dispatch, Simd};
use super::SendPtr;
use crate::Activation;

/// Output columns per panel.
pub(crate) const NR: usize = 32;
/// Inputs ahead that the packed loop prefetches the panel.
const PF: usize = 16;
/// Inputs per cache block.
const KC: usize = 512;

/// A weight packed for [`matmul`].
#[derive(Debug)]
pub(crate) struct Packed {
    /// `[n.div_ceil(NR)][k][NR]`.
    data: Vec<f32>,
    pub n: usize,
    pub k: usize,
}

impl Packed {
    /// Packs `w` (`[n, k]` row-major).
    pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        data.par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                for c in 0..NR {
                    let j = p * NR + c;
                    if j >= n {
                        break;
                    }
                    for kk in 0..k {
                        panel[kk * NR + c] = w[j * k + kk];
                    }
                }
            });
        Self { data, n, k }
    }

    /// Back to `[n, k]` row-major.
    pub(crate) fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let mut w = vec![0f32; n * k];
        for j in 0..n {
            let panel = &self.data[(j / NR) * k * NR..];
            for kk in 0..k {
                w[j * k + kk] = panel[kk * NR + j % NR];
            }
        }
        w
    }
}

#[derive(Clone, Copy)]
struct Args<'a> {
    /// The packed weight (all panels).
    w: &'a [f32],
    /// Panels `[p0, p1)` of this task.
    p0: usize,
    p1: usize,
    x: &'a [f32],
    /// `x` packed in 12-row tiles `[tile][k][12]`, zero rows past `m` (AVX-512 and `m >= 8`;
    /// empty otherwise).
    xp: &'a [f32],
    /// Rows `[r0, r1)` of `x` and `y`.
    r0: usize,
    r1: usize,
    k: usize,
    n: usize,
    /// The current panel and its first output column (set per panel).
    panel: &'a [f32],
    j0: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
    y: *mut f32,
}

/// Rows `[i0, i0 + rows)` (`rows <= MR`) x the panel, inputs `[k0, k1)`; `first`: start from
/// the bias, `last`: apply the activation. `PACKED`: `x` comes from the packed 12-row tiles
/// (rows past `m` are zeros there).
///
/// The accumulators are only ever indexed by constants (ragged edges go through a stack tile)
/// so that they stay in registers: an accumulator array the compiler cannot split would be
/// written back to memory after every multiply-add.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<S: Simd, const MR: usize, const VN: usize, const PACKED: bool>(
    a: &Args,
    i0: usize,
    rows: usize,
    k0: usize,
    k1: usize,
    first: bool,
    last: bool,
) {
    let ncols = (a.n - a.j0).min(NR);
    let full = ncols == NR;
    let mut acc = [[S::splat(0.0); VN]; MR];
    // Start values: the bias, or the partial sums so far.
    if first {
        if let Some(b) = a.bias {
            let mut bb = [0f32; NR];
            let src = if full {
                b.as_ptr().add(a.j0)
            } else {
                bb[..ncols].copy_from_slice(&b[a.j0..a.j0 + ncols]);
                bb.as_ptr()
            };
            for v in 0..VN {
                let bv = S::load(src.add(v * S::LANES));
                for r in 0..MR {
                    acc[r][v] = bv;
                }
            }
        }
    } else {
        for r in 0..MR {
            if r < rows {
                let yr = a.y.add((i0 + r) * a.n + a.j0);
                for v in 0..VN {
                    let c0 = v * S::LANES;
                    acc[r][v] = if full {
                        S::load(yr.add(c0))
                    } else {
                        load_n::<S>(
                            yr.add(c0.min(ncols)),
                            ncols.saturating_sub(c0).min(S::LANES),
                        )
                    };
                }
            }
        }
    }
    let pb = a.panel.as_ptr();
    if PACKED {
        let xb = a.xp.as_ptr().add(i0 * a.k);
        for kk in k0..k1 {
            // The panel a few inputs ahead (it streams from memory on the first tile).
            S::prefetch(pb.add((kk + PF) * NR));
            S::prefetch(pb.add((kk + PF) * NR + 16));
            let mut bv = [S::splat(0.0); VN];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = S::load(pb.add(kk * NR + v * S::LANES));
            }
            let xk = xb.add(kk * MR);
            for r in 0..MR {
                let xv = S::splat(*xk.add(r));
                for v in 0..VN {
                    acc[r][v] = S::fma(xv, bv[v], acc[r][v]);
                }
            }
        }
    } else {
        // Rows past the tile's last one read that row again (their sums are dropped): reading
        // past `x` could leave its allocation.
        let xrow: [*const f32; MR] =
            std::array::from_fn(|r| a.x.as_ptr().add((i0 + r.min(rows - 1)) * a.k));
        for kk in k0..k1 {
            let mut bv = [S::splat(0.0); VN];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = S::load(pb.add(kk * NR + v * S::LANES));
            }
            for r in 0..MR {
                let xv = S::splat(*xrow[r].add(kk));
                for v in 0..VN {
                    acc[r][v] = S::fma(xv, bv[v], acc[r][v]);
                }
            }
        }
    }
    let act = if last { a.act } else { Activation::Identity };
    for r in 0..MR {
        if r < rows {
            let yr = a.y.add((i0 + r) * a.n + a.j0);
            for v in 0..VN {
                let c0 = v * S::LANES;
                if c0 < ncols {
                    store_n::<S>(
                        yr.add(c0),
                        apply_v::<S>(act, acc[r][v]),
                        (ncols - c0).min(S::LANES),
                    );
                }
            }
        }
    }
}

/// The task's panels, inputs in blocks of `KC` outermost: a block of `x` (all of the task's
/// rows x `KC` inputs) stays in L2 while the panels sweep over it.
#[inline(always)]
unsafe fn panels_body<S: Simd>(a: &Args) {
    let mut k0 = 0;
    loop {
        let k1 = (k0 + KC).min(a.k);
        for p in a.p0..a.p1 {
            let ap = Args {
                panel: &a.w[p * a.k * NR..(p + 1) * a.k * NR],
                j0: p * NR,
                ..*a
            };
            panel_block::<S>(&ap, k0, k1);
        }
        if k1 == a.k {
            break;
        }
        k0 = k1;
    }
}

/// Inputs `[k0, k1)` of one panel over the task's rows.
#[inline(always)]
unsafe fn panel_block<S: Simd>(a: &Args, k0: usize, k1: usize) {
    {
        let (first, last) = (k0 == 0, k1 == a.k);
        let mut i = a.r0;
        if !a.xp.is_empty() {
            // Packed tiles, the last one zero-padded past m.
            while i < a.r1 {
                tile::<S, 12, 2, true>(a, i, (a.r1 - i).min(12), k0, k1, first, last);
                i += 12;
            }
        } else if S::LANES == 16 {
            while i < a.r1 {
                let rows = (a.r1 - i).min(4);
                tile::<S, 4, 2, false>(a, i, rows, k0, k1, first, last);
                i += rows;
            }
        } else {
            while i < a.r1 {
                let rows = (a.r1 - i).min(3);
                tile::<S, 3, 4, false>(a, i, rows, k0, k1, first, last);
                i += rows;
            }
        }
    }
}

dispatch!(fn panels_isa = panels_body(a: &Args));

/// `act(x W^T + b)` for `x` `[m, k]`: `[m, n]`.
pub(crate) fn matmul(
    x: &[f32],
    m: usize,
    w: &Packed,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (n, k) = (w.n, w.k);
    let mut y = super::output_vec(m * n);
    if m == 0 || n == 0 {
        return y;
    }
    if k == 0 {
        // No inputs: the bias alone.
        for row in y.chunks_mut(n) {
            match bias {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(0.0),
            }
        }
        crate::cpu::act::apply_par(act, &mut y);
        return y;
    }
    let yp = SendPtr::new(y.as_mut_ptr());
    let panels = n.div_ceil(NR);
    // x packed k-major in 12-row tiles, so that a tile's broadcasts read one cache line per
    // input instead of twelve rows far apart; the ragged last tile is zero-padded.
    let tiles = if super::simd::isa() == super::simd::Isa::Avx512 && m >= 8 {
        m.div_ceil(12)
    } else {
        0
    };
    let mut xp = vec![0f32; tiles * 12 * k];
    xp.par_chunks_mut(12 * k).enumerate().for_each(|(t, dst)| {
        for r in 0..12.min(m - t * 12) {
            let src = &x[(t * 12 + r) * k..(t * 12 + r + 1) * k];
            for (kk, &v) in src.iter().enumerate() {
                dst[kk * 12 + r] = v;
            }
        }
    });
    // Row blocks of at most about 384 rows (a multiple of 12, as even as possible): a block of x
    // stays in cache while a thread sweeps consecutive panels, and each panel streams from
    // memory once per block.
    let mblocks = m.div_ceil(384);
    let mc = m.div_ceil(mblocks).next_multiple_of(12);
    // Groups of panels per task: enough tasks to balance the threads, few enough that each
    // task's block of x is reused across several panels.
    let threads = rayon::current_num_threads().max(1);
    let group = (panels * mblocks).div_ceil(4 * threads).clamp(1, 8);
    let groups = panels.div_ceil(group);
    (0..mblocks * groups).into_par_iter().for_each(|task| {
        let (mb, gi) = (task / groups, task % groups);
        let a = Args {
            w: &w.data,
            p0: gi * group,
            p1: ((gi + 1) * group).min(panels),
            x,
            xp: &xp,
            r0: mb * mc,
            r1: ((mb + 1) * mc).min(m),
            k,
            n,
            panel: &[],
            j0: 0,
            bias,
            act,
            y: yp.get(),
        };
        panels_isa(&a);
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` floats ending exactly at a page followed by an inaccessible one: a read past the
    /// end faults.
    struct Guarded {
        base: *mut libc::c_void,
        size: usize,
        len: usize,
    }

    impl Guarded {
        fn new(values: &[f32]) -> Self {
            let page = 4096;
            let bytes = size_of_val(values);
            let data_pages = bytes.div_ceil(page);
            let size = (data_pages + 1) * page;
            unsafe {
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(base, libc::MAP_FAILED);
                let guard = (base as *mut u8).add(data_pages * page);
                assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
                let start = (guard as *mut f32).sub(values.len());
                std::ptr::copy_nonoverlapping(values.as_ptr(), start, values.len());
                Self {
                    base,
                    size,
                    len: values.len(),
                }
            }
        }

        fn slice(&self) -> &[f32] {
            let page = 4096;
            let data_pages = (self.len * 4).div_ceil(page);
            unsafe {
                let end = (self.base as *const u8).add(data_pages * page) as *const f32;
                std::slice::from_raw_parts(end.sub(self.len), self.len)
            }
        }
    }

    impl Drop for Guarded {
        fn drop(&mut self) {
            unsafe {
                libc::munmap(self.base, self.size);
            }
        }
    }

    #[test]
    fn ragged_row_tiles_read_only_their_rows() {
        // Every row count of the unpacked tiles (m < 8) and a packed one, each with `x` ending
        // at a guard page: a tile that read rows past `m` would fault.
        for m in 1..=13 {
            for (n, k) in [(32, 64), (40, 7), (64, 1024)] {
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                    .collect();
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 5 % 11) as f32 - 5.0) / 16.0)
                    .collect();
                let guarded = Guarded::new(&x);
                let y = matmul(
                    guarded.slice(),
                    m,
                    &Packed::new(&w, n, k),
                    None,
                    Activation::Identity,
                );
                let mut err = 0f32;
                for i in 0..m {
                    for j in 0..n {
                        let r: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
                        err = err.max((y[i * n + j] - r).abs() / r.abs().max(1.0));
                    }
                }
                assert!(err < 1e-4, "m {m} n {n} k {k}: rel err {err}");
            }
        }
    }
}

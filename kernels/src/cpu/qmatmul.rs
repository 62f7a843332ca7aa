//! Block-quantized linear layers on the CPU: GGML `q8_0` and `q4k` weights, held once, in tiles.
//!
//! candle's x86 quantized matmul packs each weight into its own tile layout on first use and keeps
//! that copy beside the GGML blocks (2x the weight's bytes for `q8_0`, 2.3x for `q4k`). Here the
//! GGML blocks are re-laid out once, at load, into [`QPacked`] tiles (16 output rows side by side,
//! same bits: the f16 block scales, the 6-bit `q4k` sub-scales and mins, the 8- or 4-bit values),
//! and the blocks are dropped: the weight takes its GGML size (`q8_0`: exactly, `q4k`: +3 %).
//!
//! The activations are quantized per 32 values to 8 bits (scale `max|x| / 127`, as GGML's
//! `q8_0`), and each 32-value block is dotted with the weights' integers in i32 (AVX-512 VNNI
//! `vpdpbusd`: 16 output columns x 4 products per instruction), then scaled in f32. The portable
//! kernel computes the same sums in the same order of blocks.
//!
//! Tile layouts (per tile of 16 output rows, per block of the input dim):
//! - `q8_0`, 32 values: the 16 rows' f16 scales (32 bytes), then `[quad (8)][row (16)][4]` bytes
//!   of `value + 128` (unsigned, for `vpdpbusd`).
//! - `q4k`, 256 values: the 16 rows' f16 `d` and `dmin` (64 bytes), the 8 sub-blocks' 6-bit
//!   scales and mins unpacked to bytes `[sub (8)][row (16)]` (256 bytes), then
//!   `[group of 8 values (32)][row (16)][4]` bytes, byte `j` holding values `8g + j` (low nibble)
//!   and `8g + 4 + j` (high nibble).

use super::SendPtr;
use crate::Activation;
use half::f16;
use rayon::prelude::*;

/// Output rows side by side in a tile.
const TILE: usize = 16;
/// Values per block of the activations (and of `q8_0` weights).
const QK: usize = 32;
/// Values per `q4k` super-block.
const QK_K: usize = 256;
/// Bytes of a `q8_0` tile block.
const Q8_0_TILE_BYTES: usize = TILE * 2 + TILE * QK;
/// Bytes of a `q4k` tile block.
const Q4K_TILE_BYTES: usize = TILE * 4 + 2 * 8 * TILE + TILE * QK_K / 2;
/// Bytes of a GGML `q8_0` block (f16 scale, 32 x i8).
const Q8_0_BYTES: usize = 2 + QK;
/// Bytes of a GGML `q4k` block (f16 d, f16 dmin, 12 bytes of 6-bit scales, 128 bytes of nibbles).
const Q4K_BYTES: usize = 4 + 12 + QK_K / 2;

/// A GGML weight format this module runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// 32-value blocks of i8 with an f16 scale.
    Q8_0,
    /// 256-value super-blocks of 4-bit values with 6-bit sub-block scales and mins.
    Q4K,
}

impl Format {
    /// Input values per block.
    fn block(self) -> usize {
        match self {
            Format::Q8_0 => QK,
            Format::Q4K => QK_K,
        }
    }

    fn tile_bytes(self) -> usize {
        match self {
            Format::Q8_0 => Q8_0_TILE_BYTES,
            Format::Q4K => Q4K_TILE_BYTES,
        }
    }

    fn ggml_bytes(self) -> usize {
        match self {
            Format::Q8_0 => Q8_0_BYTES,
            Format::Q4K => Q4K_BYTES,
        }
    }
}

/// A quantized weight `[n, k]` in tiles of 16 rows (the last tile padded with zero rows).
pub(crate) struct QPacked {
    /// Output features.
    pub(crate) n: usize,
    /// Input features.
    pub(crate) k: usize,
    /// The format.
    pub(crate) format: Format,
    data: Vec<u8>,
}

impl std::fmt::Debug for QPacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QPacked")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("format", &self.format)
            .finish()
    }
}

/// ggml's unpacking of the 6-bit scale and min of sub-block `j` of a `q4k` block.
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

impl QPacked {
    /// Tiles from GGML blocks of a row-major `[n, k]` weight, or `None` when `k` is not a whole
    /// number of blocks or `blocks` is not `n * k` values' worth.
    pub(crate) fn from_ggml(format: Format, blocks: &[u8], n: usize, k: usize) -> Option<Self> {
        let bl = format.block();
        if n == 0 || k == 0 || !k.is_multiple_of(bl) {
            return None;
        }
        let kb = k / bl;
        let gb = format.ggml_bytes();
        if blocks.len() != n * kb * gb {
            return None;
        }
        let tiles = n.div_ceil(TILE);
        let tb = format.tile_bytes();
        let mut data = vec![0u8; tiles * kb * tb];
        data.par_chunks_mut(kb * tb)
            .enumerate()
            .for_each(|(t, tile)| {
                for b in 0..kb {
                    let dst = &mut tile[b * tb..(b + 1) * tb];
                    for r in 0..TILE {
                        let row = t * TILE + r;
                        if row >= n {
                            // Padding rows: zero scales; `q8_0` values at the +128 zero.
                            if format == Format::Q8_0 {
                                for q in 0..QK / 4 {
                                    dst[TILE * 2 + (q * TILE + r) * 4..][..4].fill(128);
                                }
                            }
                            continue;
                        }
                        let src = &blocks[(row * kb + b) * gb..][..gb];
                        match format {
                            Format::Q8_0 => pack_q8_0(src, dst, r),
                            Format::Q4K => pack_q4k(src, dst, r),
                        }
                    }
                }
            });
        Some(Self { n, k, format, data })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len()
    }

    fn blocks(&self) -> usize {
        self.k / self.format.block()
    }

    /// The weight `[n, k]` in f32, as GGML dequantizes it.
    pub(crate) fn unpack(&self) -> Vec<f32> {
        let (n, k, kb, tb) = (self.n, self.k, self.blocks(), self.format.tile_bytes());
        let bl = self.format.block();
        let mut out = vec![0f32; n * k];
        out.par_chunks_mut(k).enumerate().for_each(|(row, o)| {
            let (t, r) = (row / TILE, row % TILE);
            for b in 0..kb {
                let tile = &self.data[(t * kb + b) * tb..][..tb];
                let o = &mut o[b * bl..(b + 1) * bl];
                match self.format {
                    Format::Q8_0 => {
                        let d = f16_at(tile, 2 * r).to_f32();
                        for (i, v) in o.iter_mut().enumerate() {
                            let q = tile[TILE * 2 + ((i / 4) * TILE + r) * 4 + i % 4];
                            *v = d * (q as i32 - 128) as f32;
                        }
                    }
                    Format::Q4K => {
                        let d = f16_at(tile, 2 * r).to_f32();
                        let dmin = f16_at(tile, TILE * 2 + 2 * r).to_f32();
                        for (i, v) in o.iter_mut().enumerate() {
                            let s = i / QK;
                            let sc = tile[TILE * 4 + s * TILE + r] as f32;
                            let mn = tile[TILE * 4 + 8 * TILE + s * TILE + r] as f32;
                            *v = d * sc * q4k_value(tile, r, i) as f32 - dmin * mn;
                        }
                    }
                }
            }
        });
        out
    }
}

/// Row `r`'s value `i` of a `q4k` tile block.
fn q4k_value(tile: &[u8], r: usize, i: usize) -> u8 {
    let (g, j) = (i / 8, i % 8);
    let byte = tile[TILE * 4 + 16 * TILE + (g * TILE + r) * 4 + j % 4];
    if j < 4 {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

fn pack_q8_0(src: &[u8], dst: &mut [u8], r: usize) {
    dst[2 * r..2 * r + 2].copy_from_slice(&src[..2]);
    for i in 0..QK {
        dst[TILE * 2 + ((i / 4) * TILE + r) * 4 + i % 4] = (src[2 + i] as i8 as i32 + 128) as u8;
    }
}

fn pack_q4k(src: &[u8], dst: &mut [u8], r: usize) {
    dst[2 * r..2 * r + 2].copy_from_slice(&src[..2]);
    dst[TILE * 2 + 2 * r..TILE * 2 + 2 * r + 2].copy_from_slice(&src[2..4]);
    let scales = &src[4..16];
    for s in 0..8 {
        let (sc, mn) = scale_min(s, scales);
        dst[TILE * 4 + s * TILE + r] = sc;
        dst[TILE * 4 + 8 * TILE + s * TILE + r] = mn;
    }
    // GGML: 32-byte chunk c holds values [64c, 64c + 32) in its low nibbles, the next 32 in the
    // high ones.
    let qs = &src[16..];
    let value = |i: usize| {
        let (c, j) = (i / 64, i % 64);
        let byte = qs[c * 32 + j % 32];
        if j < 32 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    };
    for g in 0..QK_K / 8 {
        for j in 0..4 {
            dst[TILE * 4 + 16 * TILE + (g * TILE + r) * 4 + j] =
                value(8 * g + j) | (value(8 * g + 4 + j) << 4);
        }
    }
}

/// The activations `[m, k]` quantized per 32 values: `q` the i8 values, and per block its scale
/// `d` and `-128 * sum(q)` / `-d * sum(q)` (the corrections of the unsigned `q8_0` weights and
/// of the `q4k` mins).
struct QAct {
    q: Vec<i8>,
    d: Vec<f32>,
    corr: Vec<i32>,
    neg_dsum: Vec<f32>,
}

fn quantize_act(x: &[f32], m: usize, k: usize) -> QAct {
    let kb = k / QK;
    let mut q = vec![0i8; m * k];
    let mut d = vec![0f32; m * kb];
    let mut corr = vec![0i32; m * kb];
    let mut neg_dsum = vec![0f32; m * kb];
    q.par_chunks_mut(QK)
        .zip(d.par_iter_mut())
        .zip(corr.par_iter_mut().zip(neg_dsum.par_iter_mut()))
        .zip(x.par_chunks(QK))
        .with_min_len(64)
        .for_each(|(((q, d), (corr, nds)), x)| {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(x) {
                let v = (v * inv).round() as i32;
                *q = v as i8;
                sum += v;
            }
            *d = scale;
            *corr = -128 * sum;
            *nds = -scale * sum as f32;
        });
    QAct {
        q,
        d,
        corr,
        neg_dsum,
    }
}

/// Rows of the activations a task computes at once.
const ROWS_PER_TASK: usize = 64;

/// `act(x W^T + bias)` for `x` `[m, k]` (row-major) over a quantized weight: `[m, n]`.
pub(crate) fn matmul(
    x: &[f32],
    m: usize,
    w: &QPacked,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (n, k) = (w.n, w.k);
    let qa = quantize_act(x, m, k);
    let mut out = super::output_vec(m * n);
    let tiles = n.div_ceil(TILE);
    let pairs = tiles.div_ceil(2);
    let row_tasks = m.div_ceil(ROWS_PER_TASK);
    let dst = SendPtr::new(out.as_mut_ptr());
    let vnni = fast();
    (0..pairs * row_tasks).into_par_iter().for_each(|task| {
        let (pair, rt) = (task / row_tasks, task % row_tasks);
        let rows = rt * ROWS_PER_TASK..((rt + 1) * ROWS_PER_TASK).min(m);
        let t0 = pair * 2;
        let nt = (tiles - t0).min(2);
        let job = Job {
            w,
            qa: &qa,
            t0,
            nt,
            bias,
            act,
            dst,
        };
        // SAFETY: tasks write disjoint (rows, tile columns) blocks of `out`; `vnni` was checked.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if vnni {
                x86::run(&job, rows);
                return;
            }
            let _ = vnni;
            portable(&job, rows);
        }
    });
    out
}

/// One task's part of a product.
struct Job<'a> {
    w: &'a QPacked,
    qa: &'a QAct,
    /// First tile, and tiles (1 or 2).
    t0: usize,
    nt: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
    dst: SendPtr,
}

impl Job<'_> {
    /// Adds the bias, applies the activation and stores tile `t`'s 16 sums of output row `row`.
    ///
    /// # Safety
    /// `row < m` and the task owns those output columns.
    unsafe fn store(&self, row: usize, t: usize, sums: &[f32; TILE]) {
        let n = self.w.n;
        let c0 = (self.t0 + t) * TILE;
        let width = (n - c0).min(TILE);
        let out = std::slice::from_raw_parts_mut(self.dst.get().add(row * n + c0), width);
        out.copy_from_slice(&sums[..width]);
        if let Some(b) = self.bias {
            for (o, b) in out.iter_mut().zip(&b[c0..c0 + width]) {
                *o += b;
            }
        }
        if self.act != Activation::Identity {
            super::act::apply_inplace(self.act, out);
        }
    }

    fn tile(&self, t: usize, b: usize) -> &[u8] {
        let tb = self.w.format.tile_bytes();
        let kb = self.w.blocks();
        &self.w.data[((self.t0 + t) * kb + b) * tb..][..tb]
    }
}

/// The plain-Rust kernel (any CPU), block by block as the vector one.
///
/// # Safety
/// As [`Job::store`], for every row of `rows`.
unsafe fn portable(job: &Job, rows: std::ops::Range<usize>) {
    let (k, kb) = (job.w.k, job.w.blocks());
    let qa = job.qa;
    let ab = k / QK;
    for row in rows {
        for t in 0..job.nt {
            let mut sums = [0f32; TILE];
            for b in 0..kb {
                let tile = job.tile(t, b);
                match job.w.format {
                    Format::Q8_0 => {
                        let a = row * ab + b;
                        let q = &qa.q[a * QK..][..QK];
                        for (r, s) in sums.iter_mut().enumerate() {
                            let mut acc = qa.corr[a];
                            for (i, &qv) in q.iter().enumerate() {
                                let wv = tile[TILE * 2 + ((i / 4) * TILE + r) * 4 + i % 4];
                                acc += wv as i32 * qv as i32;
                            }
                            let d = f16_at(tile, 2 * r).to_f32();
                            *s += acc as f32 * (d * qa.d[a]);
                        }
                    }
                    Format::Q4K => {
                        for (r, s) in sums.iter_mut().enumerate() {
                            let d = f16_at(tile, 2 * r).to_f32();
                            let dmin = f16_at(tile, TILE * 2 + 2 * r).to_f32();
                            for sub in 0..8 {
                                let a = row * ab + b * 8 + sub;
                                let q = &qa.q[a * QK..][..QK];
                                let mut acc = 0i32;
                                for (i, &qv) in q.iter().enumerate() {
                                    acc += q4k_value(tile, r, sub * QK + i) as i32 * qv as i32;
                                }
                                let sc = d * tile[TILE * 4 + sub * TILE + r] as f32;
                                let mn = dmin * tile[TILE * 4 + 8 * TILE + sub * TILE + r] as f32;
                                *s += acc as f32 * (sc * qa.d[a]);
                                *s += mn * qa.neg_dsum[a];
                            }
                        }
                    }
                }
            }
            job.store(row, t, &sums);
        }
    }
}

/// True when this CPU runs [`matmul`] at vector speed: the kernels' ISA is AVX-512 (see
/// [`super::simd::isa`], which `ACESTEP_KERNELS_PORTABLE` turns off) and it has VNNI, BW and F16C.
/// Elsewhere the caller keeps candle's quantized matmul, which has AVX2 and NEON kernels.
pub(crate) fn fast() -> bool {
    use std::sync::OnceLock;
    static VNNI: OnceLock<bool> = OnceLock::new();
    *VNNI.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            super::simd::isa() == super::simd::Isa::Avx512
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Format, Job, QK, TILE};
    use std::arch::x86_64::*;

    /// Rows of the activations per micro-kernel call.
    const MR: usize = 4;

    /// # Safety
    /// The CPU has AVX-512 F/BW/VNNI and F16C; as [`Job::store`] for `rows`.
    pub(super) unsafe fn run(job: &Job, rows: std::ops::Range<usize>) {
        let mut r = rows.start;
        while r < rows.end {
            let mr = (rows.end - r).min(MR);
            match (job.w.format, mr, job.nt) {
                (Format::Q8_0, 4, 2) => q8_0::<4, 2>(job, r),
                (Format::Q8_0, 4, _) => q8_0::<4, 1>(job, r),
                (Format::Q8_0, 3, 2) => q8_0::<3, 2>(job, r),
                (Format::Q8_0, 3, _) => q8_0::<3, 1>(job, r),
                (Format::Q8_0, 2, 2) => q8_0::<2, 2>(job, r),
                (Format::Q8_0, 2, _) => q8_0::<2, 1>(job, r),
                (Format::Q8_0, _, 2) => q8_0::<1, 2>(job, r),
                (Format::Q8_0, _, _) => q8_0::<1, 1>(job, r),
                (Format::Q4K, 4, 2) => q4k::<4, 2>(job, r),
                (Format::Q4K, 4, _) => q4k::<4, 1>(job, r),
                (Format::Q4K, 3, 2) => q4k::<3, 2>(job, r),
                (Format::Q4K, 3, _) => q4k::<3, 1>(job, r),
                (Format::Q4K, 2, 2) => q4k::<2, 2>(job, r),
                (Format::Q4K, 2, _) => q4k::<2, 1>(job, r),
                (Format::Q4K, _, 2) => q4k::<1, 2>(job, r),
                (Format::Q4K, _, _) => q4k::<1, 1>(job, r),
            }
            r += mr;
        }
    }

    /// Stores the `R x T` accumulators of rows `row..row + R`.
    #[inline(always)]
    unsafe fn finish<const R: usize, const T: usize>(
        job: &Job,
        row: usize,
        acc: &[[__m512; T]; R],
    ) {
        for (i, a) in acc.iter().enumerate() {
            for (t, v) in a.iter().enumerate() {
                let mut s = [0f32; TILE];
                _mm512_storeu_ps(s.as_mut_ptr(), *v);
                job.store(row + i, t, &s);
            }
        }
    }

    /// Rows `row..row + R` against `T` tiles of `q8_0` weights.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    unsafe fn q8_0<const R: usize, const T: usize>(job: &Job, row: usize) {
        let kb = job.w.blocks();
        let qa = job.qa;
        let ab = job.w.k / QK;
        let mut facc = [[_mm512_setzero_ps(); T]; R];
        let tiles: [*const u8; T] = std::array::from_fn(|t| job.tile(t, 0).as_ptr());
        let tb = super::Q8_0_TILE_BYTES;
        for b in 0..kb {
            let mut acc: [[__m512i; T]; R] = std::array::from_fn(|i| {
                [_mm512_set1_epi32(*qa.corr.get_unchecked((row + i) * ab + b)); T]
            });
            let qs: [*const i8; R] =
                std::array::from_fn(|i| qa.q.as_ptr().add(((row + i) * ab + b) * QK));
            for quad in 0..QK / 4 {
                let w: [__m512i; T] = std::array::from_fn(|t| {
                    _mm512_loadu_si512(tiles[t].add(b * tb + TILE * 2 + quad * 64) as *const _)
                });
                for i in 0..R {
                    let a = _mm512_set1_epi32((qs[i].add(quad * 4) as *const i32).read_unaligned());
                    for t in 0..T {
                        acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], w[t], a);
                    }
                }
            }
            let dw: [__m512; T] = std::array::from_fn(|t| {
                _mm512_cvtph_ps(_mm256_loadu_si256(tiles[t].add(b * tb) as *const _))
            });
            for i in 0..R {
                let da = _mm512_set1_ps(*qa.d.get_unchecked((row + i) * ab + b));
                for t in 0..T {
                    facc[i][t] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(acc[i][t]),
                        _mm512_mul_ps(dw[t], da),
                        facc[i][t],
                    );
                }
            }
        }
        finish(job, row, &facc);
    }

    /// Rows `row..row + R` against `T` tiles of `q4k` weights.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    unsafe fn q4k<const R: usize, const T: usize>(job: &Job, row: usize) {
        let kb = job.w.blocks();
        let qa = job.qa;
        let ab = job.w.k / QK;
        let tb = super::Q4K_TILE_BYTES;
        let mut facc = [[_mm512_setzero_ps(); T]; R];
        let tiles: [*const u8; T] = std::array::from_fn(|t| job.tile(t, 0).as_ptr());
        let low = _mm512_set1_epi8(0x0F);
        for b in 0..kb {
            let blk: [*const u8; T] = std::array::from_fn(|t| tiles[t].add(b * tb));
            let d: [__m512; T] =
                std::array::from_fn(|t| _mm512_cvtph_ps(_mm256_loadu_si256(blk[t] as *const _)));
            let dmin: [__m512; T] = std::array::from_fn(|t| {
                _mm512_cvtph_ps(_mm256_loadu_si256(blk[t].add(TILE * 2) as *const _))
            });
            for sub in 0..8 {
                let byte_vec = |p: *const u8| {
                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const _)))
                };
                let sc: [__m512; T] = std::array::from_fn(|t| {
                    _mm512_mul_ps(d[t], byte_vec(blk[t].add(TILE * 4 + sub * TILE)))
                });
                let mn: [__m512; T] = std::array::from_fn(|t| {
                    _mm512_mul_ps(dmin[t], byte_vec(blk[t].add(TILE * 4 + (8 + sub) * TILE)))
                });
                let a_idx: [usize; R] = std::array::from_fn(|i| (row + i) * ab + b * 8 + sub);
                let mut acc = [[_mm512_setzero_si512(); T]; R];
                for g in 0..4 {
                    let gi = sub * 4 + g;
                    let w: [__m512i; T] = std::array::from_fn(|t| {
                        _mm512_loadu_si512(blk[t].add(TILE * 4 + 16 * TILE + gi * 64) as *const _)
                    });
                    let lo: [__m512i; T] = std::array::from_fn(|t| _mm512_and_si512(w[t], low));
                    let hi: [__m512i; T] = std::array::from_fn(|t| {
                        _mm512_and_si512(_mm512_srli_epi16::<4>(w[t]), low)
                    });
                    for i in 0..R {
                        let q = qa.q.as_ptr().add(a_idx[i] * QK + g * 8);
                        let a_lo = _mm512_set1_epi32((q as *const i32).read_unaligned());
                        let a_hi = _mm512_set1_epi32((q.add(4) as *const i32).read_unaligned());
                        for t in 0..T {
                            acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], lo[t], a_lo);
                            acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], hi[t], a_hi);
                        }
                    }
                }
                for i in 0..R {
                    let da = _mm512_set1_ps(*qa.d.get_unchecked(a_idx[i]));
                    let nds = _mm512_set1_ps(*qa.neg_dsum.get_unchecked(a_idx[i]));
                    for t in 0..T {
                        let f = _mm512_cvtepi32_ps(acc[i][t]);
                        facc[i][t] = _mm512_fmadd_ps(f, _mm512_mul_ps(sc[t], da), facc[i][t]);
                        facc[i][t] = _mm512_fmadd_ps(mn[t], nds, facc[i][t]);
                    }
                }
            }
        }
        finish(job, row, &facc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn weight(format: Format, n: usize, k: usize) -> QPacked {
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let dt = match format {
            Format::Q8_0 => GgmlDType::Q8_0,
            Format::Q4K => GgmlDType::Q4K,
        };
        let q = QTensor::quantize(&w, dt).unwrap();
        let p = QPacked::from_ggml(format, &q.data().unwrap(), n, k).unwrap();
        // The tiles hold GGML's values bit for bit.
        let want = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        assert_eq!(p.unpack(), want.to_vec1::<f32>().unwrap());
        p
    }

    /// The vector kernel and the portable one agree to f32 rounding on every micro-kernel shape
    /// (1-4 rows, 1 or 2 tiles, a padded last tile), with a bias and an activation.
    #[test]
    fn vector_kernel_matches_portable() {
        if !fast() {
            eprintln!("no AVX-512 VNNI here: only the portable kernel runs");
            return;
        }
        for format in [Format::Q8_0, Format::Q4K] {
            for &(m, n, k) in &[(1, 16, 256), (3, 17, 512), (7, 40, 256), (70, 33, 768)] {
                let w = weight(format, n, k);
                let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
                let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - 1.0).collect();
                let qa = quantize_act(&x, m, k);
                let tiles = n.div_ceil(TILE);
                for act in [Activation::Identity, Activation::GeluTanh] {
                    let mut got = vec![0f32; m * n];
                    let mut want = vec![0f32; m * n];
                    for (out, vector) in [(&mut got, true), (&mut want, false)] {
                        let dst = SendPtr::new(out.as_mut_ptr());
                        for t0 in (0..tiles).step_by(2) {
                            let job = Job {
                                w: &w,
                                qa: &qa,
                                t0,
                                nt: (tiles - t0).min(2),
                                bias: Some(&bias),
                                act,
                                dst,
                            };
                            // SAFETY: one job at a time; the CPU was checked.
                            unsafe {
                                #[cfg(target_arch = "x86_64")]
                                if vector {
                                    x86::run(&job, 0..m);
                                    continue;
                                }
                                portable(&job, 0..m);
                            }
                        }
                    }
                    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                    let err = got
                        .iter()
                        .zip(&want)
                        .fold(0f32, |a, (g, w)| a.max((g - w).abs()))
                        / scale;
                    eprintln!(
                        "{format:?} m={m} n={n} k={k} {act:?}: max rel err {err:.1e} (tol 1e-5)"
                    );
                    assert!(err < 1e-5);
                }
            }
        }
    }
}

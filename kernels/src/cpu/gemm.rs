//! Strided f32 matrix products over raw buffers, through the `gemm` crate (its
//! AVX-512 micro-kernels with the `x86-v4` feature, AVX2 / NEON / scalar elsewhere).

/// A read-only strided matrix: element `(i, j)` at `ptr + i * rs + j * cs` (in elements).
#[derive(Clone, Copy)]
pub(crate) struct MatRef<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

/// A writable strided matrix.
#[derive(Clone, Copy)]
pub(crate) struct MatMut<T> {
    pub ptr: *mut T,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: the views are plain pointers into buffers the callers keep alive and partition.
unsafe impl<T> Send for MatRef<T> {}
unsafe impl<T> Sync for MatRef<T> {}
unsafe impl<T> Send for MatMut<T> {}
unsafe impl<T> Sync for MatMut<T> {}

impl<T> MatRef<T> {
    pub(crate) fn new(ptr: *const T, rs: usize, cs: usize) -> Self {
        Self {
            ptr,
            rs: rs as isize,
            cs: cs as isize,
        }
    }
}

impl<T> MatMut<T> {
    pub(crate) fn new(ptr: *mut T, rs: usize, cs: usize) -> Self {
        Self {
            ptr,
            rs: rs as isize,
            cs: cs as isize,
        }
    }
}

/// How many threads one product may use.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Threads {
    /// The caller already runs in parallel.
    One,
    /// rayon's pool.
    All,
}

fn parallelism(t: Threads, flops: usize) -> gemm::Parallelism {
    let n = rayon::current_num_threads();
    // Below a few MFLOP the fork costs more than it saves.
    if matches!(t, Threads::One) || n <= 1 || flops < 1 << 22 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(n)
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`.
///
/// # Safety
/// Every element the three views address must lie in live buffers, and `dst` must not overlap
/// `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut<f32>,
    accumulate: bool,
    lhs: MatRef<f32>,
    rhs: MatRef<f32>,
    threads: Threads,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.ptr.offset(i as isize * dst.rs + j as isize * dst.cs) = 0.0;
                }
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.cs,
        dst.rs,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism(threads, 2 * m * n * k),
    )
}

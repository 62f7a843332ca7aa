//! The CPU kernels (f32).

pub(crate) mod act;
pub(crate) mod attention;
pub(crate) mod conv1d;
pub(crate) mod conv2d;
pub(crate) mod conv_transpose1d;
pub(crate) mod epilogue;
pub(crate) mod gemm;
pub(crate) mod layout;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod qmatmul;
pub(crate) mod scratch;
pub(crate) mod simd;

use candle_core::{Result, Storage, Tensor};

/// Runs `f` on contiguous f32 views of CPU tensors (their storage read-locked meanwhile).
pub(crate) fn with_f32<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let conts = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = conts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (st, layout) in &guards {
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("kernel input is not contiguous");
        };
        match &**st {
            Storage::Cpu(cs) => slices.push(&cs.as_slice::<f32>()?[a..b]),
            _ => candle_core::bail!("kernel input is not on the CPU"),
        }
    }
    Ok(f(&slices))
}

/// An output buffer of `len` values for a kernel that writes every one of them before anything
/// reads them (as candle's own CPU kernels allocate theirs): zero-filling a buffer that is about
/// to be overwritten costs a full memory pass per op, 5 % of an audio decode.
#[allow(clippy::uninit_vec)]
pub(crate) fn output_vec(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns and every caller writes all `len` values before
    // reading any (each kernel's tests compare every output value).
    unsafe { v.set_len(len) };
    v
}

/// The values of a CPU f32 tensor.
pub(crate) fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    with_f32(&[t], |s| s[0].to_vec())
}

/// A raw pointer that parallel tasks share to write disjoint parts of one buffer (or read a
/// shared one). Closures call [`SendPtr::get`] so that they capture the wrapper, not the pointer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T = f32>(*mut T);

// SAFETY: every user writes ranges no other task touches, or only reads.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub(crate) fn new(p: *mut T) -> Self {
        Self(p)
    }

    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

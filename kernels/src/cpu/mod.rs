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

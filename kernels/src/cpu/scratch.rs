//! Reusable scratch buffers: the large temporaries of a kernel (padded inputs, spectra) are
//! taken from a small pool instead of fresh allocations, which on Linux are fresh pages that
//! fault in on first touch (tens of milliseconds per call at the vocoder's sizes).

use std::sync::Mutex;

/// Buffers kept for reuse, at most this many bytes in all.
const POOL_BYTES: usize = 256 << 20;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A scratch buffer of `len` f32, returned to the pool on drop. Its contents are unspecified
/// unless made with [`Scratch::zeroed`].
pub(crate) struct Scratch {
    buf: Vec<f32>,
}

impl Scratch {
    /// `len` values, contents unspecified (whatever a previous user left, or zeros).
    pub(crate) fn uninit(len: usize) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest pooled buffer that fits.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let mut buf = match best {
            Some(i) => pool.swap_remove(i),
            None => Vec::new(),
        };
        drop(pool);
        if buf.capacity() < len {
            buf = Vec::with_capacity(len);
        }
        // SAFETY: f32 has no invalid bit patterns; callers treat the contents as unspecified.
        unsafe { buf.set_len(len) };
        Self { buf }
    }

    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut s = Self::uninit(len);
        s.fill_par(0.0);
        s
    }

    fn fill_par(&mut self, v: f32) {
        use rayon::prelude::*;
        self.buf.par_chunks_mut(1 << 16).for_each(|c| c.fill(v));
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pool.iter().map(|b| b.capacity() * 4).sum();
        if held + buf.capacity() * 4 <= POOL_BYTES && pool.len() < 32 {
            pool.push(buf);
        } else if let Some((i, small)) = pool
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, b)| (i, b.capacity()))
        {
            // Keep the larger of the two.
            if small < buf.capacity() && held - small * 4 + buf.capacity() * 4 <= POOL_BYTES {
                pool[i] = buf;
            }
        }
    }
}

/// Frees every pooled buffer.
pub(crate) fn release() {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

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
    /// Initialised over its whole length (which may exceed `len`).
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// `len` values, contents unspecified (whatever a previous user left, or zeros).
    pub(crate) fn uninit(len: usize) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest pooled buffer that fits.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let mut buf = match best {
            Some(i) => pool.swap_remove(i),
            None => Vec::new(),
        };
        drop(pool);
        if buf.len() < len {
            // Pooled buffers stay initialised over their whole length.
            buf = vec![0.0; len];
        }
        Self { buf, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pool.iter().map(|b| b.len() * 4).sum();
        if held + buf.len() * 4 <= POOL_BYTES && pool.len() < 32 {
            pool.push(buf);
        } else if let Some((i, small)) = pool
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.len())
            .map(|(i, b)| (i, b.len()))
        {
            // Keep the larger of the two.
            if small < buf.len() && held - small * 4 + buf.len() * 4 <= POOL_BYTES {
                pool[i] = buf;
            }
        }
    }
}

/// Frees every pooled buffer.
pub(crate) fn release() {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

//! Entropy-rectifying guidance (ERG) options.
//!
//! The reference builds its "weaker" (null) conditions by multiplying the query projections of a
//! range of attention layers by a temperature `tau` (through forward hooks). Here that is an
//! explicit argument of each model's forward pass: a [`QueryScale`].

use std::ops::Range;

/// Multiply the attention query projections of the layers in `layers` by `tau`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScale {
    /// The factor (the reference uses 0.01).
    pub tau: f64,
    /// The layer indices it applies to (half-open, as Python's `range(l_min, l_max)`).
    pub layers: Range<usize>,
}

impl QueryScale {
    /// A new scale.
    pub fn new(tau: f64, layers: Range<usize>) -> Self {
        Self { tau, layers }
    }

    /// ERG-tag: the text encoder's layers 8..10, tau 0.01 (`get_text_embeddings_null`).
    pub fn text_default() -> Self {
        Self::new(0.01, 8..10)
    }

    /// ERG-lyric: the lyric encoder's layers 4..6, tau 0.01.
    pub fn lyric_default() -> Self {
        Self::new(0.01, 4..6)
    }

    /// ERG-diffusion: the DiT's blocks 15..20, tau 0.01.
    pub fn diffusion_default() -> Self {
        Self::new(0.01, 15..20)
    }

    /// The query factor for layer `i`: `tau` inside the range, 1 outside.
    pub fn scale_for(&self, i: usize) -> f64 {
        if self.layers.contains(&i) {
            self.tau
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_applies_inside_the_range_only() {
        let s = QueryScale::text_default();
        assert_eq!(s.scale_for(7), 1.0);
        assert_eq!(s.scale_for(8), 0.01);
        assert_eq!(s.scale_for(9), 0.01);
        assert_eq!(s.scale_for(10), 1.0);
    }
}

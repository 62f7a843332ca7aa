//! Transposed 1-D convolution on the CPU: one matrix product `W^T x` into per-tap columns, then
//! an overlap-add (col2im) into the output, for any stride and padding.

use rayon::prelude::*;

use super::act;
use super::gemm::{sgemm, MatMut, MatRef, Threads};
use crate::Activation;

/// Shape of one call: input `[b, cin, l]`, weight `[cin, cout, k]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub b: usize,
    pub cin: usize,
    pub l: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl Geom {
    pub(crate) fn lout(&self) -> usize {
        ((self.l - 1) * self.stride + self.k + self.output_padding).saturating_sub(2 * self.padding)
    }
}

/// `act_out(conv_transpose(act_in(x)) + bias)` as `[b, cout, lout]`.
pub(crate) fn conv_transpose1d(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geom,
    act_in: Activation,
    act_out: Activation,
) -> Vec<f32> {
    let (cin, cout, k, l) = (g.cin, g.cout, g.k, g.l);
    let lout = g.lout();
    let mut y = super::output_vec(g.b * cout * lout);
    let mut xa = Vec::new();
    let x = if act_in == Activation::Identity {
        x
    } else {
        xa.extend_from_slice(x);
        act::apply_par(act_in, &mut xa);
        &xa
    };
    let mut z = vec![0f32; cout * k * l];
    for b in 0..g.b {
        // z[(co, kk)][t] = sum_ci w[ci][co][kk] x[ci][t]
        // SAFETY: the views address w (cin x cout*k), x[b] (cin x l) and z (cout*k x l).
        unsafe {
            sgemm(
                cout * k,
                l,
                cin,
                MatMut::new(z.as_mut_ptr(), l, 1),
                false,
                MatRef::new(w.as_ptr(), 1, cout * k),
                MatRef::new(x.as_ptr().add(b * cin * l), l, 1),
                Threads::All,
            );
        }
        y[b * cout * lout..(b + 1) * cout * lout]
            .par_chunks_mut(lout)
            .enumerate()
            .for_each(|(co, yr)| {
                let bv = bias.map_or(0.0, |bb| bb[co]);
                yr.fill(bv);
                for kk in 0..k {
                    let zr = &z[(co * k + kk) * l..(co * k + kk + 1) * l];
                    // Output position t * stride + kk - padding.
                    for (t, &v) in zr.iter().enumerate() {
                        let pos = t * g.stride + kk;
                        if pos >= g.padding && pos - g.padding < lout {
                            yr[pos - g.padding] += v;
                        }
                    }
                }
                act::apply_inplace(act_out, yr);
            });
    }
    y
}

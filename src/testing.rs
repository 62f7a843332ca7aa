//! Helpers for parity tests and benches: tensor comparison with stated tolerances.
//!
//! The relative error reported everywhere in this project is **scale-relative**:
//! `max_rel = max|ours - ref| / max|ref|`, i.e. the largest deviation measured against the
//! magnitude of the reference tensor (element-wise ratios are meaningless where the reference
//! crosses zero). The element-wise ratio over entries with `|ref| >= 1e-2 * max|ref|` is printed
//! beside it for information.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// Error statistics of one comparison.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// `max|ours - ref|`.
    pub max_abs: f64,
    /// `max|ours - ref| / max|ref|`.
    pub max_rel: f64,
    /// Largest element-wise `|ours - ref| / |ref|` over entries with `|ref| >= 1e-2 max|ref|`.
    pub max_elem_rel: f64,
    /// `max|ref|`.
    pub ref_scale: f64,
    /// Number of elements compared.
    pub len: usize,
}

/// Compares two tensors of the same shape (any float dtype, any device).
pub fn compare(ours: &Tensor, reference: &Tensor) -> Result<Comparison> {
    if ours.dims() != reference.dims() {
        return Err(crate::Error::InvalidArgument {
            name: "tensor shape",
            value: format!("{:?}", ours.dims()),
            expected: format!("the reference shape {:?}", reference.dims()),
        });
    }
    let a = ours.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = reference
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let ref_scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    let mut max_abs = 0f64;
    let mut max_elem_rel = 0f64;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        if d.is_nan() {
            max_abs = f64::NAN;
            break;
        }
        max_abs = max_abs.max(d);
        if y.abs() >= 1e-2 * ref_scale && y.abs() > 0.0 {
            max_elem_rel = max_elem_rel.max(d / y.abs());
        }
    }
    let max_rel = if ref_scale > 0.0 {
        max_abs / ref_scale
    } else {
        max_abs
    };
    Ok(Comparison {
        max_abs,
        max_rel,
        max_elem_rel,
        ref_scale,
        len: a.len(),
    })
}

/// Compares, prints one line of statistics, and panics if `max_rel > tol_rel` (or on NaN).
/// For tests.
pub fn assert_close(name: &str, ours: &Tensor, reference: &Tensor, tol_rel: f64) -> Comparison {
    let c = match compare(ours, reference) {
        Ok(c) => c,
        Err(e) => panic!("{name}: cannot compare: {e}"),
    };
    println!(
        "parity {name}: max_abs={:.3e} max_rel={:.3e} (tolerance {:.1e}) elem_rel={:.3e} scale={:.3e} n={}",
        c.max_abs, c.max_rel, tol_rel, c.max_elem_rel, c.ref_scale, c.len
    );
    assert!(
        c.max_rel <= tol_rel,
        "{name}: max relative error {:.3e} exceeds tolerance {:.1e} (max_abs {:.3e})",
        c.max_rel,
        tol_rel,
        c.max_abs
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn compare_reports_scale_relative_error() {
        let r = Tensor::new(&[1.0f32, -2.0, 4.0], &Device::Cpu).unwrap();
        let o = Tensor::new(&[1.0f32, -2.0, 4.004], &Device::Cpu).unwrap();
        let c = compare(&o, &r).unwrap();
        assert!((c.max_abs - 0.004).abs() < 1e-6);
        assert!((c.max_rel - 0.001).abs() < 1e-6);
        assert_eq!(c.len, 3);
    }

    #[test]
    #[should_panic(expected = "exceeds tolerance")]
    fn assert_close_fails_above_tolerance() {
        let r = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let o = Tensor::new(&[1.0f32, 2.1], &Device::Cpu).unwrap();
        assert_close("t", &o, &r, 1e-3);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let r = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let o = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(compare(&o, &r).is_err());
    }
}

//! Helpers for parity tests and benches (the `testing` feature; not part of the engine's API):
//! tensor comparison with stated tolerances, a recording [`VarBuilder`] backend for tensor
//! manifests, and a random one for benches at full size.
//!
//! - [`ManifestRecorder`] records every `(name, shape)` a constructor asks for and hands back
//!   zero-stride views of a single zero, so building the full 3.5B model allocates nothing.
//! - [`random_var_builder`] hands back random tensors, for criterion benches at full size.
//!
//! The relative error reported everywhere in this project is **scale-relative**:
//! `max_rel = max|ours - ref| / max|ref|`, i.e. the largest deviation measured against the
//! magnitude of the reference tensor (element-wise ratios are meaningless where the reference
//! crosses zero). The element-wise ratio over entries with `|ref| >= 1e-2 * max|ref|` is printed
//! beside it for information.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::error::{Error, Result};

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
        return Err(Error::InvalidArgument {
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

/// Records every tensor a model constructor asks for, without allocating weights.
///
/// Each request is answered with a zero-stride broadcast of a single zero, so even the full 3.5B
/// DiT can be "built" in a few milliseconds. After construction, [`ManifestRecorder::tensors`]
/// gives the requested `name -> shape` map, to compare with a manifest written by the fixture
/// tool from the reference implementation.
#[derive(Clone, Default)]
pub struct ManifestRecorder {
    seen: Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

struct RecorderBackend(ManifestRecorder);

impl SimpleBackend for RecorderBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut seen) = self.0.seen.lock() {
            seen.insert(name.to_string(), s.dims().to_vec());
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }
    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("manifest recorder cannot answer an unchecked request for `{name}`")
    }
    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

impl ManifestRecorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A [`VarBuilder`] (f32, CPU) whose requests are recorded by this recorder.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(RecorderBackend(self.clone())),
            DType::F32,
            Device::Cpu,
        )
    }

    /// Every tensor requested so far, by checkpoint key.
    pub fn tensors(&self) -> BTreeMap<String, Vec<usize>> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

struct RandomBackend {
    std: f64,
}

impl SimpleBackend for RandomBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        // Norm gains near one keep activations in a realistic range.
        let t = if name.ends_with("norm.weight") || name.ends_with("layer_norm.weight") {
            (Tensor::randn(0f32, self.std as f32, s, dev)? + 1.0)?
        } else {
            Tensor::randn(0f32, self.std as f32, s, dev)?
        };
        t.to_dtype(dtype)
    }
    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("random backend cannot answer an unchecked request for `{name}`")
    }
    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A [`VarBuilder`] answering every request with normal random values of standard deviation
/// `std` (norm gains centred on one). For benchmarks at the full configs without real weights.
pub fn random_var_builder(std: f64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomBackend { std }), dtype, device.clone())
}

/// Reads a manifest JSON written by `tools/make_fixtures.py`: `{"tensors": {name: shape}, "ignored": [...]}`.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Config {
        path: path.to_path_buf(),
        source,
    })
}

/// The tensor names and shapes of one checkpoint component at its full size, as the reference
/// implementation's `state_dict()` lists them (tied aliases removed, as `save_pretrained` does).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Manifest {
    /// The checkpoint folder this manifest describes (e.g. `umt5-base`).
    pub component: String,
    /// The full-size `config.json` the manifest was built from.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Every tensor of the checkpoint: key -> shape.
    pub tensors: BTreeMap<String, Vec<usize>>,
    /// Key prefixes that are in the checkpoint but deliberately not loaded (training-only).
    #[serde(default)]
    pub ignored_prefixes: Vec<String>,
}

/// The outcome of comparing a recorded model against a [`Manifest`].
#[derive(Debug, Default)]
pub struct ManifestDiff {
    /// In the manifest but never requested by our loader.
    pub missing: Vec<String>,
    /// Requested by our loader but not in the manifest.
    pub unexpected: Vec<String>,
    /// Requested with another shape than the manifest's: `(name, ours, manifest)`.
    pub shape_mismatch: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Manifest tensors skipped on purpose (under an ignored prefix).
    pub ignored: Vec<String>,
}

impl ManifestDiff {
    /// True when nothing is missing, unexpected or of the wrong shape.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatch.is_empty()
    }
}

impl Manifest {
    /// Compares the tensors a model requested with this manifest.
    pub fn diff(&self, requested: &BTreeMap<String, Vec<usize>>) -> ManifestDiff {
        let mut d = ManifestDiff::default();
        for (name, shape) in &self.tensors {
            match requested.get(name) {
                Some(ours) if ours != shape => {
                    d.shape_mismatch
                        .push((name.clone(), ours.clone(), shape.clone()))
                }
                Some(_) => {}
                None if self.ignored_prefixes.iter().any(|p| name.starts_with(p)) => {
                    d.ignored.push(name.clone())
                }
                None => d.missing.push(name.clone()),
            }
        }
        for name in requested.keys() {
            if !self.tensors.contains_key(name) {
                d.unexpected.push(name.clone());
            }
        }
        d
    }
}

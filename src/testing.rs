//! Helpers for parity tests and benches (the `testing` feature; not part of the engine's API):
//! tensor comparison with stated tolerances, a recording [`VarBuilder`] backend for tensor
//! manifests, and a random one for benches at full size.
//!
//! - [`ManifestRecorder`] records every `(name, shape)` a constructor asks for and hands back
//!   zero-stride views of a single zero, so building the full 3.5B model allocates nothing.
//! - [`random_var_builder`] hands back random tensors, for criterion benches at full size.
//! - [`write_random_checkpoint`] writes a full-size checkpoint of seeded random weights in the
//!   real folder layout, for whole-pipeline timings and memory figures.
//! - [`test_target`] is the device and dtype the parity tests run on (`ACESTEP_TEST_DEVICE`,
//!   `ACESTEP_TEST_DTYPE`): f32 results are held to each test's f32 tolerance, bf16 / f16 ones
//!   to that test's stated drift bound against the same f32 reference.
//!
//! The relative error reported everywhere in this project is **scale-relative**:
//! `max_rel = max|ours - ref| / max|ref|`, i.e. the largest deviation measured against the
//! magnitude of the reference tensor (element-wise ratios are meaningless where the reference
//! crosses zero). The element-wise ratio over entries with `|ref| >= 1e-2 * max|ref|` is printed
//! beside it for information.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

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
    // On the host: not every device has f64 (Metal).
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
        Ok(t.flatten_all()?.to_vec1::<f64>()?)
    };
    let (a, b) = (host(ours)?, host(reference)?);
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

/// The device and dtype the parity tests run on, from the environment:
/// `ACESTEP_TEST_DEVICE` (`cpu` when unset; `cuda`, `cuda:N`, `metal`, `metal:N` as `--device`
/// takes them) and `ACESTEP_TEST_DTYPE` (`f32` when unset; `bf16`, `f16`). Models are loaded
/// there, float inputs are cast to the dtype, and results are compared with the f32 reference
/// recorded from PyTorch.
#[derive(Debug, Clone)]
pub struct TestTarget {
    /// Where models and inputs live.
    pub device: Device,
    /// The models' compute dtype.
    pub dtype: DType,
}

/// The tolerance a parity test states for each reduced-precision dtype: the measured drift of
/// that component against the f32 reference, with headroom (see README, GPU and precision).
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    /// Bound on `max_rel` in bf16 (8 significant bits).
    pub bf16: f64,
    /// Bound on `max_rel` in f16 (11 significant bits).
    pub f16: f64,
}

impl TestTarget {
    /// Reads `ACESTEP_TEST_DEVICE` and `ACESTEP_TEST_DTYPE`.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let device = match var("ACESTEP_TEST_DEVICE") {
            Some(spec) => crate::device::parse_device(&spec)?,
            None => Device::Cpu,
        };
        let dtype = match var("ACESTEP_TEST_DTYPE") {
            Some(spec) => parse_float_dtype("ACESTEP_TEST_DTYPE", &spec)?,
            None => DType::F32,
        };
        Ok(Self { device, dtype })
    }

    /// `t` on the target device: floating-point tensors in the target dtype, integer ones as
    /// they are.
    pub fn put(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.to_device(&self.device)?;
        Ok(if t.dtype().is_float() {
            t.to_dtype(self.dtype)?
        } else {
            t
        })
    }

    /// Every tensor of a safetensors file, [`TestTarget::put`] on the target.
    pub fn load(&self, path: &Path) -> Result<HashMap<String, Tensor>> {
        let host = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            Error::InvalidArgument {
                name: "fixture",
                value: path.display().to_string(),
                expected: format!("a readable safetensors file ({e})"),
            }
        })?;
        host.into_iter()
            .map(|(k, t)| Ok((k, self.put(&t)?)))
            .collect()
    }

    /// The tolerance of a comparison with the f32 reference: `f32` when the target is f32,
    /// else the drift bound of the target's dtype.
    pub fn tol(&self, f32: f64, drift: Drift) -> f64 {
        match self.dtype {
            DType::BF16 => drift.bf16,
            DType::F16 => drift.f16,
            _ => f32,
        }
    }

    /// True for the default target (the CPU in f32), where every figure of the reference is
    /// expected to the f32 tolerances and bit-exact checks hold.
    pub fn is_cpu_f32(&self) -> bool {
        self.device.is_cpu() && self.dtype == DType::F32
    }
}

/// `f32`, `bf16` or `f16` as a dtype, on any device (unlike [`crate::device::parse_dtype`],
/// which refuses bf16 on the CPU for users); `name` names the setting in the error.
pub fn parse_float_dtype(name: &'static str, spec: &str) -> Result<DType> {
    match spec.trim() {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        other => Err(Error::InvalidArgument {
            name,
            value: other.to_string(),
            expected: "f32, bf16 or f16".into(),
        }),
    }
}

/// The fixture folder: `$ACESTEP_FIXTURES` when set (a copy of `tests/fixtures` beside binaries
/// carried to another machine), else this crate's `tests/fixtures`.
pub fn fixtures_dir() -> std::path::PathBuf {
    match std::env::var_os("ACESTEP_FIXTURES") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
}

/// The process's [`TestTarget`], read once; panics (in a test) with the offending value when the
/// environment names a device or dtype that cannot be used.
pub fn test_target() -> &'static TestTarget {
    static TARGET: OnceLock<TestTarget> = OnceLock::new();
    TARGET.get_or_init(|| match TestTarget::from_env() {
        Ok(t) => {
            println!("test target: {:?} {:?}", t.device, t.dtype);
            t
        }
        Err(e) => panic!("test target: {e}"),
    })
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

/// Values per seeded chunk of a random tensor (chunks are generated in parallel).
const RANDOM_CHUNK: usize = 1 << 20;

/// The seed of chunk `chunk` of tensor `name`: FNV-1a of the name, mixed with the chunk index.
fn random_seed(name: &str, chunk: usize) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h ^ (chunk as u64).wrapping_mul(0x9e3779b97f4a7c15)
}

/// `n` seeded normal values for tensor `name` (std 0.02; norm gains around one).
fn random_values(name: &str, n: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    use rayon::prelude::*;
    let gain = name.ends_with("norm.weight") || name.ends_with("norm1.weight");
    let mut out = vec![0f32; n];
    out.par_chunks_mut(RANDOM_CHUNK)
        .enumerate()
        .for_each(|(i, c)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(random_seed(name, i));
            for x in c.iter_mut() {
                let v: f32 = rng.sample(rand_distr::StandardNormal);
                *x = if gain { 1.0 + 0.02 * v } else { 0.02 * v };
            }
        });
    out
}

/// Streams a safetensors file of f32 tensors (header first, then each tensor as generated).
fn write_random_safetensors(path: &Path, tensors: &[(String, Vec<usize>)]) -> Result<()> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}),
        );
        offset += 4 * n;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let io = |e| Error::io(path, e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut f = std::io::BufWriter::with_capacity(1 << 22, file);
    f.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    for (name, shape) in tensors {
        let v = random_values(name, shape.iter().product());
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        f.write_all(&bytes).map_err(io)?;
    }
    f.flush().map_err(io)
}

/// Writes a full-size checkpoint of seeded random weights (f32, about 15 GB) under `out` in the
/// real folder layout, from the tensor manifests in `fixtures/manifests/` (the configs and
/// shapes of ACE-Step v1 3.5B), with the UMT5 tokenizer of the tiny fixture
/// (`fixtures/tiny/umt5-base`; its ids are valid for the full vocabulary). Values are normal
/// with standard deviation 0.02 (norm gains around one) and the same on every run (each tensor's
/// generator is seeded by its name). Prints one line per component.
pub fn write_random_checkpoint(out: &Path, fixtures: &Path) -> Result<()> {
    for (component, weights) in [
        (
            "ace_step_transformer",
            "diffusion_pytorch_model.safetensors",
        ),
        ("music_dcae_f8c8", "diffusion_pytorch_model.safetensors"),
        ("music_vocoder", "diffusion_pytorch_model.safetensors"),
        ("umt5-base", "model.safetensors"),
    ] {
        let manifest = read_manifest(&fixtures.join(format!("manifests/{component}.json")))?;
        let dir = out.join(component);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let config = dir.join("config.json");
        let text =
            serde_json::to_string_pretty(&manifest.config).map_err(|source| Error::Config {
                path: config.clone(),
                source,
            })?;
        std::fs::write(&config, text).map_err(|e| Error::io(&config, e))?;
        let tensors: Vec<(String, Vec<usize>)> = manifest.tensors.into_iter().collect();
        let t0 = std::time::Instant::now();
        write_random_safetensors(&dir.join(weights), &tensors)?;
        let params: usize = tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        println!(
            "{component}: {} tensors, {:.2} B parameters, {:.0} s",
            tensors.len(),
            params as f64 / 1e9,
            t0.elapsed().as_secs_f64()
        );
        if component == "umt5-base" {
            for f in [
                "tokenizer.json",
                "special_tokens_map.json",
                "tokenizer_config.json",
            ] {
                let from = fixtures.join("tiny/umt5-base").join(f);
                std::fs::copy(&from, dir.join(f)).map_err(|e| Error::io(&from, e))?;
            }
        }
    }
    Ok(())
}

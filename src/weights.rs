//! Weight loading (internal): checked, memory-mapped safetensors, plugged into candle's
//! [`VarBuilder`] so that model constructors are written once (`Model::new(&config, vb)`) and
//! serve the real checkpoint, the manifest tests and the benches (whose backends live in
//! `crate::testing`, behind the `testing` feature).
//!
//! [`load_safetensors`] memory-maps the checkpoint's `*.safetensors` file(s) and turns every
//! missing tensor, wrong shape or non-float dtype into a typed [`Error`] naming the file and the
//! tensor. It also reports the tensors of the file that the model never asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use candle_core::{safetensors::MmapedSafetensors, DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::error::{Error, Result};

/// A model built from a weights file, with the keys of the file that the model did not use.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The model.
    pub model: T,
    /// Keys present in the weights file that the model never asked for (sorted).
    pub unused: Vec<String>,
}

struct CheckedSafetensors {
    paths: Vec<PathBuf>,
    st: MmapedSafetensors,
    /// Which file holds each tensor (for error messages).
    owner: BTreeMap<String, usize>,
    requested: Mutex<BTreeSet<String>>,
    first_error: Arc<Mutex<Option<Error>>>,
}

impl CheckedSafetensors {
    fn fail(&self, err: Error) -> candle_core::Error {
        let msg = err.to_string();
        if let Ok(mut slot) = self.first_error.lock() {
            if slot.is_none() {
                *slot = Some(err);
            }
        }
        candle_core::Error::Msg(msg)
    }

    fn file_of(&self, name: &str) -> PathBuf {
        let idx = self.owner.get(name).copied().unwrap_or(0);
        self.paths[idx].clone()
    }

    fn mark(&self, name: &str) {
        if let Ok(mut r) = self.requested.lock() {
            r.insert(name.to_string());
        }
    }

    fn load_checked(
        &self,
        name: &str,
        expected: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.mark(name);
        let view = match self.st.get(name) {
            Ok(v) => v,
            Err(_) => {
                return Err(self.fail(Error::MissingTensor {
                    path: self.file_of(name),
                    name: name.to_string(),
                }))
            }
        };
        use safetensors::Dtype as D;
        if !matches!(view.dtype(), D::F32 | D::F16 | D::BF16 | D::F64) {
            return Err(self.fail(Error::TensorDType {
                path: self.file_of(name),
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            }));
        }
        if let Some(expected) = expected {
            if view.shape() != expected.dims() {
                return Err(self.fail(Error::TensorShape {
                    path: self.file_of(name),
                    name: name.to_string(),
                    expected: expected.dims().to_vec(),
                    found: view.shape().to_vec(),
                }));
            }
        }
        let t = self.st.load(name, dev)?.to_dtype(dtype)?;
        release_mapped_pages(view.data());
        Ok(t)
    }
}

/// Drops the resident pages of a memory-mapped range once its tensor has been copied out
/// (`madvise(MADV_DONTNEED)`): while a model loads, the checkpoint pages it has read would
/// otherwise stay in the process's resident set beside their copies until the whole file is
/// unmapped (a 60 s generation in f32 peaked at 19.4 GiB while loading, against 12.3 GiB while
/// generating). The file stays mapped read-only and the pages stay in the page cache: a later
/// read of the range faults them back in unchanged.
fn release_mapped_pages(bytes: &[u8]) {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page <= 0 || bytes.is_empty() {
            return;
        }
        let page = page as usize;
        let start = bytes.as_ptr() as usize / page * page;
        let end = (bytes.as_ptr() as usize + bytes.len()).div_ceil(page) * page;
        // SAFETY: `[start, end)` lies within the read-only shared file mapping that holds `bytes`
        // (mappings are page-granular); MADV_DONTNEED on such a mapping only drops page-table
        // entries, and its contents read back the same from the file. No tensor borrows the
        // mapping: `load` copied the data out.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

impl SimpleBackend for CheckedSafetensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.load_checked(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load_checked(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.owner.contains_key(name)
    }
}

/// Memory-maps `paths` (one checkpoint file, or the shards of one) and builds a model from them.
///
/// `build` receives a [`VarBuilder`] of the requested `dtype` on `device`. Any tensor it asks for
/// that is missing, of another shape, or not a float is reported as the matching typed [`Error`]
/// naming the file and the tensor. The keys of the file(s) that `build` never requested are
/// returned in [`Loaded::unused`] (the caller decides whether they are expected, such as the DiT's
/// training-only `projectors.*`).
pub fn load_safetensors<T>(
    paths: &[PathBuf],
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<Loaded<T>> {
    for p in paths {
        if !p.is_file() {
            return Err(Error::MissingPath {
                what: "weights file".into(),
                path: p.clone(),
            });
        }
    }
    // SAFETY: the files are memory-mapped read-only; as with every mmap-based loader, they must
    // not be truncated while the model is being built (weights are copied out during `build`).
    let st = unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| Error::Safetensors {
        path: paths.first().cloned().unwrap_or_default(),
        message: e.to_string(),
    })?;
    let mut owner = BTreeMap::new();
    for (idx, p) in paths.iter().enumerate() {
        // Parse each header on its own to know which file holds which tensor.
        let single = unsafe { MmapedSafetensors::new(p) }.map_err(|e| Error::Safetensors {
            path: p.clone(),
            message: e.to_string(),
        })?;
        for (name, _) in single.tensors() {
            owner.insert(name, idx);
        }
    }
    let first_error = Arc::new(Mutex::new(None));
    let backend = Arc::new(CheckedSafetensors {
        paths: paths.to_vec(),
        st,
        owner,
        requested: Mutex::new(BTreeSet::new()),
        first_error: first_error.clone(),
    });
    let vb = VarBuilder::from_backend(
        Box::new(SharedBackend(backend.clone())),
        dtype,
        device.clone(),
    );
    let model = match build(vb) {
        Ok(m) => m,
        Err(e) => {
            let typed = first_error.lock().ok().and_then(|mut slot| slot.take());
            return Err(typed.unwrap_or(Error::Candle(e)));
        }
    };
    let requested = backend
        .requested
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let unused = backend
        .owner
        .keys()
        .filter(|k| !requested.contains(*k))
        .cloned()
        .collect();
    Ok(Loaded { model, unused })
}

/// Lets one backend be shared between the VarBuilder and the loader that inspects it afterwards.
struct SharedBackend<B>(Arc<B>);

impl<B: SimpleBackend> SimpleBackend for SharedBackend<B> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// Where [`linear`] and [`embedding`] take their weights from while a model is built.
#[derive(Clone)]
pub(crate) enum WeightSource {
    /// Quantize the float weights of the checkpoint as they load.
    Quantize(crate::quant::Quantization),
    /// A quantized checkpoint's stored blocks.
    Stored(Arc<crate::quant::GgufStore>),
}

thread_local! {
    static WEIGHT_SOURCE: std::cell::RefCell<Option<WeightSource>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `build` (a model constructor) with `source` answering its linear layers and embeddings.
pub(crate) fn with_weight_source<T>(source: WeightSource, build: impl FnOnce() -> T) -> T {
    struct Reset(Option<WeightSource>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            WEIGHT_SOURCE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = WEIGHT_SOURCE.with(|s| s.borrow_mut().replace(source));
    let _reset = Reset(prev);
    build()
}

fn weight_source() -> Option<WeightSource> {
    WEIGHT_SOURCE.with(|s| s.borrow().clone())
}

/// The checkpoint key of `name` under `vb`.
fn key(vb: &VarBuilder, name: &str) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}.{name}")
    }
}

/// A linear layer `in_dim -> out_dim` from `weight` `[out, in]` (and `bias` `[out]`) under `vb`,
/// on the engine's linear kernel (packed once on the CPU). Built under a quantized weight
/// source (see [`crate::quant`]), the weight is block-quantized instead.
pub fn linear(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: VarBuilder,
) -> candle_core::Result<acestep_kernels::Linear> {
    linear_from(in_dim, out_dim, bias, vb, |vb| {
        vb.get((out_dim, in_dim), "weight")
    })
}

/// A 1x1 convolution (`weight` `[out, in, 1]`, optional `bias` under `vb`) as a linear layer over
/// channel-last inputs, quantized under a quantized weight source as [`linear`] is.
pub fn conv1x1_linear(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: VarBuilder,
) -> candle_core::Result<acestep_kernels::Linear> {
    linear_from(in_dim, out_dim, bias, vb, |vb| {
        vb.get((out_dim, in_dim, 1), "weight")?.squeeze(2)
    })
}

/// A linear layer whose float weight `[out, in]` `float_weight` reads from `vb`: the stored
/// blocks of a quantized checkpoint, the float weight quantized, or the float weight as it is,
/// by the weight source in force.
fn linear_from(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: VarBuilder,
    float_weight: impl FnOnce(&VarBuilder) -> candle_core::Result<Tensor>,
) -> candle_core::Result<acestep_kernels::Linear> {
    let b = if bias {
        Some(vb.get(out_dim, "bias")?)
    } else {
        None
    };
    match weight_source() {
        Some(WeightSource::Stored(store)) => {
            if let Some(q) = store.quantized(&key(&vb, "weight"), vb.device()) {
                let q = q?;
                if q.shape().dims() != [out_dim, in_dim] {
                    candle_core::bail!(
                        "tensor `{}` has shape {:?}, expected [{out_dim}, {in_dim}]",
                        key(&vb, "weight"),
                        q.shape().dims()
                    );
                }
                return acestep_kernels::Linear::quantized(q, b);
            }
        }
        Some(WeightSource::Quantize(q)) => {
            if let Some(dt) = q.ggml_for(in_dim) {
                let w = float_weight(&vb)?.to_dtype(DType::F32)?;
                let qt = candle_core::quantized::QTensor::quantize(&w, dt)?;
                return acestep_kernels::Linear::quantized(Arc::new(qt), b);
            }
        }
        None => {}
    }
    Ok(acestep_kernels::Linear::new(float_weight(&vb)?, b))
}

/// A token embedding table: float, or block-quantized (rows dequantized as they are gathered).
#[derive(Debug, Clone)]
pub enum Embedding {
    /// A float table `[vocab, dim]`.
    Float(candle_nn::Embedding),
    /// A quantized table `[vocab, dim]`.
    Quantized(Arc<candle_core::quantized::QTensor>),
}

impl Embedding {
    /// The rows of `ids` (any shape): `[..ids, dim]` in f32 for a quantized table.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        use candle_core::Module;
        match self {
            Embedding::Float(e) => e.forward(ids),
            Embedding::Quantized(q) => q.embedding(ids),
        }
    }
}

/// An embedding table `[vocab, dim]` (`weight` under `vb`), quantized under a quantized weight
/// source as [`linear`] is.
pub fn embedding(vocab: usize, dim: usize, vb: VarBuilder) -> candle_core::Result<Embedding> {
    match weight_source() {
        Some(WeightSource::Stored(store)) => {
            if let Some(q) = store.quantized(&key(&vb, "weight"), vb.device()) {
                return Ok(Embedding::Quantized(q?));
            }
        }
        Some(WeightSource::Quantize(q)) => {
            if let Some(dt) = q.ggml_for(dim) {
                let w = vb.get((vocab, dim), "weight")?;
                let qt = candle_core::quantized::QTensor::quantize(&w.to_dtype(DType::F32)?, dt)?;
                return Ok(Embedding::Quantized(Arc::new(qt)));
            }
        }
        None => {}
    }
    Ok(Embedding::Float(candle_nn::embedding(vocab, dim, vb)?))
}

//! Quantized weights: the DiT's and the UMT5 encoder's linear layers and token embedding in
//! GGML block formats (candle's quantized matmul), either quantized while a float checkpoint
//! loads or read from a quantized checkpoint written by [`quantize_checkpoint`].
//!
//! - [`Quantization`]: `q8_0`, `q6k`, `q5k`, `q4k`. A layer whose input width is not a multiple of
//!   the format's block (256 for the k-quants, 32 for `q8_0`) takes the next format that fits
//!   (k-quant, then `q8_0`, then float): every linear layer of the full-size DiT and UMT5 fits its
//!   format; the tiny test checkpoint's 32-wide layers fall back to `q8_0`.
//! - Norms, biases, the DCAE and the vocoder stay in float.
//! - A quantized checkpoint is the same folder layout with `diffusion_pytorch_model.gguf` /
//!   `model.gguf` in place of the DiT's and the text encoder's safetensors: quantized blocks for the
//!   linear layers and the embedding, f32 for every other tensor. Loading it reads the blocks as
//!   they are (no float copy of a quantized weight is ever made).
//!
//! ```no_run
//! use acestep::quant::{quantize_checkpoint, Quantization};
//! use acestep::{Checkpoint, Pipeline, PipelineOptions};
//! let src = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! quantize_checkpoint(&src, Quantization::Q8_0, "/models/ACE-Step-v1-3.5B-q8_0".as_ref())?;
//! let q8 = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B-q8_0")?;
//! let pipe = Pipeline::load(&q8, &PipelineOptions::default())?;
//! // Or quantize a float checkpoint as it loads:
//! let pipe = Pipeline::load(&src, &PipelineOptions { quantize: Some(Quantization::Q8_0), ..Default::default() })?;
//! # Ok::<(), acestep::Error>(())
//! ```

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::checkpoint::{Checkpoint, Component};
use crate::error::{Error, Result};
use crate::weights::Loaded;

/// A block-quantization format for the DiT's and the text encoder's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// 8-bit blocks of 32 with an f16 scale (8.5 bits per weight).
    Q8_0,
    /// 6-bit k-quant super-blocks of 256 (6.56 bits per weight).
    Q6K,
    /// 5-bit k-quant (5.5 bits per weight).
    Q5K,
    /// 4-bit k-quant (4.5 bits per weight).
    Q4K,
}

impl Quantization {
    /// Every format.
    pub const ALL: [Quantization; 4] = [
        Quantization::Q8_0,
        Quantization::Q6K,
        Quantization::Q5K,
        Quantization::Q4K,
    ];

    /// The name used on the command line and in files (`q8_0`, `q6k`, `q5k`, `q4k`).
    pub fn name(self) -> &'static str {
        match self {
            Quantization::Q8_0 => "q8_0",
            Quantization::Q6K => "q6k",
            Quantization::Q5K => "q5k",
            Quantization::Q4K => "q4k",
        }
    }

    /// The GGML block type.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Quantization::Q8_0 => GgmlDType::Q8_0,
            Quantization::Q6K => GgmlDType::Q6K,
            Quantization::Q5K => GgmlDType::Q5K,
            Quantization::Q4K => GgmlDType::Q4K,
        }
    }

    /// The block type for a weight whose rows are `width` wide: this format when its block
    /// divides the width, else `q8_0` when 32 does, else None (the layer stays in float).
    pub fn ggml_for(self, width: usize) -> Option<GgmlDType> {
        [self.ggml(), GgmlDType::Q8_0]
            .into_iter()
            .find(|t| width > 0 && width.is_multiple_of(t.block_size()))
    }
}

impl std::fmt::Display for Quantization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Quantization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let n = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Quantization::ALL
            .into_iter()
            .find(|q| q.name().replace('_', "") == n)
            .ok_or_else(|| Error::InvalidArgument {
                name: "quantize",
                value: s.to_string(),
                expected: "q8_0, q6k, q5k or q4k".into(),
            })
    }
}

/// Runs `build` (e.g. [`crate::dit::AceStepTransformer2DModel::load_dir`]) with every linear
/// layer and embedding it builds from float weights quantized to `q`.
pub fn quantizing<T>(q: Quantization, build: impl FnOnce() -> T) -> T {
    crate::weights::with_weight_source(crate::weights::WeightSource::Quantize(q), build)
}

/// The quantized file that replaces a component's safetensors (`<stem>.gguf`).
pub fn gguf_path(dir: &Path, c: Component) -> PathBuf {
    dir.join(c.weights_file()).with_extension("gguf")
}

/// Whether a tensor of `shape` stored under `name` is quantized by `q`: the weights of linear
/// layers and embeddings (`*.weight` of rank 2) and of 1x1 convolutions (rank 3 `[out, in, 1]`,
/// the DiT's feed-forward, stored as `[out, in]`), when a block type fits their width.
fn quantized_type(q: Quantization, name: &str, shape: &[usize]) -> Option<GgmlDType> {
    let matrix = shape.len() == 2 || (shape.len() == 3 && shape[2] == 1);
    if !matrix || !name.ends_with(".weight") {
        return None;
    }
    q.ggml_for(shape[1])
}

/// Writes a quantized copy of `src` to `out`: the DiT's and the text encoder's weights as GGUF
/// (`q`'s blocks for the linear layers and embeddings, f32 for the rest), every other file as
/// it is. The float weights are read one tensor at a time from the memory-mapped safetensors.
pub fn quantize_checkpoint(src: &Checkpoint, q: Quantization, out: &Path) -> Result<()> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::InvalidArgument {
            name: "output directory",
            value: out.display().to_string(),
            expected: "a new or empty folder".into(),
        });
    }
    for c in Component::ALL {
        let from = src.component_dir(c)?;
        let to = out.join(c.folder());
        std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
        let quantize = matches!(c, Component::Transformer | Component::TextEncoder);
        for entry in std::fs::read_dir(&from).map_err(|e| Error::io(&from, e))? {
            let entry = entry.map_err(|e| Error::io(&from, e))?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let name = entry.file_name();
            if quantize && name.to_string_lossy() == c.weights_file() {
                write_gguf(&path, q, c, &gguf_path(&to, c))?;
            } else {
                let dst = to.join(&name);
                std::fs::copy(&path, &dst).map_err(|e| Error::io(&dst, e))?;
            }
        }
    }
    Ok(())
}

/// Quantizes one safetensors file into a GGUF file.
fn write_gguf(src: &Path, q: Quantization, c: Component, dst: &Path) -> Result<()> {
    let st_err = |e: candle_core::Error| Error::Safetensors {
        path: src.to_path_buf(),
        message: e.to_string(),
    };
    // SAFETY: read-only map of a file nobody truncates while we read it.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(src) }.map_err(st_err)?;
    let mut names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let t = st
            .load(&name, &Device::Cpu)
            .map_err(st_err)?
            .to_dtype(DType::F32)
            .map_err(st_err)?;
        let qt = match quantized_type(q, &name, t.dims()) {
            Some(dt) => {
                let (out, inp) = (t.dims()[0], t.dims()[1]);
                t.reshape((out, inp))
                    .and_then(|m| QTensor::quantize(&m, dt))
            }
            None => QTensor::quantize(&t, GgmlDType::F32),
        }
        .map_err(st_err)?;
        drop(t);
        tensors.push((name, qt));
    }
    let arch = gguf_file::Value::String(format!("acestep-{}", c.folder()));
    let quant = gguf_file::Value::String(q.name().to_string());
    let metadata = [
        ("general.architecture", &arch),
        ("acestep.quantization", &quant),
    ];
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = dst.with_extension("gguf.partial");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(file);
    gguf_file::write(&mut w, &metadata, &refs).map_err(|e| Error::Safetensors {
        path: dst.to_path_buf(),
        message: e.to_string(),
    })?;
    use std::io::Write;
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, dst).map_err(|e| Error::io(dst, e))
}

/// The tensors of a GGUF file, read on request.
pub(crate) struct GgufStore {
    path: PathBuf,
    content: gguf_file::Content,
    file: Mutex<BufReader<File>>,
    requested: Mutex<BTreeSet<String>>,
}

impl GgufStore {
    fn open(path: &Path) -> Result<Self> {
        let err = |m: String| Error::Safetensors {
            path: path.to_path_buf(),
            message: m,
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
            file: Mutex::new(reader),
            requested: Mutex::new(BTreeSet::new()),
        })
    }

    /// The stored block type of `name`.
    fn ggml_dtype(&self, name: &str) -> Option<GgmlDType> {
        self.content.tensor_infos.get(name).map(|i| i.ggml_dtype)
    }

    fn read(&self, name: &str, device: &Device) -> candle_core::Result<QTensor> {
        if let Ok(mut r) = self.requested.lock() {
            r.insert(name.to_string());
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        self.content.tensor(&mut *f, name, device)
    }

    /// The quantized weight `name` as stored, when it is stored quantized (None for a float
    /// tensor or an absent one).
    pub(crate) fn quantized(
        &self,
        name: &str,
        device: &Device,
    ) -> Option<candle_core::Result<Arc<QTensor>>> {
        match self.ggml_dtype(name)? {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => None,
            _ => Some(self.read(name, device).map(Arc::new)),
        }
    }
}

struct GgufBackend(Arc<GgufStore>);

impl SimpleBackend for GgufBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut t = self.get_unchecked(name, dtype, dev)?;
        // A 1x1 convolution's weight `[out, in, 1]` is stored as the matrix `[out, in]`.
        if t.dims().len() + 1 == s.dims().len()
            && s.dims().last() == Some(&1)
            && t.dims() == &s.dims()[..t.dims().len()]
        {
            t = t.reshape(s.clone())?;
        }
        if t.shape() != &s {
            candle_core::bail!(
                "tensor `{name}` in {} has shape {:?}, expected {:?}",
                self.0.path.display(),
                t.dims(),
                s.dims()
            );
        }
        Ok(t)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if self.0.ggml_dtype(name).is_none() {
            candle_core::bail!("tensor `{name}` is missing from {}", self.0.path.display());
        }
        self.0.read(name, dev)?.dequantize(dev)?.to_dtype(dtype)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.ggml_dtype(name).is_some()
    }
}

/// Builds a model from a quantized GGUF file: `build` gets a [`VarBuilder`] serving the float
/// tensors, while the crate's linear and embedding loaders take the quantized
/// ones as stored.
pub fn load_gguf<T>(
    path: &Path,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<Loaded<T>> {
    let store = Arc::new(GgufStore::open(path)?);
    let vb = VarBuilder::from_backend(Box::new(GgufBackend(store.clone())), dtype, device.clone());
    let model = crate::weights::with_weight_source(
        crate::weights::WeightSource::Stored(store.clone()),
        || build(vb),
    )
    .map_err(|e| match e {
        candle_core::Error::Msg(m) if m.contains("is missing from") => Error::MissingTensor {
            path: path.to_path_buf(),
            name: m,
        },
        e => Error::Candle(e),
    })?;
    let requested = store
        .requested
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let unused = store
        .content
        .tensor_infos
        .keys()
        .filter(|k| !requested.contains(*k))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Loaded { model, unused })
}

//! LoRA adapters for the DiT, as the reference's `load_lora` applies them: a diffusers / peft
//! `pytorch_lora_weights.safetensors` (keys `<module>.lora_A.weight` `[r, in]` and
//! `<module>.lora_B.weight` `[out, r]`) loaded with `load_lora_adapter` and activated with
//! `set_weights_and_activate_adapters(weight)`.
//!
//! Like peft, the adapter is not merged: a LoRA'd linear layer computes
//! `base(x) + B(A(x)) * weight * alpha / r` (`alpha / sqrt(r)` with rsLoRA), so the base weights
//! are never touched and removing the adapter gives the base model back bit for bit.
//! `alpha` is read as diffusers does: from the file's `lora_adapter_metadata` (newer diffusers
//! save the peft config there), else per-module `<module>.alpha` tensors, else the rank (which
//! makes the scale the weight alone, as the reference's diffusers 0.33 loads the trainer's files).
//!
//! ```no_run
//! use acestep::dit::AceStepTransformer2DModel;
//! use acestep::lora::LoraAdapter;
//! # fn f(base: &AceStepTransformer2DModel) -> acestep::Result<()> {
//! let adapter = LoraAdapter::from_name_or_path("ACE-Step/ACE-Step-v1-chinese-rap-LoRA", &Default::default())?;
//! let rap = base.with_lora(&adapter, 0.8)?; // `base` is unchanged
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use acestep_kernels::Linear;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::hub::HubOptions;

/// The adapter file name of diffusers' `save_lora_adapter`.
pub const LORA_WEIGHTS_FILE: &str = "pytorch_lora_weights.safetensors";

/// A linear layer that can carry a LoRA delta (unmerged, as peft runs it).
#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: Linear,
    name: String,
    delta: Option<Delta>,
}

#[derive(Debug, Clone)]
struct Delta {
    down: Linear,
    up: Linear,
    scale: f64,
}

impl LoraLinear {
    /// Wraps `base`, the module at checkpoint path `name` (e.g. `transformer_blocks.0.attn.to_q`).
    pub fn new(base: Linear, name: impl Into<String>) -> Self {
        Self {
            base,
            name: name.into(),
            delta: None,
        }
    }

    /// The module's checkpoint path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a LoRA delta is attached.
    pub fn has_lora(&self) -> bool {
        self.delta.is_some()
    }

    /// `(out, in)` of the base weight.
    pub fn base_dims(&self) -> (usize, usize) {
        self.base.dims()
    }

    /// The base layer.
    pub fn base(&self) -> &Linear {
        &self.base
    }
}

impl LoraLinear {
    /// `act(base(x) + delta(x))`, the activation fused into the base product when no LoRA is
    /// attached.
    pub fn forward_act(
        &self,
        x: &Tensor,
        act: acestep_kernels::Activation,
    ) -> candle_core::Result<Tensor> {
        match &self.delta {
            None => self.base.forward_act(x, act),
            Some(_) => acestep_kernels::activation(&self.forward(x)?, act),
        }
    }
}

impl Module for LoraLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.delta {
            None => Ok(y),
            Some(d) => y + (d.up.forward(&d.down.forward(x)?)? * d.scale)?,
        }
    }
}

/// A linear layer `in_dim -> out_dim` with bias (`weight`, `bias` under `vb`) as a
/// [`LoraLinear`] named after `vb`'s prefix.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<LoraLinear> {
    let name = vb.prefix();
    Ok(LoraLinear::new(
        crate::weights::linear(in_dim, out_dim, true, vb)?,
        name,
    ))
}

/// Models whose linear layers can take a LoRA.
pub trait LoraTarget {
    /// Every LoRA-capable linear layer, with its checkpoint path.
    fn lora_linears(&mut self) -> Vec<&mut LoraLinear>;
}

/// One module's LoRA matrices.
#[derive(Debug, Clone)]
struct Pair {
    down: Tensor,
    up: Tensor,
    alpha: Option<f64>,
}

/// A LoRA adapter read from a `pytorch_lora_weights.safetensors` (f32, on the CPU until applied).
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    source: String,
    modules: BTreeMap<String, Pair>,
    config_alpha: Option<f64>,
    rslora: bool,
}

fn lora_err(adapter: &str, message: impl Into<String>) -> Error {
    Error::Lora {
        adapter: adapter.to_string(),
        message: message.into(),
    }
}

/// Strips the prefixes adapters are saved with (`transformer.`, peft's `base_model.model.`).
fn module_key(key: &str) -> &str {
    let mut k = key;
    for p in ["base_model.model.", "transformer."] {
        k = k.strip_prefix(p).unwrap_or(k);
    }
    k
}

impl LoraAdapter {
    /// Reads an adapter file (or a folder holding [`LORA_WEIGHTS_FILE`]).
    pub fn from_path(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join(LORA_WEIGHTS_FILE)
        } else {
            path.to_path_buf()
        };
        let source = path.display().to_string();
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            })?;
        let meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("lora_adapter_metadata"))
            .map(|s| serde_json::from_str::<serde_json::Value>(s))
            .transpose()
            .map_err(|e| lora_err(&source, format!("lora_adapter_metadata is not JSON: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            Error::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            }
        })?;
        Self::from_tensors(&source, tensors, meta.as_ref())
    }

    /// An adapter from a local path, else a hub repo id holding [`LORA_WEIGHTS_FILE`] (the
    /// reference's `snapshot_download` fallback).
    pub fn from_name_or_path(name_or_path: &str, hub: &HubOptions) -> Result<Self> {
        let p = PathBuf::from(name_or_path);
        if p.exists() {
            return Self::from_path(&p);
        }
        if name_or_path.split('/').count() != 2 {
            return Err(Error::MissingPath {
                what: "LoRA adapter (a file, a folder with pytorch_lora_weights.safetensors, or a \
                       hub repo id owner/name)"
                    .into(),
                path: p,
            });
        }
        let file = crate::hub::hub_file(
            hub,
            crate::hub::HubRepo::Model(name_or_path),
            LORA_WEIGHTS_FILE,
        )
        .map_err(|message| Error::Hub {
            repo: name_or_path.to_string(),
            file: LORA_WEIGHTS_FILE.into(),
            message,
        })?;
        let mut a = Self::from_path(&file)?;
        a.source = name_or_path.to_string();
        Ok(a)
    }

    /// An adapter from its tensors (`<module>.lora_A.weight`, `<module>.lora_B.weight`, optional
    /// `<module>.alpha`) and diffusers' `lora_adapter_metadata` (the peft config) if any.
    pub fn from_tensors(
        source: &str,
        tensors: HashMap<String, Tensor>,
        metadata: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let mut downs = BTreeMap::new();
        let mut ups = BTreeMap::new();
        let mut alphas = BTreeMap::new();
        let mut unknown = Vec::new();
        for (key, t) in tensors {
            let k = module_key(&key);
            let t = t.to_dtype(DType::F32)?;
            if let Some(m) = k.strip_suffix(".lora_A.weight") {
                downs.insert(m.to_string(), t);
            } else if let Some(m) = k.strip_suffix(".lora_B.weight") {
                ups.insert(m.to_string(), t);
            } else if let Some(m) = k.strip_suffix(".alpha") {
                alphas.insert(m.to_string(), t.flatten_all()?.to_vec1::<f32>()?[0] as f64);
            } else {
                unknown.push(key);
            }
        }
        if !unknown.is_empty() {
            unknown.sort();
            return Err(lora_err(
                source,
                format!(
                    "unsupported keys (only lora_A / lora_B weights of linear layers, no DoRA or \
                     LoRA bias): {}",
                    unknown.join(", ")
                ),
            ));
        }
        let mut modules = BTreeMap::new();
        for (m, down) in downs {
            let up = ups.remove(&m).ok_or_else(|| {
                lora_err(
                    source,
                    format!("{m}.lora_A.weight has no {m}.lora_B.weight"),
                )
            })?;
            let (dd, ud) = (down.dims().to_vec(), up.dims().to_vec());
            if dd.len() != 2 || ud.len() != 2 || dd[0] != ud[1] {
                return Err(lora_err(
                    source,
                    format!(
                        "{m}: lora_A {dd:?} and lora_B {ud:?} are not [r, in] and [out, r] \
                         (LoRA on convolutions is not supported)"
                    ),
                ));
            }
            let alpha = alphas.remove(&m);
            modules.insert(m, Pair { down, up, alpha });
        }
        if let Some(m) = ups.keys().next() {
            return Err(lora_err(
                source,
                format!("{m}.lora_B.weight has no {m}.lora_A.weight"),
            ));
        }
        if modules.is_empty() {
            return Err(lora_err(source, "no lora_A / lora_B weights in the file"));
        }
        let config_alpha = metadata
            .and_then(|m| m.get("lora_alpha"))
            .and_then(|a| a.as_f64());
        let rslora = metadata
            .and_then(|m| m.get("use_rslora"))
            .and_then(|a| a.as_bool())
            .unwrap_or(false);
        Ok(Self {
            source: source.to_string(),
            modules,
            config_alpha,
            rslora,
        })
    }

    /// Where the adapter came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The module paths the adapter targets.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// The alpha diffusers would configure when the file holds none: the most common rank.
    fn default_alpha(&self) -> f64 {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for p in self.modules.values() {
            *counts.entry(p.down.dims()[0]).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|&(r, n)| (n, std::cmp::Reverse(r)))
            .map_or(1.0, |(r, _)| r as f64)
    }

    /// Attaches the adapter at `weight` to `model`'s matching linear layers (replacing any
    /// delta they carry). Every adapter module must match a layer with the right shapes.
    pub fn apply(&self, model: &mut dyn LoraTarget, weight: f64) -> Result<()> {
        if !weight.is_finite() {
            return Err(Error::InvalidArgument {
                name: "lora_weight",
                value: weight.to_string(),
                expected: "a finite number".into(),
            });
        }
        let default_alpha = self.config_alpha.unwrap_or_else(|| self.default_alpha());
        let mut layers: HashMap<String, &mut LoraLinear> = model
            .lora_linears()
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let missing: Vec<&str> = self
            .modules
            .keys()
            .filter(|m| !layers.contains_key(*m))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(lora_err(
                &self.source,
                format!(
                    "{} keys match no linear layer of the DiT: {}",
                    missing.len(),
                    missing.join(", ")
                ),
            ));
        }
        for (m, p) in &self.modules {
            let layer = layers
                .get_mut(m)
                .ok_or_else(|| lora_err(&self.source, format!("no layer {m}")))?;
            let (out, inp) = layer.base_dims();
            let (r, a_in) = (p.down.dims()[0], p.down.dims()[1]);
            let b_out = p.up.dims()[0];
            if a_in != inp || b_out != out {
                return Err(lora_err(
                    &self.source,
                    format!(
                        "{m}: LoRA maps {a_in} -> {b_out} but the layer is {inp} -> {out} (an \
                         adapter for another model size?)"
                    ),
                ));
            }
            let alpha = p.alpha.unwrap_or(default_alpha);
            let ratio = if self.rslora {
                alpha / (r as f64).sqrt()
            } else {
                alpha / r as f64
            };
            let (device, dtype) = (layer.base.device(), layer.base.dtype());
            layer.delta = Some(Delta {
                down: Linear::new(p.down.to_device(&device)?.to_dtype(dtype)?, None),
                up: Linear::new(p.up.to_device(&device)?.to_dtype(dtype)?, None),
                scale: weight * ratio,
            });
        }
        Ok(())
    }
}

/// Removes every LoRA delta from `model`.
pub fn remove(model: &mut dyn LoraTarget) {
    for l in model.lora_linears() {
        l.delta = None;
    }
}

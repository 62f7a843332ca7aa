//! The UMT5 encoder (`UMT5EncoderModel` of transformers), as used by ACE-Step for its prompt.
//!
//! UMT5 is T5 v1.1 with a relative-position bias table in *every* self-attention layer (T5 shares
//! the first layer's), a gated-GELU feed-forward and RMS layer norms. Attention is unscaled
//! (`q @ k^T`, the scale lives in the weights) and its softmax runs in f32 whatever the dtype.
//!
//! Tensor names follow the checkpoint (`umt5-base/model.safetensors`):
//! `shared.weight`, `encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o,relative_attention_bias}.weight`,
//! `encoder.block.{i}.layer.0.layer_norm.weight`, `encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`,
//! `encoder.block.{i}.layer.1.layer_norm.weight`, `encoder.final_layer_norm.weight`.

use acestep_kernels::Linear;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};

fn linear_no_bias(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    crate::weights::linear(i, o, false, vb)
}
use serde::{Deserialize, Serialize};

use crate::erg::QueryScale;

/// `umt5-base/config.json` (transformers `UMT5Config`; defaults are transformers').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Umt5Config {
    /// Token vocabulary.
    pub vocab_size: usize,
    /// Hidden width.
    pub d_model: usize,
    /// Per-head width.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which relative positions share a bucket.
    pub relative_attention_max_distance: usize,
    /// RMS norm epsilon.
    pub layer_norm_epsilon: f64,
    /// `gated-gelu`, `gated-silu`, `relu`, `gelu`, ...
    pub feed_forward_proj: String,
    /// Activation; derived from `feed_forward_proj` (`gated-gelu` means `gelu_new`).
    pub dense_act_fn: Option<String>,
    /// Padding token id.
    pub pad_token_id: u32,
    /// End-of-sequence token id.
    pub eos_token_id: u32,
}

impl Default for Umt5Config {
    fn default() -> Self {
        Self {
            vocab_size: 250_112,
            d_model: 512,
            d_kv: 64,
            d_ff: 1024,
            num_layers: 8,
            num_heads: 6,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "gated-gelu".into(),
            dense_act_fn: None,
            pad_token_id: 0,
            eos_token_id: 1,
        }
    }
}

/// Feed-forward activations UMT5 configs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `gelu`: the exact erf form.
    GeluErf,
    /// `relu`.
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    /// The same activation, fused into the linear kernel.
    fn kernel(self) -> acestep_kernels::Activation {
        match self {
            Activation::GeluTanh => acestep_kernels::Activation::GeluTanh,
            Activation::GeluErf => acestep_kernels::Activation::Gelu,
            Activation::Relu => acestep_kernels::Activation::Relu,
            Activation::Silu => acestep_kernels::Activation::Silu,
        }
    }
}

impl Umt5Config {
    /// Reads `{root}/umt5-base/config.json` of `checkpoint`.
    pub fn from_checkpoint(checkpoint: &crate::Checkpoint) -> crate::Result<Self> {
        crate::config::read_config(&checkpoint.config_path(crate::Component::TextEncoder)?)
    }

    /// Whether the feed-forward is gated (`wi_0`, `wi_1`) or plain (`wi`).
    pub fn is_gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    /// The feed-forward activation, as transformers derives it.
    pub fn activation(&self) -> std::result::Result<Activation, String> {
        let base = self
            .feed_forward_proj
            .strip_prefix("gated-")
            .unwrap_or(&self.feed_forward_proj);
        // transformers: "gated-gelu" is turned into "gelu_new" for backwards compatibility.
        let name = match (&self.dense_act_fn, self.feed_forward_proj.as_str()) {
            (_, "gated-gelu") => "gelu_new".to_string(),
            (Some(a), _) => a.clone(),
            (None, _) => base.to_string(),
        };
        match name.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(format!(
                "unsupported activation `{other}` (feed_forward_proj `{}`)",
                self.feed_forward_proj
            )),
        }
    }
}

/// The relative-position bucket of `memory - query` for a bidirectional (encoder) attention,
/// computed exactly as transformers does (in f32, truncating toward zero).
pub fn relative_position_bucket(
    relative_position: i64,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let num_buckets = (num_buckets / 2) as i64;
    let mut bucket = if relative_position > 0 {
        num_buckets
    } else {
        0
    };
    let rp = relative_position.abs();
    let max_exact = num_buckets / 2;
    if rp < max_exact {
        bucket += rp;
    } else {
        let ratio = (max_distance as f64 / max_exact as f64).ln() as f32;
        let log_ratio = ((rp as f32) / (max_exact as f32)).ln() / ratio;
        let large = max_exact + (log_ratio * (num_buckets - max_exact) as f32) as i64;
        bucket += large.min(num_buckets - 1);
    }
    bucket as u32
}

/// The `[q_len, k_len]` bucket table of an encoder self-attention.
pub fn relative_position_buckets(
    q_len: usize,
    k_len: usize,
    num_buckets: usize,
    max_distance: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut v = Vec::with_capacity(q_len * k_len);
    for q in 0..q_len as i64 {
        for k in 0..k_len as i64 {
            v.push(relative_position_bucket(k - q, num_buckets, max_distance));
        }
    }
    Tensor::from_vec(v, (q_len, k_len), device)
}

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Variance in f32 whatever the dtype, as transformers does; no mean subtraction, no bias.
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

#[derive(Debug, Clone)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    relative_attention_bias: Embedding,
    n_heads: usize,
    d_kv: usize,
}

impl SelfAttention {
    fn new(cfg: &Umt5Config, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(Self {
            q: linear_no_bias(cfg.d_model, inner, vb.pp("q"))?,
            k: linear_no_bias(cfg.d_model, inner, vb.pp("k"))?,
            v: linear_no_bias(cfg.d_model, inner, vb.pp("v"))?,
            o: linear_no_bias(inner, cfg.d_model, vb.pp("o"))?,
            relative_attention_bias: embedding(
                cfg.relative_attention_num_buckets,
                cfg.num_heads,
                vb.pp("relative_attention_bias"),
            )?,
            n_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `x`: `[b, s, d]`; `buckets`: `[s, s]` u32; `mask_bias`: `[b, 1, 1, s]` additive.
    fn forward(
        &self,
        x: &Tensor,
        buckets: &Tensor,
        mask_bias: &Tensor,
        q_scale: f64,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let heads = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, s, self.n_heads, self.d_kv))?
                .transpose(1, 2)?
                .contiguous()
        };
        let mut q = self.q.forward(x)?;
        if q_scale != 1.0 {
            q = (q * q_scale)?;
        }
        let q = heads(q)?;
        let k = heads(self.k.forward(x)?)?;
        let v = heads(self.v.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?;
        // [s, s, h] -> [1, h, s, s]
        let bias = self
            .relative_attention_bias
            .forward(buckets)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let bias = bias.broadcast_add(mask_bias)?;
        let scores = scores.broadcast_add(&bias)?;
        let dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, s, self.n_heads * self.d_kv))?;
        self.o.forward(&out)
    }
}

#[derive(Debug, Clone)]
enum FeedForward {
    Gated {
        wi_0: Linear,
        wi_1: Linear,
        wo: Linear,
    },
    Plain {
        wi: Linear,
        wo: Linear,
    },
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: RmsNorm,
    attn: SelfAttention,
    ff_norm: RmsNorm,
    ff: FeedForward,
    act: Activation,
}

impl Block {
    fn new(cfg: &Umt5Config, act: Activation, vb: VarBuilder) -> Result<Self> {
        let l0 = vb.pp("layer.0");
        let l1 = vb.pp("layer.1");
        let dense = l1.pp("DenseReluDense");
        let ff = if cfg.is_gated() {
            FeedForward::Gated {
                wi_0: linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi_0"))?,
                wi_1: linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi_1"))?,
                wo: linear_no_bias(cfg.d_ff, cfg.d_model, dense.pp("wo"))?,
            }
        } else {
            FeedForward::Plain {
                wi: linear_no_bias(cfg.d_model, cfg.d_ff, dense.pp("wi"))?,
                wo: linear_no_bias(cfg.d_ff, cfg.d_model, dense.pp("wo"))?,
            }
        };
        Ok(Self {
            attn_norm: RmsNorm::new(cfg.d_model, cfg.layer_norm_epsilon, l0.pp("layer_norm"))?,
            attn: SelfAttention::new(cfg, l0.pp("SelfAttention"))?,
            ff_norm: RmsNorm::new(cfg.d_model, cfg.layer_norm_epsilon, l1.pp("layer_norm"))?,
            ff,
            act,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        buckets: &Tensor,
        mask_bias: &Tensor,
        q_scale: f64,
    ) -> Result<Tensor> {
        let h =
            (x + self
                .attn
                .forward(&self.attn_norm.forward(x)?, buckets, mask_bias, q_scale)?)?;
        let h = clamp_f16(h)?;
        let n = self.ff_norm.forward(&h)?;
        let f = match &self.ff {
            FeedForward::Gated { wi_0, wi_1, wo } => {
                let g = wi_0.forward_act(&n, self.act.kernel())?;
                wo.forward(&(g * wi_1.forward(&n)?)?)?
            }
            FeedForward::Plain { wi, wo } => wo.forward(&wi.forward_act(&n, self.act.kernel())?)?,
        };
        clamp_f16((h + f)?)
    }
}

/// transformers clamps f16 activations just below the f16 maximum to keep them finite.
fn clamp_f16(x: Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F16 {
        let m = 65504.0 - 1000.0;
        x.clamp(-m, m)
    } else {
        Ok(x)
    }
}

/// The UMT5 encoder stack.
#[derive(Debug, Clone)]
pub struct Umt5EncoderModel {
    shared: crate::weights::Embedding,
    dtype: DType,
    blocks: Vec<Block>,
    final_layer_norm: RmsNorm,
    cfg: Umt5Config,
}

impl Umt5EncoderModel {
    /// Builds the encoder from checkpoint tensors (see the module docs for the names).
    ///
    /// The token embedding is read from `shared.weight`; checkpoints that store only the tied alias
    /// `encoder.embed_tokens.weight` are accepted too.
    pub fn new(cfg: &Umt5Config, vb: VarBuilder) -> Result<Self> {
        let act = cfg.activation().map_err(candle_core::Error::Msg)?;
        let shared = if vb.contains_tensor("shared.weight")
            || !vb.contains_tensor("encoder.embed_tokens.weight")
        {
            crate::weights::embedding(cfg.vocab_size, cfg.d_model, vb.pp("shared"))?
        } else {
            crate::weights::embedding(cfg.vocab_size, cfg.d_model, vb.pp("encoder.embed_tokens"))?
        };
        let enc = vb.pp("encoder");
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::new(cfg, act, enc.pp(format!("block.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = RmsNorm::new(
            cfg.d_model,
            cfg.layer_norm_epsilon,
            enc.pp("final_layer_norm"),
        )?;
        Ok(Self {
            shared,
            dtype: vb.dtype(),
            blocks,
            final_layer_norm,
            cfg: cfg.clone(),
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Umt5Config {
        &self.cfg
    }

    /// Encodes `input_ids` `[b, s]` (u32) with `attention_mask` `[b, s]` (1 = token, 0 = padding,
    /// any dtype) into the last hidden state `[b, s, d_model]`.
    ///
    /// With `erg` set, the query projections of the layers in `erg.layers` are multiplied by
    /// `erg.tau` (the reference's ERG-tag "null" condition).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        erg: Option<&QueryScale>,
    ) -> Result<Tensor> {
        let (_b, s) = input_ids.dims2()?;
        let mut h = self.shared.forward(input_ids)?.to_dtype(self.dtype)?;
        let dtype = h.dtype();
        let device = h.device().clone();
        let min = match dtype {
            DType::F16 => -65504.0,
            DType::BF16 => -3.3895313892515355e38,
            _ => f32::MIN as f64,
        };
        // (1 - mask) * finfo.min, shaped [b, 1, 1, s].
        let mask_bias = ((attention_mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)? * min)?)
            .to_dtype(dtype)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        let buckets = relative_position_buckets(
            s,
            s,
            self.cfg.relative_attention_num_buckets,
            self.cfg.relative_attention_max_distance,
            &device,
        )?;
        for (i, block) in self.blocks.iter().enumerate() {
            let q_scale = erg.map(|e| e.scale_for(i)).unwrap_or(1.0);
            h = block.forward(&h, &buckets, &mask_bias, q_scale)?;
        }
        self.final_layer_norm.forward(&h)
    }
}

//! DiT blocks: ReLU linear self-attention, softmax cross-attention, GLUMBConv feed-forward,
//! AdaLN-single modulation, and the reference's rotary embedding.

use acestep_kernels::{seq_depthwise_conv, Activation, Linear};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::lora::{linear, LoraLinear};

/// RMS normalisation without a gain (variance in f32, result in the input dtype).
pub(crate) fn rms_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    xf.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)
}

/// The reference's rotary tables (`Qwen2RotaryEmbedding`): `cos`/`sin` of shape `[len, head_dim]`,
/// each the concatenation `[freqs, freqs]`, computed in f32 and held in the model dtype.
#[derive(Debug, Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// Tables for positions `0..len`.
    pub fn new(
        head_dim: usize,
        theta: f64,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for p in 0..len {
            for rep in 0..2 {
                let _ = rep;
                for f in &inv_freq {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (len, head_dim), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (len, head_dim), device)?.to_dtype(dtype)?,
        })
    }

    /// Applies the rotation to `x` `[b, h, s, d]` for positions `0..s`, in f32, as the reference:
    /// `x * cos + rot(x) * sin` with `rot` pairing *adjacent* elements `(2i, 2i+1) -> (-x[2i+1], x[2i])`
    /// while `cos`/`sin` follow the half-split layout.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, s, d) = x.dims4()?;
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let pairs = xf.reshape((b, h, s, d / 2, 2))?;
        let re = pairs.narrow(4, 0, 1)?;
        let im = pairs.narrow(4, 1, 1)?;
        let rotated = Tensor::cat(&[&im.neg()?, &re], 4)?.reshape((b, h, s, d))?;
        let cos = self.cos.narrow(0, 0, s)?.to_dtype(DType::F32)?;
        let sin = self.sin.narrow(0, 0, s)?.to_dtype(DType::F32)?;
        (xf.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?.to_dtype(dtype)
    }

    /// Number of positions the tables cover.
    pub fn len(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// True when the tables cover no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `[b, s, h*d]` -> `[b, h, s, d]`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, c) = x.dims3()?;
    x.reshape((b, s, heads, c / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// The Sana-style ReLU linear attention (`CustomLiteLAProcessor2_0`), never materialising an
/// `s x s` matrix: `out = (V K^T) Q / (1^T K^T Q + eps)` per head, in f32.
#[derive(Debug, Clone)]
pub struct LinearSelfAttention {
    proj: Projections,
}

/// The projections of a diffusers `Attention` (`to_q`, `to_k`, `to_v`, `to_out.0`), shared by
/// the self- and cross-attention.
#[derive(Debug, Clone)]
struct Projections {
    to_q: LoraLinear,
    to_k: LoraLinear,
    to_v: LoraLinear,
    to_out: LoraLinear,
    heads: usize,
}

impl Projections {
    fn linears(&mut self) -> [&mut LoraLinear; 4] {
        [
            &mut self.to_q,
            &mut self.to_k,
            &mut self.to_v,
            &mut self.to_out,
        ]
    }

    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            to_q: linear(dim, dim, vb.pp("to_q"))?,
            to_k: linear(dim, dim, vb.pp("to_k"))?,
            to_v: linear(dim, dim, vb.pp("to_v"))?,
            to_out: linear(dim, dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    /// `to_q(x)`, scaled by `q_scale` (ERG), split into heads `[b, h, s, d]`, RoPE applied.
    fn query(&self, x: &Tensor, rope: &Rotary, q_scale: f64) -> Result<Tensor> {
        let mut q = self.to_q.forward(x)?;
        if q_scale != 1.0 {
            q = (q * q_scale)?;
        }
        rope.apply(&split_heads(&q, self.heads)?)
    }

    /// `to_k(x)` in heads with RoPE applied.
    fn keys(&self, x: &Tensor, rope: &Rotary) -> Result<Tensor> {
        rope.apply(&split_heads(&self.to_k.forward(x)?, self.heads)?)
    }

    /// `to_v(x)` in heads.
    fn values(&self, x: &Tensor) -> Result<Tensor> {
        split_heads(&self.to_v.forward(x)?, self.heads)
    }
}

impl LinearSelfAttention {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: Projections::new(dim, heads, vb)?,
        })
    }

    /// `x`: `[b, s, c]`; `mask`: `[b, 1, s, 1]` in the model dtype (1 = frame, 0 = padding).
    fn forward(&self, x: &Tensor, mask: &Tensor, rope: &Rotary, q_scale: f64) -> Result<Tensor> {
        let (b, s, c) = x.dims3()?;
        let dtype = x.dtype();
        let heads = self.proj.heads;
        let q = self.proj.query(x, rope, q_scale)?;
        let k = self.proj.keys(x, rope)?;
        let v = self.proj.values(x)?;
        // Masking, ReLU kernel, then everything in f32.
        let q = q.broadcast_mul(mask)?.relu()?.to_dtype(DType::F32)?;
        let k = k.broadcast_mul(mask)?.relu()?.to_dtype(DType::F32)?;
        let v = v.broadcast_mul(mask)?.to_dtype(DType::F32)?;
        let d = c / heads;
        // value [b, h, d, s] padded with a row of ones -> [b, h, d+1, s]
        let ones = Tensor::ones((b, heads, 1, s), DType::F32, x.device())?;
        let v_pad = Tensor::cat(&[&v.transpose(2, 3)?, &ones], 2)?.contiguous()?;
        let vk = v_pad.matmul(&k)?; // [b, h, d+1, d]
        let out = vk.matmul(&q.transpose(2, 3)?.contiguous()?)?; // [b, h, d+1, s]
        let num = out.narrow(2, 0, d)?;
        let den = (out.narrow(2, d, 1)? + 1e-15)?;
        let out = num.broadcast_div(&den)?; // [b, h, d, s]
        let out = out
            .reshape((b, c, s))?
            .transpose(1, 2)?
            .contiguous()?
            .to_dtype(dtype)?;
        self.proj.to_out.forward(&out)
    }
}

/// Softmax cross-attention onto the condition sequence (`CustomerAttnProcessor2_0`), RoPE on the
/// queries (latent positions) and keys (condition positions).
#[derive(Debug, Clone)]
pub struct CrossAttention {
    proj: Projections,
}

impl CrossAttention {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: Projections::new(dim, heads, vb)?,
        })
    }

    /// Keys and values of the condition sequence, with RoPE on the keys: computed once per
    /// condition and reused by every diffusion step.
    pub fn context(&self, enc: &Tensor, rope_cross: &Rotary) -> Result<(Tensor, Tensor)> {
        Ok((self.proj.keys(enc, rope_cross)?, self.proj.values(enc)?))
    }

    /// `x`: `[b, s, c]`; `kv`: from [`CrossAttention::context`]; `bias`: `[b, 1, s, s_enc]` (0 / -inf).
    fn forward(
        &self,
        x: &Tensor,
        kv: &(Tensor, Tensor),
        bias: &Tensor,
        rope: &Rotary,
        q_scale: f64,
    ) -> Result<Tensor> {
        let (b, s, c) = x.dims3()?;
        let q = self.proj.query(x, rope, q_scale)?;
        let d = c / self.proj.heads;
        let scores = (q.matmul(&kv.0.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(bias)?;
        let dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out = probs.matmul(&kv.1)?.transpose(1, 2)?.reshape((b, s, c))?;
        self.proj.to_out.forward(&out)
    }
}

/// GLU MBConv feed-forward: 1x1 conv (SiLU) -> depthwise conv k=3 -> GLU (SiLU gate) -> 1x1 conv.
/// Runs in `[b, s, c]` layout: the 1x1 convolutions are matmuls, the depthwise one three shifted
/// multiply-adds.
#[derive(Debug, Clone)]
pub struct GluMbConv {
    inverted: Linear,
    depth_w: Tensor,
    depth_b: Tensor,
    point: Linear,
}

impl GluMbConv {
    fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let inverted =
            crate::weights::conv1x1_linear(dim, 2 * hidden, true, vb.pp("inverted_conv.conv"))?;
        let depth_w = vb
            .get((2 * hidden, 1, 3), "depth_conv.conv.weight")?
            .squeeze(1)?
            .t()?
            .contiguous()?; // [3, 2h]
        let depth_b = vb.get(2 * hidden, "depth_conv.conv.bias")?;
        let point = crate::weights::conv1x1_linear(hidden, dim, false, vb.pp("point_conv.conv"))?;
        Ok(Self {
            inverted,
            depth_w,
            depth_b,
            point,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inverted.forward_act(x, Activation::Silu)?; // [b, s, 2h]
                                                                 // Depthwise k = 3 along the sequence, bias, then the SiLU-gated GLU: one pass.
        let g = seq_depthwise_conv(&y, &self.depth_w, &self.depth_b, 1, Some(Activation::Silu))?;
        self.point.forward(&g)
    }
}

/// One DiT block (`LinearTransformerBlock` with AdaLN-single and cross-attention).
#[derive(Debug, Clone)]
pub struct LinearTransformerBlock {
    attn: LinearSelfAttention,
    cross_attn: CrossAttention,
    ff: GluMbConv,
    scale_shift_table: Tensor,
}

impl LinearTransformerBlock {
    /// Builds block tensors under `transformer_blocks.{i}`.
    pub fn new(dim: usize, heads: usize, mlp_ratio: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attn: LinearSelfAttention::new(dim, heads, vb.pp("attn"))?,
            cross_attn: CrossAttention::new(dim, heads, vb.pp("cross_attn"))?,
            ff: GluMbConv::new(dim, (dim as f64 * mlp_ratio) as usize, vb.pp("ff"))?,
            scale_shift_table: vb.get((6, dim), "scale_shift_table")?,
        })
    }

    /// The block's LoRA-capable layers (self- and cross-attention projections).
    pub(crate) fn lora_linears(&mut self) -> Vec<&mut LoraLinear> {
        let mut v: Vec<&mut LoraLinear> = self.attn.proj.linears().into_iter().collect();
        v.extend(self.cross_attn.proj.linears());
        v
    }

    /// The block's cross-attention keys/values for an encoder sequence.
    pub fn cross_context(&self, enc: &Tensor, rope_cross: &Rotary) -> Result<(Tensor, Tensor)> {
        self.cross_attn.context(enc, rope_cross)
    }

    /// One block. `temb`: `[b, 6c]`; `self_mask`: `[b, 1, s, 1]`; `cross_bias`: `[b, 1, s, s_enc]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        self_mask: &Tensor,
        kv: &(Tensor, Tensor),
        cross_bias: &Tensor,
        rope: &Rotary,
        q_scale: f64,
    ) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let mods = self
            .scale_shift_table
            .unsqueeze(0)?
            .broadcast_add(&temb.reshape((b, 6, c))?)?;
        let m = |i: usize| mods.narrow(1, i, 1);
        let (shift_msa, scale_msa, gate_msa) = (m(0)?, m(1)?, m(2)?);
        let (shift_mlp, scale_mlp, gate_mlp) = (m(3)?, m(4)?, m(5)?);

        let n = rms_norm(x, 1e-6)?
            .broadcast_mul(&(scale_msa + 1.0)?)?
            .broadcast_add(&shift_msa)?;
        let a = self.attn.forward(&n, self_mask, rope, q_scale)?;
        let x = (a.broadcast_mul(&gate_msa)? + x)?;

        let a = self.cross_attn.forward(&x, kv, cross_bias, rope, q_scale)?;
        let x = (a + x)?;

        let n = rms_norm(&x, 1e-6)?
            .broadcast_mul(&(scale_mlp + 1.0)?)?
            .broadcast_add(&shift_mlp)?;
        let f = self.ff.forward(&n)?.broadcast_mul(&gate_mlp)?;
        x + f
    }
}

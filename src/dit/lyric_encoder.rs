//! The Conformer lyric encoder of the DiT (`lyric_encoder.*`).
//!
//! The reference instantiates its `ConformerEncoder` with `static_chunk_size=0` and defaults:
//! a linear input embedding (Linear + LayerNorm) with ESPnet relative positional encoding,
//! pre-norm blocks of relative-position multi-head self-attention (Transformer-XL `pos_bias_u`,
//! `pos_bias_v`, `rel_shift`) and a Swish feed-forward, no macaron feed-forward, no convolution
//! module, full (non-chunked) attention masked on padded keys, and a final LayerNorm.

use acestep_kernels::{rel_position_softmax, Activation};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, LayerNormConfig, VarBuilder};

use crate::erg::QueryScale;
use crate::lora::{linear, LoraLinear};

/// Size of the Conformer (the reference hard-codes output 1024, 16 heads, 4096 units, 6 blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConformerConfig {
    /// Input width (the lyric embedding width).
    pub input_size: usize,
    /// Model width.
    pub output_size: usize,
    /// Attention heads.
    pub attention_heads: usize,
    /// Feed-forward width.
    pub linear_units: usize,
    /// Encoder blocks.
    pub num_blocks: usize,
}

fn ln(size: usize, vb: VarBuilder) -> Result<LayerNorm> {
    layer_norm(
        size,
        LayerNormConfig {
            eps: 1e-5,
            ..Default::default()
        },
        vb,
    )
}

/// The ESPnet relative positional encoding for a sequence of `t` frames: `[1, 2t - 1, d]`, row `j`
/// encoding the relative position `t - 1 - j`, computed in f32 as the reference does.
pub fn rel_positional_encoding(t: usize, d: usize, device: &Device) -> Result<Tensor> {
    let scale = -((10000f64).ln() / d as f64) as f32;
    let div: Vec<f32> = (0..d / 2).map(|i| ((2 * i) as f32 * scale).exp()).collect();
    let rows = 2 * t - 1;
    let mut v = vec![0f32; rows * d];
    for j in 0..rows {
        let r = t as i64 - 1 - j as i64;
        let (p, sign) = (r.unsigned_abs() as f32, if r < 0 { -1f32 } else { 1f32 });
        for (i, dv) in div.iter().enumerate() {
            let a = sign * (p * dv);
            v[j * d + 2 * i] = a.sin();
            v[j * d + 2 * i + 1] = a.cos();
        }
    }
    Tensor::from_vec(v, (1, rows, d), device)
}

#[derive(Debug, Clone)]
struct RelPositionAttention {
    linear_q: LoraLinear,
    linear_k: LoraLinear,
    linear_v: LoraLinear,
    linear_out: LoraLinear,
    linear_pos: LoraLinear,
    pos_bias_u: Tensor,
    pos_bias_v: Tensor,
    h: usize,
    d_k: usize,
}

impl RelPositionAttention {
    fn new(n_feat: usize, h: usize, vb: VarBuilder) -> Result<Self> {
        let d_k = n_feat / h;
        Ok(Self {
            linear_q: linear(n_feat, n_feat, vb.pp("linear_q"))?,
            linear_k: linear(n_feat, n_feat, vb.pp("linear_k"))?,
            linear_v: linear(n_feat, n_feat, vb.pp("linear_v"))?,
            linear_out: linear(n_feat, n_feat, vb.pp("linear_out"))?,
            linear_pos: LoraLinear::new(
                crate::weights::linear(n_feat, n_feat, false, vb.pp("linear_pos"))?,
                vb.pp("linear_pos").prefix(),
            ),
            pos_bias_u: vb.get((h, d_k), "pos_bias_u")?,
            pos_bias_v: vb.get((h, d_k), "pos_bias_v")?,
            h,
            d_k,
        })
    }

    /// `x`: `[b, t, d]`; `key_bias`: `[b, 1, 1, t]` (0 / -inf);
    /// `pos_emb`: `[1, 2t-1, d]`.
    fn forward(
        &self,
        x: &Tensor,
        key_bias: &Tensor,
        pos_emb: &Tensor,
        q_scale: f64,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let mut q = self.linear_q.forward(x)?;
        if q_scale != 1.0 {
            q = (q * q_scale)?;
        }
        let q = q.reshape((b, t, self.h, self.d_k))?;
        let heads = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.h, self.d_k))?
                .transpose(1, 2)?
                .contiguous()
        };
        let k = heads(self.linear_k.forward(x)?)?;
        let v = heads(self.linear_v.forward(x)?)?;
        let n = pos_emb.dim(1)?;
        let p = self
            .linear_pos
            .forward(pos_emb)?
            .reshape((1, n, self.h, self.d_k))?
            .transpose(1, 2)?
            .contiguous()?;
        let q_u = q
            .broadcast_add(&self.pos_bias_u)?
            .transpose(1, 2)?
            .contiguous()?;
        let q_v = q
            .broadcast_add(&self.pos_bias_v)?
            .transpose(1, 2)?
            .contiguous()?;
        let ac = q_u.matmul(&k.t()?)?;
        let bd = q_v.broadcast_matmul(&p.t()?)?;
        // Shift, scale, key bias, softmax and masked_fill(mask, 0) in one pass: padded keys get
        // exactly zero weight (and a fully padded sequence zeros rather than NaN, as in the
        // reference).
        let attn = rel_position_softmax(&ac, &bd, key_bias, 1.0 / (self.d_k as f64).sqrt())?;
        let out = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.h * self.d_k))?;
        self.linear_out.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct ConformerLayer {
    norm_mha: LayerNorm,
    self_attn: RelPositionAttention,
    norm_ff: LayerNorm,
    w_1: LoraLinear,
    w_2: LoraLinear,
}

impl ConformerLayer {
    fn new(cfg: &ConformerConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.output_size;
        Ok(Self {
            norm_mha: ln(d, vb.pp("norm_mha"))?,
            self_attn: RelPositionAttention::new(d, cfg.attention_heads, vb.pp("self_attn"))?,
            norm_ff: ln(d, vb.pp("norm_ff"))?,
            w_1: linear(d, cfg.linear_units, vb.pp("feed_forward.w_1"))?,
            w_2: linear(cfg.linear_units, d, vb.pp("feed_forward.w_2"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        key_bias: &Tensor,
        pos_emb: &Tensor,
        q_scale: f64,
    ) -> Result<Tensor> {
        let a = self
            .self_attn
            .forward(&self.norm_mha.forward(x)?, key_bias, pos_emb, q_scale)?;
        let x = (x + a)?;
        let f = self.w_2.forward(
            &self
                .w_1
                .forward_act(&self.norm_ff.forward(&x)?, Activation::Silu)?,
        )?;
        x + f
    }
}

/// The lyric Conformer encoder.
#[derive(Debug, Clone)]
pub struct ConformerEncoder {
    embed_linear: LoraLinear,
    embed_norm: LayerNorm,
    layers: Vec<ConformerLayer>,
    after_norm: LayerNorm,
    d_model: usize,
}

impl ConformerEncoder {
    /// Builds the encoder from `lyric_encoder.*` tensors.
    pub fn new(cfg: &ConformerConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.output_size;
        let layers = (0..cfg.num_blocks)
            .map(|i| ConformerLayer::new(cfg, vb.pp(format!("encoders.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_linear: linear(cfg.input_size, d, vb.pp("embed.out.0"))?,
            embed_norm: ln(d, vb.pp("embed.out.1"))?,
            layers,
            after_norm: ln(d, vb.pp("after_norm"))?,
            d_model: d,
        })
    }

    /// The encoder's LoRA-capable layers.
    pub(crate) fn lora_linears(&mut self) -> Vec<&mut LoraLinear> {
        let mut v = vec![&mut self.embed_linear];
        for l in &mut self.layers {
            let a = &mut l.self_attn;
            v.extend([
                &mut a.linear_q,
                &mut a.linear_k,
                &mut a.linear_v,
                &mut a.linear_out,
                &mut a.linear_pos,
                &mut l.w_1,
                &mut l.w_2,
            ]);
        }
        v
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.layers.len()
    }

    /// Encodes `xs` `[b, t, input_size]` with `mask` `[b, t]` (1 = token, 0 = padding, any
    /// dtype). With `erg`, the `linear_q` outputs of the blocks in `erg.layers` are scaled by
    /// `erg.tau` (ERG-lyric).
    pub fn forward(&self, xs: &Tensor, mask: &Tensor, erg: Option<&QueryScale>) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let dtype = xs.dtype();
        let x = self.embed_norm.forward(&self.embed_linear.forward(xs)?)?;
        let x = (x * (self.d_model as f64).sqrt())?;
        let pos_emb = rel_positional_encoding(t, self.d_model, xs.device())?.to_dtype(dtype)?;
        let valid = mask.to_dtype(DType::F32)?.ne(0f32)?.reshape((b, 1, 1, t))?;
        let neg_inf = Tensor::full(f32::NEG_INFINITY, (b, 1, 1, t), xs.device())?;
        let zeros = Tensor::zeros((b, 1, 1, t), DType::F32, xs.device())?;
        let key_bias = valid.where_cond(&zeros, &neg_inf)?.to_dtype(dtype)?;
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let s = erg.map(|e| e.scale_for(i)).unwrap_or(1.0);
            x = layer.forward(&x, &key_bias, &pos_emb, s)?;
        }
        self.after_norm.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_encoding_is_centred() {
        let pe = rel_positional_encoding(3, 4, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = pe.squeeze(0).unwrap().to_vec2().unwrap();
        // The middle row is relative position 0: sin 0 = 0, cos 0 = 1.
        assert_eq!(rows[2], vec![0.0, 1.0, 0.0, 1.0]);
        assert!((rows[1][0] - 1f32.sin()).abs() < 1e-7);
        assert!((rows[3][0] + 1f32.sin()).abs() < 1e-7);
    }
}

//! The ACE-Step diffusion transformer (`ace_step_transformer/`): the reference
//! `ACEStepTransformer2DModel` with its Conformer lyric encoder.
//!
//! - [`AceStepTransformer2DModel::encode`] builds the condition sequence
//!   `[speaker (1) | prompt (UMT5 tokens) | lyrics]` and its mask.
//! - [`AceStepTransformer2DModel::decode`] predicts the flow-matching velocity of latents
//!   `[b, 8, 16, t]` at a timestep: patch embedding, 24 blocks of ReLU linear self-attention +
//!   softmax cross-attention + GLUMBConv with AdaLN-single, a final T2I layer and unpatchify.
//! - ERG: both take an optional [`QueryScale`] (ERG-lyric on the Conformer's `linear_q`,
//!   ERG-diffusion on the blocks' `attn.to_q` and `cross_attn.to_q`).
//!
//! The cross-attention keys and values depend only on the condition, so
//! [`AceStepTransformer2DModel::prepare_condition`] computes them once and
//! [`AceStepTransformer2DModel::decode_with`] reuses them at every diffusion step.
//!
//! ```no_run
//! use acestep::dit::AceStepTransformer2DModel;
//! use acestep::Checkpoint;
//! use candle_core::{DType, Device, Tensor};
//!
//! let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! let dev = Device::Cpu;
//! let dit = AceStepTransformer2DModel::load(&ckpt, &dev, DType::F32)?;
//! let (b, t) = (1, 107); // 10 s of audio
//! let text = Tensor::zeros((b, 12, 768), DType::F32, &dev)?;
//! let text_mask = Tensor::ones((b, 12), DType::F32, &dev)?;
//! let speaker = Tensor::zeros((b, 512), DType::F32, &dev)?;
//! let lyrics = Tensor::zeros((b, 1), DType::U32, &dev)?;
//! let lyric_mask = Tensor::ones((b, 1), DType::F32, &dev)?;
//! let (enc, enc_mask) = dit.encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)?;
//! let latents = Tensor::randn(0f32, 1.0, (b, 8, 16, t), &dev)?;
//! let mask = Tensor::ones((b, t), DType::F32, &dev)?;
//! let timestep = Tensor::new(&[999f32], &dev)?;
//! let v = dit.decode(&latents, &mask, &enc, &enc_mask, &timestep, t, None)?;
//! assert_eq!(v.dims(), &[b, 8, 16, t]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod attention;
pub mod lyric_encoder;

use std::path::Path;

use acestep_kernels::Linear;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};

use crate::lora::{linear, LoraAdapter, LoraLinear, LoraTarget};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Component};
use crate::erg::QueryScale;
use crate::error::{Error, Result};
use crate::weights::load_safetensors;
use attention::{rms_norm, LinearTransformerBlock, Rotary};
use lyric_encoder::{ConformerConfig, ConformerEncoder};

/// `ace_step_transformer/config.json` (the reference `ACEStepTransformer2DModel` arguments).
///
/// Defaults are the reference constructor's. The `lyric_encoder_*` keys are ours: the reference
/// hard-codes its Conformer's size to exactly these defaults, and small test checkpoints set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AceStepTransformerConfig {
    /// Latent channels in (8).
    pub in_channels: usize,
    /// Number of DiT blocks.
    pub num_layers: usize,
    /// Model width (recomputed by the reference as heads x head_dim).
    pub inner_dim: usize,
    /// Per-head width.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward expansion of the GLUMBConv.
    pub mlp_ratio: f64,
    /// Latent channels out (8).
    pub out_channels: usize,
    /// RoPE table length.
    pub max_position: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Speaker embedding width.
    pub speaker_embedding_dim: usize,
    /// UMT5 hidden width.
    pub text_embedding_dim: usize,
    /// Depth of each SSL projector (training only).
    pub ssl_encoder_depths: Vec<usize>,
    /// Names of the SSL projectors (training only).
    pub ssl_names: Vec<String>,
    /// Widths of the SSL latents (training only).
    pub ssl_latent_dims: Vec<usize>,
    /// Lyric token vocabulary.
    pub lyric_encoder_vocab_size: usize,
    /// Lyric embedding width.
    pub lyric_hidden_size: usize,
    /// Patch size (height, width).
    pub patch_size: Vec<usize>,
    /// Latent height (16).
    pub max_height: usize,
    /// Maximum latent width.
    pub max_width: usize,
    /// Conformer output width (reference: 1024).
    pub lyric_encoder_output_size: usize,
    /// Conformer heads (reference: 16).
    pub lyric_encoder_attention_heads: usize,
    /// Conformer feed-forward width (reference: 4096).
    pub lyric_encoder_linear_units: usize,
    /// Conformer blocks (reference: 6).
    pub lyric_encoder_num_blocks: usize,
}

impl Default for AceStepTransformerConfig {
    fn default() -> Self {
        Self {
            in_channels: 8,
            num_layers: 28,
            inner_dim: 1536,
            attention_head_dim: 64,
            num_attention_heads: 24,
            mlp_ratio: 4.0,
            out_channels: 8,
            max_position: 32768,
            rope_theta: 1_000_000.0,
            speaker_embedding_dim: 512,
            text_embedding_dim: 768,
            ssl_encoder_depths: vec![9, 9],
            ssl_names: vec!["mert".into(), "m-hubert".into()],
            ssl_latent_dims: vec![1024, 768],
            lyric_encoder_vocab_size: 6681,
            lyric_hidden_size: 1024,
            patch_size: vec![16, 1],
            max_height: 16,
            max_width: 4096,
            lyric_encoder_output_size: 1024,
            lyric_encoder_attention_heads: 16,
            lyric_encoder_linear_units: 4096,
            lyric_encoder_num_blocks: 6,
        }
    }
}

impl AceStepTransformerConfig {
    /// Reads `{root}/ace_step_transformer/config.json` of `checkpoint`.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self> {
        crate::config::read_config(&checkpoint.config_path(Component::Transformer)?)
    }

    /// The model width the reference really uses: heads x head_dim.
    pub fn model_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// The Conformer's size.
    pub fn conformer(&self) -> ConformerConfig {
        ConformerConfig {
            input_size: self.lyric_hidden_size,
            output_size: self.lyric_encoder_output_size,
            attention_heads: self.lyric_encoder_attention_heads,
            linear_units: self.lyric_encoder_linear_units,
            num_blocks: self.lyric_encoder_num_blocks,
        }
    }

    /// Checks the values the model's arithmetic relies on; the message names the key and value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let checks: [(bool, String); 7] = [
            (self.in_channels == 8 && self.out_channels == 8, format!("in_channels/out_channels must be 8, got {}/{}", self.in_channels, self.out_channels)),
            (self.patch_size == vec![16, 1], format!("patch_size must be [16, 1], got {:?}", self.patch_size)),
            (self.attention_head_dim.is_multiple_of(2) && self.attention_head_dim > 0, format!("attention_head_dim must be even, got {}", self.attention_head_dim)),
            (self.num_attention_heads > 0, format!("num_attention_heads must be positive, got {}", self.num_attention_heads)),
            (self.lyric_encoder_output_size == self.lyric_hidden_size, format!("lyric_encoder_output_size ({}) must equal lyric_hidden_size ({})", self.lyric_encoder_output_size, self.lyric_hidden_size)),
            (self.lyric_encoder_attention_heads > 0 && self.lyric_encoder_output_size.is_multiple_of(self.lyric_encoder_attention_heads), format!("lyric_encoder_output_size ({}) must be a multiple of lyric_encoder_attention_heads ({})", self.lyric_encoder_output_size, self.lyric_encoder_attention_heads)),
            (self.lyric_encoder_output_size.is_multiple_of(2), format!("lyric_encoder_output_size must be even, got {}", self.lyric_encoder_output_size)),
        ];
        for (ok, msg) in checks {
            if !ok {
                return Err(msg);
            }
        }
        Ok(())
    }
}

/// The reference's sinusoidal timestep features (diffusers `Timesteps(256, flip_sin_to_cos=True,
/// downscale_freq_shift=0)`): `[b, 256]` f32, `[cos | sin]`, computed in f32.
pub fn timestep_features(timestep: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let ts: Vec<f32> = timestep.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let half = dim / 2;
    let scale = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (scale * i as f32 / half as f32).exp())
        .collect();
    let mut v = Vec::with_capacity(ts.len() * dim);
    for t in &ts {
        v.extend(freqs.iter().map(|f| (t * f).cos()));
        v.extend(freqs.iter().map(|f| (t * f).sin()));
    }
    Tensor::from_vec(v, (ts.len(), dim), timestep.device())
}

/// A condition prepared for repeated decoding: the encoder sequence, its mask, and every block's
/// cross-attention keys and values.
#[derive(Debug, Clone)]
pub struct PreparedCondition {
    encoder_mask: Tensor,
    kv: Vec<(Tensor, Tensor)>,
}

/// The ACE-Step DiT.
#[derive(Debug, Clone)]
pub struct AceStepTransformer2DModel {
    cfg: AceStepTransformerConfig,
    blocks: Vec<LinearTransformerBlock>,
    time_linear_1: LoraLinear,
    time_linear_2: LoraLinear,
    t_block: LoraLinear,
    speaker_embedder: LoraLinear,
    genre_embedder: LoraLinear,
    lyric_embs: Embedding,
    lyric_encoder: ConformerEncoder,
    lyric_proj: LoraLinear,
    patch_conv1: Linear,
    patch_norm_w: Tensor,
    patch_norm_b: Tensor,
    patch_conv2: Linear,
    final_table: Tensor,
    final_linear: LoraLinear,
}

impl LoraTarget for AceStepTransformer2DModel {
    fn lora_linears(&mut self) -> Vec<&mut LoraLinear> {
        let mut v = vec![
            &mut self.time_linear_1,
            &mut self.time_linear_2,
            &mut self.t_block,
            &mut self.speaker_embedder,
            &mut self.genre_embedder,
            &mut self.lyric_proj,
            &mut self.final_linear,
        ];
        v.extend(self.lyric_encoder.lora_linears());
        for b in &mut self.blocks {
            v.extend(b.lora_linears());
        }
        v
    }
}

/// Checkpoint key prefixes that are in `ace_step_transformer/` but not used for inference: the
/// training-only SSL projectors, and the cross-attention context projections (`add_*_proj`,
/// `to_add_out`) that the reference's attention processor never calls.
pub fn is_unused_key(name: &str) -> bool {
    name.starts_with("projectors.")
        || (name.contains(".cross_attn.")
            && ["add_q_proj.", "add_k_proj.", "add_v_proj.", "to_add_out."]
                .iter()
                .any(|m| name.contains(m)))
}

impl AceStepTransformer2DModel {
    /// Builds the model from `ace_step_transformer/` tensors.
    pub fn new(cfg: &AceStepTransformerConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let dim = cfg.model_dim();
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                LinearTransformerBlock::new(
                    dim,
                    cfg.num_attention_heads,
                    cfg.mlp_ratio,
                    vb.pp(format!("transformer_blocks.{i}")),
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pin = cfg.in_channels * 256;
        let p = vb.pp("proj_in.early_conv_layers");
        let conv1_w = p
            .get(
                (pin, cfg.in_channels, cfg.patch_size[0], cfg.patch_size[1]),
                "0.weight",
            )?
            .reshape((pin, cfg.in_channels * cfg.patch_size[0] * cfg.patch_size[1]))?;
        let conv2_w = p.get((dim, pin, 1, 1), "2.weight")?.reshape((dim, pin))?;
        Ok(Self {
            blocks,
            time_linear_1: linear(256, dim, vb.pp("timestep_embedder.linear_1"))?,
            time_linear_2: linear(dim, dim, vb.pp("timestep_embedder.linear_2"))?,
            t_block: linear(dim, 6 * dim, vb.pp("t_block.1"))?,
            speaker_embedder: linear(cfg.speaker_embedding_dim, dim, vb.pp("speaker_embedder"))?,
            genre_embedder: linear(cfg.text_embedding_dim, dim, vb.pp("genre_embedder"))?,
            lyric_embs: embedding(
                cfg.lyric_encoder_vocab_size,
                cfg.lyric_hidden_size,
                vb.pp("lyric_embs"),
            )?,
            lyric_encoder: ConformerEncoder::new(&cfg.conformer(), vb.pp("lyric_encoder"))?,
            lyric_proj: linear(cfg.lyric_hidden_size, dim, vb.pp("lyric_proj"))?,
            patch_conv1: Linear::new(conv1_w, Some(p.get(pin, "0.bias")?)),
            patch_norm_w: p.get(pin, "1.weight")?,
            patch_norm_b: p.get(pin, "1.bias")?,
            patch_conv2: Linear::new(conv2_w, Some(p.get(dim, "2.bias")?)),
            final_table: vb.get((2, dim), "final_layer.scale_shift_table")?,
            final_linear: linear(
                dim,
                cfg.patch_size[0] * cfg.patch_size[1] * cfg.out_channels,
                vb.pp("final_layer.linear"),
            )?,
            cfg: cfg.clone(),
        })
    }

    /// A copy of the model with `adapter` attached at `weight` (the reference's `load_lora`
    /// then `set_weights_and_activate_adapters`). The copy shares every base tensor with `self`,
    /// which is left as it is: dropping the copy is the reference's `unload_lora`.
    pub fn with_lora(&self, adapter: &LoraAdapter, weight: f64) -> Result<Self> {
        let mut m = self.clone();
        crate::lora::remove(&mut m);
        adapter.apply(&mut m, weight)?;
        Ok(m)
    }

    /// Loads `ace_step_transformer/` of `checkpoint`.
    pub fn load(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_dir(
            &checkpoint.component_dir(Component::Transformer)?,
            device,
            dtype,
        )
    }

    /// Loads from an `ace_step_transformer`-style folder.
    pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: AceStepTransformerConfig = crate::config::read_config(&cfg_path)?;
        cfg.validate().map_err(|message| Error::ConfigValue {
            path: cfg_path.clone(),
            message,
        })?;
        let gguf = crate::quant::gguf_path(dir, Component::Transformer);
        let loaded = if gguf.is_file() {
            crate::quant::load_gguf(&gguf, dtype, device, |vb| Self::new(&cfg, vb))?
        } else {
            let weights = vec![dir.join(Component::Transformer.weights_file())];
            load_safetensors(&weights, dtype, device, |vb| Self::new(&cfg, vb))?
        };
        let unexpected: Vec<&String> = loaded.unused.iter().filter(|k| !is_unused_key(k)).collect();
        if !unexpected.is_empty() {
            tracing::warn!(
                "ace_step_transformer: {} unexpected tensors, e.g. {}",
                unexpected.len(),
                unexpected[0]
            );
        }
        Ok(loaded.model)
    }

    /// The model's config.
    pub fn config(&self) -> &AceStepTransformerConfig {
        &self.cfg
    }

    /// The dtype the weights were loaded in.
    pub fn dtype(&self) -> DType {
        self.final_table.dtype()
    }

    /// Number of DiT blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Number of Conformer blocks.
    pub fn num_lyric_layers(&self) -> usize {
        self.lyric_encoder.num_blocks()
    }

    fn check_range(
        what: &'static str,
        erg: Option<&QueryScale>,
        n: usize,
    ) -> candle_core::Result<()> {
        if let Some(e) = erg {
            if e.layers.end > n || e.layers.start >= e.layers.end {
                candle_core::bail!(
                    "{what} ERG layer range {:?} is not inside the model's 0..{n} layers",
                    e.layers
                );
            }
        }
        Ok(())
    }

    /// `encode`: the condition sequence `[speaker | genre(text) | lyric]` `[b, 1 + s_t + s_l, c]`
    /// and its mask `[b, 1 + s_t + s_l]` (f32). `text_hidden_states`: `[b, s_t, 768]` UMT5
    /// output; `speaker_embeds`: `[b, 512]`; `lyric_token_ids`: `[b, s_l]` u32; masks: 1/0, any
    /// dtype. `erg_lyric` scales the Conformer's query projections (ERG-lyric).
    pub fn encode(
        &self,
        text_hidden_states: &Tensor,
        text_mask: &Tensor,
        speaker_embeds: &Tensor,
        lyric_token_ids: &Tensor,
        lyric_mask: &Tensor,
        erg_lyric: Option<&QueryScale>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        Self::check_range("lyric", erg_lyric, self.num_lyric_layers())?;
        let dtype = self.final_table.dtype();
        let b = text_hidden_states.dim(0)?;
        let spk = self
            .speaker_embedder
            .forward(&speaker_embeds.to_dtype(dtype)?)?
            .unsqueeze(1)?;
        let text = self
            .genre_embedder
            .forward(&text_hidden_states.to_dtype(dtype)?)?;
        let ids = lyric_token_ids.to_dtype(DType::U32)?;
        let max_id = ids.max_all()?.to_scalar::<u32>()?;
        if max_id as usize >= self.cfg.lyric_encoder_vocab_size {
            candle_core::bail!(
                "lyric token id {max_id} is out of range for the lyric vocabulary of {} tokens",
                self.cfg.lyric_encoder_vocab_size
            );
        }
        let lyr = self.lyric_embs.forward(&ids)?;
        let lyr = self.lyric_encoder.forward(&lyr, lyric_mask, erg_lyric)?;
        let lyr = self.lyric_proj.forward(&lyr)?;
        let enc = Tensor::cat(&[&spk, &text, &lyr], 1)?;
        let ones = Tensor::ones((b, 1), DType::F32, enc.device())?;
        let mask = Tensor::cat(
            &[
                &ones,
                &text_mask.to_dtype(DType::F32)?,
                &lyric_mask.to_dtype(DType::F32)?,
            ],
            1,
        )?;
        Ok((enc, mask))
    }

    /// Precomputes the cross-attention keys/values of a condition for [`Self::decode_with`].
    pub fn prepare_condition(
        &self,
        encoder_hidden_states: &Tensor,
        encoder_mask: &Tensor,
    ) -> candle_core::Result<PreparedCondition> {
        let dtype = self.final_table.dtype();
        let enc = encoder_hidden_states.to_dtype(dtype)?;
        let rope = Rotary::new(
            self.cfg.attention_head_dim,
            self.cfg.rope_theta,
            enc.dim(1)?,
            dtype,
            enc.device(),
        )?;
        let kv = self
            .blocks
            .iter()
            .map(|blk| blk.cross_context(&enc, &rope))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(PreparedCondition {
            encoder_mask: encoder_mask.to_dtype(DType::F32)?,
            kv,
        })
    }

    /// `decode`: the velocity `[b, 8, 16, output_length]` of `latents` `[b, 8, 16, t]` at
    /// `timestep` `[b]` (0..1000) given a condition from [`Self::encode`]. `attention_mask`:
    /// `[b, t]` (1 = frame). `erg_diffusion` scales the blocks' query projections.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        latents: &Tensor,
        attention_mask: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_mask: &Tensor,
        timestep: &Tensor,
        output_length: usize,
        erg_diffusion: Option<&QueryScale>,
    ) -> candle_core::Result<Tensor> {
        let cond = self.prepare_condition(encoder_hidden_states, encoder_mask)?;
        self.decode_with(
            latents,
            attention_mask,
            &cond,
            timestep,
            output_length,
            erg_diffusion,
        )
    }

    /// [`Self::decode`] with a condition prepared once by [`Self::prepare_condition`].
    pub fn decode_with(
        &self,
        latents: &Tensor,
        attention_mask: &Tensor,
        cond: &PreparedCondition,
        timestep: &Tensor,
        output_length: usize,
        erg_diffusion: Option<&QueryScale>,
    ) -> candle_core::Result<Tensor> {
        Self::check_range("diffusion", erg_diffusion, self.num_layers())?;
        let dtype = self.final_table.dtype();
        let dev = latents.device().clone();
        let (b, c_in, h, t) = latents.dims4()?;
        if c_in != self.cfg.in_channels || h != self.cfg.patch_size[0] {
            candle_core::bail!(
                "latents must be [b, {}, {}, t], got {:?}",
                self.cfg.in_channels,
                self.cfg.patch_size[0],
                latents.dims()
            );
        }
        let dim = self.cfg.model_dim();

        // Timestep: sinusoid -> MLP (embedded_timestep) -> t_block (AdaLN parameters).
        let tf = timestep_features(timestep, 256)?.to_dtype(dtype)?;
        let embedded = self
            .time_linear_2
            .forward(&self.time_linear_1.forward(&tf)?.silu()?)?;
        let temb = self.t_block.forward(&embedded.silu()?)?;

        let mut x = self.patch_embed(latents)?;

        let rope = Rotary::new(
            self.cfg.attention_head_dim,
            self.cfg.rope_theta,
            t,
            dtype,
            &dev,
        )?;
        let am = attention_mask.to_dtype(DType::F32)?;
        let self_mask = am.to_dtype(dtype)?.reshape((b, 1, t, 1))?;
        // Cross mask: frame valid x condition token valid -> 0, else -inf.
        let combined = am
            .unsqueeze(2)?
            .broadcast_mul(&cond.encoder_mask.unsqueeze(1)?)?; // [b, t, s_enc]
        let s_enc = combined.dim(2)?;
        let zeros = Tensor::zeros((b, t, s_enc), DType::F32, &dev)?;
        let neg = Tensor::full(f32::NEG_INFINITY, (b, t, s_enc), &dev)?;
        let cross_bias = combined
            .eq(1f32)?
            .where_cond(&zeros, &neg)?
            .unsqueeze(1)?
            .to_dtype(dtype)?;

        for (i, blk) in self.blocks.iter().enumerate() {
            let s = erg_diffusion.map(|e| e.scale_for(i)).unwrap_or(1.0);
            x = blk.forward(&x, &temb, &self_mask, &cond.kv[i], &cross_bias, &rope, s)?;
        }

        // Final layer: modulated RMS norm, linear, unpatchify.
        let mods = self
            .final_table
            .unsqueeze(0)?
            .broadcast_add(&embedded.unsqueeze(1)?)?; // [b, 2, dim]
        let shift = mods.narrow(1, 0, 1)?;
        let scale = mods.narrow(1, 1, 1)?;
        let x = rms_norm(&x, 1e-6)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        let x = self.final_linear.forward(&x)?; // [b, t, 16 * 8]
        let (ph, oc) = (self.cfg.patch_size[0], self.cfg.out_channels);
        let out = x
            .reshape((b, t, ph, oc))?
            .permute((0, 3, 2, 1))?
            .contiguous()?; // [b, 8, 16, t]
        let _ = dim;
        if output_length > t {
            out.pad_with_zeros(3, 0, output_length - t)
        } else if output_length < t {
            out.narrow(3, 0, output_length)
        } else {
            Ok(out)
        }
    }

    /// `proj_in`: conv (16x1, stride 16x1) -> GroupNorm(32) -> 1x1 conv, computed in `[b, t, c]`
    /// layout: latents `[b, 8, 16, t]` -> `[b, t, dim]`.
    pub fn patch_embed(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = self.final_table.dtype();
        let (b, c_in, h, t) = latents.dims4()?;
        let x = latents
            .to_dtype(dtype)?
            .reshape((b, c_in * h, t))?
            .transpose(1, 2)?
            .contiguous()?; // [b, t, 8*16], channel-major like the conv weight
        let x = self.patch_conv1.forward(&x)?; // [b, t, 2048]
        let x = self.group_norm(&x, 32, 1e-6)?;
        self.patch_conv2.forward(&x)
    }

    /// GroupNorm over `[b, t, c]` (statistics per batch item over each group of channels and all
    /// frames), then the affine of `proj_in.early_conv_layers.1`.
    fn group_norm(&self, x: &Tensor, groups: usize, eps: f64) -> candle_core::Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let dtype = x.dtype();
        let xf = x
            .to_dtype(DType::F32)?
            .reshape((b, t, groups, c / groups))?;
        let mean = xf.mean_keepdim(3)?.mean_keepdim(1)?; // [b, 1, g, 1]
        let centred = xf.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(3)?.mean_keepdim(1)?;
        let normed = centred
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .reshape((b, t, c))?
            .to_dtype(dtype)?;
        normed
            .broadcast_mul(&self.patch_norm_w)?
            .broadcast_add(&self.patch_norm_b)
    }
}

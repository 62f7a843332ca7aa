//! The ACE-Step diffusion transformer (`ace_step_transformer/`): configuration.
//!
//! The model itself (linear-attention DiT blocks, Conformer lyric encoder, ERG) is ported in its
//! own change; this module already reads the checkpoint's `config.json` so that checkpoints can be
//! validated and described.

use serde::{Deserialize, Serialize};

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

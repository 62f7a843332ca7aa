//! The music deep-compression autoencoder (`music_dcae_f8c8/`, diffusers' `AutoencoderDC`):
//! configuration.
//!
//! The encoder/decoder are ported in their own change; this module reads the checkpoint's
//! `config.json`.

use serde::{Deserialize, Serialize};

use crate::config::OneOrMany;

/// `music_dcae_f8c8/config.json` (diffusers `AutoencoderDC` arguments, with diffusers' defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderDcConfig {
    /// Image channels (2: the stereo mel channels).
    pub in_channels: usize,
    /// Latent channels (8).
    pub latent_channels: usize,
    /// Head width of the EfficientViT linear attention.
    pub attention_head_dim: usize,
    /// Block type per encoder stage (`ResBlock` / `EfficientViTBlock`).
    pub encoder_block_types: OneOrMany<String>,
    /// Block type per decoder stage.
    pub decoder_block_types: OneOrMany<String>,
    /// Encoder stage widths.
    pub encoder_block_out_channels: Vec<usize>,
    /// Decoder stage widths.
    pub decoder_block_out_channels: Vec<usize>,
    /// Encoder blocks per stage.
    pub encoder_layers_per_block: Vec<usize>,
    /// Decoder blocks per stage.
    pub decoder_layers_per_block: Vec<usize>,
    /// Multi-scale kernel sizes per encoder stage.
    pub encoder_qkv_multiscales: Vec<Vec<usize>>,
    /// Multi-scale kernel sizes per decoder stage.
    pub decoder_qkv_multiscales: Vec<Vec<usize>>,
    /// `interpolate` or `pixel_shuffle`.
    pub upsample_block_type: String,
    /// `Conv` or `pixel_unshuffle`.
    pub downsample_block_type: String,
    /// Decoder norm per stage (`rms_norm` / `batch_norm`).
    pub decoder_norm_types: OneOrMany<String>,
    /// Decoder activation per stage.
    pub decoder_act_fns: OneOrMany<String>,
    /// Latent scaling factor.
    pub scaling_factor: f64,
}

impl Default for AutoencoderDcConfig {
    fn default() -> Self {
        let widths = vec![128, 256, 512, 512, 1024, 1024];
        let scales = vec![vec![], vec![], vec![], vec![5], vec![5], vec![5]];
        Self {
            in_channels: 3,
            latent_channels: 32,
            attention_head_dim: 32,
            encoder_block_types: OneOrMany::One("ResBlock".into()),
            decoder_block_types: OneOrMany::One("ResBlock".into()),
            encoder_block_out_channels: widths.clone(),
            decoder_block_out_channels: widths,
            encoder_layers_per_block: vec![2, 2, 2, 3, 3, 3],
            decoder_layers_per_block: vec![3, 3, 3, 3, 3, 3],
            encoder_qkv_multiscales: scales.clone(),
            decoder_qkv_multiscales: scales,
            upsample_block_type: "pixel_shuffle".into(),
            downsample_block_type: "pixel_unshuffle".into(),
            decoder_norm_types: OneOrMany::One("rms_norm".into()),
            decoder_act_fns: OneOrMany::One("silu".into()),
            scaling_factor: 1.0,
        }
    }
}

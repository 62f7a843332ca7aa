//! The ADaMoSHiFiGAN vocoder (`music_vocoder/`): configuration.
//!
//! The network is ported in its own change; this module reads the checkpoint's `config.json`.

use serde::{Deserialize, Serialize};

/// `music_vocoder/config.json` (the reference `ADaMoSHiFiGANV1` arguments, with its defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VocoderConfig {
    /// Mel bins in.
    pub input_channels: usize,
    /// ConvNeXt stage depths.
    pub depths: Vec<usize>,
    /// ConvNeXt stage widths.
    pub dims: Vec<usize>,
    /// Stochastic depth (inference: unused).
    pub drop_path_rate: f64,
    /// ConvNeXt kernel sizes.
    pub kernel_sizes: Vec<usize>,
    /// HiFiGAN upsampling rates.
    pub upsample_rates: Vec<usize>,
    /// HiFiGAN upsampling kernels.
    pub upsample_kernel_sizes: Vec<usize>,
    /// Residual block kernels.
    pub resblock_kernel_sizes: Vec<usize>,
    /// Residual block dilations.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// Backbone output width.
    pub num_mels: usize,
    /// First upsampling width.
    pub upsample_initial_channel: usize,
    /// Template (unused by the checkpoint).
    pub use_template: bool,
    /// Kernel of the first convolution.
    pub pre_conv_kernel_size: usize,
    /// Kernel of the last convolution.
    pub post_conv_kernel_size: usize,
    /// Output sample rate (44100).
    pub sampling_rate: u32,
    /// STFT size of the mel transform.
    pub n_fft: usize,
    /// STFT window of the mel transform.
    pub win_length: usize,
    /// STFT hop of the mel transform.
    pub hop_length: usize,
    /// Lowest mel frequency.
    pub f_min: f64,
    /// Highest mel frequency.
    pub f_max: f64,
    /// Mel bins of the mel transform.
    pub n_mels: usize,
}

impl Default for VocoderConfig {
    fn default() -> Self {
        Self {
            input_channels: 128,
            depths: vec![3, 3, 9, 3],
            dims: vec![128, 256, 384, 512],
            drop_path_rate: 0.0,
            kernel_sizes: vec![7],
            upsample_rates: vec![4, 4, 2, 2, 2, 2, 2],
            upsample_kernel_sizes: vec![8, 8, 4, 4, 4, 4, 4],
            resblock_kernel_sizes: vec![3, 7, 11, 13],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 4],
            num_mels: 512,
            upsample_initial_channel: 1024,
            use_template: false,
            pre_conv_kernel_size: 13,
            post_conv_kernel_size: 13,
            sampling_rate: 44100,
            n_fft: 2048,
            win_length: 2048,
            hop_length: 512,
            f_min: 40.0,
            f_max: 16000.0,
            n_mels: 128,
        }
    }
}

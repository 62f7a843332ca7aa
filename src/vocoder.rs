//! The ADaMoSHiFiGAN vocoder (`music_vocoder/`): log-mel `[b, 128, frames]` -> 44.1 kHz
//! waveform `[b, 1, frames * 512]`.
//!
//! A ConvNeXt backbone (replicate-padded stem, channels-first LayerNorms, depthwise-conv blocks
//! with GELU MLPs and layer scale) feeds a HiFiGAN generator (weight-normalised transposed-conv
//! upsampling, multi-receptive-field residual blocks, SiLU, tanh). Weight norm
//! (`weight_g`, `weight_v`) is folded into plain weights at load time.

use acestep_kernels::{layer_norm_channels, Activation, Conv1d, ConvSpec, ConvTranspose1d, Fused};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
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

impl VocoderConfig {
    /// Reads `{root}/music_vocoder/config.json` of `checkpoint`.
    pub fn from_checkpoint(checkpoint: &crate::Checkpoint) -> crate::Result<Self> {
        crate::config::read_config(&checkpoint.config_path(crate::Component::Vocoder)?)
    }

    /// Checks what the port supports; the message names the key and value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.use_template {
            return Err("use_template = true is not supported (the checkpoint uses false)".into());
        }
        if self.kernel_sizes.len() != 1 {
            return Err(format!(
                "kernel_sizes must have one entry (parallel ConvNeXt blocks are not supported), got {:?}",
                self.kernel_sizes
            ));
        }
        if self.depths.len() != self.dims.len() || self.depths.is_empty() {
            return Err(format!(
                "depths {:?} and dims {:?} must have the same length",
                self.depths, self.dims
            ));
        }
        if self.upsample_rates.len() != self.upsample_kernel_sizes.len() {
            return Err(
                "upsample_rates and upsample_kernel_sizes must have the same length".into(),
            );
        }
        if self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len() {
            return Err(
                "resblock_kernel_sizes and resblock_dilation_sizes must have the same length"
                    .into(),
            );
        }
        if self.upsample_rates.iter().product::<usize>() != self.hop_length {
            return Err(format!(
                "the product of upsample_rates {:?} must equal hop_length {}",
                self.upsample_rates, self.hop_length
            ));
        }
        Ok(())
    }
}

/// A weight-normalised weight: `g * v / ||v||`, the norm over every dim but the first.
fn weight_norm(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let v = vb.get(shape, "weight_v")?;
    let g = vb.get((shape.0, 1, 1), "weight_g")?;
    let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
    v.broadcast_mul(&g.broadcast_div(&norm)?)
}

fn wn_conv1d(cin: usize, cout: usize, k: usize, dilation: usize, vb: VarBuilder) -> Result<Conv1d> {
    let w = weight_norm(&vb, (cout, cin, k))?;
    let b = vb.get(cout, "bias")?;
    let spec = ConvSpec {
        padding: (k * dilation - dilation) / 2,
        dilation,
        ..Default::default()
    };
    Ok(Conv1d::new(w, Some(b), spec))
}

/// LayerNorm over the channels of `[b, c, l]`.
/// LayerNorm over the channels of `[b, c, l]` (eps 1e-6).
#[derive(Debug, Clone)]
struct ChannelsFirstNorm {
    weight: Tensor,
    bias: Tensor,
}

impl ChannelsFirstNorm {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm_channels(x, &self.weight, Some(&self.bias), 1e-6, None)
    }
}

/// A ConvNeXt block, computed channels-first throughout: the norm is over the channels and the
/// two point-wise layers are 1x1 convolutions (no transposes), the layer scale `gamma` is
/// folded into the second one and the residual added in its epilogue.
#[derive(Debug, Clone)]
struct ConvNextBlock {
    dwconv: Conv1d,
    norm: ChannelsFirstNorm,
    pwconv1: Conv1d,
    pwconv2: Conv1d,
}

impl ConvNextBlock {
    fn new(dim: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        let dw_w = vb.get((dim, 1, k), "dwconv.weight")?;
        let dw_b = vb.get(dim, "dwconv.bias")?;
        let spec = ConvSpec {
            padding: (k - 1) / 2,
            groups: dim,
            ..Default::default()
        };
        // nn.Linear weights [out, in] as 1x1 convolutions [out, in, 1].
        let pw1_w = vb.get((4 * dim, dim), "pwconv1.weight")?.unsqueeze(2)?;
        let pw1_b = vb.get(4 * dim, "pwconv1.bias")?;
        let gamma = vb.get(dim, "gamma")?;
        let pw2_w = vb
            .get((dim, 4 * dim), "pwconv2.weight")?
            .broadcast_mul(&gamma.unsqueeze(1)?)?
            .unsqueeze(2)?;
        let pw2_b = (vb.get(dim, "pwconv2.bias")? * &gamma)?;
        Ok(Self {
            dwconv: Conv1d::new(dw_w, Some(dw_b), spec),
            norm: ChannelsFirstNorm::new(dim, vb.pp("norm"))?,
            pwconv1: Conv1d::new(pw1_w, Some(pw1_b), ConvSpec::default()),
            pwconv2: Conv1d::new(pw2_w, Some(pw2_b), ConvSpec::default()),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(&self.dwconv.forward(x)?)?;
        let h = self.pwconv1.forward_fused(
            &h,
            Fused {
                act_out: Activation::Gelu,
                ..Default::default()
            },
        )?;
        self.pwconv2.forward_fused(
            &h,
            Fused {
                residual: Some(x),
                ..Default::default()
            },
        )
    }
}

#[derive(Debug, Clone)]
struct ResBlock1 {
    convs1: Vec<Conv1d>,
    convs2: Vec<Conv1d>,
}

impl ResBlock1 {
    fn new(ch: usize, k: usize, dilations: &[usize], vb: VarBuilder) -> Result<Self> {
        let mut convs1 = Vec::new();
        let mut convs2 = Vec::new();
        for (i, &d) in dilations.iter().enumerate() {
            convs1.push(wn_conv1d(ch, ch, k, d, vb.pp(format!("convs1.{i}")))?);
            convs2.push(wn_conv1d(ch, ch, k, 1, vb.pp(format!("convs2.{i}")))?);
        }
        Ok(Self { convs1, convs2 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (c1, c2) in self.convs1.iter().zip(&self.convs2) {
            // x + c2(silu(c1(silu(x)))), the activations and the residual fused.
            let h = c1.forward_fused(
                &x,
                Fused {
                    act_in: Activation::Silu,
                    act_out: Activation::Silu,
                    residual: None,
                },
            )?;
            x = c2.forward_fused(
                &h,
                Fused {
                    residual: Some(&x),
                    ..Default::default()
                },
            )?;
        }
        Ok(x)
    }
}

/// The vocoder.
#[derive(Debug, Clone)]
pub struct Vocoder {
    stem_conv: Conv1d,
    stem_pad: usize,
    stem_norm: ChannelsFirstNorm,
    mid: Vec<(ChannelsFirstNorm, Conv1d)>,
    stages: Vec<Vec<ConvNextBlock>>,
    backbone_norm: ChannelsFirstNorm,
    conv_pre: Conv1d,
    ups: Vec<ConvTranspose1d>,
    resblocks: Vec<Vec<ResBlock1>>,
    conv_post: Conv1d,
    cfg: VocoderConfig,
}

impl Vocoder {
    /// Builds the vocoder from `music_vocoder/` tensors (`backbone.*`, `head.*`).
    pub fn new(cfg: &VocoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let bb = vb.pp("backbone");
        let dims = &cfg.dims;
        let stem = bb.pp("channel_layers.0");
        let stem_conv = Conv1d::new(
            stem.get((dims[0], cfg.input_channels, 7), "0.weight")?,
            Some(stem.get(dims[0], "0.bias")?),
            ConvSpec::default(),
        );
        let stem_norm = ChannelsFirstNorm::new(dims[0], stem.pp("1"))?;
        let mut mid = Vec::new();
        for i in 0..dims.len() - 1 {
            let p = bb.pp(format!("channel_layers.{}", i + 1));
            let conv = Conv1d::new(
                p.get((dims[i + 1], dims[i], 1), "1.weight")?,
                Some(p.get(dims[i + 1], "1.bias")?),
                ConvSpec::default(),
            );
            mid.push((ChannelsFirstNorm::new(dims[i], p.pp("0"))?, conv));
        }
        let k = cfg.kernel_sizes[0];
        let stages = (0..dims.len())
            .map(|i| {
                (0..cfg.depths[i])
                    .map(|j| ConvNextBlock::new(dims[i], k, bb.pp(format!("stages.{i}.{j}"))))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let backbone_norm = ChannelsFirstNorm::new(dims[dims.len() - 1], bb.pp("norm"))?;

        let head = vb.pp("head");
        let c0 = cfg.upsample_initial_channel;
        let conv_pre = wn_conv1d(
            cfg.num_mels,
            c0,
            cfg.pre_conv_kernel_size,
            1,
            head.pp("conv_pre"),
        )?;
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let nk = cfg.resblock_kernel_sizes.len();
        for (i, (&u, &kk)) in cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
        {
            let cin = c0 >> i;
            let cout = c0 >> (i + 1);
            let p = head.pp(format!("ups.{i}"));
            let w = weight_norm(&p, (cin, cout, kk))?;
            let b = p.get(cout, "bias")?;
            ups.push(ConvTranspose1d::new(w, Some(b), u, (kk - u) / 2, 0));
            let blocks = cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
                .enumerate()
                .map(|(j, (&rk, d))| {
                    ResBlock1::new(cout, rk, d, head.pp(format!("resblocks.{}", i * nk + j)))
                })
                .collect::<Result<Vec<_>>>()?;
            resblocks.push(blocks);
        }
        let ch = c0 >> cfg.upsample_rates.len();
        let conv_post = wn_conv1d(ch, 1, cfg.post_conv_kernel_size, 1, head.pp("conv_post"))?;
        Ok(Self {
            stem_conv,
            stem_pad: 3,
            stem_norm,
            mid,
            stages,
            backbone_norm,
            conv_pre,
            ups,
            resblocks,
            conv_post,
            cfg: cfg.clone(),
        })
    }

    /// The config.
    pub fn config(&self) -> &VocoderConfig {
        &self.cfg
    }

    /// `decode`: log-mel `[b, n_mels, frames]` -> waveform `[b, 1, frames * hop]` in [-1, 1].
    pub fn decode(&self, mel: &Tensor) -> Result<Tensor> {
        // Backbone.
        let x = mel.pad_with_same(D::Minus1, self.stem_pad, self.stem_pad)?;
        let mut x = self.stem_norm.forward(&self.stem_conv.forward(&x)?)?;
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                let (norm, conv) = &self.mid[i - 1];
                x = conv.forward(&norm.forward(&x)?)?;
            }
            for blk in stage {
                x = blk.forward(&x)?;
            }
        }
        let x = self.backbone_norm.forward(&x)?;
        // HiFiGAN head.
        let mut x = self.conv_pre.forward(&x)?;
        for (up, blocks) in self.ups.iter().zip(&self.resblocks) {
            x = up.forward_act(&x, Activation::Silu, Activation::Identity)?;
            let mut acc: Option<Tensor> = None;
            for blk in blocks {
                let y = blk.forward(&x)?;
                acc = Some(match acc {
                    None => y,
                    Some(a) => (a + y)?,
                });
            }
            x = match acc {
                Some(a) => (a / blocks.len() as f64)?,
                None => x,
            };
        }
        self.conv_post
            .forward_fused(
                &x,
                Fused {
                    act_in: Activation::Silu,
                    ..Default::default()
                },
            )?
            .tanh()
    }
}

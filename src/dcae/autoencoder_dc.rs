//! diffusers' `AutoencoderDC` (deep-compression autoencoder), as configured by
//! `music_dcae_f8c8/config.json`: ResBlocks and EfficientViT blocks (multi-scale ReLU linear
//! attention + GLU MBConv), strided-conv downsampling and nearest-interpolation upsampling with
//! channel-averaging / channel-repeating shortcuts.
//!
//! Tensors are NCHW; the channel-wise norms and projections run channel-last.

use acestep_kernels::{
    glu, pixel_shuffle_repeat, pixel_unshuffle_mean, relu_linear_attention, rms_norm_channels,
    upsample_nearest2x, Activation, Conv2d, ConvSpec, Fused,
};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::AutoencoderDcConfig;

/// A `k x k` convolution `cin -> cout` (`groups`) from `weight` [+ `bias`].
fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    spec: ConvSpec,
    bias: bool,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let w = vb.get((cout, cin / spec.groups, k, k), "weight")?;
    let b = if bias {
        Some(vb.get(cout, "bias")?)
    } else {
        None
    };
    Ok(Conv2d::new(w, b, spec))
}

fn conv3x3(cin: usize, cout: usize, bias: bool, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let spec = ConvSpec {
        padding: 1,
        stride,
        ..Default::default()
    };
    conv(cin, cout, 3, spec, bias, vb)
}

/// A bias-free `nn.Linear(cin, cout)` applied over the channels of NCHW: a 1x1 convolution.
fn linear_1x1(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    let w = vb.get((cout, cin), "weight")?.reshape((cout, cin, 1, 1))?;
    Ok(Conv2d::new(w, None, ConvSpec::default()))
}

/// `f` with only a residual.
fn plus(residual: &Tensor) -> Fused<'_> {
    Fused {
        residual: Some(residual),
        ..Default::default()
    }
}

/// `[b, c*r*r, h, w] -> [b, c, h*r, w*r]`.
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let oc = c / (r * r);
    x.reshape((b, oc, r, r, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, oc, h * r, w * r))
}

/// `[b, c, h*r, w*r] -> [b, c*r*r, h, w]`.
pub fn pixel_unshuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / r, w / r);
    x.reshape((b, c, oh, r, ow, r))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((b, c * r * r, oh, ow))
}

/// Each channel repeated `n` times in place (`repeat_interleave` on dim 1).
fn repeat_channels(x: &Tensor, n: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, c, n, h, w))?
        .reshape((b, c * n, h, w))
}

/// Mean over consecutive groups of `g` channels.
fn group_mean(x: &Tensor, g: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c / g, g, h, w))?.mean(2)
}

/// diffusers `RMSNorm(dim, eps, elementwise_affine=True, bias=True)` over the last dimension.
#[derive(Debug, Clone)]
struct RmsNormAffine {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl RmsNormAffine {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }

    /// Normalises NCHW over channels, then adds `residual`.
    fn forward_nchw(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        rms_norm_channels(x, &self.weight, Some(&self.bias), self.eps, residual)
    }
}

/// `batch_norm` (eval: running statistics) or `rms_norm` over channels.
#[derive(Debug, Clone)]
enum ChannelNorm {
    Rms(RmsNormAffine),
    Batch { scale: Tensor, shift: Tensor },
}

impl ChannelNorm {
    fn new(kind: &str, dim: usize, vb: VarBuilder) -> Result<Self> {
        match kind {
            "rms_norm" => Ok(Self::Rms(RmsNormAffine::new(dim, 1e-5, vb)?)),
            "batch_norm" => {
                let w = vb.get(dim, "weight")?;
                let b = vb.get(dim, "bias")?;
                let m = vb.get(dim, "running_mean")?;
                let v = vb.get(dim, "running_var")?;
                let scale = w.div(&(v + 1e-5)?.sqrt()?)?;
                let shift = b.sub(&m.mul(&scale)?)?;
                Ok(Self::Batch {
                    scale: scale.reshape((1, dim, 1, 1))?,
                    shift: shift.reshape((1, dim, 1, 1))?,
                })
            }
            other => candle_core::bail!("unsupported norm type `{other}` (rms_norm, batch_norm)"),
        }
    }

    /// `norm(x) + residual`.
    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self {
            Self::Rms(n) => n.forward_nchw(x, Some(residual)),
            Self::Batch { scale, shift } => {
                x.broadcast_mul(scale)?.broadcast_add(shift)? + residual
            }
        }
    }
}

/// A config activation: fused into a kernel where it can be, else a candle op.
#[derive(Debug, Clone, Copy)]
enum Act {
    Fused(Activation),
    Relu6,
}

impl Act {
    fn new(name: &str) -> Result<Self> {
        Ok(match name {
            "silu" | "swish" => Self::Fused(Activation::Silu),
            "relu" => Self::Fused(Activation::Relu),
            "gelu" => Self::Fused(Activation::Gelu),
            "relu6" => Self::Relu6,
            other => candle_core::bail!("unsupported activation `{other}`"),
        })
    }
}

#[derive(Debug, Clone)]
struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    norm: ChannelNorm,
    act: Act,
}

impl ResBlock {
    fn new(cin: usize, cout: usize, norm: &str, act: &str, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv3x3(cin, cin, true, 1, vb.pp("conv1"))?,
            conv2: conv3x3(cin, cout, false, 1, vb.pp("conv2"))?,
            norm: ChannelNorm::new(norm, cout, vb.pp("norm"))?,
            act: Act::new(act)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = match self.act {
            Act::Fused(a) => self.conv1.forward_fused(
                x,
                Fused {
                    act_out: a,
                    ..Default::default()
                },
            )?,
            Act::Relu6 => self.conv1.forward(x)?.clamp(0f32, 6f32)?,
        };
        self.norm.forward(&self.conv2.forward(&h)?, x)
    }
}

/// Sana multi-scale ReLU linear attention (`SanaMultiscaleLinearAttention`).
#[derive(Debug, Clone)]
struct MultiscaleLinearAttention {
    /// `to_q`, `to_k`, `to_v` as one 1x1 convolution (their weights stacked).
    to_qkv: Conv2d,
    /// Per kernel size: depthwise kxk conv, grouped 1x1 conv.
    scales: Vec<(Conv2d, Conv2d)>,
    to_out: Conv2d,
    norm_out: ChannelNorm,
    head_dim: usize,
}

impl MultiscaleLinearAttention {
    fn new(
        ch: usize,
        head_dim: usize,
        kernels: &[usize],
        norm: &str,
        vb: VarBuilder,
    ) -> Result<Self> {
        let heads = ch / head_dim;
        let inner = heads * head_dim;
        let mut scales = Vec::new();
        for (i, &k) in kernels.iter().enumerate() {
            let p = vb.pp(format!("to_qkv_multiscale.{i}"));
            let dw = conv(
                3 * inner,
                3 * inner,
                k,
                ConvSpec {
                    padding: k / 2,
                    groups: 3 * inner,
                    ..Default::default()
                },
                false,
                p.pp("proj_in"),
            )?;
            let pw = conv(
                3 * inner,
                3 * inner,
                1,
                ConvSpec {
                    groups: 3 * heads,
                    ..Default::default()
                },
                false,
                p.pp("proj_out"),
            )?;
            scales.push((dw, pw));
        }
        let qkv = ["to_q", "to_k", "to_v"]
            .iter()
            .map(|n| vb.get((inner, ch), &format!("{n}.weight")))
            .collect::<Result<Vec<_>>>()?;
        let qkv_w = Tensor::cat(&qkv, 0)?.reshape((3 * inner, ch, 1, 1))?;
        Ok(Self {
            to_qkv: Conv2d::new(qkv_w, None, ConvSpec::default()),
            scales,
            to_out: linear_1x1(inner * (1 + kernels.len()), ch, vb.pp("to_out"))?,
            norm_out: ChannelNorm::new(norm, ch, vb.pp("norm_out"))?,
            head_dim,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let n = h * w;
        let linear_attn = n > self.head_dim;
        let qkv = self.to_qkv.forward(x)?;
        let mut parts = vec![qkv.clone()];
        for (dw, pw) in &self.scales {
            parts.push(pw.forward(&dw.forward(&qkv)?)?);
        }
        let hd = self.head_dim;
        let out = if linear_attn {
            let refs: Vec<&Tensor> = parts.iter().collect();
            relu_linear_attention(&refs, hd, 1e-15)?
        } else {
            // Quadratic ReLU attention for tiny inputs (n <= head_dim).
            let all = Tensor::cat(&parts, 1)?.reshape((b, (), 3 * hd, n))?;
            let q = all.narrow(2, 0, hd)?.relu()?;
            let k = all.narrow(2, hd, hd)?.relu()?;
            let v = all.narrow(2, 2 * hd, hd)?;
            let scores = k
                .t()?
                .contiguous()?
                .matmul(&q.contiguous()?)?
                .to_dtype(candle_core::DType::F32)?; // [b, g, n, n]
            let sum = scores.sum_keepdim(2)?;
            let scores = scores.broadcast_div(&(sum + 1e-15)?)?.to_dtype(v.dtype())?;
            v.contiguous()?.matmul(&scores)?.reshape((b, (), h, w))?
        };
        self.norm_out.forward(&self.to_out.forward(&out)?, x)
    }
}

/// Sana's 2-D GLU MBConv with RMS norm and residual.
#[derive(Debug, Clone)]
struct GluMbConv2d {
    conv_inverted: Conv2d,
    conv_depth: Conv2d,
    conv_point: Conv2d,
    norm: RmsNormAffine,
}

impl GluMbConv2d {
    fn new(ch: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = 4 * ch;
        Ok(Self {
            conv_inverted: conv(
                ch,
                2 * hidden,
                1,
                ConvSpec::default(),
                true,
                vb.pp("conv_inverted"),
            )?,
            conv_depth: conv(
                2 * hidden,
                2 * hidden,
                3,
                ConvSpec {
                    padding: 1,
                    groups: 2 * hidden,
                    ..Default::default()
                },
                true,
                vb.pp("conv_depth"),
            )?,
            conv_point: conv(
                hidden,
                ch,
                1,
                ConvSpec::default(),
                false,
                vb.pp("conv_point"),
            )?,
            norm: RmsNormAffine::new(ch, 1e-5, vb.pp("norm"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv_inverted.forward_fused(
            x,
            Fused {
                act_out: Activation::Silu,
                ..Default::default()
            },
        )?;
        let h = glu(&self.conv_depth.forward(&h)?, Activation::Silu)?;
        let h = self.conv_point.forward(&h)?;
        self.norm.forward_nchw(&h, Some(x))
    }
}

#[derive(Debug, Clone)]
enum Block {
    Res(ResBlock),
    Vit(MultiscaleLinearAttention, GluMbConv2d),
    Down {
        conv: Conv2d,
        unshuffle: bool,
        shortcut_group: Option<usize>,
    },
    Up {
        conv: Conv2d,
        interpolate: bool,
        shortcut_repeats: Option<usize>,
    },
}

impl Block {
    /// For a block whose output columns depend only on nearby input columns: how many input
    /// columns on each side an output column reads, and output columns per input column.
    fn reach(&self) -> Option<(usize, usize)> {
        match self {
            // Two 3x3 convolutions; the norm is per pixel.
            Block::Res(_) => Some((2, 1)),
            // One 3x3 convolution (before or after a 2x upsampling); the shortcut is per pixel.
            Block::Up { .. } => Some((1, 2)),
            // Linear attention is global; the encoder's downsampling keeps the whole width (its
            // output is half as wide: not a slice of the input's columns).
            Block::Vit(..) | Block::Down { .. } => None,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Block::Res(r) => r.forward(x),
            Block::Vit(a, f) => f.forward(&a.forward(x)?),
            Block::Down {
                conv,
                unshuffle,
                shortcut_group,
            } => {
                let shortcut = shortcut_group
                    .map(|g| pixel_unshuffle_mean(x, g))
                    .transpose()?;
                if *unshuffle {
                    let y = pixel_unshuffle(&conv.forward(x)?, 2)?;
                    return match shortcut {
                        Some(s) => y + s,
                        None => Ok(y),
                    };
                }
                match &shortcut {
                    // The shortcut added in the convolution's epilogue (as `y + s`, one pass).
                    Some(s) => conv.forward_fused(x, plus(s)),
                    None => conv.forward(x),
                }
            }
            Block::Up {
                conv,
                interpolate,
                shortcut_repeats,
            } => {
                let shortcut = shortcut_repeats
                    .map(|r| pixel_shuffle_repeat(x, r))
                    .transpose()?;
                if *interpolate {
                    let up = upsample_nearest2x(x)?;
                    match &shortcut {
                        Some(s) => conv.forward_fused(&up, plus(s)),
                        None => conv.forward(&up),
                    }
                } else {
                    let y = pixel_shuffle(&conv.forward(x)?, 2)?;
                    match shortcut {
                        Some(s) => y + s,
                        None => Ok(y),
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn make_block(
    kind: &str,
    ch: usize,
    head_dim: usize,
    norm: &str,
    act: &str,
    scales: &[usize],
    vb: VarBuilder,
) -> Result<Block> {
    match kind {
        "ResBlock" => Ok(Block::Res(ResBlock::new(ch, ch, norm, act, vb)?)),
        "EfficientViTBlock" => Ok(Block::Vit(
            MultiscaleLinearAttention::new(ch, head_dim, scales, norm, vb.pp("attn"))?,
            GluMbConv2d::new(ch, vb.pp("conv_out"))?,
        )),
        other => {
            candle_core::bail!("unsupported block type `{other}` (ResBlock, EfficientViTBlock)")
        }
    }
}

fn expand<T: Clone>(v: &crate::config::OneOrMany<T>, n: usize, what: &str) -> Result<Vec<T>> {
    v.expand(n).ok_or_else(|| {
        candle_core::Error::Msg(format!("{what} must have one entry per stage ({n})"))
    })
}

/// The DCAE encoder: mel image `[b, 2, 128, w]` -> latent `[b, 8, 16, w/8]` (unscaled).
#[derive(Debug, Clone)]
pub struct DcaeEncoder {
    conv_in: Conv2d,
    stages: Vec<Vec<Block>>,
    conv_out: Conv2d,
    out_group: usize,
}

impl DcaeEncoder {
    /// Builds `encoder.*`.
    pub fn new(cfg: &AutoencoderDcConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.encoder_block_out_channels;
        let n = ch.len();
        if cfg.encoder_layers_per_block.first().copied().unwrap_or(0) == 0 {
            candle_core::bail!("encoder_layers_per_block[0] = 0 is not supported");
        }
        let kinds = expand(&cfg.encoder_block_types, n, "encoder_block_types")?;
        let conv_in = conv3x3(cfg.in_channels, ch[0], true, 1, vb.pp("conv_in"))?;
        let mut stages = Vec::with_capacity(n);
        for i in 0..n {
            let p = vb.pp(format!("down_blocks.{i}"));
            let layers = cfg.encoder_layers_per_block[i];
            let mut blocks = Vec::new();
            for j in 0..layers {
                blocks.push(make_block(
                    &kinds[i],
                    ch[i],
                    cfg.attention_head_dim,
                    "rms_norm",
                    "silu",
                    &cfg.encoder_qkv_multiscales[i],
                    p.pp(j),
                )?);
            }
            if i < n - 1 && layers > 0 {
                let unshuffle = cfg.downsample_block_type == "pixel_unshuffle";
                let (cout, stride) = if unshuffle {
                    (ch[i + 1] / 4, 1)
                } else {
                    (ch[i + 1], 2)
                };
                blocks.push(Block::Down {
                    conv: conv3x3(ch[i], cout, true, stride, p.pp(layers).pp("conv"))?,
                    unshuffle,
                    shortcut_group: Some(ch[i] * 4 / ch[i + 1]),
                });
            }
            stages.push(blocks);
        }
        Ok(Self {
            conv_in,
            stages,
            conv_out: conv3x3(ch[n - 1], cfg.latent_channels, true, 1, vb.pp("conv_out"))?,
            out_group: ch[n - 1] / cfg.latent_channels,
        })
    }

    /// Encodes an image.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_in_columns(x, COLUMNS)
    }

    /// [`DcaeEncoder::forward`] with the ResBlocks run `columns` frames at a time (see
    /// [`by_columns`]): a long clip's full-resolution activations are held one slice at a time.
    pub fn forward_in_columns(&self, x: &Tensor, columns: usize) -> Result<Tensor> {
        let h = run_stages(self.conv_in.forward(x)?, &self.stages, columns)?;
        self.conv_out
            .forward_fused(&h, plus(&group_mean(&h, self.out_group)?))
    }
}

/// The DCAE decoder: latent `[b, 8, 16, w]` (unscaled) -> mel image `[b, 2, 128, 8w]`.
#[derive(Debug, Clone)]
pub struct DcaeDecoder {
    conv_in: Conv2d,
    in_repeats: usize,
    /// Stages from the deepest (run first) to the shallowest.
    stages: Vec<Vec<Block>>,
    norm_out: RmsNormAffine,
    conv_out: Conv2d,
}

impl DcaeDecoder {
    /// Builds `decoder.*`.
    pub fn new(cfg: &AutoencoderDcConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.decoder_block_out_channels;
        let n = ch.len();
        if cfg.decoder_layers_per_block.first().copied().unwrap_or(0) == 0 {
            candle_core::bail!("decoder_layers_per_block[0] = 0 is not supported");
        }
        let kinds = expand(&cfg.decoder_block_types, n, "decoder_block_types")?;
        let norms = expand(&cfg.decoder_norm_types, n, "decoder_norm_types")?;
        let acts = expand(&cfg.decoder_act_fns, n, "decoder_act_fns")?;
        let conv_in = conv3x3(cfg.latent_channels, ch[n - 1], true, 1, vb.pp("conv_in"))?;
        let mut stages = Vec::with_capacity(n);
        for i in (0..n).rev() {
            let p = vb.pp(format!("up_blocks.{i}"));
            let layers = cfg.decoder_layers_per_block[i];
            let mut blocks = Vec::new();
            let mut idx = 0;
            if i < n - 1 && layers > 0 {
                let interpolate = cfg.upsample_block_type == "interpolate";
                let cout = if interpolate { ch[i] } else { ch[i] * 4 };
                blocks.push(Block::Up {
                    conv: conv3x3(ch[i + 1], cout, true, 1, p.pp(0).pp("conv"))?,
                    interpolate,
                    shortcut_repeats: Some(ch[i] * 4 / ch[i + 1]),
                });
                idx = 1;
            }
            for j in 0..layers {
                blocks.push(make_block(
                    &kinds[i],
                    ch[i],
                    cfg.attention_head_dim,
                    &norms[i],
                    &acts[i],
                    &cfg.decoder_qkv_multiscales[i],
                    p.pp(idx + j),
                )?);
            }
            stages.push(blocks);
        }
        Ok(Self {
            conv_in,
            in_repeats: ch[n - 1] / cfg.latent_channels,
            stages,
            norm_out: RmsNormAffine::new(ch[0], 1e-5, vb.pp("norm_out"))?,
            conv_out: conv3x3(ch[0], cfg.in_channels, true, 1, vb.pp("conv_out"))?,
        })
    }

    /// Decodes a latent.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        self.forward_in_columns(z, COLUMNS)
    }

    /// [`DcaeDecoder::forward`] with the local blocks (ResBlocks, upsampling, the output head)
    /// run `columns` frames at a time (see [`by_columns`]).
    pub fn forward_in_columns(&self, z: &Tensor, columns: usize) -> Result<Tensor> {
        let h = self
            .conv_in
            .forward_fused(z, plus(&repeat_channels(z, self.in_repeats)?.contiguous()?))?;
        let h = run_stages(h, &self.stages, columns)?;
        by_columns(&h, columns, 1, 1, |h| {
            let h = self.norm_out.forward_nchw(h, None)?;
            self.conv_out.forward_fused(
                &h,
                Fused {
                    act_in: Activation::Relu,
                    ..Default::default()
                },
            )
        })
    }
}

/// Runs the blocks of `stages` in order, each local one (see [`Block::reach`]) `columns` frames
/// at a time.
fn run_stages(mut h: Tensor, stages: &[Vec<Block>], columns: usize) -> Result<Tensor> {
    for blk in stages.iter().flatten() {
        h = match blk.reach() {
            Some((halo, scale)) => by_columns(&h, columns, halo, scale, |x| blk.forward(x))?,
            None => blk.forward(&h)?,
        };
    }
    Ok(h)
}

/// Frames (columns) of an activation the DCAE's local blocks compute at once on the CPU: 512
/// columns of a stage are 32 MB per tensor at every resolution (the channels double as the mel
/// height halves), where a whole 47 s window's full-resolution tensor is 268 MB.
pub const COLUMNS: usize = 512;

/// `f(x)` for a block `f` whose output columns `[j * scale, (j + 1) * scale)` depend only on the
/// input columns `j - halo ..= j + halo` (zero past the edges), computed `columns` input columns
/// at a time (each with its halo, the halo's outputs dropped) into one output: the block's
/// intermediate tensors are held for one slice at a time instead of the whole width. Each output
/// value sums the same inputs as the whole-width call. Runs whole where the slicing buys nothing:
/// off the CPU, outside f32, or on a tensor no wider than two slices.
pub fn by_columns(
    x: &Tensor,
    columns: usize,
    halo: usize,
    scale: usize,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let (b, _, _, w) = x.dims4()?;
    if !x.device().is_cpu()
        || x.dtype() != candle_core::DType::F32
        || w <= columns.max(1).saturating_mul(2)
    {
        return f(x);
    }
    let mut out: Vec<f32> = Vec::new();
    let mut dims = None;
    let ow = w * scale;
    for a in (0..w).step_by(columns) {
        let e = (a + columns).min(w);
        let (lo, hi) = (a.saturating_sub(halo), (e + halo).min(w));
        let y = f(&x.narrow(3, lo, hi - lo)?)?;
        let (yb, yc, yh, yw) = y.dims4()?;
        if yb != b || yw != (hi - lo) * scale || dims.is_some_and(|d| d != (yc, yh)) {
            candle_core::bail!(
                "by_columns: slice output {:?} of a block of scale {scale}",
                y.dims()
            );
        }
        if dims.is_none() {
            dims = Some((yc, yh));
            out = vec![0f32; b * yc * yh * ow];
        }
        let y = y.flatten_all()?.to_vec1::<f32>()?;
        let (skip, width) = ((a - lo) * scale, (e - a) * scale);
        out.par_chunks_mut(ow)
            .zip(y.par_chunks(yw))
            .for_each(|(o, y)| {
                o[a * scale..a * scale + width].copy_from_slice(&y[skip..skip + width])
            });
    }
    let (c, h) = dims.unwrap_or((0, 0));
    Tensor::from_vec(out, (b, c, h, ow), x.device())
}

/// Encoder and decoder of `music_dcae_f8c8/`.
#[derive(Debug, Clone)]
pub struct AutoencoderDc {
    /// `encoder.*`.
    pub encoder: DcaeEncoder,
    /// `decoder.*`.
    pub decoder: DcaeDecoder,
}

impl AutoencoderDc {
    /// Builds both halves.
    pub fn new(cfg: &AutoencoderDcConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            encoder: DcaeEncoder::new(cfg, vb.pp("encoder"))?,
            decoder: DcaeDecoder::new(cfg, vb.pp("decoder"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pixel_shuffle_roundtrip_and_layout() {
        let x = Tensor::arange(0f32, 32.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 8, 2, 2))
            .unwrap();
        let s = pixel_shuffle(&x, 2).unwrap();
        assert_eq!(s.dims(), &[1, 2, 4, 4]);
        // out[0, c, 2h+i, 2w+j] = in[0, 4c + 2i + j, h, w]
        let v: Vec<Vec<f32>> = s.get(0).unwrap().get(1).unwrap().to_vec2().unwrap();
        assert_eq!(v[0][0], 16.0); // c=1, i=0, j=0, h=0, w=0
        assert_eq!(v[0][1], 20.0); // j=1 -> channel 5
        assert_eq!(v[1][0], 24.0); // i=1 -> channel 6
        let back = pixel_unshuffle(&s, 2).unwrap();
        let d = (back - &x)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
    }
}

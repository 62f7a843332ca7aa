//! Compute kernels of the acestep engine, behind one small interface over candle tensors.
//!
//! Layers ([`Conv1d`], [`Conv2d`], [`ConvTranspose1d`]) and functions ([`activation`],
//! [`rms_norm_channels`], [`layer_norm_channels`]) take and return [`candle_core::Tensor`]s:
//!
//! - on the CPU in f32 they run this crate's kernels (multi-threaded with rayon, vectorised for
//!   AVX-512 or AVX2 + FMA where the CPU has them, portable code elsewhere), with the bias, a
//!   residual and activations before and after fused into the pass over the data;
//! - on every other device or dtype they run a formulation out of candle's batched ops that needs
//!   no per-group or per-sample launch (a depthwise convolution is `k` shifted multiply-adds, a
//!   grouped one a batched matmul), so the same model code runs on CUDA and Metal. On the CPU
//!   [`with_generic`] (one thread) or the `ACESTEP_KERNELS_GENERIC` environment variable (the
//!   whole process) forces that path, to prove it there.
//!
//! Results match candle's plain implementation to rounding (see each kernel's tests).

mod cpu;
mod generic;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};

pub use cpu::conv1d::Algo as Conv1dAlgo;
pub use cpu::conv2d::Algo as Conv2dAlgo;

/// An element-wise activation that a kernel can fuse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// None.
    #[default]
    Identity,
    /// `x * sigmoid(x)`.
    Silu,
    /// `max(x, 0)`.
    Relu,
    /// The exact (erf) GELU.
    Gelu,
    /// The tanh approximation of the GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

/// Padding, stride, dilation and groups of a convolution (the same in both spatial dims of a 2-D
/// one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Zeros added on each side.
    pub padding: usize,
    /// Step between outputs.
    pub stride: usize,
    /// Step between kernel taps.
    pub dilation: usize,
    /// Channel groups (`groups == channels`: depthwise).
    pub groups: usize,
}

impl Default for ConvSpec {
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

/// What a convolution fuses around its sum: `act_out(conv(act_in(x)) + bias + residual)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fused<'a> {
    /// Applied to the input first.
    pub act_in: Activation,
    /// Applied to the result last.
    pub act_out: Activation,
    /// Added to the result before `act_out` (shape of the output).
    pub residual: Option<&'a Tensor>,
}

thread_local! {
    static FORCE_GENERIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every call on this thread taking the candle-op formulation that other devices
/// and dtypes run, instead of the CPU kernels: the tests compare both paths on the CPU, which
/// proves the formulations that run on CUDA and Metal.
pub fn with_generic<R>(f: impl FnOnce() -> R) -> R {
    let before = FORCE_GENERIC.with(|c| c.replace(true));
    let r = f();
    FORCE_GENERIC.with(|c| c.set(before));
    r
}

/// True when the environment sets `ACESTEP_KERNELS_GENERIC` (to anything): every call of the
/// process takes the candle-op formulation that other devices run, so a whole model (the parity
/// suite) can be checked on the CPU with the code path CUDA and Metal take.
fn generic_everywhere() -> bool {
    static GENERIC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GENERIC.get_or_init(|| std::env::var_os("ACESTEP_KERNELS_GENERIC").is_some())
}

/// True when `ts` run on this crate's CPU kernels.
fn on_cpu_f32(ts: &[&Tensor]) -> bool {
    !FORCE_GENERIC.with(|c| c.get())
        && !generic_everywhere()
        && ts
            .iter()
            .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
}

/// Applies `act` to a tensor.
pub fn activation(x: &Tensor, act: Activation) -> Result<Tensor> {
    if act == Activation::Identity {
        return Ok(x.clone());
    }
    if on_cpu_f32(&[x]) {
        let mut v = cpu::to_vec(x)?;
        cpu::act::apply_par(act, &mut v);
        return Tensor::from_vec(v, x.shape(), x.device());
    }
    generic::activation(x, act)
}

/// A 1-D convolution layer: weight `[cout, cin / groups, k]`, optional bias `[cout]`; input
/// `[b, cin, l]`.
///
/// On the CPU in f32 the weight is held tap-major (`[k, cout, cin / groups]`, the layout every
/// CPU algorithm reads), in place of the checkpoint's layout: no second copy.
#[derive(Clone, Debug)]
pub struct Conv1d {
    weight: Tensor,
    tap_major: bool,
    bias: Option<Tensor>,
    spec: ConvSpec,
}

impl Conv1d {
    /// A layer from its tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>, spec: ConvSpec) -> Self {
        if on_cpu_f32(&[&weight]) && weight.rank() == 3 {
            if let Ok(t) = weight.permute((2, 0, 1)).and_then(|t| t.contiguous()) {
                return Self {
                    weight: t,
                    tap_major: true,
                    bias,
                    spec,
                };
            }
        }
        Self {
            weight,
            tap_major: false,
            bias,
            spec,
        }
    }

    /// The weight, `[cout, cin / groups, k]`.
    pub fn weight(&self) -> Result<Tensor> {
        if self.tap_major {
            self.weight.permute((1, 2, 0))?.contiguous()
        } else {
            Ok(self.weight.clone())
        }
    }

    /// `(cout, cin / groups, k)`.
    fn wdims(&self) -> Result<(usize, usize, usize)> {
        let (a, b, c) = self.weight.dims3()?;
        Ok(if self.tap_major { (b, c, a) } else { (a, b, c) })
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The configuration.
    pub fn spec(&self) -> ConvSpec {
        self.spec
    }

    /// `act_out(conv(act_in(x)) + bias + residual)`.
    pub fn forward_fused(&self, x: &Tensor, f: Fused) -> Result<Tensor> {
        self.forward_algo(x, f, None)
    }

    /// [`Conv1d::forward_fused`] with the CPU algorithm forced (tests and benches; `None` or an
    /// algorithm that does not apply to the shape: the planner's choice).
    pub fn forward_algo(&self, x: &Tensor, f: Fused, algo: Option<Conv1dAlgo>) -> Result<Tensor> {
        let (b, cin, l) = x.dims3()?;
        let (cout, cig, k) = self.wdims()?;
        let s = self.spec;
        if s.groups == 0 || cin % s.groups != 0 || cout % s.groups != 0 || cig * s.groups != cin {
            candle_core::bail!(
                "conv1d: input channels {cin}, weight {:?}, groups {}",
                self.weight.dims(),
                s.groups
            );
        }
        if s.stride == 0 || s.dilation == 0 || l + 2 * s.padding < s.dilation * (k - 1) + 1 {
            candle_core::bail!("conv1d: input of length {l} too short for {s:?} and {k} taps");
        }
        let mut all = vec![x, &self.weight];
        all.extend(self.bias.as_ref());
        all.extend(f.residual);
        if !on_cpu_f32(&all) {
            return generic::conv1d(x, &self.weight()?, self.bias.as_ref(), s, f);
        }
        let g = cpu::conv1d::Geom {
            b,
            cin,
            l,
            cout,
            k,
            spec: s,
        };
        let lout = g.lout();
        if let Some(r) = f.residual {
            if r.dims() != [b, cout, lout] {
                candle_core::bail!(
                    "conv1d: residual {:?}, output [{b}, {cout}, {lout}]",
                    r.dims()
                );
            }
        }
        let y = cpu::with_f32(&all, |v| {
            let mut i = 2;
            let mut next = |present: bool| {
                present.then(|| {
                    i += 1;
                    v[i - 1]
                })
            };
            let ep = cpu::conv1d::Epilogue {
                bias: next(self.bias.is_some()),
                residual: next(f.residual.is_some()),
                act_in: f.act_in,
                act_out: f.act_out,
            };
            let algo = algo
                .filter(|a| cpu::conv1d::applies(*a, &g))
                .unwrap_or_else(|| cpu::conv1d::plan(&g));
            cpu::conv1d::conv1d(v[0], v[1], &g, &ep, algo)
        })?;
        Tensor::from_vec(y, (b, cout, lout), x.device())
    }

    /// The algorithm the CPU would use for an input `[b, cin, l]`.
    pub fn cpu_algo(&self, b: usize, l: usize) -> Result<Conv1dAlgo> {
        let (cout, cig, k) = self.wdims()?;
        Ok(cpu::conv1d::plan(&cpu::conv1d::Geom {
            b,
            cin: cig * self.spec.groups,
            l,
            cout,
            k,
            spec: self.spec,
        }))
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, Fused::default())
    }
}

/// A transposed 1-D convolution layer: weight `[cin, cout, k]`, optional bias `[cout]`; input
/// `[b, cin, l]`, output `[b, cout, (l - 1) * stride + k + output_padding - 2 * padding]`.
#[derive(Clone, Debug)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl ConvTranspose1d {
    /// A layer from its tensors.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Self {
        Self {
            weight,
            bias,
            stride,
            padding,
            output_padding,
        }
    }

    /// `act_out(conv_transpose(act_in(x)) + bias)`.
    pub fn forward_act(
        &self,
        x: &Tensor,
        act_in: Activation,
        act_out: Activation,
    ) -> Result<Tensor> {
        let (b, cin, l) = x.dims3()?;
        let (wcin, cout, k) = self.weight.dims3()?;
        if wcin != cin || l == 0 || self.stride == 0 {
            candle_core::bail!(
                "conv_transpose1d: input {:?}, weight {:?}, stride {}",
                x.dims(),
                self.weight.dims(),
                self.stride
            );
        }
        let g = cpu::conv_transpose1d::Geom {
            b,
            cin,
            l,
            cout,
            k,
            stride: self.stride,
            padding: self.padding,
            output_padding: self.output_padding,
        };
        if (l - 1) * self.stride + k + self.output_padding <= 2 * self.padding {
            candle_core::bail!(
                "conv_transpose1d: padding {} leaves no output",
                self.padding
            );
        }
        let mut all = vec![x, &self.weight];
        all.extend(self.bias.as_ref());
        if !on_cpu_f32(&all) {
            let x = generic::activation(x, act_in)?;
            let y = generic::conv_transpose1d(
                &x,
                &self.weight,
                self.stride,
                self.padding,
                self.output_padding,
            )?;
            let y = match &self.bias {
                Some(bias) => y.broadcast_add(&bias.reshape((1, cout, 1))?)?,
                None => y,
            };
            return generic::activation(&y, act_out);
        }
        let y = cpu::with_f32(&all, |v| {
            cpu::conv_transpose1d::conv_transpose1d(
                v[0],
                v[1],
                v.get(2).copied(),
                &g,
                act_in,
                act_out,
            )
        })?;
        Tensor::from_vec(y, (b, cout, g.lout()), x.device())
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity, Activation::Identity)
    }
}

/// Frees the scratch buffers the CPU kernels keep for reuse (up to 256 MB after a large call).
pub fn release_scratch() {
    cpu::scratch::release();
}

/// A 2-D convolution layer (NCHW): weight `[cout, cin / groups, kh, kw]`, optional bias
/// `[cout]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    spec: ConvSpec,
}

impl Conv2d {
    /// A layer from its tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>, spec: ConvSpec) -> Self {
        Self { weight, bias, spec }
    }

    /// The weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    fn geom(&self, x: &Tensor) -> Result<cpu::conv2d::Geom> {
        let (b, cin, h, w) = x.dims4()?;
        let (cout, cig, kh, kw) = self.weight.dims4()?;
        let s = self.spec;
        if s.groups == 0 || cin % s.groups != 0 || cout % s.groups != 0 || cig * s.groups != cin {
            candle_core::bail!(
                "conv2d: input channels {cin}, weight {:?}, groups {}",
                self.weight.dims(),
                s.groups
            );
        }
        if s.stride == 0
            || s.dilation == 0
            || h + 2 * s.padding < s.dilation * (kh - 1) + 1
            || w + 2 * s.padding < s.dilation * (kw - 1) + 1
        {
            candle_core::bail!("conv2d: input {h}x{w} too small for {s:?} and a {kh}x{kw} kernel");
        }
        Ok(cpu::conv2d::Geom {
            b,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            spec: s,
        })
    }

    /// `act_out(conv(act_in(x)) + bias + residual)`.
    pub fn forward_fused(&self, x: &Tensor, f: Fused) -> Result<Tensor> {
        self.forward_algo(x, f, None)
    }

    /// [`Conv2d::forward_fused`] with the CPU algorithm forced (tests and benches; `None` or an
    /// algorithm that does not apply: the planner's choice).
    pub fn forward_algo(&self, x: &Tensor, f: Fused, algo: Option<Conv2dAlgo>) -> Result<Tensor> {
        let g = self.geom(x)?;
        let (ho, wo) = (g.hout(), g.wout());
        if let Some(r) = f.residual {
            if r.dims() != [g.b, g.cout, ho, wo] {
                candle_core::bail!(
                    "conv2d: residual {:?}, output [{}, {}, {ho}, {wo}]",
                    r.dims(),
                    g.b,
                    g.cout
                );
            }
        }
        let mut all = vec![x, &self.weight];
        all.extend(self.bias.as_ref());
        all.extend(f.residual);
        if !on_cpu_f32(&all) {
            return generic::conv2d(x, &self.weight, self.bias.as_ref(), self.spec, f);
        }
        let algo = algo
            .filter(|a| cpu::conv2d::applies(*a, &g))
            .unwrap_or_else(|| cpu::conv2d::plan(&g));
        let y = cpu::with_f32(&all, |v| {
            let mut i = 2;
            let mut next = |present: bool| {
                present.then(|| {
                    i += 1;
                    v[i - 1]
                })
            };
            let ep = cpu::conv2d::Epilogue {
                bias: next(self.bias.is_some()),
                residual: next(f.residual.is_some()),
                act_in: f.act_in,
                act_out: f.act_out,
            };
            cpu::conv2d::conv2d(v[0], v[1], &g, &ep, algo)
        })?;
        Tensor::from_vec(y, (g.b, g.cout, ho, wo), x.device())
    }

    /// The algorithm the CPU would use for `x`.
    pub fn cpu_algo(&self, x: &Tensor) -> Result<Conv2dAlgo> {
        Ok(cpu::conv2d::plan(&self.geom(x)?))
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, Fused::default())
    }
}

/// diffusers' `RMSNorm` over the channels (dim 1) of a channel-first tensor (`[b, c, ...]`):
/// `x / sqrt(mean_c(x^2) + eps) * weight + bias`, then `+ residual`. Computed in f32.
pub fn rms_norm_channels(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    norm_channels(cpu::norm::Kind::Rms, x, weight, bias, eps, residual)
}

/// LayerNorm over the channels (dim 1) of a channel-first tensor: `(x - mean_c) /
/// sqrt(var_c + eps) * weight + bias`, then `+ residual`.
pub fn layer_norm_channels(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    norm_channels(cpu::norm::Kind::Layer, x, weight, bias, eps, residual)
}

fn norm_channels(
    kind: cpu::norm::Kind,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() < 2 || weight.dims() != [dims[1]] || bias.is_some_and(|b| b.dims() != [dims[1]]) {
        candle_core::bail!(
            "channel norm: input {dims:?}, weight {:?}, bias {:?}",
            weight.dims(),
            bias.map(|b| b.dims().to_vec())
        );
    }
    if let Some(r) = residual {
        if r.dims() != dims.as_slice() {
            candle_core::bail!("channel norm: residual {:?}, input {dims:?}", r.dims());
        }
    }
    let mut all = vec![x, weight];
    all.extend(bias);
    all.extend(residual);
    if !on_cpu_f32(&all) {
        return generic::norm_channels(kind, x, weight, bias, eps, residual);
    }
    let (batch, c) = (dims[0], dims[1]);
    let n: usize = dims[2..].iter().product();
    let y = cpu::with_f32(&all, |v| {
        let mut i = 2;
        let mut next = |present: bool| {
            present.then(|| {
                i += 1;
                v[i - 1]
            })
        };
        let b = next(bias.is_some());
        let r = next(residual.is_some());
        cpu::norm::norm_channels(kind, v[0], batch, c, n, v[1], b, eps as f32, r)
    })?;
    Tensor::from_vec(y, dims, x.device())
}

/// `x[:, :c] * act(x[:, c:])` over the two channel halves of `x` (`[b, 2c, ...]`): a GLU.
pub fn glu(x: &Tensor, act: Activation) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() < 2 || !dims[1].is_multiple_of(2) {
        candle_core::bail!("glu: input {dims:?} needs an even channel count (dim 1)");
    }
    let c = dims[1] / 2;
    let mut out = dims.clone();
    out[1] = c;
    if !on_cpu_f32(&[x]) {
        let a = x.narrow(1, 0, c)?;
        let g = generic::activation(&x.narrow(1, c, c)?, act)?;
        return a * g;
    }
    let n: usize = dims[2..].iter().product();
    let y = cpu::with_f32(&[x], |v| cpu::layout::glu(v[0], dims[0], c, n, act))?;
    Tensor::from_vec(y, out, x.device())
}

/// Nearest-neighbour 2x upsampling of NCHW.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if !on_cpu_f32(&[x]) {
        return x.upsample_nearest2d(2 * h, 2 * w);
    }
    let y = cpu::with_f32(&[x], |v| cpu::layout::upsample2x(v[0], b * c, h, w))?;
    Tensor::from_vec(y, (b, c, 2 * h, 2 * w), x.device())
}

/// The mean over consecutive groups of `group` channels of `pixel_unshuffle(x, 2)` (the DCAE
/// down blocks' shortcut): `[b, c, h, w]` -> `[b, 4c / group, h / 2, w / 2]`.
pub fn pixel_unshuffle_mean(x: &Tensor, group: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if !h.is_multiple_of(2) || !w.is_multiple_of(2) || group == 0 || !(4 * c).is_multiple_of(group)
    {
        candle_core::bail!("pixel_unshuffle_mean: input {:?}, group {group}", x.dims());
    }
    if !on_cpu_f32(&[x]) {
        return generic::pixel_unshuffle(x, 2)?
            .reshape((b, 4 * c / group, group, h / 2, w / 2))?
            .mean(2);
    }
    let y = cpu::with_f32(&[x], |v| {
        cpu::layout::unshuffle_mean(v[0], b, c, h, w, group)
    })?;
    Tensor::from_vec(y, (b, 4 * c / group, h / 2, w / 2), x.device())
}

/// `pixel_shuffle(repeat_interleave(x, repeats, dim 1), 2)` (the DCAE up blocks' shortcut):
/// `[b, c, h, w]` -> `[b, c * repeats / 4, 2h, 2w]`.
pub fn pixel_shuffle_repeat(x: &Tensor, repeats: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if repeats == 0 || !(c * repeats).is_multiple_of(4) {
        candle_core::bail!(
            "pixel_shuffle_repeat: input {:?}, repeats {repeats}",
            x.dims()
        );
    }
    if !on_cpu_f32(&[x]) {
        let rep = x
            .unsqueeze(2)?
            .broadcast_as((b, c, repeats, h, w))?
            .reshape((b, c * repeats, h, w))?;
        return generic::pixel_shuffle(&rep, 2);
    }
    let y = cpu::with_f32(&[x], |v| {
        cpu::layout::shuffle_repeat(v[0], b, c, h, w, repeats)
    })?;
    Tensor::from_vec(y, (b, c * repeats / 4, 2 * h, 2 * w), x.device())
}

/// Sana's multi-scale ReLU linear attention over head groups of `3 * head_dim` channels (q, k,
/// v) taken from `parts` in order (as if concatenated on dim 1; each `[b, groups * 3 *
/// head_dim, h, w]`): per group `(v relu(k)^T) relu(q) / (sum(relu(k)) . relu(q) + eps)`, in f32.
/// Output `[b, groups * head_dim, h, w]`.
pub fn relu_linear_attention(parts: &[&Tensor], head_dim: usize, eps: f64) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        candle_core::bail!("relu_linear_attention: no input");
    };
    let (b, _, h, w) = first.dims4()?;
    let mut groups = Vec::with_capacity(parts.len());
    for p in parts {
        let (pb, c, ph, pw) = p.dims4()?;
        if (pb, ph, pw) != (b, h, w) || head_dim == 0 || c % (3 * head_dim) != 0 {
            candle_core::bail!(
                "relu_linear_attention: part {:?} vs {:?}, head_dim {head_dim}",
                p.dims(),
                first.dims()
            );
        }
        groups.push(c / (3 * head_dim));
    }
    let total: usize = groups.iter().sum();
    if !on_cpu_f32(parts) {
        return generic::relu_linear_attention(parts, head_dim, eps);
    }
    let n = h * w;
    let y = cpu::with_f32(parts, |v| {
        let ps: Vec<cpu::attention::Part> = v
            .iter()
            .zip(&groups)
            .map(|(d, &g)| cpu::attention::Part { data: d, groups: g })
            .collect();
        cpu::attention::relu_linear_attention(&ps, b, head_dim, n, eps as f32)
    })?;
    Tensor::from_vec(y, (b, total * head_dim, h, w), first.device())
}

/// A linear layer `y = x W^T + b` (weight `[out, in]`, optional bias `[out]`; `x` `[..., in]`),
/// a drop-in for `candle_nn::Linear`.
///
/// On the CPU in f32 the weight is packed once, at construction, into the layout the CPU kernel
/// streams (panels of 32 outputs), in place of the checkpoint's layout (no second copy); every
/// call then runs without packing, which matters for the few-token products of the text and
/// lyric encoders and the DiT. Clones share the packed weight.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

#[derive(Clone, Debug)]
enum LinearWeight {
    Tensor(Tensor),
    Packed(std::sync::Arc<cpu::linear::Packed>),
    /// GGML block-quantized (candle's quantized matmul: the activations are quantized to the
    /// matching 8-bit blocks and dotted with the weight's blocks; the weight is never expanded).
    Quantized(QMatMul, std::sync::Arc<QTensor>),
    /// GGML `q8_0` / `q4k` blocks re-laid out in tiles for this crate's CPU kernel (in place of
    /// the blocks: one copy).
    QPacked(std::sync::Arc<cpu::qmatmul::QPacked>),
}

impl Linear {
    /// A layer from its tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        if on_cpu_f32(&[&weight]) && weight.rank() == 2 {
            if let Ok((n, k)) = weight.dims2() {
                if let Ok(p) = cpu::with_f32(&[&weight], |v| cpu::linear::Packed::new(v[0], n, k)) {
                    return Self {
                        weight: LinearWeight::Packed(std::sync::Arc::new(p)),
                        bias,
                    };
                }
            }
        }
        Self {
            weight: LinearWeight::Tensor(weight),
            bias,
        }
    }

    /// A layer over a block-quantized weight `[out, in]` (GGML formats: `Q8_0`, `Q6K`, ...).
    ///
    /// On a CPU with AVX-512 VNNI, `Q8_0` and `Q4K` weights are re-laid out for this crate's
    /// quantized kernel (the blocks are dropped once copied: the layer holds the weight once,
    /// where candle's x86 kernel would keep a repacked copy beside them); everything else runs
    /// candle's quantized matmul (as does every layer while the candle-op path is forced).
    pub fn quantized(weight: std::sync::Arc<QTensor>, bias: Option<Tensor>) -> Result<Self> {
        let (n, k) = weight.shape().dims2()?;
        let format = match weight.dtype() {
            GgmlDType::Q8_0 => Some(cpu::qmatmul::Format::Q8_0),
            GgmlDType::Q4K => Some(cpu::qmatmul::Format::Q4K),
            _ => None,
        };
        if let Some(format) = format {
            // (`on_cpu_f32` of no tensors: the candle-op path is not forced.)
            let cpu_f32 = on_cpu_f32(&bias.iter().collect::<Vec<_>>());
            if cpu::qmatmul::fast() && cpu_f32 && matches!(weight.device(), Device::Cpu) {
                if let Some(p) = cpu::qmatmul::QPacked::from_ggml(format, &weight.data()?, n, k) {
                    return Ok(Self {
                        weight: LinearWeight::QPacked(std::sync::Arc::new(p)),
                        bias,
                    });
                }
            }
        }
        let qm = QMatMul::from_arc(weight.clone())?;
        Ok(Self {
            weight: LinearWeight::Quantized(qm, weight),
            bias,
        })
    }

    /// This layer with its weight quantized to `dtype` (the bias stays as it is).
    pub fn quantize(&self, dtype: GgmlDType) -> Result<Self> {
        let w = self.weight()?.to_dtype(DType::F32)?;
        Self::quantized(
            std::sync::Arc::new(QTensor::quantize(&w, dtype)?),
            self.bias.clone(),
        )
    }

    /// The GGML format of the weight, when it is quantized.
    pub fn quantized_dtype(&self) -> Option<GgmlDType> {
        match &self.weight {
            LinearWeight::Quantized(_, q) => Some(q.dtype()),
            LinearWeight::QPacked(p) => Some(match p.format {
                cpu::qmatmul::Format::Q8_0 => GgmlDType::Q8_0,
                cpu::qmatmul::Format::Q4K => GgmlDType::Q4K,
            }),
            _ => None,
        }
    }

    /// Bytes the weight takes in memory.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            LinearWeight::Tensor(t) => t.elem_count() * t.dtype().size_in_bytes(),
            LinearWeight::Packed(p) => p.n * p.k * 4,
            LinearWeight::Quantized(_, q) => q.storage_size_in_bytes(),
            LinearWeight::QPacked(p) => p.bytes(),
        }
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        match &self.weight {
            LinearWeight::Tensor(t) => {
                let d = t.dims();
                (d[0], d.get(1).copied().unwrap_or(0))
            }
            LinearWeight::Packed(p) => (p.n, p.k),
            LinearWeight::QPacked(p) => (p.n, p.k),
            LinearWeight::Quantized(_, q) => {
                let d = q.shape().dims();
                (d[0], d.get(1).copied().unwrap_or(0))
            }
        }
    }

    /// The weight's device.
    pub fn device(&self) -> Device {
        match &self.weight {
            LinearWeight::Tensor(t) => t.device().clone(),
            LinearWeight::Packed(_) | LinearWeight::QPacked(_) => Device::Cpu,
            LinearWeight::Quantized(_, q) => q.device(),
        }
    }

    /// The dtype of the layer's activations (f32 for a packed or quantized weight).
    pub fn dtype(&self) -> DType {
        match &self.weight {
            LinearWeight::Tensor(t) => t.dtype(),
            LinearWeight::Packed(_) | LinearWeight::Quantized(..) | LinearWeight::QPacked(_) => {
                DType::F32
            }
        }
    }

    /// The weight `[out, in]` (rebuilt from the packed form on the CPU; dequantized when
    /// quantized).
    pub fn weight(&self) -> Result<Tensor> {
        match &self.weight {
            LinearWeight::Tensor(t) => Ok(t.clone()),
            LinearWeight::Packed(p) => Tensor::from_vec(p.unpack(), (p.n, p.k), &Device::Cpu),
            LinearWeight::Quantized(_, q) => q.dequantize(&q.device()),
            LinearWeight::QPacked(p) => Tensor::from_vec(p.unpack(), (p.n, p.k), &Device::Cpu),
        }
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `act(x W^T + b)`.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (n, k) = self.dims();
        let dims = x.dims().to_vec();
        if dims.last() != Some(&k) {
            candle_core::bail!("linear: input {dims:?}, weight [{n}, {k}]");
        }
        let p = match &self.weight {
            LinearWeight::Packed(p) if on_cpu_f32(&[x]) => p,
            LinearWeight::Packed(_) => {
                // Input off the CPU or not f32: the plain product with the rebuilt weight.
                let w = self.weight()?.to_device(x.device())?.to_dtype(x.dtype())?;
                return generic::linear(x, &w, self.bias.as_ref(), act);
            }
            LinearWeight::Tensor(w) => return generic::linear(x, w, self.bias.as_ref(), act),
            LinearWeight::QPacked(p) => {
                let dt = x.dtype();
                let m = x.elem_count() / k.max(1);
                let x32 = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
                let mut all = vec![&x32];
                let b32 = match &self.bias {
                    Some(b) => Some(b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?),
                    None => None,
                };
                all.extend(b32.as_ref());
                let y = cpu::with_f32(&all, |v| {
                    cpu::qmatmul::matmul(v[0], m, p, v.get(1).copied(), act)
                })?;
                let mut out = dims;
                *out.last_mut().expect("rank >= 1") = n;
                return Tensor::from_vec(y, out, &Device::Cpu)?
                    .to_device(x.device())?
                    .to_dtype(dt);
            }
            LinearWeight::Quantized(qm, _) => {
                let dt = x.dtype();
                let xq = match dt {
                    DType::F32 | DType::F16 | DType::BF16 => x.contiguous()?,
                    _ => x.to_dtype(DType::F32)?.contiguous()?,
                };
                let mut y = qm.forward(&xq)?.to_dtype(dt)?;
                if let Some(b) = &self.bias {
                    y = y.broadcast_add(&b.to_dtype(dt)?)?;
                }
                return activation(&y, act);
            }
        };
        let m = x.elem_count() / k.max(1);
        let mut all = vec![x];
        all.extend(self.bias.as_ref());
        let y = cpu::with_f32(&all, |v| {
            cpu::linear::matmul(v[0], m, p, v.get(1).copied(), act)
        })?;
        let mut out = dims;
        *out.last_mut().expect("rank >= 1") = n;
        Tensor::from_vec(y, out, x.device())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
    }
}

/// A depthwise convolution along the sequence of a channel-last tensor `x` `[b, s, c]`:
/// `y[t][ch] = bias[ch] + sum_k w[k][ch] x[t + k - padding][ch]` (zero padding, `w` `[k, c]`,
/// output length `s`: `padding = (k - 1) / 2` for odd `k`), then with `glu = Some(act)`
/// `y[.., ..c/2] * act(y[.., c/2..])`, all in one pass.
pub fn seq_depthwise_conv(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    padding: usize,
    glu: Option<Activation>,
) -> Result<Tensor> {
    let (b, s, c) = x.dims3()?;
    let (k, wc) = w.dims2()?;
    if wc != c
        || bias.dims() != [c]
        || k == 0
        || padding >= k
        || (glu.is_some() && !c.is_multiple_of(2))
    {
        candle_core::bail!(
            "seq_depthwise_conv: x {:?}, w {:?}, bias {:?}, padding {padding}",
            x.dims(),
            w.dims(),
            bias.dims()
        );
    }
    if !on_cpu_f32(&[x, w, bias]) {
        let xp = x.pad_with_zeros(1, padding, k - 1 - padding)?;
        let mut y = bias
            .reshape((1, 1, c))?
            .broadcast_as((b, s, c))?
            .contiguous()?;
        for kk in 0..k {
            y = (y + xp.narrow(1, kk, s)?.broadcast_mul(&w.get(kk)?)?)?;
        }
        return match glu {
            Some(act) => {
                y.narrow(2, 0, c / 2)? * generic::activation(&y.narrow(2, c / 2, c / 2)?, act)?
            }
            None => Ok(y),
        };
    }
    let width = if glu.is_some() { c / 2 } else { c };
    let y = cpu::with_f32(&[x, w, bias], |v| {
        cpu::layout::seq_depthwise(v[0], b, s, c, v[1], k, padding, v[2], glu)
    })?;
    Tensor::from_vec(y, (b, s, width), x.device())
}

/// The weights of a Transformer-XL relative-position attention (the Conformer's): for scores
/// `ac` `[b, h, t, t]` (content) and `bd` `[b, h, t, 2t - 1]` (position, before the shift),
/// `softmax((ac[..][i][j] + bd[..][i][t - 1 - i + j]) * scale + key_bias[b][j])` over `j`, with
/// the keys whose `key_bias` (`[b, 1, 1, t]`) is `-inf` at exactly zero and an all-masked row
/// all zeros. Computed in f32.
pub fn rel_position_softmax(
    ac: &Tensor,
    bd: &Tensor,
    key_bias: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, t, t2) = ac.dims4()?;
    if t2 != t
        || bd.dims() != [b, h, t, (2 * t).saturating_sub(1)]
        || key_bias.dims() != [b, 1, 1, t]
    {
        candle_core::bail!(
            "rel_position_softmax: ac {:?}, bd {:?}, key_bias {:?}",
            ac.dims(),
            bd.dims(),
            key_bias.dims()
        );
    }
    if !on_cpu_f32(&[ac, bd, key_bias]) {
        return generic::rel_position_softmax(ac, bd, key_bias, scale);
    }
    let y = cpu::with_f32(&[ac, bd, key_bias], |v| {
        cpu::attention::rel_position_softmax(v[0], v[1], v[2], b, h, t, scale as f32)
    })?;
    Tensor::from_vec(y, (b, h, t, t), ac.device())
}

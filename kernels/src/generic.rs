//! The kernels as candle ops, for every device and dtype the CPU kernels do not take: no
//! per-group or per-sample launches (depthwise convolutions are shifted multiply-adds, grouped
//! ones batched matmuls).

use candle_core::{DType, Module, Result, Tensor, D};

use crate::{Activation, ConvSpec, Fused};

/// `act(x)`.
pub(crate) fn activation(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Identity => Ok(x.clone()),
        Activation::Silu => x.silu(),
        Activation::Relu => x.relu(),
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
    }
}

/// `act_out(y + bias + residual)`, bias over dim 1.
fn finish(y: Tensor, bias: Option<&Tensor>, f: &Fused) -> Result<Tensor> {
    let mut y = y;
    if let Some(b) = bias {
        let mut shape = vec![1; y.rank()];
        shape[1] = b.elem_count();
        y = y.broadcast_add(&b.reshape(shape)?)?;
    }
    if let Some(r) = f.residual {
        y = (y + r)?;
    }
    activation(&y, f.act_out)
}

/// 1-D convolution.
pub(crate) fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: ConvSpec,
    f: Fused,
) -> Result<Tensor> {
    let x = activation(x, f.act_in)?;
    let (_, cin, _) = x.dims3()?;
    let (cout, _, k) = w.dims3()?;
    let y = if s.groups == 1 {
        widened(&x, w, |x, w| {
            x.conv1d(w, s.padding, s.stride, s.dilation, 1)
        })?
    } else if s.groups == cin && cin == cout && s.stride == 1 {
        // Depthwise: k shifted multiply-adds over all channels at once.
        let lout = x.dim(2)? + 2 * s.padding - s.dilation * (k - 1);
        let xp = x.pad_with_zeros(D::Minus1, s.padding, s.padding)?;
        let mut acc: Option<Tensor> = None;
        for kk in 0..k {
            let tap = w.narrow(2, kk, 1)?.reshape((1, cout, 1))?;
            let term = xp.narrow(2, kk * s.dilation, lout)?.broadcast_mul(&tap)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        acc.expect("k >= 1")
    } else {
        grouped_conv1d(&x, w, s)?
    };
    finish(y, bias, &f)
}

/// A grouped convolution as one batched matmul over an unfolded input.
fn grouped_conv1d(x: &Tensor, w: &Tensor, s: ConvSpec) -> Result<Tensor> {
    let (b, cin, l) = x.dims3()?;
    let (cout, cig, k) = w.dims3()?;
    let g = s.groups;
    let lout = (l + 2 * s.padding - s.dilation * (k - 1) - 1) / s.stride + 1;
    let xp = x.pad_with_zeros(D::Minus1, s.padding, s.padding)?;
    // cols[b, g, cig * k, lout]
    let taps = (0..k)
        .map(|kk| {
            let span = (lout - 1) * s.stride + 1;
            let t = xp.narrow(2, kk * s.dilation, span)?;
            let t = if s.stride > 1 {
                t.reshape((b, cin, span))?
                    .pad_with_zeros(2, 0, lout * s.stride - span)?
                    .reshape((b, cin, lout, s.stride))?
                    .narrow(3, 0, 1)?
                    .squeeze(3)?
            } else {
                t
            };
            t.reshape((b, g, cig, 1, lout))
        })
        .collect::<Result<Vec<_>>>()?;
    let cols = Tensor::cat(&taps, 3)?.reshape((b, g, cig * k, lout))?;
    let wg = w
        .reshape((1, g, cout / g, cig * k))?
        .broadcast_as((b, g, cout / g, cig * k))?;
    wg.contiguous()?
        .matmul(&cols.contiguous()?)?
        .reshape((b, cout, lout))
}

/// `conv(x, w)`, through f32 for bf16 on the CPU: candle 0.11's CPU convolutions have no bf16
/// matrix product (its plain `matmul` widens bf16 the same way), so the result is the f32
/// convolution rounded to bf16, as a GPU's bf16 convolution with f32 accumulation gives.
fn widened(
    x: &Tensor,
    w: &Tensor,
    conv: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::BF16 {
        let y = conv(&x.to_dtype(DType::F32)?, &w.to_dtype(DType::F32)?)?;
        return y.to_dtype(DType::BF16);
    }
    conv(x, w)
}

/// Transposed 1-D convolution.
///
/// candle 0.11's CPU `conv_transpose1d` takes a col2im shortcut when `padding == 0` whose batched
/// matmul gets every batch item after the first wrong: on the CPU such calls run item by item.
pub(crate) fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    if padding == 0 && b > 1 && x.device().is_cpu() {
        let items = (0..b)
            .map(|i| {
                widened(&x.narrow(0, i, 1)?, w, |x, w| {
                    x.conv_transpose1d(w, 0, output_padding, stride, 1, 1)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Tensor::cat(&items, 0);
    }
    widened(x, w, |x, w| {
        x.conv_transpose1d(w, padding, output_padding, stride, 1, 1)
    })
}

/// 2-D convolution: candle's for dense ones, shifted multiply-adds for depthwise ones, a batched
/// matmul per group for grouped 1x1 ones.
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: ConvSpec,
    f: Fused,
) -> Result<Tensor> {
    let x = activation(x, f.act_in)?;
    let (b, cin, h, wd) = x.dims4()?;
    let (cout, cig, kh, kw) = w.dims4()?;
    let y = if s.groups == 1 {
        widened(&x, w, |x, w| {
            x.conv2d(w, s.padding, s.stride, s.dilation, 1)
        })?
    } else if s.groups == cin && cin == cout && s.stride == 1 {
        let ho = h + 2 * s.padding - s.dilation * (kh - 1);
        let wo = wd + 2 * s.padding - s.dilation * (kw - 1);
        let xp = x
            .pad_with_zeros(2, s.padding, s.padding)?
            .pad_with_zeros(3, s.padding, s.padding)?;
        let mut acc: Option<Tensor> = None;
        for dy in 0..kh {
            for dx in 0..kw {
                let tap = w
                    .narrow(2, dy, 1)?
                    .narrow(3, dx, 1)?
                    .reshape((1, cout, 1, 1))?;
                let term = xp
                    .narrow(2, dy * s.dilation, ho)?
                    .narrow(3, dx * s.dilation, wo)?
                    .broadcast_mul(&tap)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => (a + term)?,
                });
            }
        }
        acc.expect("kernel has taps")
    } else if kh == 1 && kw == 1 && s.stride == 1 && s.padding == 0 {
        let g = s.groups;
        let xg = x.reshape((b, g, cig, h * wd))?;
        let wg = w
            .reshape((1, g, cout / g, cig))?
            .broadcast_as((b, g, cout / g, cig))?
            .contiguous()?;
        wg.matmul(&xg.contiguous()?)?.reshape((b, cout, h, wd))?
    } else {
        widened(&x, w, |x, w| {
            x.conv2d(w, s.padding, s.stride, s.dilation, s.groups)
        })?
    };
    finish(y, bias, &f)
}

/// Channel norms with candle ops, in f32.
pub(crate) fn norm_channels(
    kind: crate::cpu::norm::Kind,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let xc = match kind {
        crate::cpu::norm::Kind::Rms => xf,
        crate::cpu::norm::Kind::Layer => xf.broadcast_sub(&xf.mean_keepdim(1)?)?,
    };
    let var = xc.sqr()?.mean_keepdim(1)?;
    let n = xc.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
    let mut shape = vec![1; x.rank()];
    shape[1] = weight.elem_count();
    let mut y = n.broadcast_mul(&weight.reshape(shape.clone())?)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape(shape)?)?;
    }
    match residual {
        Some(r) => y + r,
        None => Ok(y),
    }
}

/// `[b, c*r*r, h, w] -> [b, c, h*r, w*r]`.
pub(crate) fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let oc = c / (r * r);
    x.reshape((b, oc, r, r, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, oc, h * r, w * r))
}

/// `[b, c, h*r, w*r] -> [b, c*r*r, h, w]`.
pub(crate) fn pixel_unshuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / r, w / r);
    x.reshape((b, c, oh, r, ow, r))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((b, c * r * r, oh, ow))
}

/// The linear attention with candle ops (in f32).
pub(crate) fn relu_linear_attention(parts: &[&Tensor], hd: usize, eps: f64) -> Result<Tensor> {
    let (b, _, h, w) = parts[0].dims4()?;
    let n = h * w;
    let dtype = parts[0].dtype();
    let all = Tensor::cat(parts, 1)?.to_dtype(DType::F32)?;
    let all = all.reshape((b, (), 3 * hd, n))?;
    let q = all.narrow(2, 0, hd)?.relu()?;
    let k = all.narrow(2, hd, hd)?.relu()?;
    let v = all.narrow(2, 2 * hd, hd)?;
    let g = v.dim(1)?;
    let ones = Tensor::ones((b, g, 1, n), v.dtype(), v.device())?;
    let v_pad = Tensor::cat(&[&v, &ones], 2)?.contiguous()?; // [b, g, hd+1, n]
    let scores = v_pad.matmul(&k.t()?.contiguous()?)?; // [b, g, hd+1, hd]
    let o = scores.matmul(&q.contiguous()?)?; // [b, g, hd+1, n]
    let num = o.narrow(2, 0, hd)?;
    let den = (o.narrow(2, hd, 1)? + eps)?;
    num.broadcast_div(&den)?
        .to_dtype(dtype)?
        .reshape((b, g * hd, h, w))
}

/// `act(x w^T + b)` as candle_nn's `Linear` computes it.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
) -> Result<Tensor> {
    let y = candle_nn::Linear::new(w.clone(), bias.cloned()).forward(x)?;
    activation(&y, act)
}

/// Transformer-XL shift `[b, h, t, 2t-1]` -> `[b, h, t, t]`, `out[i][j] = x[i][t-1-i+j]`.
fn rel_shift(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, n) = x.dims4()?;
    let zero = Tensor::zeros((b, h, t, 1), x.dtype(), x.device())?;
    let padded = Tensor::cat(&[&zero, x], 3)?.reshape((b, h, n + 1, t))?;
    padded
        .narrow(2, 1, n)?
        .reshape((b, h, t, n))?
        .narrow(3, 0, t)
}

/// The relative-position attention weights with candle ops.
pub(crate) fn rel_position_softmax(
    ac: &Tensor,
    bd: &Tensor,
    key_bias: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let dtype = ac.dtype();
    let f32 = DType::F32;
    let bd = if bd.dims() != ac.dims() {
        rel_shift(bd)?
    } else {
        bd.clone()
    };
    let kb = key_bias.to_dtype(f32)?;
    let scores = ((ac.to_dtype(f32)? + bd.to_dtype(f32)?)? * scale)?.broadcast_add(&kb)?;
    let attn = candle_nn::ops::softmax_last_dim(&scores)?;
    let valid = kb.ne(f32::NEG_INFINITY)?.broadcast_as(attn.shape())?;
    valid
        .where_cond(&attn, &attn.zeros_like()?)?
        .to_dtype(dtype)
}

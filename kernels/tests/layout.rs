//! The fused reshuffles and the linear attention against the same computations in candle ops.

mod common;

use acestep_kernels::{
    glu, pixel_shuffle_repeat, pixel_unshuffle_mean, relu_linear_attention, upsample_nearest2x,
    Activation,
};
use candle_core::{DType, Device, Tensor};
use common::{max_abs, max_diff, randn};

fn rand(dims: &[usize]) -> Tensor {
    randn(0f32, 1.0, dims, &Device::Cpu).unwrap()
}

#[test]
fn glu_matches() {
    let x = rand(&[2, 10, 7, 5]);
    let want = (x.narrow(1, 0, 5).unwrap() * x.narrow(1, 5, 5).unwrap().silu().unwrap()).unwrap();
    let d = max_diff(&glu(&x, Activation::Silu).unwrap(), &want);
    let g = acestep_kernels::with_generic(|| glu(&x, Activation::Silu)).unwrap();
    assert!(max_diff(&g, &want) < 1e-6, "generic formulation");
    eprintln!("glu: max abs diff {d:.2e} (tol 1e-6)");
    assert!(d < 1e-6);
}

#[test]
fn upsample_matches() {
    let x = rand(&[2, 3, 5, 7]);
    assert_eq!(
        max_diff(
            &upsample_nearest2x(&x).unwrap(),
            &x.upsample_nearest2d(10, 14).unwrap()
        ),
        0.0
    );
}

fn pixel_unshuffle(x: &Tensor) -> Tensor {
    let (b, c, h, w) = x.dims4().unwrap();
    x.reshape((b, c, h / 2, 2, w / 2, 2))
        .unwrap()
        .permute((0, 1, 3, 5, 2, 4))
        .unwrap()
        .reshape((b, c * 4, h / 2, w / 2))
        .unwrap()
}

fn pixel_shuffle(x: &Tensor) -> Tensor {
    let (b, c, h, w) = x.dims4().unwrap();
    x.reshape((b, c / 4, 2, 2, h, w))
        .unwrap()
        .permute((0, 1, 4, 2, 5, 3))
        .unwrap()
        .reshape((b, c / 4, h * 2, w * 2))
        .unwrap()
}

#[test]
fn shortcuts_match() {
    for (c, g) in [(8usize, 2usize), (6, 3), (4, 16)] {
        let x = rand(&[2, c, 6, 10]);
        let u = pixel_unshuffle(&x);
        let want = u.reshape((2, 4 * c / g, g, 3, 5)).unwrap().mean(2).unwrap();
        let d = max_diff(&pixel_unshuffle_mean(&x, g).unwrap(), &want);
        let gen = acestep_kernels::with_generic(|| pixel_unshuffle_mean(&x, g)).unwrap();
        assert!(max_diff(&gen, &want) < 1e-6, "generic formulation");
        eprintln!("unshuffle mean c={c} g={g}: max abs diff {d:.2e} (tol 1e-6)");
        assert!(d < 1e-6);
    }
    for (c, r) in [(8usize, 2usize), (4, 4), (3, 4), (16, 1)] {
        let x = rand(&[2, c, 3, 5]);
        let rep = x
            .unsqueeze(2)
            .unwrap()
            .broadcast_as((2, c, r, 3, 5))
            .unwrap()
            .reshape((2, c * r, 3, 5))
            .unwrap();
        let want = pixel_shuffle(&rep);
        assert_eq!(
            max_diff(&pixel_shuffle_repeat(&x, r).unwrap(), &want),
            0.0,
            "c={c} r={r}"
        );
    }
}

#[test]
fn linear_attention_matches() {
    let hd = 8;
    let (b, h, w) = (2, 3, 7);
    let parts = [rand(&[b, 2 * 3 * hd, h, w]), rand(&[b, 3 * hd, h, w])];
    let refs: Vec<&Tensor> = parts.iter().collect();
    let got = relu_linear_attention(&refs, hd, 1e-15).unwrap();
    // candle formulation
    let n = h * w;
    let all = Tensor::cat(&refs, 1)
        .unwrap()
        .reshape((b, (), 3 * hd, n))
        .unwrap();
    let q = all.narrow(2, 0, hd).unwrap().relu().unwrap();
    let k = all.narrow(2, hd, hd).unwrap().relu().unwrap();
    let v = all.narrow(2, 2 * hd, hd).unwrap();
    let ones = Tensor::ones((b, 3, 1, n), DType::F32, &Device::Cpu).unwrap();
    let v_pad = Tensor::cat(&[&v, &ones], 2).unwrap().contiguous().unwrap();
    let scores = v_pad.matmul(&k.t().unwrap().contiguous().unwrap()).unwrap();
    let o = scores.matmul(&q.contiguous().unwrap()).unwrap();
    let want = o
        .narrow(2, 0, hd)
        .unwrap()
        .broadcast_div(&(o.narrow(2, hd, 1).unwrap() + 1e-15).unwrap())
        .unwrap()
        .reshape((b, 3 * hd, h, w))
        .unwrap();
    let d = max_diff(&got, &want);
    let m = max_abs(&want);
    eprintln!("linear attention: max rel err {:.2e} (tol 1e-5)", d / m);
    let gen = acestep_kernels::with_generic(|| relu_linear_attention(&refs, hd, 1e-15)).unwrap();
    assert!(max_diff(&gen, &want) / m < 1e-5, "generic formulation");
    assert!(d / m < 1e-5);
}

#[test]
fn seq_depthwise_glu_matches() {
    use acestep_kernels::seq_depthwise_conv;
    let (b, s, c, k) = (2usize, 9usize, 38usize, 3usize);
    let x = rand(&[b, s, c]);
    let w = rand(&[k, c]);
    let bias = rand(&[c]);
    let xp = x.pad_with_zeros(1, 1, 1).unwrap();
    let mut y = bias
        .reshape((1, 1, c))
        .unwrap()
        .broadcast_as((b, s, c))
        .unwrap()
        .contiguous()
        .unwrap();
    for kk in 0..k {
        y = (y + xp
            .narrow(1, kk, s)
            .unwrap()
            .broadcast_mul(&w.get(kk).unwrap())
            .unwrap())
        .unwrap();
    }
    let d = max_diff(&seq_depthwise_conv(&x, &w, &bias, 1, None).unwrap(), &y);
    eprintln!("seq depthwise: max abs diff {d:.2e} (tol 1e-5)");
    assert!(d < 1e-5);
    let want = (y.narrow(2, 0, c / 2).unwrap()
        * y.narrow(2, c / 2, c / 2).unwrap().silu().unwrap())
    .unwrap();
    let d = max_diff(
        &seq_depthwise_conv(&x, &w, &bias, 1, Some(Activation::Silu)).unwrap(),
        &want,
    );
    eprintln!("seq depthwise + GLU: max abs diff {d:.2e} (tol 1e-5)");
    assert!(d < 1e-5);
}

#[test]
fn rel_position_softmax_matches() {
    use acestep_kernels::rel_position_softmax;
    let (b, h, t) = (2usize, 3usize, 5usize);
    let ac = rand(&[b, h, t, t]);
    let bd = rand(&[b, h, t, 2 * t - 1]);
    // Item 1 has its last two keys masked out; item 0 none.
    let mut bias = vec![0f32; b * t];
    bias[t + 3] = f32::NEG_INFINITY;
    bias[t + 4] = f32::NEG_INFINITY;
    let key_bias = Tensor::from_vec(bias.clone(), (b, 1, 1, t), &Device::Cpu).unwrap();
    let got = rel_position_softmax(&ac, &bd, &key_bias, 0.7).unwrap();
    let gen =
        acestep_kernels::with_generic(|| rel_position_softmax(&ac, &bd, &key_bias, 0.7)).unwrap();
    assert!(max_diff(&gen, &got) < 1e-6, "generic formulation");
    let (acv, bdv, gv) = (
        ac.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        bd.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    let mut worst = 0f64;
    for bi in 0..b {
        for hh in 0..h {
            for i in 0..t {
                let row = (bi * h + hh) * t + i;
                // The Transformer-XL shift: out[i][j] = bd[i][t - 1 - i + j].
                let s: Vec<f64> = (0..t)
                    .map(|j| {
                        (acv[row * t + j] as f64 + bdv[row * (2 * t - 1) + t - 1 - i + j] as f64)
                            * 0.7
                            + bias[bi * t + j] as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..t {
                    let want = if bias[bi * t + j] == f32::NEG_INFINITY {
                        0.0
                    } else {
                        e[j] / z
                    };
                    let g = gv[row * t + j] as f64;
                    if want == 0.0 {
                        assert_eq!(g, 0.0);
                    }
                    worst = worst.max((g - want).abs());
                }
            }
        }
    }
    eprintln!("rel-position softmax: max abs err {worst:.2e} (tol 1e-6)");
    assert!(worst < 1e-6);
}

//! The fused reshuffles and the linear attention against the same computations in candle ops.

use acestep_kernels::{
    glu, pixel_shuffle_repeat, pixel_unshuffle_mean, relu_linear_attention, upsample_nearest2x,
    Activation,
};
use candle_core::{DType, Device, Tensor};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn rand(dims: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap()
}

#[test]
fn glu_matches() {
    let x = rand(&[2, 10, 7, 5]);
    let want = (x.narrow(1, 0, 5).unwrap() * x.narrow(1, 5, 5).unwrap().silu().unwrap()).unwrap();
    let d = max_diff(&glu(&x, Activation::Silu).unwrap(), &want);
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
    let m = want
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("linear attention: max rel err {:.2e} (tol 1e-5)", d / m);
    assert!(d / m < 1e-5);
}

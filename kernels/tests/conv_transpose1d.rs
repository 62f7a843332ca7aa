//! The transposed convolution against candle's `conv_transpose1d` item by item (candle's batched
//! padding-0 path is wrong past the first item), every stride / padding the vocoder uses.

mod common;

use acestep_kernels::{Activation, ConvTranspose1d};
use candle_core::{Device, Tensor};
use common::{max_abs, max_diff, randn};

#[test]
fn conv_transpose1d_matches_plain() {
    let dev = Device::Cpu;
    for &(b, cin, cout, l, k, stride, padding) in &[
        (2usize, 64usize, 32usize, 107usize, 8usize, 4usize, 2usize),
        (2, 16, 8, 301, 4, 2, 1),
        (1, 5, 3, 17, 8, 4, 0),
        (2, 7, 9, 33, 3, 1, 1),
        (2, 8, 4, 50, 4, 4, 0),
    ] {
        let x = randn(0f32, 1.0, (b, cin, l), &dev).unwrap();
        let w = (randn(0f32, 1.0, (cin, cout, k), &dev).unwrap() * 0.2).unwrap();
        let bias = randn(0f32, 1.0, cout, &dev).unwrap();
        let layer = ConvTranspose1d::new(w.clone(), Some(bias.clone()), stride, padding, 0);
        let got = layer
            .forward_act(&x, Activation::Silu, Activation::Identity)
            .unwrap();
        let xs = x.silu().unwrap();
        let items: Vec<Tensor> = (0..b)
            .map(|i| {
                xs.narrow(0, i, 1)
                    .unwrap()
                    .conv_transpose1d(&w, padding, 0, stride, 1, 1)
                    .unwrap()
            })
            .collect();
        let want = Tensor::cat(&items, 0)
            .unwrap()
            .broadcast_add(&bias.reshape((1, cout, 1)).unwrap())
            .unwrap();
        assert_eq!(got.dims(), want.dims());
        let d = max_diff(&got, &want);
        let m = max_abs(&want);
        eprintln!("b={b} cin={cin} cout={cout} l={l} k={k} stride={stride} padding={padding}: max rel err {:.2e} (tol 1e-5)", d / m);
        assert!(d / m < 1e-5);
        let generic = acestep_kernels::with_generic(|| {
            layer.forward_act(&x, Activation::Silu, Activation::Identity)
        })
        .unwrap();
        let d = max_diff(&generic, &want);
        assert!(d / m < 1e-5, "generic formulation: {}", d / m);
    }
}

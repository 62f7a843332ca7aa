//! The packed linear layer against `candle_nn::Linear` on odd shapes, with fused activations.

mod common;

use acestep_kernels::{Activation, Linear};
use candle_core::{Device, Module, Tensor};
use common::rel_err;

#[test]
fn linear_matches_candle() {
    let dev = Device::Cpu;
    for &(m, k, n) in &[
        (1usize, 1usize, 1usize),
        (5, 7, 31),
        (13, 300, 33),
        (64, 768, 768),
        (3, 2048, 100),
        (300, 64, 64),
        (12, 256, 32),
        (25, 513, 65),
    ] {
        let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let w = (Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap() / (k as f64).sqrt()).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let want = candle_nn::Linear::new(w.clone(), Some(b.clone()))
            .forward(&x)
            .unwrap();
        let lin = Linear::new(w.clone(), Some(b.clone()));
        assert_eq!(lin.dims(), (n, k));
        let got = lin.forward(&x).unwrap();
        let e = rel_err(&got, &want);
        eprintln!("linear m={m} k={k} n={n}: max rel err {e:.2e} (tol 1e-5)");
        assert!(e < 1e-5);
        let got = lin.forward_act(&x, Activation::GeluTanh).unwrap();
        let e = rel_err(&got, &want.gelu().unwrap());
        assert!(e < 1e-5, "gelu_tanh {e}");
        let generic = acestep_kernels::with_generic(|| lin.forward(&x)).unwrap();
        assert!(rel_err(&generic, &want) < 1e-5, "generic formulation");
        // The weight round-trips through the packed form.
        assert_eq!(rel_err(&lin.weight().unwrap(), &w), 0.0);
        // Without bias, non-contiguous input.
        let xt = Tensor::randn(0f32, 1.0, (k, m), &dev).unwrap().t().unwrap();
        let want = candle_nn::Linear::new(w.clone(), None)
            .forward(&xt)
            .unwrap();
        let got = Linear::new(w, None).forward(&xt).unwrap();
        assert!(rel_err(&got, &want) < 1e-5);
    }
}

//! The packed linear layer against `candle_nn::Linear` on odd shapes, with fused activations.

mod common;

use acestep_kernels::{Activation, Linear};
use candle_core::{Device, Module};
use common::{max_abs, max_diff, randn, rel_err};

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
        let x = randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let w = (randn(0f32, 1.0, (n, k), &dev).unwrap() / (k as f64).sqrt()).unwrap();
        let b = randn(0f32, 1.0, n, &dev).unwrap();
        let want = candle_nn::Linear::new(w.clone(), Some(b.clone()))
            .forward(&x)
            .unwrap();
        let lin = Linear::new(w.clone(), Some(b.clone()));
        assert_eq!(lin.dims(), (n, k));
        let got = lin.forward(&x).unwrap();
        let e = rel_err(&got, &want);
        eprintln!("linear m={m} k={k} n={n}: max rel err {e:.2e} (tol 1e-5)");
        assert!(e < 1e-5);
        // The fused activation is the element-wise one applied to the product, bit for bit.
        let got = lin.forward_act(&x, Activation::GeluTanh).unwrap();
        let sep = acestep_kernels::activation(&lin.forward(&x).unwrap(), Activation::GeluTanh);
        assert_eq!(max_diff(&got, &sep.unwrap()), 0.0, "fused gelu_tanh");
        // Against candle's GELU, relative to the scale of what enters it: candle's f32
        // `1 + tanh` cancels on the negative tail (about 1e-7 of |x| absolute), so an output-relative
        // measure over a single small element would gauge candle's rounding, not ours (our
        // activation's own relative error is tested against f64 in the crate's unit tests).
        let e = max_diff(&got, &want.gelu().unwrap()) / max_abs(&want);
        assert!(e < 1e-5, "gelu_tanh {e}");
        let generic = acestep_kernels::with_generic(|| lin.forward(&x)).unwrap();
        assert!(rel_err(&generic, &want) < 1e-5, "generic formulation");
        // The weight round-trips through the packed form.
        assert_eq!(rel_err(&lin.weight().unwrap(), &w), 0.0);
        // Without bias, non-contiguous input.
        let xt = randn(0f32, 1.0, (k, m), &dev).unwrap().t().unwrap();
        let want = candle_nn::Linear::new(w.clone(), None)
            .forward(&xt)
            .unwrap();
        let got = Linear::new(w, None).forward(&xt).unwrap();
        assert!(rel_err(&got, &want) < 1e-5);
    }
}

/// A quantized layer (`q8_0`, `q4k`: this crate's tiles on an AVX-512 VNNI CPU; `q6k`: candle's
/// matmul) against the f32 product with the dequantized weight, beside candle's quantized matmul
/// over the same blocks: the activations' 8-bit rounding is the only difference, and it is no
/// larger than candle's.
#[test]
fn quantized_linear_matches_the_dequantized_product() {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use std::sync::Arc;
    let dev = Device::Cpu;
    for dt in [GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K] {
        for &(m, k, n) in &[
            (1usize, 256usize, 16usize),
            (5, 512, 33),
            (130, 768, 100),
            (2, 2560, 64),
        ] {
            let x = randn(0f32, 1.0, (2, m, k), &dev).unwrap();
            let w = randn(0f32, 1.0, (n, k), &dev).unwrap();
            let b = randn(0f32, 1.0, n, &dev).unwrap();
            let q = Arc::new(QTensor::quantize(&w, dt).unwrap());
            let wd = q.dequantize(&dev).unwrap();
            let want = candle_nn::Linear::new(wd.clone(), Some(b.clone()))
                .forward(&x)
                .unwrap();
            let lin = Linear::quantized(q.clone(), Some(b.clone())).unwrap();
            assert_eq!(lin.dims(), (n, k));
            assert_eq!(lin.quantized_dtype(), Some(dt));
            assert_eq!(rel_err(&lin.weight().unwrap(), &wd), 0.0);
            // The weight is held once: its GGUF size (q4k: + 64 bytes of unpacked 6-bit scales
            // per 16 rows x 256 values, 2.8 %; a partial last tile padded to 16 rows).
            let ggml = q.storage_size_in_bytes();
            let held = lin.weight_bytes();
            let rows = n.div_ceil(16) * 16;
            assert!(
                held <= ggml * rows / n * 1029 / 1000,
                "{dt:?}: {held} bytes for {ggml}"
            );
            let got = lin.forward(&x).unwrap();
            let candle = QMatMul::from_arc(q)
                .unwrap()
                .forward(&x)
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let (e, ec) = (rel_err(&got, &want), rel_err(&candle, &want));
            eprintln!(
                "{dt:?} m={m} k={k} n={n}: max rel err {e:.2e}, candle's {ec:.2e} (tol 2e-2)"
            );
            assert!(e < 2e-2 && e <= ec * 2.0, "{e} vs candle's {ec}");
            // Fused activation, non-contiguous input.
            let xt = x
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            // The fused activation is the element-wise one applied to the product, bit for bit;
            // against the f32 reference, relative to the scale of what enters the activation
            // (SiLU shrinks the negative side, so an output-relative measure over a few elements
            // would scale the product's own error up by chance).
            let got = lin.forward_act(&xt, Activation::Silu).unwrap();
            let sep = acestep_kernels::activation(&lin.forward(&xt).unwrap(), Activation::Silu);
            assert_eq!(max_diff(&got, &sep.unwrap()), 0.0, "{dt:?}: fused silu");
            let e = max_diff(&got, &candle_nn::ops::silu(&want).unwrap()) / max_abs(&want);
            assert!(e < 2e-2, "{dt:?}: silu {e}");
        }
    }
}

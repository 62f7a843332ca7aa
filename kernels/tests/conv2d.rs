//! Each 2-D convolution algorithm against candle's plain `conv2d` (+ bias, activations and a
//! residual with candle ops), on the DCAE's shapes and odd ones.

mod common;

use acestep_kernels::{Activation, Conv2d, Conv2dAlgo, ConvSpec, Fused};
use candle_core::{Device, Tensor};
use common::{max_diff, randn, rel_err};

fn act(t: Tensor, a: Activation) -> Tensor {
    match a {
        Activation::Identity => t,
        Activation::Silu => t.silu().unwrap(),
        Activation::Relu => t.relu().unwrap(),
        Activation::Gelu => t.gelu_erf().unwrap(),
        Activation::GeluTanh => t.gelu().unwrap(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    b: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    s: ConvSpec,
    algo: Conv2dAlgo,
    tol: f32,
) {
    let dev = Device::Cpu;
    let x = randn(0f32, 1.0, (b, cin, h, w), &dev).unwrap();
    let wt = (randn(0f32, 1.0, (cout, cin / s.groups, k, k), &dev).unwrap()
        / ((cin / s.groups * k * k) as f64).sqrt())
    .unwrap();
    let bias = randn(0f32, 1.0, cout, &dev).unwrap();
    let conv = Conv2d::new(wt.clone(), Some(bias.clone()), s);
    let plain = x
        .conv2d(&wt, s.padding, s.stride, s.dilation, s.groups)
        .unwrap();
    let res = randn(0f32, 1.0, plain.dims(), &dev).unwrap();
    for (ai, ao, r) in [
        (Activation::Identity, Activation::Identity, None),
        (Activation::Silu, Activation::Identity, Some(&res)),
        (Activation::Identity, Activation::Silu, None),
    ] {
        let y = act(x.clone(), ai)
            .conv2d(&wt, s.padding, s.stride, s.dilation, s.groups)
            .unwrap();
        let mut y = y
            .broadcast_add(&bias.reshape((1, (), 1, 1)).unwrap())
            .unwrap();
        if let Some(r) = r {
            y = (y + r).unwrap();
        }
        let want = act(y, ao);
        let got = conv
            .forward_algo(
                &x,
                Fused {
                    act_in: ai,
                    act_out: ao,
                    residual: r,
                },
                Some(algo),
            )
            .unwrap();
        assert_eq!(got.dims(), want.dims());
        let e = rel_err(&got, &want);
        eprintln!("{algo:?} b={b} cin={cin} cout={cout} {h}x{w} k={k} {s:?} {ai:?}/{ao:?}/res={}: max rel err {e:.2e} (tol {tol:.0e})", r.is_some());
        assert!(e < tol, "{algo:?}: {e}");
        // The candle-op formulation that other devices run, on the same inputs.
        let generic = acestep_kernels::with_generic(|| {
            conv.forward_fused(
                &x,
                Fused {
                    act_in: ai,
                    act_out: ao,
                    residual: r,
                },
            )
        })
        .unwrap();
        let e = rel_err(&generic, &want);
        assert!(e < tol, "generic formulation: {e}");
    }
}

fn spec(padding: usize, groups: usize) -> ConvSpec {
    ConvSpec {
        padding,
        stride: 1,
        dilation: 1,
        groups,
    }
}

#[test]
fn winograd_matches_plain() {
    for &(b, cin, cout, h, w) in &[
        (1, 32, 48, 16, 107),
        (2, 8, 16, 17, 33),
        (1, 128, 64, 32, 56),
        (2, 3, 5, 1, 1),
        (1, 16, 2, 9, 2),
    ] {
        run(
            b,
            cin,
            cout,
            h,
            w,
            3,
            spec(1, 1),
            Conv2dAlgo::Winograd,
            1e-5,
        );
    }
}

#[test]
fn winograd4_matches_plain() {
    for &(b, cin, cout, h, w) in &[
        (1, 32, 48, 16, 107),
        (2, 8, 16, 17, 33),
        (1, 128, 64, 32, 56),
        (1, 256, 32, 12, 21),
        (2, 3, 5, 1, 1),
        (1, 16, 2, 9, 2),
    ] {
        run(
            b,
            cin,
            cout,
            h,
            w,
            3,
            spec(1, 1),
            Conv2dAlgo::Winograd4,
            2e-5,
        );
    }
}

#[test]
fn taps_matches_plain() {
    for &(b, cin, cout, h, w, k, p) in &[
        (2, 16, 24, 15, 37, 3, 1),
        (1, 8, 8, 16, 20, 5, 2),
        (2, 4, 6, 9, 9, 3, 0),
    ] {
        run(b, cin, cout, h, w, k, spec(p, 1), Conv2dAlgo::Taps, 1e-5);
    }
}

#[test]
fn depthwise_matches_plain() {
    for &(b, c, h, w, k, p) in &[
        (2, 48, 16, 107, 3, 1),
        (1, 96, 32, 21, 5, 2),
        (2, 7, 5, 3, 3, 1),
    ] {
        run(b, c, c, h, w, k, spec(p, c), Conv2dAlgo::Depthwise, 1e-5);
    }
}

#[test]
fn pointwise_matches_plain() {
    for &(b, cin, cout, h, w, g) in &[
        (2, 64, 96, 16, 33, 1),
        (1, 96, 96, 16, 107, 3),
        (2, 12, 8, 3, 5, 4),
    ] {
        run(
            b,
            cin,
            cout,
            h,
            w,
            1,
            spec(0, g),
            Conv2dAlgo::Pointwise,
            1e-5,
        );
    }
}

#[test]
fn strided_and_dilated_taps_match_plain() {
    for &(b, cin, cout, h, w, k, p, st, dil, g) in &[
        (1, 16, 32, 32, 214, 3, 1, 2, 1, 1), // the DCAE encoder's downsampling
        (2, 8, 8, 17, 31, 3, 1, 2, 1, 1),
        (1, 6, 9, 20, 23, 5, 2, 3, 1, 3),
        (2, 4, 4, 12, 13, 3, 2, 1, 2, 1),
        (1, 5, 7, 9, 9, 3, 0, 2, 2, 1),
    ] {
        let s = ConvSpec {
            padding: p,
            stride: st,
            dilation: dil,
            groups: g,
        };
        run(b, cin, cout, h, w, k, s, Conv2dAlgo::Taps, 1e-5);
    }
}

#[test]
fn im2col_matches_plain() {
    // The DCAE encoder's downsampling (stride 2) and its input convolution (2 channels), odd
    // sizes, batch 2, dilation, no padding, wider kernels; chunks of one and of many rows (the
    // 512-channel case builds one output row per chunk).
    for &(b, cin, cout, h, w, k, p, st, dil) in &[
        (1, 16, 32, 32, 214, 3, 1, 2, 1),
        (1, 512, 8, 6, 470, 3, 1, 2, 1),
        (2, 8, 8, 17, 31, 3, 1, 2, 1),
        (1, 2, 16, 33, 71, 3, 1, 1, 1),
        (2, 4, 4, 12, 13, 3, 2, 1, 2),
        (1, 5, 7, 9, 9, 3, 0, 2, 2),
        (2, 6, 9, 20, 23, 5, 2, 3, 1),
        (1, 3, 5, 1, 1, 3, 1, 2, 1),
    ] {
        let s = ConvSpec {
            padding: p,
            stride: st,
            dilation: dil,
            groups: 1,
        };
        run(b, cin, cout, h, w, k, s, Conv2dAlgo::Im2col, 1e-5);
    }
}

#[test]
fn im2col_and_taps_take_non_contiguous_inputs() {
    // A transposed view (strides not those of NCHW) and a channel slice of a wider tensor.
    let dev = Device::Cpu;
    let wide = randn(0f32, 1.0, (2, 12, 21, 17), &dev).unwrap();
    let views = [
        wide.narrow(1, 0, 6).unwrap().transpose(2, 3).unwrap(),
        wide.narrow(1, 3, 6).unwrap(),
    ];
    let wt = randn(0f32, 0.3, (5, 6, 3, 3), &dev).unwrap();
    for x in &views {
        assert!(!x.is_contiguous());
        for (stride, algo) in [
            (2, Conv2dAlgo::Im2col),
            (1, Conv2dAlgo::Im2col),
            (2, Conv2dAlgo::Taps),
        ] {
            let s = ConvSpec {
                padding: 1,
                stride,
                dilation: 1,
                groups: 1,
            };
            let got = Conv2d::new(wt.clone(), None, s)
                .forward_algo(x, Fused::default(), Some(algo))
                .unwrap();
            let want = x
                .contiguous()
                .unwrap()
                .conv2d(&wt, 1, stride, 1, 1)
                .unwrap();
            let e = rel_err(&got, &want);
            eprintln!(
                "{algo:?} stride {stride}, {:?} view: max rel err {e:.2e} (tol 1e-5)",
                x.dims()
            );
            assert!(e < 1e-5, "{algo:?}: {e}");
        }
    }
}

#[test]
fn bf16_on_the_cpu_is_the_f32_convolution_rounded() {
    // candle's CPU convolutions have no bf16 matrix product: the candle-op path widens, as a
    // GPU's bf16 convolution accumulates in f32. Dense and grouped, padded and strided.
    use candle_core::DType;
    let dev = Device::Cpu;
    for (cin, groups, stride) in [(6, 1, 1), (8, 2, 2)] {
        let s = ConvSpec {
            padding: 1,
            stride,
            dilation: 1,
            groups,
        };
        let x = randn(0f32, 1.0, (2, cin, 9, 13), &dev)
            .and_then(|t| t.to_dtype(DType::BF16))
            .unwrap();
        let wt = randn(0f32, 0.3, (4, cin / groups, 3, 3), &dev)
            .and_then(|t| t.to_dtype(DType::BF16))
            .unwrap();
        let got = Conv2d::new(wt.clone(), None, s)
            .forward_fused(&x, Fused::default())
            .unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let want = f32(&x)
            .conv2d(&f32(&wt), 1, stride, 1, groups)
            .and_then(|t| t.to_dtype(DType::BF16))
            .unwrap();
        assert_eq!(max_diff(&f32(&got), &f32(&want)), 0.0, "{s:?}");
    }
}

//! Each 1-D convolution algorithm against candle's plain `conv1d` (+ bias, activations and a
//! residual done with candle ops), on the shapes the models use and odd ones.

mod common;

use acestep_kernels::{Activation, Conv1d, Conv1dAlgo, ConvSpec, Fused};
use candle_core::{Device, Tensor, D};
use common::{randn, rel_err};

fn reference(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    s: ConvSpec,
    act_in: Activation,
    act_out: Activation,
    res: Option<&Tensor>,
) -> Tensor {
    let act = |t: Tensor, a: Activation| match a {
        Activation::Identity => t,
        Activation::Silu => t.silu().unwrap(),
        Activation::Relu => t.relu().unwrap(),
        Activation::Gelu => t.gelu_erf().unwrap(),
        Activation::GeluTanh => t.gelu().unwrap(),
    };
    let x = act(x.clone(), act_in);
    let y = x
        .conv1d(w, s.padding, s.stride, s.dilation, s.groups)
        .unwrap();
    let mut y = y.broadcast_add(&b.reshape((1, (), 1)).unwrap()).unwrap();
    if let Some(r) = res {
        y = (y + r).unwrap();
    }
    act(y, act_out)
}

struct Case {
    b: usize,
    cin: usize,
    cout: usize,
    l: usize,
    k: usize,
    s: ConvSpec,
}

fn run(c: &Case, algo: Conv1dAlgo, tol: f32) {
    let dev = Device::Cpu;
    let x = randn(0f32, 1.0, (c.b, c.cin, c.l), &dev).unwrap();
    let w = (randn(0f32, 1.0, (c.cout, c.cin / c.s.groups, c.k), &dev).unwrap()
        / ((c.cin / c.s.groups * c.k) as f64).sqrt())
    .unwrap();
    let bias = randn(0f32, 1.0, c.cout, &dev).unwrap();
    let conv = Conv1d::new(w.clone(), Some(bias.clone()), c.s);
    assert_eq!(conv.cpu_algo(c.b, c.l).map(|_| ()).ok(), Some(()));
    let plain = reference(
        &x,
        &w,
        &bias,
        c.s,
        Activation::Identity,
        Activation::Identity,
        None,
    );
    let res = randn(0f32, 1.0, plain.dims(), &dev).unwrap();
    for (ai, ao, r) in [
        (Activation::Identity, Activation::Identity, None),
        (Activation::Silu, Activation::Identity, Some(&res)),
        (Activation::Identity, Activation::Silu, None),
        (Activation::Relu, Activation::Gelu, Some(&res)),
    ] {
        let want = reference(&x, &w, &bias, c.s, ai, ao, r);
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
        eprintln!(
            "{algo:?} b={} cin={} cout={} l={} k={} {:?} {ai:?}/{ao:?}/res={}: max rel err {e:.2e} (tol {tol:.0e})",
            c.b, c.cin, c.cout, c.l, c.k, c.s, r.is_some()
        );
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

fn spec(padding: usize, stride: usize, dilation: usize, groups: usize) -> ConvSpec {
    ConvSpec {
        padding,
        stride,
        dilation,
        groups,
    }
}

#[test]
fn fft_matches_plain() {
    for &(cin, cout, l, k, d) in &[
        (64, 64, 1000, 13, 1),
        (64, 48, 777, 11, 3),
        (50, 70, 901, 7, 5),
        (96, 64, 333, 3, 1),
        (64, 64, 65, 13, 5),
    ] {
        let c = Case {
            b: 2,
            cin,
            cout,
            l,
            k,
            s: spec(d * (k - 1) / 2, 1, d, 1),
        };
        run(&c, Conv1dAlgo::Fft, 2e-5);
    }
    // Not "same": no padding and padding = 2 * dilation.
    run(
        &Case {
            b: 1,
            cin: 64,
            cout: 64,
            l: 500,
            k: 13,
            s: spec(0, 1, 1, 1),
        },
        Conv1dAlgo::Fft,
        2e-5,
    );
    run(
        &Case {
            b: 2,
            cin: 64,
            cout: 64,
            l: 500,
            k: 7,
            s: spec(6, 1, 3, 1),
        },
        Conv1dAlgo::Fft,
        2e-5,
    );
}

#[test]
fn direct_matches_plain() {
    for &(cin, cout, l, k, d) in &[
        (8, 8, 1001, 13, 5),
        (16, 16, 517, 3, 1),
        (8, 1, 300, 13, 1),
        (32, 32, 999, 7, 3),
        (3, 5, 40, 11, 1),
        (48, 64, 257, 1, 1),
    ] {
        let c = Case {
            b: 2,
            cin,
            cout,
            l,
            k,
            s: spec(d * (k - 1) / 2, 1, d, 1),
        };
        run(&c, Conv1dAlgo::Direct, 1e-5);
    }
    run(
        &Case {
            b: 1,
            cin: 4,
            cout: 6,
            l: 50,
            k: 5,
            s: spec(0, 1, 2, 1),
        },
        Conv1dAlgo::Direct,
        1e-5,
    );
}

#[test]
fn taps_matches_plain() {
    for c in [
        Case {
            b: 2,
            cin: 24,
            cout: 40,
            l: 301,
            k: 13,
            s: spec(6, 1, 1, 1),
        },
        Case {
            b: 2,
            cin: 16,
            cout: 8,
            l: 300,
            k: 7,
            s: spec(3, 2, 1, 1),
        },
        Case {
            b: 1,
            cin: 12,
            cout: 12,
            l: 97,
            k: 3,
            s: spec(2, 3, 2, 1),
        },
        Case {
            b: 2,
            cin: 8,
            cout: 12,
            l: 64,
            k: 3,
            s: spec(1, 1, 1, 4),
        },
        Case {
            b: 2,
            cin: 128,
            cout: 128,
            l: 70,
            k: 7,
            s: spec(0, 1, 1, 1),
        },
    ] {
        run(&c, Conv1dAlgo::Taps, 1e-5);
    }
}

#[test]
fn depthwise_matches_plain() {
    for c in [
        Case {
            b: 2,
            cin: 128,
            cout: 128,
            l: 856,
            k: 7,
            s: spec(3, 1, 1, 128),
        },
        Case {
            b: 2,
            cin: 5,
            cout: 5,
            l: 33,
            k: 7,
            s: spec(3, 1, 1, 5),
        },
        Case {
            b: 1,
            cin: 7,
            cout: 7,
            l: 50,
            k: 3,
            s: spec(2, 1, 2, 7),
        },
    ] {
        run(&c, Conv1dAlgo::Depthwise, 1e-5);
    }
}

#[test]
fn non_contiguous_input_and_planner() {
    let dev = Device::Cpu;
    let x = randn(0f32, 1.0, (2, 300, 64), &dev)
        .unwrap()
        .transpose(1, 2)
        .unwrap(); // [2, 64, 300]
    let w = (randn(0f32, 1.0, (64, 64, 13), &dev).unwrap() * 0.03).unwrap();
    let b = Tensor::zeros(64, candle_core::DType::F32, &dev).unwrap();
    let conv = Conv1d::new(w.clone(), Some(b.clone()), spec(6, 1, 1, 1));
    let got = conv.forward_fused(&x, Fused::default()).unwrap();
    let want = x.conv1d(&w, 6, 1, 1, 1).unwrap();
    let e = rel_err(&got, &want);
    eprintln!("non-contiguous input: max rel err {e:.2e}");
    assert!(e < 1e-5);
    let _ = D::Minus1;
}

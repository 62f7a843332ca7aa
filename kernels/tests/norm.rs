//! Channel norms against the same formulas in candle ops (over a transposed copy).

mod common;

use acestep_kernels::{layer_norm_channels, rms_norm_channels};
use candle_core::Device;
use common::{randn, rel_err};

#[test]
fn channel_norms_match() {
    let dev = Device::Cpu;
    for dims in [
        vec![2usize, 128, 16, 107],
        vec![1, 5, 3, 7],
        vec![2, 512, 77],
    ] {
        let c = dims[1];
        let x = (randn(0f32, 1.0, dims.as_slice(), &dev).unwrap() + 0.3).unwrap();
        let w = randn(0f32, 1.0, c, &dev).unwrap();
        let b = randn(0f32, 1.0, c, &dev).unwrap();
        let res = randn(0f32, 1.0, dims.as_slice(), &dev).unwrap();
        let mut shape = vec![1; dims.len()];
        shape[1] = c;
        let (wr, br) = (w.reshape(shape.clone()).unwrap(), b.reshape(shape).unwrap());
        // RMS
        let var = x.sqr().unwrap().mean_keepdim(1).unwrap();
        let want = x
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&wr)
            .unwrap()
            .broadcast_add(&br)
            .unwrap();
        let got = rms_norm_channels(&x, &w, Some(&b), 1e-5, None).unwrap();
        let e = rel_err(&got, &want);
        eprintln!("rms {dims:?}: max rel err {e:.2e} (tol 1e-6)");
        assert!(e < 1e-6);
        let generic =
            acestep_kernels::with_generic(|| rms_norm_channels(&x, &w, Some(&b), 1e-5, None))
                .unwrap();
        assert!(rel_err(&generic, &want) < 1e-6, "generic formulation");
        let got = rms_norm_channels(&x, &w, Some(&b), 1e-5, Some(&res)).unwrap();
        let e = rel_err(&got, &(&want + &res).unwrap());
        assert!(e < 1e-6, "{e}");
        // Layer
        let xc = x.broadcast_sub(&x.mean_keepdim(1).unwrap()).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(1).unwrap();
        let want = xc
            .broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&wr)
            .unwrap()
            .broadcast_add(&br)
            .unwrap();
        let got = layer_norm_channels(&x, &w, Some(&b), 1e-6, None).unwrap();
        let e = rel_err(&got, &want);
        let generic =
            acestep_kernels::with_generic(|| layer_norm_channels(&x, &w, Some(&b), 1e-6, None))
                .unwrap();
        assert!(rel_err(&generic, &want) < 1e-6, "generic formulation");
        eprintln!("layer {dims:?}: max rel err {e:.2e} (tol 1e-6)");
        assert!(e < 1e-6);
    }
}

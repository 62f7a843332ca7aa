//! The compute kernels of `kernels/` at the model's real shapes (f32, CPU), one criterion bench
//! each, with the throughput as GFLOP (direct-algorithm FLOPs for the convolutions, so FFT /
//! Winograd count what the direct sum would do) or GB moved (memory-bound kernels): criterion
//! prints `thrpt` in G/s. `tools/bench_reference.py kernels` times PyTorch's same ops, and
//! `peak` measures this CPU's f32 FMA peak (register-resident multiply-adds on every thread).
//!
//! `RAYON_NUM_THREADS=2 cargo bench --bench kernels`

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use acestep_kernels::{
    rms_norm_channels, Activation, Conv1d, Conv2d, ConvSpec, ConvTranspose1d, Fused, Linear,
};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn rand(dims: &[usize], std: f32) -> Tensor {
    Tensor::randn(0f32, std, dims, &Device::Cpu).expect("randn")
}

/// Multiply-adds of register-resident vectors on every thread: the f32 peak (AVX-512 where the
/// CPU has it, else AVX2 + FMA). Returns the FLOPs done.
fn peak_flops() -> u64 {
    use rayon::prelude::*;
    const ITERS: u64 = 50_000_000;
    let threads = rayon::current_num_threads() as u64;
    let lanes = (0..threads)
        .into_par_iter()
        .map(|_| fma_loop(ITERS))
        .max()
        .unwrap_or(0);
    // 12 independent vectors, 2 flops per lane per multiply-add.
    ITERS * 12 * lanes * 2 * threads
}

/// `iters` rounds of 12 independent vector multiply-adds; returns the lanes per vector.
fn fma_loop(iters: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(iters: u64) {
            let mut a = [_mm512_set1_ps(1.0); 12];
            let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            for _ in 0..iters {
                for v in a.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, m, c);
                }
            }
            std::hint::black_box(&a);
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(iters: u64) {
            let mut a = [_mm256_set1_ps(1.0); 12];
            let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..iters {
                for v in a.iter_mut() {
                    *v = _mm256_fmadd_ps(*v, m, c);
                }
            }
            std::hint::black_box(&a);
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { avx512(iters) };
            return 16;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { avx2(iters) };
            return 8;
        }
    }
    let mut a = [1.0f32; 12];
    for _ in 0..iters {
        for v in a.iter_mut() {
            *v = *v * 0.999_999 + 1e-7;
        }
    }
    std::hint::black_box(&a);
    1
}

fn bench_kernels(c: &mut Criterion) {
    acestep::device::tune_cpu_allocator();
    let mut g = c.benchmark_group("kernels_f32");
    g.sample_size(10);

    g.throughput(Throughput::Elements(peak_flops()));
    g.bench_function("peak_fma", |b| b.iter(peak_flops));

    // Vocoder ResBlock convolutions (both channels as a batch of 2, 10 s of audio).
    for &(ch, len, k, d) in &[
        (512usize, 3424usize, 13usize, 1usize),
        (256, 13696, 11, 3),
        (128, 27392, 7, 5),
        (512, 3424, 3, 1),
        (64, 54784, 13, 1),
        (8, 438272, 3, 1),
    ] {
        let x = rand(&[2, ch, len], 1.0);
        let conv = Conv1d::new(
            rand(&[ch, ch, k], 0.02),
            Some(rand(&[ch], 0.02)),
            ConvSpec {
                padding: d * (k - 1) / 2,
                dilation: d,
                ..Default::default()
            },
        );
        let algo = conv.cpu_algo(2, len).expect("algo");
        let f = Fused {
            act_in: Activation::Silu,
            act_out: Activation::Silu,
            residual: None,
        };
        g.throughput(Throughput::Elements((2 * 2 * ch * ch * k * len) as u64));
        g.bench_function(format!("conv1d/{algo:?}/c{ch}_k{k}_d{d}_l{len}x2"), |b| {
            b.iter(|| conv.forward_fused(&x, f).expect("conv1d"))
        });
    }
    // Vocoder upsampling (first layer).
    {
        let x = rand(&[2, 1024, 856], 1.0);
        let up = ConvTranspose1d::new(
            rand(&[1024, 512, 8], 0.02),
            Some(rand(&[512], 0.02)),
            4,
            2,
            0,
        );
        g.throughput(Throughput::Elements(2 * 2 * 1024 * 512 * 8 * 856u64));
        g.bench_function("conv_transpose1d/c1024to512_k8_s4_l856x2", |b| {
            b.iter(|| {
                up.forward_act(&x, Activation::Silu, Activation::Identity)
                    .expect("up")
            })
        });
    }
    // DCAE convolutions (10 s).
    for &(cin, cout, h, w, k, stride, groups) in &[
        (
            128usize, 128usize, 128usize, 856usize, 3usize, 1usize, 1usize,
        ),
        (512, 512, 32, 214, 3, 1, 1),
        (128, 256, 128, 856, 3, 2, 1),
        (512, 1024, 32, 214, 3, 2, 1),
        (2, 128, 128, 856, 3, 1, 1),
        (8192, 8192, 16, 107, 3, 1, 8192),
        (1024, 8192, 16, 107, 1, 1, 1),
    ] {
        let x = rand(&[1, cin, h, w], 1.0);
        let conv = Conv2d::new(
            rand(&[cout, cin / groups, k, k], 0.02),
            Some(rand(&[cout], 0.02)),
            ConvSpec {
                padding: k / 2,
                stride,
                groups,
                ..Default::default()
            },
        );
        let algo = conv.cpu_algo(&x).expect("algo");
        let (ho, wo) = (h / stride, w / stride);
        g.throughput(Throughput::Elements(
            (2 * cout * (cin / groups) * k * k * ho * wo) as u64,
        ));
        g.bench_function(
            format!("conv2d/{algo:?}/{cin}to{cout}_k{k}_s{stride}_g{groups}_{h}x{w}"),
            |b| b.iter(|| conv.forward(&x).expect("conv2d")),
        );
    }
    // Linear layers: UMT5 (64 tokens), Conformer (256), DiT (107 frames).
    for &(m, k, n) in &[
        (64usize, 768usize, 2048usize),
        (256, 1024, 4096),
        (107, 2560, 2560),
        (646, 2560, 2560),
    ] {
        let x = rand(&[1, m, k], 1.0);
        let lin = Linear::new(rand(&[n, k], 0.02), Some(rand(&[n], 0.02)));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(format!("linear/{m}x{k}x{n}"), |b| {
            b.iter(|| lin.forward(&x).expect("linear"))
        });
    }
    // Channel RMS norm of the DCAE's full-resolution stage (bytes read + written).
    {
        let x = rand(&[1, 128, 128, 856], 1.0);
        let (w, bias) = (rand(&[128], 1.0), rand(&[128], 1.0));
        g.throughput(Throughput::Bytes(2 * 4 * 128 * 128 * 856u64));
        g.bench_function("rms_norm_channels/128_128x856", |b| {
            b.iter(|| rms_norm_channels(&x, &w, Some(&bias), 1e-5, None).expect("norm"))
        });
    }
    g.finish();
    bench_quantized(c);
}

/// Quantized linear layers at the DiT's shapes (k = 2560; n = 2560 attention, 6400 feed-forward):
/// this crate's layer (its tiles on an AVX-512 VNNI CPU) against candle's `QMatMul` on the same
/// blocks (the repacked copy it keeps beside them on such a CPU), GFLOP as the f32 product's.
fn bench_quantized(c: &mut Criterion) {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    let mut g = c.benchmark_group("kernels_quantized");
    g.sample_size(10);
    for dt in [GgmlDType::Q8_0, GgmlDType::Q4K] {
        for &(m, k, n) in &[
            (107usize, 2560usize, 2560usize),
            (646, 2560, 2560),
            (646, 2560, 6400),
        ] {
            let x = rand(&[1, m, k], 1.0);
            let q = std::sync::Arc::new(QTensor::quantize(&rand(&[n, k], 0.02), dt).expect("q"));
            let ours = Linear::quantized(q.clone(), None).expect("linear");
            let candle = QMatMul::from_arc(q).expect("qmatmul");
            g.throughput(Throughput::Elements((2 * m * k * n) as u64));
            g.bench_function(format!("{dt:?}/ours/{m}x{k}x{n}"), |b| {
                b.iter(|| ours.forward(&x).expect("linear"))
            });
            g.bench_function(format!("{dt:?}/candle/{m}x{k}x{n}"), |b| {
                b.iter(|| candle.forward(&x).expect("qmatmul"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);

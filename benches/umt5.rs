//! UMT5-base text encoder at the full `umt5-base` config with random weights (f32, CPU).
//!
//! Compare with `tools/bench_reference.py umt5` (PyTorch, same shapes, same thread count):
//! `RAYON_NUM_THREADS=2 cargo bench --bench umt5` vs `python tools/bench_reference.py umt5 --threads 2`.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use acestep::testing::random_var_builder;
use acestep::text_encoder::{Umt5Config, Umt5EncoderModel};
use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn full_config() -> Umt5Config {
    let text = include_str!("../tests/fixtures/manifests/umt5-base.json");
    let m: serde_json::Value = serde_json::from_str(text).expect("manifest");
    serde_json::from_value(m["config"].clone()).expect("umt5 config")
}

fn bench_umt5(c: &mut Criterion) {
    // As the acestep binary does (see acestep::device::tune_cpu_allocator).
    acestep::device::tune_cpu_allocator();
    let dev = Device::Cpu;
    let cfg = full_config();
    let model =
        Umt5EncoderModel::new(&cfg, random_var_builder(0.02, DType::F32, &dev)).expect("model");
    let mut group = c.benchmark_group("umt5_base_encode_f32");
    group.sample_size(10);
    for &len in &[64usize, 256] {
        let ids: Vec<u32> = (0..len as u32).map(|i| i * 37 % 256_000).collect();
        let ids = Tensor::from_vec(ids, (1, len), &dev).expect("ids");
        let mask = Tensor::ones((1, len), DType::F32, &dev).expect("mask");
        group.bench_with_input(BenchmarkId::new("tokens", len), &len, |b, _| {
            b.iter(|| model.forward(&ids, &mask, None).expect("forward"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_umt5);
criterion_main!(benches);

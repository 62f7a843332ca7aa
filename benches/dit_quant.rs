//! The DiT at the full 3.5B config with random weights quantized to `q8_0` and `q4k` (CPU,
//! f32 activations): one `decode` at T = 107 (10 s of audio) and T = 646 (60 s), the condition's
//! keys/values prepared once as the pipeline does. Same shapes as `benches/dit.rs`
//! (`dit_full_f32/decode_prepared/T=...`), which is the f32 figure to compare with, back to back:
//! `RAYON_NUM_THREADS=2 cargo bench --bench dit_quant` then `--bench dit`.
//! About 3.5 GB (q8_0) + 1.9 GB (q4k) of weights.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use acestep::dit::{AceStepTransformer2DModel, AceStepTransformerConfig};
use acestep::quant::{quantizing, Quantization};
use acestep::testing::random_var_builder;
use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

fn full_config() -> AceStepTransformerConfig {
    let text = include_str!("../tests/fixtures/manifests/ace_step_transformer.json");
    let m: serde_json::Value = serde_json::from_str(text).expect("manifest");
    serde_json::from_value(m["config"].clone()).expect("dit config")
}

fn bench_dit_quant(c: &mut Criterion) {
    acestep::device::tune_cpu_allocator();
    let dev = Device::Cpu;
    let cfg = full_config();
    let text = Tensor::randn(0f32, 1.0, (1, 64, 768), &dev).expect("text");
    let text_mask = Tensor::ones((1, 64), DType::F32, &dev).expect("mask");
    let speaker = Tensor::zeros((1, 512), DType::F32, &dev).expect("speaker");
    let ids: Vec<u32> = (0..256u32).map(|i| i * 7 % 6000).collect();
    let lyrics = Tensor::from_vec(ids, (1, 256), &dev).expect("lyrics");
    let lyric_mask = Tensor::ones((1, 256), DType::F32, &dev).expect("mask");
    let timestep = Tensor::new(&[500f32], &dev).expect("t");
    for q in [Quantization::Q8_0, Quantization::Q4K] {
        let model = quantizing(q, || {
            AceStepTransformer2DModel::new(&cfg, random_var_builder(0.02, DType::F32, &dev))
        })
        .expect("model");
        let (enc, enc_mask) = model
            .encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)
            .expect("encode");
        let cond = model.prepare_condition(&enc, &enc_mask).expect("prepare");
        let mut group = c.benchmark_group(format!("dit_full_{q}"));
        group.sample_size(10);
        for t in [107usize, 646] {
            let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), &dev).expect("latents");
            let mask = Tensor::ones((1, t), DType::F32, &dev).expect("mask");
            group.bench_function(format!("decode_prepared/T={t}"), |b| {
                b.iter(|| {
                    model
                        .decode_with(&latents, &mask, &cond, &timestep, t, None)
                        .expect("decode")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_dit_quant);
criterion_main!(benches);

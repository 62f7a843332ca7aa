//! The DiT at the full 3.5B `ace_step_transformer` config with random weights (f32, CPU):
//! one `decode` at T = 107 (10 s of audio) and T = 646 (60 s), the same with the condition's
//! cross-attention keys/values prepared once (as the pipeline does), and `encode`.
//!
//! Condition: 64 prompt tokens and 256 lyric tokens, batch 1. Compare with
//! `tools/bench_reference.py dit --threads 2` (PyTorch, same shapes), run back to back:
//! `RAYON_NUM_THREADS=2 cargo bench --bench dit`. About 11 GB of RAM for the f32 weights.
//!
//! `decode*_lora/T=107`: the same with a random rank-256 LoRA on the trainer's target modules
//! (`config/zh_rap_lora_config.json`: speaker_embedder, linear_q/k/v, to_q/k/v, to_out.0;
//! rsLoRA, alpha 32), unmerged as peft runs it; compare with `bench_reference.py dit-lora`.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use std::collections::HashMap;

use acestep::dit::{AceStepTransformer2DModel, AceStepTransformerConfig};
use acestep::lora::{LoraAdapter, LoraTarget};
use acestep::testing::random_var_builder;
use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

const TEXT_TOKENS: usize = 64;
const LYRIC_TOKENS: usize = 256;

fn full_config() -> AceStepTransformerConfig {
    let text = include_str!("../tests/fixtures/manifests/ace_step_transformer.json");
    let m: serde_json::Value = serde_json::from_str(text).expect("manifest");
    serde_json::from_value(m["config"].clone()).expect("dit config")
}

/// The trainer's LoRA target modules (matched as peft does: the module path ends with one).
const LORA_TARGETS: [&str; 8] = [
    "speaker_embedder",
    "linear_q",
    "linear_k",
    "linear_v",
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
];

/// A random rank-`r` adapter on `model`'s target modules.
fn random_lora(model: &AceStepTransformer2DModel, r: usize, dev: &Device) -> LoraAdapter {
    let mut m = model.clone();
    let mut tensors = HashMap::new();
    for l in m.lora_linears() {
        let name = l.name().to_string();
        let short = name.rsplit('.').next().unwrap_or("");
        let hit = LORA_TARGETS
            .iter()
            .any(|t| name == *t || name.ends_with(&format!(".{t}")) || short == *t);
        if !hit {
            continue;
        }
        let (out_dim, in_dim) = l.base_dims();
        let a = Tensor::randn(0f32, 0.01, (r, in_dim), dev).expect("A");
        let b = Tensor::randn(0f32, 0.01, (out_dim, r), dev).expect("B");
        tensors.insert(format!("{name}.lora_A.weight"), a);
        tensors.insert(format!("{name}.lora_B.weight"), b);
    }
    let meta = serde_json::json!({"lora_alpha": 32, "r": r, "use_rslora": true});
    LoraAdapter::from_tensors("bench", tensors, Some(&meta)).expect("adapter")
}

fn bench_dit(c: &mut Criterion) {
    // As the acestep binary does (see acestep::device::tune_cpu_allocator).
    acestep::device::tune_cpu_allocator();
    let dev = Device::Cpu;
    let cfg = full_config();
    let model = AceStepTransformer2DModel::new(&cfg, random_var_builder(0.02, DType::F32, &dev))
        .expect("model");
    let text = Tensor::randn(0f32, 1.0, (1, TEXT_TOKENS, 768), &dev).expect("text");
    let text_mask = Tensor::ones((1, TEXT_TOKENS), DType::F32, &dev).expect("mask");
    let speaker = Tensor::zeros((1, 512), DType::F32, &dev).expect("speaker");
    let ids: Vec<u32> = (0..LYRIC_TOKENS as u32).map(|i| i * 7 % 6000).collect();
    let lyrics = Tensor::from_vec(ids, (1, LYRIC_TOKENS), &dev).expect("lyrics");
    let lyric_mask = Tensor::ones((1, LYRIC_TOKENS), DType::F32, &dev).expect("mask");

    let mut group = c.benchmark_group("dit_full_f32");
    group.sample_size(10);
    group.bench_function("encode", |b| {
        b.iter(|| {
            model
                .encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)
                .expect("encode")
        })
    });
    let (enc, enc_mask) = model
        .encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)
        .expect("encode");
    let cond = model.prepare_condition(&enc, &enc_mask).expect("prepare");
    let timestep = Tensor::new(&[500f32], &dev).expect("t");
    for t in [107usize, 646] {
        let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), &dev).expect("latents");
        let mask = Tensor::ones((1, t), DType::F32, &dev).expect("mask");
        group.bench_function(format!("decode/T={t}"), |b| {
            b.iter(|| {
                model
                    .decode(&latents, &mask, &enc, &enc_mask, &timestep, t, None)
                    .expect("decode")
            })
        });
        group.bench_function(format!("decode_prepared/T={t}"), |b| {
            b.iter(|| {
                model
                    .decode_with(&latents, &mask, &cond, &timestep, t, None)
                    .expect("decode")
            })
        });
    }
    let adapter = random_lora(&model, 256, &dev);
    let lora = model.with_lora(&adapter, 1.0).expect("lora");
    let lora_cond = lora.prepare_condition(&enc, &enc_mask).expect("prepare");
    let t = 107usize;
    let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), &dev).expect("latents");
    let mask = Tensor::ones((1, t), DType::F32, &dev).expect("mask");
    group.bench_function(format!("decode_lora/T={t}"), |b| {
        b.iter(|| {
            lora.decode(&latents, &mask, &enc, &enc_mask, &timestep, t, None)
                .expect("decode")
        })
    });
    group.bench_function(format!("decode_prepared_lora/T={t}"), |b| {
        b.iter(|| {
            lora.decode_with(&latents, &mask, &lora_cond, &timestep, t, None)
                .expect("decode")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_dit);
criterion_main!(benches);

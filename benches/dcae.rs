//! Latents -> 44.1 kHz stereo audio at the full `music_dcae_f8c8` + `music_vocoder` configs with
//! random weights (f32, CPU): `decode` (DCAE decoder + vocoder, as the reference's
//! `MusicDCAE.decode`) for 10 s (T = 107 latent frames) and 60 s (T = 646), and
//! `decode_overlap` (the windowed path used past 48 s) for 60 s; `encode` of 10 s of audio.
//!
//! Compare with `tools/bench_reference.py dcae --threads 2` (PyTorch, same shapes), run back to
//! back: `RAYON_NUM_THREADS=2 cargo bench --bench dcae`.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use acestep::dcae::{AutoencoderDcConfig, MusicDcae};
use acestep::testing::random_var_builder;
use acestep::vocoder::VocoderConfig;
use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

fn config<T: serde::de::DeserializeOwned>(manifest: &str) -> T {
    let m: serde_json::Value = serde_json::from_str(manifest).expect("manifest");
    serde_json::from_value(m["config"].clone()).expect("config")
}

fn bench_dcae(c: &mut Criterion) {
    // As the acestep binary does (see acestep::device::tune_cpu_allocator).
    acestep::device::tune_cpu_allocator();
    let dev = Device::Cpu;
    let dcae_cfg: AutoencoderDcConfig = config(include_str!(
        "../tests/fixtures/manifests/music_dcae_f8c8.json"
    ));
    let voc_cfg: VocoderConfig = config(include_str!(
        "../tests/fixtures/manifests/music_vocoder.json"
    ));
    let model = MusicDcae::new(
        &dcae_cfg,
        &voc_cfg,
        random_var_builder(0.02, DType::F32, &dev),
        random_var_builder(0.02, DType::F32, &dev),
    )
    .expect("model");
    let mut group = c.benchmark_group("music_dcae_full_f32");
    group.sample_size(10);
    for (t, secs) in [(107usize, 10), (646, 60)] {
        let latents = Tensor::randn(0f32, 1.0, (1, 8, 16, t), &dev).expect("latents");
        group.bench_function(format!("decode/{secs}s"), |b| {
            b.iter(|| model.decode(&latents).expect("decode"))
        });
        if t > 516 {
            group.bench_function(format!("decode_overlap/{secs}s"), |b| {
                b.iter(|| model.decode_overlap(&latents).expect("decode_overlap"))
            });
        }
    }
    // encode: 10 s of 44.1 kHz stereo (used by repaint / extend / edit / audio2audio).
    let audio = Tensor::randn(0f32, 0.1, (1, 2, 441_000), &dev).expect("audio");
    group.bench_function("encode/10s", |b| {
        b.iter(|| model.encode(&audio, None).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, bench_dcae);
criterion_main!(benches);

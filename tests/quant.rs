//! Quantized weights (issue 17) on the tiny checkpoint: the error each format costs against f32
//! (one DiT decode, the final latents of a text2music run, with a LoRA), the quantized checkpoint
//! written by `quantize_checkpoint` loading to the same numbers as quantizing at load, and the
//! memory the weights take.
//!
//! The tiny DiT's layers are 32 to 64 wide: k-quants need 256-wide rows, so on this checkpoint
//! every format falls back to `q8_0` for those layers (the full-size figures per format are in
//! README, measured by `examples/quant_report.rs`). Bounds, relative error (L2 norm of the
//! difference over the L2 norm of the f32 result), set just above the measured figures: `q8_0`
//! one DiT decode <= 1e-2 (measured 8.5e-3), final latents of 10 steps <= 2.5e-2 (1.9e-2, with
//! and without a LoRA); the other formats <= 5e-2.

mod common;

use std::path::PathBuf;

use acestep::dit::AceStepTransformer2DModel;
use acestep::pipeline::{Control, GenerationParams, Pipeline, PipelineOptions};
use acestep::quant::{quantize_checkpoint, quantizing, Quantization};
use acestep::Checkpoint;
use candle_core::{DType, Device, Tensor};

const Q8_DECODE_BOUND: f64 = 1e-2;
const Q8_LATENTS_BOUND: f64 = 2.5e-2;
const OTHER_BOUND: f64 = 5e-2;

fn bound(q: Quantization, q8: f64) -> f64 {
    if q == Quantization::Q8_0 {
        q8
    } else {
        OTHER_BOUND
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `(relative L2 error, max abs error)` of `a` against `b`.
fn errors(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let (mut num, mut den, mut max) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        let d = (*x as f64) - (*y as f64);
        num += d * d;
        den += (*y as f64) * (*y as f64);
        max = max.max(d.abs());
    }
    ((num / den.max(1e-30)).sqrt(), max)
}

fn decode(m: &AceStepTransformer2DModel, io: &std::collections::HashMap<String, Tensor>) -> Tensor {
    m.decode(
        &io["latents"],
        &io["attention_mask"],
        &io["encoder_hidden_states"],
        &io["encoder_hidden_mask"],
        &io["timestep"],
        io["latents"].dim(3).unwrap(),
        None,
    )
    .unwrap()
}

#[test]
fn dit_decode_error_per_format() {
    let dir = fixtures().join("tiny/ace_step_transformer");
    let io =
        candle_core::safetensors::load(fixtures().join("dit_a/parity.safetensors"), &Device::Cpu)
            .unwrap();
    let f32_model = AceStepTransformer2DModel::load_dir(&dir, &Device::Cpu, DType::F32).unwrap();
    let want = decode(&f32_model, &io);
    for q in Quantization::ALL {
        let m = quantizing(q, || {
            AceStepTransformer2DModel::load_dir(&dir, &Device::Cpu, DType::F32)
        })
        .unwrap();
        let (rel, max) = errors(&decode(&m, &io), &want);
        println!("tiny DiT decode {q}: relative error {rel:.3e}, max abs {max:.3e}");
        assert!(rel > 0.0, "{q}: nothing was quantized");
        let b = bound(q, Q8_DECODE_BOUND);
        assert!(rel <= b, "{q}: {rel:.3e} > {b}");
    }
}

fn latents(pipe: &Pipeline, lora: Option<&str>) -> Tensor {
    let params = GenerationParams {
        prompt: "lofi hip hop, piano".into(),
        lyrics: String::new(),
        audio_duration: 2.0,
        infer_step: 10,
        manual_seeds: vec![11],
        lora_name_or_path: lora.unwrap_or("none").into(),
        lora_weight: 0.7,
        ..Default::default()
    };
    pipe.generate_latents(&params, &mut |_| Control::Continue)
        .unwrap()
        .latents
}

#[test]
fn pipeline_latents_error_gguf_round_trip_and_lora() {
    let ckpt = Checkpoint::from_dir(fixtures().join("tiny")).unwrap();
    let f32_pipe = Pipeline::load(&ckpt, &Default::default()).unwrap();
    let want = latents(&f32_pipe, None);
    let lora = fixtures().join("lora/tiny_lora");
    let lora = lora.to_str().unwrap();
    let want_lora = latents(&f32_pipe, Some(lora));
    for q in Quantization::ALL {
        let opts = PipelineOptions {
            quantize: Some(q),
            ..Default::default()
        };
        let pipe = Pipeline::load(&ckpt, &opts).unwrap();
        let got = latents(&pipe, None);
        let (rel, max) = errors(&got, &want);
        println!("tiny text2music latents {q}: relative error {rel:.3e}, max abs {max:.3e}");
        let b = bound(q, Q8_LATENTS_BOUND);
        assert!(rel <= b, "{q}: {rel:.3e} > {b}");
        // LoRA unmerged over the quantized base.
        let got_lora = latents(&pipe, Some(lora));
        let (rel_l, _) = errors(&got_lora, &want_lora);
        let (moved, _) = errors(&got_lora, &got);
        println!("tiny text2music latents {q} + LoRA 0.7: relative error {rel_l:.3e} (LoRA moves the result by {moved:.3e})");
        assert!(rel_l <= b, "{q} + LoRA: {rel_l:.3e} > {b}");
        assert!(
            moved > 10.0 * rel_l,
            "the LoRA does not act on the quantized base"
        );
    }

    // A quantized checkpoint loads to the very numbers of quantizing at load.
    let out = tempfile::tempdir().unwrap();
    let qdir = out.path().join("tiny-q8_0");
    quantize_checkpoint(&ckpt, Quantization::Q8_0, &qdir).unwrap();
    let dit_gguf = qdir.join("ace_step_transformer/diffusion_pytorch_model.gguf");
    let text_gguf = qdir.join("umt5-base/model.gguf");
    assert!(dit_gguf.is_file() && text_gguf.is_file());
    assert!(!qdir
        .join("ace_step_transformer/diffusion_pytorch_model.safetensors")
        .exists());
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    let f32_size =
        size(&fixtures().join("tiny/ace_step_transformer/diffusion_pytorch_model.safetensors"));
    println!(
        "tiny DiT file: f32 {} KiB, q8_0 {} KiB",
        f32_size >> 10,
        size(&dit_gguf) >> 10
    );
    // The tiny DiT is mostly norms, convolutions and layers too narrow to quantize.
    assert!(
        size(&dit_gguf) * 10 < f32_size * 8,
        "the GGUF is not smaller"
    );
    let qckpt = Checkpoint::from_dir(&qdir).unwrap();
    qckpt.validate().unwrap();
    let stored = Pipeline::load(&qckpt, &Default::default()).unwrap();
    let stored_offload = Pipeline::load(
        &qckpt,
        &PipelineOptions {
            offload: true,
            ..Default::default()
        },
    )
    .unwrap();
    let at_load = Pipeline::load(
        &ckpt,
        &PipelineOptions {
            quantize: Some(Quantization::Q8_0),
            ..Default::default()
        },
    )
    .unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        flat(&latents(&stored, None)),
        flat(&latents(&at_load, None))
    );
    assert_eq!(
        flat(&latents(&stored_offload, None)),
        flat(&latents(&at_load, None))
    );
    // Writing into a folder that is not empty is refused.
    let e = quantize_checkpoint(&ckpt, Quantization::Q4K, &qdir).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn quantization_names_parse() {
    for q in Quantization::ALL {
        assert_eq!(q.name().parse::<Quantization>().unwrap(), q);
    }
    assert_eq!("Q4_K".parse::<Quantization>().unwrap(), Quantization::Q4K);
    let e = "q3".parse::<Quantization>().unwrap_err().to_string();
    assert!(e.contains("q8_0, q6k, q5k or q4k"), "{e}");
    // Block fallbacks: a 768-wide row takes q4k, a 96-wide one q8_0, a 20-wide one stays float.
    use candle_core::quantized::GgmlDType;
    assert_eq!(Quantization::Q4K.ggml_for(768), Some(GgmlDType::Q4K));
    assert_eq!(Quantization::Q4K.ggml_for(96), Some(GgmlDType::Q8_0));
    assert_eq!(Quantization::Q4K.ggml_for(20), None);
}

#[test]
fn offload_gives_the_same_songs_and_holds_nothing_between_them() {
    let ckpt = Checkpoint::from_dir(fixtures().join("tiny")).unwrap();
    let resident = Pipeline::load(&ckpt, &Default::default()).unwrap();
    assert_eq!(resident.resident_models(), ["text_encoder", "dit", "dcae"]);
    for quantize in [None, Some(Quantization::Q4K)] {
        let opts = PipelineOptions {
            quantize,
            offload: true,
            ..Default::default()
        };
        let offload = Pipeline::load(&ckpt, &opts).unwrap();
        assert!(offload.resident_models().is_empty());
        let base = match quantize {
            None => &resident,
            Some(_) => &Pipeline::load(
                &ckpt,
                &PipelineOptions {
                    quantize,
                    ..Default::default()
                },
            )
            .unwrap(),
        };
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let lora = fixtures().join("lora/tiny_lora");
        for l in [None, Some(lora.to_str().unwrap())] {
            assert_eq!(flat(&latents(&offload, l)), flat(&latents(base, l)));
            assert!(offload.resident_models().is_empty(), "{l:?}");
        }
        let params = GenerationParams {
            prompt: "ambient".into(),
            audio_duration: 1.0,
            infer_step: 3,
            manual_seeds: vec![5],
            ..Default::default()
        };
        let a = offload.generate(&params).unwrap();
        let b = base.generate(&params).unwrap();
        assert_eq!(a[0].audio.channels, b[0].audio.channels);
        assert!(offload.resident_models().is_empty());
    }
}

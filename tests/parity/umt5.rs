//! Parity of the UMT5 text encoder and its tokenizer against transformers' `UMT5EncoderModel`,
//! on the tiny random checkpoint written by `tools/make_fixtures.py`.
//!
//! Tolerance: max relative error (max|ours - ref| / max|ref|) <= 1e-4 in f32; drift bounds
//! in bf16 / f16 (`DRIFT`).

use acestep::testing::{assert_close, test_target, Drift};
use acestep::text_encoder::umt5::relative_position_buckets;
use acestep::text_encoder::{TextEncoder, TEXT_MAX_LENGTH};
use acestep::{Checkpoint, QueryScale};
use candle_core::{DType, Device, Tensor};

use crate::fixtures;

const F32_TOL: f64 = 1e-4;
const DRIFT: Drift = Drift {
    bf16: 6e-2,
    f16: 8e-3,
};

/// The reference's tensors, on the CPU as recorded (ids, masks and f32 outputs).
fn reference() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("umt5/parity.safetensors"), &Device::Cpu)
        .expect("parity fixture")
}

fn prompts() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("umt5/prompts.json")).expect("prompts.json");
    serde_json::from_str(&text).expect("prompts.json is JSON")
}

fn batch(p: &serde_json::Value) -> Vec<String> {
    p["parity_batch"]
        .as_array()
        .expect("parity_batch")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn relative_position_buckets_match_transformers() {
    let r = reference();
    for (name, max_distance) in [("buckets_tiny", 20), ("buckets_full", 128)] {
        let ours = relative_position_buckets(300, 300, 32, max_distance, &test_target().device)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap();
        let theirs = &r[name];
        let diff = ours
            .ne(theirs)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        assert_eq!(diff, 0, "{name}: {diff} of 90000 buckets differ");
    }
}

#[test]
fn tokenizer_ids_match_transformers() {
    let enc = TextEncoder::load_dir(&fixtures().join("tiny/umt5-base"), &Device::Cpu, DType::F32)
        .unwrap();
    let p = prompts();
    let cases = p["tokenizer_cases"].as_array().unwrap();
    let ids = p["tokenizer_ids"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (case, expected) in cases.iter().zip(ids) {
        let text = case.as_str().unwrap();
        let b = enc.tokenizer().encode_batch(&[text], &Device::Cpu).unwrap();
        let ours: Vec<u32> = b.input_ids.squeeze(0).unwrap().to_vec1().unwrap();
        let theirs: Vec<u32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ours, theirs, "token ids differ for {text:?}");
        assert!(ours.len() <= TEXT_MAX_LENGTH);
    }
}

fn check_encoder(enc: &TextEncoder) {
    let r = reference();
    let p = prompts();
    let texts = batch(&p);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    // Same ids and mask as the reference tokenizer call (padding=True, truncation, 256).
    let tb = enc.tokenizer().encode_batch(&texts, &Device::Cpu).unwrap();
    let ids: Vec<Vec<u32>> = tb.input_ids.to_vec2().unwrap();
    let ref_ids: Vec<Vec<u32>> = r["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(ids, ref_ids);
    let mask: Vec<Vec<f32>> = tb.attention_mask.to_vec2().unwrap();
    let ref_mask: Vec<Vec<f32>> = r["attention_mask"]
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(mask, ref_mask);
    assert_ne!(
        tb.lengths[0], tb.lengths[1],
        "the batch must mix lengths (padding)"
    );

    let tol = test_target().tol(F32_TOL, DRIFT);
    let out = enc.encode(&texts).unwrap();
    assert_eq!(out.hidden_states.dtype(), test_target().dtype);
    assert_close("umt5 encode", &out.hidden_states, &r["hidden"], tol);

    let erg = &p["erg"];
    let scale = QueryScale::new(
        erg["tau"].as_f64().unwrap(),
        erg["l_min"].as_u64().unwrap() as usize..erg["l_max"].as_u64().unwrap() as usize,
    );
    assert_eq!(scale, QueryScale::text_default());
    let null = enc.encode_null(&texts, &scale).unwrap();
    assert_close(
        "umt5 encode_null (ERG-tag)",
        &null.hidden_states,
        &r["hidden_null"],
        tol,
    );
    // The ERG output really differs from the plain one (the layers exist and were scaled).
    let c = acestep::testing::compare(&null.hidden_states, &out.hidden_states).unwrap();
    assert!(c.max_rel > 1e-2, "ERG-tag changed nothing: {c:?}");
}

#[test]
fn umt5_encoder_matches_transformers() {
    let target = test_target();
    let ckpt = Checkpoint::from_dir(fixtures().join("tiny")).unwrap();
    let enc = TextEncoder::load(&ckpt, &target.device, target.dtype).unwrap();
    check_encoder(&enc);
}

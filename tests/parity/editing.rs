//! Parity of the editing tasks and LoRA with the reference on the tiny DiT "a", every noise
//! injected (initial, retake, PingPong step noise, FlowEdit forward noise):
//! retake, repaint (Euler; Heun with CFG), extend to the left (Euler) and to the right
//! (PingPong), audio2audio (Euler, PingPong, Heun) through `text2music_diffusion_process`; edit
//! (Euler, PingPong, unguided) through `flowedit_diffusion_process`; text2music with a random
//! LoRA at weight 0.7 as the reference's `load_lora` applies it.
//! Fixtures: `tests/fixtures/editing/`, `tests/fixtures/lora/` (`tools/make_fixtures.py --only
//! editing,lora`).
//!
//! Tolerance: max|ours - ref| / max|ref| <= 1e-3 on the final latents in f32; in bf16 / f16 the
//! drift bound `DRIFT`. Exact-unload and weight-switch checks are bit for bit on every target.

use std::collections::HashMap;

use acestep::dit::AceStepTransformer2DModel;
use acestep::lora::LoraAdapter;
use acestep::pipeline::{
    flowedit_diffusion_process, text2music_diffusion_process, ConditionInputs, Control,
    DiffusionSettings, EditInputs, FlowEditSettings,
};
use acestep::testing::{compare, test_target, Drift};
use candle_core::{DType, Shape, Tensor};

use crate::{fixtures, tiny_dit as model};

const F32_TOL: f64 = 1e-3;
const DRIFT: Drift = Drift {
    bf16: 8e-2,
    f16: 1e-2,
};

/// A fixture file as recorded (host; the reference's latents are compared from here).
fn load(path: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join(path), &candle_core::Device::Cpu).unwrap()
}

/// Tensor `key` of `t` as a float input on the test target.
fn input(t: &HashMap<String, Tensor>, key: &str) -> Tensor {
    test_target()
        .put(&t[key].to_dtype(DType::F32).unwrap())
        .unwrap()
}

/// The condition inputs stored under `{prefix}text`, `{prefix}lyric`, ...
fn condition(t: &HashMap<String, Tensor>, prefix: &str, text_null: bool) -> ConditionInputs {
    let f = |k: &str| input(t, &format!("{prefix}{k}"));
    let ids = t[&format!("{prefix}lyric")].to_dtype(DType::U32).unwrap();
    ConditionInputs {
        text_hidden_states: f("text"),
        text_mask: f("text_mask"),
        text_hidden_states_null: text_null.then(|| f("text_null")),
        speaker_embeds: f("speaker"),
        lyric_token_ids: test_target().put(&ids).unwrap(),
        lyric_mask: f("lyric_mask"),
    }
}

/// Replays recorded draws in order, checking each one's shape.
fn replay<'a>(
    draws: Option<&'a Tensor>,
    used: &'a mut usize,
) -> impl FnMut(&Shape) -> acestep::Result<Tensor> + 'a {
    move |shape: &Shape| {
        let n = draws.expect("a recorded draw").get(*used)?;
        assert_eq!(n.shape(), shape, "draw {} shape", *used);
        *used += 1;
        Ok(n)
    }
}

fn check(name: &str, got: &Tensor, want: &Tensor, failed: &mut Vec<String>) {
    let tol = test_target().tol(F32_TOL, DRIFT);
    let r = compare(got, want).unwrap_or_else(|e| panic!("{name}: {e}"));
    println!(
        "parity {name}: max_abs={:.3e} max_rel={:.3e} (tolerance {tol:.0e})",
        r.max_abs, r.max_rel
    );
    if r.max_rel.is_nan() || r.max_rel > tol {
        failed.push(format!("{name} ({:.2e})", r.max_rel));
    }
}

#[test]
fn editing_tasks_match_the_reference() {
    let dit = model();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("editing/cases.json")).unwrap(),
    )
    .unwrap();
    let t = load("editing/cases.safetensors");
    let mut failed = Vec::new();
    let mut tasks = Vec::new();
    for (name, m) in meta.as_object().unwrap() {
        let key = |s: &str| format!("{name}.{s}");
        let get = |s: &str| input(&t, &key(s));
        let src = get("src_latents");
        let task = m["task"].as_str().unwrap().to_string();
        let mut used = 0usize;
        let mut steps = 0usize;
        let got = if m["kind"] == "flowedit" {
            let settings: FlowEditSettings = serde_json::from_value(m["settings"].clone()).unwrap();
            let draws = t.contains_key(&key("noise")).then(|| get("noise"));
            let got = flowedit_diffusion_process(
                &dit,
                &condition(&t, &key(""), false),
                &condition(&t, &key("target_"), false),
                &settings,
                &src,
                &mut replay(draws.as_ref(), &mut used),
                &mut |_| {
                    steps += 1;
                    Control::Continue
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(used as u64, m["noise"].as_u64().unwrap(), "{name}: draws");
            got
        } else {
            let settings: DiffusionSettings =
                serde_json::from_value(m["settings"].clone()).unwrap();
            let e = &m["edit"];
            let num = |k: &str, d: f64| e.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
            let mut edit = EditInputs {
                retake_variance: num("retake_variance", 0.5),
                repaint_start: num("repaint_start", 0.0),
                repaint_end: num("repaint_end", 0.0),
                ref_audio_strength: num("ref_audio_strength", 0.5),
                ..Default::default()
            };
            match task.as_str() {
                "audio2audio" => edit.ref_latents = Some(src.clone()),
                "retake" => edit.retake_noise = Some(get("retake_noise")),
                _ => {
                    edit.retake_noise = Some(get("retake_noise"));
                    edit.src_latents = Some(src.clone());
                }
            }
            let draws = t
                .contains_key(&key("step_noise"))
                .then(|| get("step_noise"));
            let got = text2music_diffusion_process(
                &dit,
                &condition(&t, &key(""), m["text_null"].as_bool().unwrap()),
                &settings,
                &edit,
                &get("init_noise"),
                &mut replay(draws.as_ref(), &mut used),
                &mut |_| {
                    steps += 1;
                    Control::Continue
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(used as u64, m["step_noise"].as_u64().unwrap(), "{name}");
            got
        };
        assert!(steps > 0, "{name}: progress reported");
        check(
            &format!("{task} {name}"),
            &got,
            &t[&key("latents")],
            &mut failed,
        );
        tasks.push(task);
    }
    for task in ["retake", "repaint", "extend", "audio2audio", "edit"] {
        assert!(tasks.iter().any(|t| t == task), "no {task} case");
    }
    assert!(failed.is_empty(), "cases over tolerance: {failed:?}");
}

/// Runs the LoRA fixture's text2music case on `dit`.
fn run_lora_case(dit: &AceStepTransformer2DModel, t: &HashMap<String, Tensor>) -> Tensor {
    let settings = DiffusionSettings {
        infer_steps: 9,
        use_erg_lyric: true,
        use_erg_diffusion: true,
        guidance_interval_decay: 1.0, // the process's own default, as the fixture ran it
        ..Default::default()
    };
    text2music_diffusion_process(
        dit,
        &condition(t, "", true),
        &settings,
        &EditInputs::default(),
        &input(t, "init_noise"),
        &mut |_| unreachable!("euler draws no step noise"),
        &mut |_| Control::Continue,
    )
    .unwrap()
}

#[test]
fn lora_matches_the_reference_and_unloads_exactly() {
    let base = model();
    let t = load("lora/case.safetensors");
    let adapter = LoraAdapter::from_path(&fixtures().join("lora/tiny_lora")).unwrap();
    assert_eq!(adapter.modules().count(), 179);
    let before = run_lora_case(&base, &t);
    let lora = base.with_lora(&adapter, 0.7).unwrap();
    let with = run_lora_case(&lora, &t);
    let mut failed = Vec::new();
    check("text2music base", &before, &t["base_latents"], &mut failed);
    check(
        "text2music lora 0.7",
        &with,
        &t["lora_latents"],
        &mut failed,
    );
    assert!(failed.is_empty(), "over tolerance: {failed:?}");
    // Switching the weight replaces the delta; removing it gives the base back bit for bit.
    let switched = lora.with_lora(&adapter, 0.3).unwrap();
    let direct = base.with_lora(&adapter, 0.3).unwrap();
    let (a, b) = (run_lora_case(&switched, &t), run_lora_case(&direct, &t));
    let flat = |x: &Tensor| {
        let x = x.to_dtype(DType::F32).unwrap();
        x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(
        flat(&a),
        flat(&b),
        "switching weight == loading at that weight"
    );
    drop((lora, switched, direct));
    let mut unloaded = base.with_lora(&adapter, 0.7).unwrap();
    acestep::lora::remove(&mut unloaded);
    assert_eq!(flat(&run_lora_case(&unloaded, &t)), flat(&before));
    assert_eq!(flat(&run_lora_case(&base, &t)), flat(&before));
}

#[test]
fn lora_errors_name_the_keys() {
    let base = model();
    let host = candle_core::Device::Cpu;
    let a = Tensor::zeros((4, 32), DType::F32, &host).unwrap();
    let b = Tensor::zeros((32, 4), DType::F32, &host).unwrap();
    let mk = |pairs: Vec<(&str, Tensor)>| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<HashMap<_, _>>()
    };
    // A module the DiT does not have.
    let ad = LoraAdapter::from_tensors(
        "x",
        mk(vec![
            ("transformer_blocks.0.attn.to_q.lora_A.weight", a.clone()),
            ("transformer_blocks.0.attn.to_q.lora_B.weight", b.clone()),
            ("transformer_blocks.0.attn.to_zz.lora_A.weight", a.clone()),
            ("transformer_blocks.0.attn.to_zz.lora_B.weight", b.clone()),
        ]),
        None,
    )
    .unwrap();
    let e = base.with_lora(&ad, 1.0).unwrap_err().to_string();
    assert!(
        e.contains("transformer_blocks.0.attn.to_zz") && !e.contains("to_q,"),
        "{e}"
    );
    // Wrong size.
    let wide = Tensor::zeros((4, 64), DType::F32, &host).unwrap();
    let ad = LoraAdapter::from_tensors(
        "x",
        mk(vec![
            (
                "transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
                wide,
            ),
            (
                "transformer.transformer_blocks.0.attn.to_q.lora_B.weight",
                b.clone(),
            ),
        ]),
        None,
    )
    .unwrap();
    let e = base.with_lora(&ad, 1.0).unwrap_err().to_string();
    assert!(e.contains("64 -> 32") && e.contains("32 -> 32"), "{e}");
    // Unpaired and unsupported keys.
    let e = LoraAdapter::from_tensors("x", mk(vec![("m.lora_A.weight", a.clone())]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.lora_B.weight"), "{e}");
    let e = LoraAdapter::from_tensors("x", mk(vec![("m.lora_magnitude_vector", a.clone())]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lora_magnitude_vector"), "{e}");
    // Missing file.
    let e = LoraAdapter::from_path(std::path::Path::new("/nonexistent/lora"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/lora"), "{e}");
}

#[test]
fn lora_scale_follows_the_adapter_metadata() {
    // rsLoRA with alpha 8, rank 4: scale = weight * 8 / sqrt(4) = 4 * weight; without metadata
    // alpha defaults to the rank: scale = weight. Checked on speaker_embedder through encode.
    let base = model();
    let (dev, dtype) = (&test_target().device, test_target().dtype);
    let host = candle_core::Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (4, 16), &host).unwrap();
    let b = Tensor::randn(0f32, 1.0, (32, 4), &host).unwrap();
    let tensors = || {
        HashMap::from([
            ("speaker_embedder.lora_A.weight".to_string(), a.clone()),
            ("speaker_embedder.lora_B.weight".to_string(), b.clone()),
        ])
    };
    let meta = serde_json::json!({"lora_alpha": 8, "r": 4, "use_rslora": true});
    let rs = LoraAdapter::from_tensors("rs", tensors(), Some(&meta)).unwrap();
    let plain = LoraAdapter::from_tensors("plain", tensors(), None).unwrap();
    let ones = |s: &[usize]| Tensor::ones(s, dtype, dev).unwrap();
    let enc = |m: &AceStepTransformer2DModel| {
        m.encode(
            &ones(&[1, 3, 64]),
            &ones(&[1, 3]),
            &ones(&[1, 16]),
            &Tensor::zeros((1, 2), DType::U32, dev).unwrap(),
            &ones(&[1, 2]),
            None,
        )
        .unwrap()
        .0
        .get_on_dim(1, 0) // the speaker token
        .unwrap()
    };
    let e0 = enc(&base);
    let d_plain = (enc(&base.with_lora(&plain, 0.5).unwrap()) - &e0).unwrap();
    let d_rs = (enc(&base.with_lora(&rs, 0.5).unwrap()) - &e0).unwrap();
    let l1 = |d: &Tensor| {
        let d = d.to_dtype(DType::F32).unwrap().abs().unwrap();
        d.sum_all().unwrap().to_scalar::<f32>().unwrap()
    };
    let ratio = l1(&d_rs) / l1(&d_plain);
    println!("parity rsLoRA / plain delta ratio: {ratio} (want 4)");
    // The deltas are differences of two outputs: in bf16 / f16 they carry the outputs' rounding.
    let tol = test_target().tol(
        1e-3,
        Drift {
            bf16: 5e-3,
            f16: 1e-3,
        },
    );
    assert!((ratio as f64 - 4.0).abs() < tol, "rsLoRA / plain = {ratio}");
}

//! Parity of the text2music sampling loop with the reference's
//! `ACEStepPipeline.text2music_diffusion_process` on the tiny DiT "a" (20 blocks, 6 Conformer
//! blocks, so every ERG layer range exists), with the reference's initial noise (and PingPong
//! step noise) injected. Cases and settings: `tests/fixtures/diffusion/cases.json`, written by
//! `tools/make_fixtures.py --only diffusion`.
//!
//! Tolerance: max|ours - ref| / max|ref| <= 1e-3 on the final latents in f32; in bf16 / f16
//! the drift bound `DRIFT` (the whole sampling loop: up to 60 DiT passes, guidance, schedulers).

use std::collections::HashMap;

use acestep::pipeline::{
    text2music_diffusion_process, ConditionInputs, Control, DiffusionSettings, EditInputs,
};
use acestep::testing::{compare, test_target, Drift};
use candle_core::{DType, Device, Tensor};

use crate::{fixtures, tiny_dit as model};

const F32_TOL: f64 = 1e-3;
const DRIFT: Drift = Drift {
    bf16: 5e-2,
    f16: 5e-3,
};

struct Case {
    name: String,
    settings: DiffusionSettings,
    inputs: ConditionInputs,
    init_noise: Tensor,
    step_noise: Option<Tensor>,
    want: Tensor,
}

fn cases() -> Vec<Case> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("diffusion/cases.json")).unwrap(),
    )
    .unwrap();
    let t: HashMap<String, Tensor> = candle_core::safetensors::load(
        fixtures().join("diffusion/cases.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let target = test_target();
    // Inputs on the test target; the reference's latents as recorded.
    let f32_of = |k: &str| target.put(&t[k].to_dtype(DType::F32).unwrap()).unwrap();
    let mut out = Vec::new();
    for (name, m) in meta.as_object().unwrap() {
        let settings: DiffusionSettings = serde_json::from_value(m["settings"].clone()).unwrap();
        let key = |s: &str| format!("{name}.{s}");
        let inputs = ConditionInputs {
            text_hidden_states: f32_of(&key("text")),
            text_mask: f32_of(&key("text_mask")),
            text_hidden_states_null: m["text_null"]
                .as_bool()
                .unwrap()
                .then(|| f32_of(&key("text_null"))),
            speaker_embeds: f32_of(&key("speaker")),
            lyric_token_ids: target
                .put(&t[&key("lyric")].to_dtype(DType::U32).unwrap())
                .unwrap(),
            lyric_mask: f32_of(&key("lyric_mask")),
        };
        out.push(Case {
            name: name.clone(),
            settings,
            inputs,
            init_noise: f32_of(&key("init_noise")),
            step_noise: t.get(&key("step_noise")).map(|n| target.put(n).unwrap()),
            want: t[&key("latents")].to_dtype(DType::F32).unwrap(),
        });
    }
    out
}

#[test]
fn text2music_diffusion_process_matches_the_reference() {
    let dit = model();
    let tol = test_target().tol(F32_TOL, DRIFT);
    let cases = cases();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    let mut failed = Vec::new();
    for c in cases {
        let mut k = 0usize;
        let mut noise = |_: &candle_core::Shape| -> acestep::Result<Tensor> {
            let n = c
                .step_noise
                .as_ref()
                .expect("step noise recorded for pingpong")
                .get(k)?;
            k += 1;
            Ok(n)
        };
        let mut steps = Vec::new();
        let got = text2music_diffusion_process(
            &dit,
            &c.inputs,
            &c.settings,
            &EditInputs::default(),
            &c.init_noise,
            &mut noise,
            &mut |p| {
                steps.push(p.step);
                Control::Continue
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        // Every case is compared and printed before the verdict.
        let r = compare(&got, &c.want).unwrap();
        println!(
            "parity text2music_diffusion_process {}: max_abs={:.3e} max_rel={:.3e} (tolerance {tol:.0e})",
            c.name, r.max_abs, r.max_rel
        );
        if r.max_rel.is_nan() || r.max_rel > tol {
            failed.push(format!("{} ({:.2e})", c.name, r.max_rel));
        }
        // One progress report per loop step, in order.
        assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "{}", c.name);
        if let Some(n) = &c.step_noise {
            assert_eq!(
                k,
                n.dim(0).unwrap(),
                "{}: every recorded step noise used",
                c.name
            );
        }
    }
    assert!(failed.is_empty(), "cases over tolerance: {failed:?}");
}

#[test]
fn progress_callback_can_cancel_between_steps() {
    let dit = model();
    let c = cases().into_iter().next().unwrap();
    let mut seen = 0;
    let err = text2music_diffusion_process(
        &dit,
        &c.inputs,
        &c.settings,
        &EditInputs::default(),
        &c.init_noise,
        &mut |_| unreachable!(),
        &mut |p| {
            seen = p.step;
            if p.step == 3 {
                Control::Cancel
            } else {
                Control::Continue
            }
        },
    )
    .expect_err("cancelled");
    assert!(
        matches!(err, acestep::Error::Cancelled { step: 3, .. }),
        "{err}"
    );
    assert_eq!(seen, 3);
}

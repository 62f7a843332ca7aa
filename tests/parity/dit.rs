//! Parity of the DiT (`ACEStepTransformer2DModel`) against the reference on two small random
//! configs written by `tools/make_fixtures.py`: encode, encode with ERG-lyric, decode, decode with
//! ERG-diffusion, and decode to a longer / shorter output length. Batch of 2 with padded text and
//! lyrics of different lengths, odd T = 27.
//!
//! Tolerance: max relative error (max|ours - ref| / max|ref|) <= 1e-4 in f32; drift bounds
//! in bf16 / f16 (`DRIFT`).

use std::collections::HashMap;

use acestep::dit::AceStepTransformer2DModel;
use acestep::testing::{assert_close, compare, test_target, Drift};
use acestep::QueryScale;
use candle_core::{DType, Tensor};

const F32_TOL: f64 = 1e-4;
const DRIFT: Drift = Drift {
    bf16: 4e-2,
    f16: 5e-3,
};

/// The model on the test target, the fixture's inputs on the target, and the reference's
/// outputs as recorded (f32, host).
fn load(
    name: &str,
) -> (
    AceStepTransformer2DModel,
    HashMap<String, Tensor>,
    HashMap<String, Tensor>,
) {
    let target = test_target();
    let fix = crate::fixtures();
    let dir = fix.join(format!("dit_{name}"));
    // Config "a" is the DiT of the tiny four-component checkpoint; "b" stands alone.
    let weights = match name {
        "a" => fix.join("tiny/ace_step_transformer"),
        _ => dir.join("ace_step_transformer"),
    };
    let model = AceStepTransformer2DModel::load_dir(&weights, &target.device, target.dtype)
        .expect("load tiny DiT");
    let path = dir.join("parity.safetensors");
    let mut io = target.load(&path).expect("fixture");
    let refs = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).expect("fixture");
    // The pipeline passes timesteps in f32 whatever the model's dtype (as the reference does).
    let t = refs["timestep"]
        .to_device(&target.device)
        .expect("timestep");
    io.insert("timestep".into(), t);
    (model, io, refs)
}

fn range(io: &HashMap<String, Tensor>, key: &str) -> std::ops::Range<usize> {
    let v: Vec<i64> = io[key].to_dtype(DType::I64).unwrap().to_vec1().unwrap();
    v[0] as usize..v[1] as usize
}

fn check(name: &str) {
    let (m, io, refs) = load(name);
    let tol = test_target().tol(F32_TOL, DRIFT);
    let erg_lyric = QueryScale::new(0.01, range(&io, "erg_lyric_range"));
    let erg_diff = QueryScale::new(0.01, range(&io, "erg_diffusion_range"));
    let enc_args = (
        &io["text_hidden_states"],
        &io["text_attention_mask"],
        &io["speaker_embeds"],
        &io["lyric_token_ids"],
        &io["lyric_mask"],
    );
    let (enc, mask) = m
        .encode(
            enc_args.0, enc_args.1, enc_args.2, enc_args.3, enc_args.4, None,
        )
        .unwrap();
    assert_close(
        &format!("dit_{name} encode"),
        &enc,
        &refs["encoder_hidden_states"],
        tol,
    );
    let mask_diff = compare(&mask, &refs["encoder_hidden_mask"]).unwrap();
    assert_eq!(mask_diff.max_abs, 0.0, "encoder mask differs");

    let (enc_erg, _) = m
        .encode(
            enc_args.0,
            enc_args.1,
            enc_args.2,
            enc_args.3,
            enc_args.4,
            Some(&erg_lyric),
        )
        .unwrap();
    assert_close(
        &format!("dit_{name} encode ERG-lyric {:?}", erg_lyric.layers),
        &enc_erg,
        &refs["encoder_hidden_states_erg_lyric"],
        tol,
    );

    let lat = &io["latents"];
    let t = lat.dim(3).unwrap();
    let emask = &io["encoder_hidden_mask"];
    let ref_enc = &io["encoder_hidden_states"];
    let dec = |len: usize, erg: Option<&QueryScale>| {
        m.decode(
            lat,
            &io["attention_mask"],
            ref_enc,
            emask,
            &io["timestep"],
            len,
            erg,
        )
        .unwrap()
    };
    assert_close(
        &format!("dit_{name} decode"),
        &dec(t, None),
        &refs["velocity"],
        tol,
    );
    assert_close(
        &format!("dit_{name} decode ERG-diffusion {:?}", erg_diff.layers),
        &dec(t, Some(&erg_diff)),
        &refs["velocity_erg_diffusion"],
        tol,
    );
    assert_close(
        &format!("dit_{name} decode output_length t+5"),
        &dec(t + 5, None),
        &refs["velocity_long"],
        tol,
    );
    assert_close(
        &format!("dit_{name} decode output_length t-4"),
        &dec(t - 4, None),
        &refs["velocity_short"],
        tol,
    );

    // A prepared condition gives the same result as decode.
    let cond = m.prepare_condition(ref_enc, emask).unwrap();
    let v = m
        .decode_with(lat, &io["attention_mask"], &cond, &io["timestep"], t, None)
        .unwrap();
    assert_close(
        &format!("dit_{name} decode_with prepared condition"),
        &v,
        &refs["velocity"],
        tol,
    );
}

#[test]
fn dit_config_a_20_layers_matches_reference() {
    check("a");
}

#[test]
fn dit_config_b_matches_reference() {
    check("b");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (m, io, _) = load("b");
    // Lyric id beyond the vocabulary.
    let ids = (io["lyric_token_ids"].ones_like().unwrap() * 5000.0).unwrap();
    let e = m
        .encode(
            &io["text_hidden_states"],
            &io["text_attention_mask"],
            &io["speaker_embeds"],
            &ids,
            &io["lyric_mask"],
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("5000") && e.contains("out of range"), "{e}");
    // ERG range outside the model.
    let e = m
        .decode(
            &io["latents"],
            &io["attention_mask"],
            &io["encoder_hidden_states"],
            &io["encoder_hidden_mask"],
            &io["timestep"],
            27,
            Some(&QueryScale::diffusion_default()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("15..20"), "{e}");
    // Latents of the wrong shape.
    let bad = Tensor::zeros(
        (2, 4, 16, 10),
        io["latents"].dtype(),
        io["latents"].device(),
    )
    .unwrap();
    let e = m
        .decode(
            &bad,
            &io["attention_mask"],
            &io["encoder_hidden_states"],
            &io["encoder_hidden_mask"],
            &io["timestep"],
            10,
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("latents"), "{e}");
}

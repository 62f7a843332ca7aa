//! Full-size tensor manifests: our loaders ask for exactly the tensors of the real checkpoint.
//!
//! The manifests are written by `tools/make_fixtures.py` from the reference classes at the real
//! configs (on PyTorch's meta device); here the Rust model is built at the same config with a
//! recording VarBuilder (no 3.5B allocation) and the two name -> shape sets are compared.

use std::path::PathBuf;

use acestep::testing::{read_manifest, Manifest, ManifestRecorder};
use acestep::text_encoder::{Umt5Config, Umt5EncoderModel};

fn manifest(name: &str) -> Manifest {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/manifests/{name}.json"));
    read_manifest(&p).unwrap()
}

/// Compares what `rec` recorded with manifest `m`, prints the counts, and requires a clean diff.
fn check(name: &str, m: &Manifest, rec: &ManifestRecorder) -> acestep::testing::ManifestDiff {
    let diff = m.diff(&rec.tensors());
    println!(
        "{name}: {} tensors in manifest, {} requested, {} deliberately ignored, missing {:?}, \
         unexpected {:?}, shape mismatches {:?}",
        m.tensors.len(),
        rec.tensors().len(),
        diff.ignored.len(),
        diff.missing,
        diff.unexpected,
        diff.shape_mismatch
    );
    assert!(diff.is_clean(), "{name}: manifest mismatch");
    diff
}

#[test]
fn umt5_base_manifest_zero_missing_zero_unexpected() {
    let m = manifest("umt5-base");
    let cfg: Umt5Config = serde_json::from_value(m.config.clone()).unwrap();
    assert_eq!(cfg.vocab_size, 256_384);
    let rec = ManifestRecorder::new();
    Umt5EncoderModel::new(&cfg, rec.var_builder()).unwrap();
    check("umt5-base", &m, &rec);
    // shared + 12 blocks x (q, k, v, o, bias, 2 norms, wi_0, wi_1, wo) + final norm
    assert_eq!(m.tensors.len(), 1 + 12 * 10 + 1);
}

#[test]
fn ace_step_transformer_manifest_zero_missing_zero_unexpected() {
    use acestep::dit::{is_unused_key, AceStepTransformer2DModel, AceStepTransformerConfig};

    let m = manifest("ace_step_transformer");
    let cfg: AceStepTransformerConfig = serde_json::from_value(m.config.clone()).unwrap();
    let rec = ManifestRecorder::new();
    AceStepTransformer2DModel::new(&cfg, rec.var_builder()).unwrap();
    let diff = check("ace_step_transformer", &m, &rec);
    // The ignored ones are exactly what the loader's own filter calls unused.
    assert!(diff.ignored.iter().all(|k| is_unused_key(k)));
    assert_eq!(diff.ignored.len(), 12 + 24 * 8);
}

#[test]
fn music_dcae_manifest_zero_missing_zero_unexpected() {
    use acestep::dcae::{AutoencoderDc, AutoencoderDcConfig};

    let m = manifest("music_dcae_f8c8");
    let cfg: AutoencoderDcConfig = serde_json::from_value(m.config.clone()).unwrap();
    let rec = ManifestRecorder::new();
    AutoencoderDc::new(&cfg, rec.var_builder()).unwrap();
    check("music_dcae_f8c8", &m, &rec);
}

#[test]
fn music_vocoder_manifest_zero_missing_zero_unexpected() {
    use acestep::dcae::LogMelSpectrogram;
    use acestep::vocoder::{Vocoder, VocoderConfig};

    let m = manifest("music_vocoder");
    let cfg: VocoderConfig = serde_json::from_value(m.config.clone()).unwrap();
    let rec = ManifestRecorder::new();
    let vb = rec.var_builder();
    Vocoder::new(&cfg, vb.clone()).unwrap();
    LogMelSpectrogram::new(&cfg, vb.pp("mel_transform")).unwrap();
    check("music_vocoder", &m, &rec);
}

#[test]
fn every_component_manifest_parses_with_our_config_structs() {
    use acestep::dcae::AutoencoderDcConfig;
    use acestep::dit::AceStepTransformerConfig;
    use acestep::vocoder::VocoderConfig;

    let dit = manifest("ace_step_transformer");
    let c: AceStepTransformerConfig = serde_json::from_value(dit.config.clone()).unwrap();
    assert_eq!(
        (c.num_layers, c.inner_dim, c.lyric_encoder_vocab_size),
        (24, 2560, 6693)
    );
    assert_eq!(c.lyric_encoder_num_blocks, 6);
    assert!(dit.ignored_prefixes.contains(&"projectors.".to_string()));
    assert!(dit.tensors.keys().any(|k| k.starts_with("projectors.")));

    let dcae = manifest("music_dcae_f8c8");
    let c: AutoencoderDcConfig = serde_json::from_value(dcae.config.clone()).unwrap();
    assert_eq!(
        c.decoder_block_types.expand(4).unwrap()[3],
        "EfficientViTBlock"
    );
    assert!(!dcae.tensors.is_empty());

    let voc = manifest("music_vocoder");
    let c: VocoderConfig = serde_json::from_value(voc.config.clone()).unwrap();
    assert_eq!(c.upsample_rates.iter().product::<usize>(), 512);
    assert!(!voc.tensors.is_empty());
}

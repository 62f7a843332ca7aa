//! Typed, named errors for broken checkpoints: missing folders and files, bad JSON, missing
//! tensors, wrong shapes, wrong dtypes; and a clear sentence when the hub is unreachable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use acestep::text_encoder::TextEncoder;
use acestep::{Checkpoint, Component, Error, HubOptions};
use candle_core::{DType, Device, Tensor};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

/// Copies the tiny umt5-base folder into a temp checkpoint root.
fn copy_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("umt5-base");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(tiny().join("umt5-base")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dir
}

fn load(root: &Path) -> Result<TextEncoder, Error> {
    let ckpt = Checkpoint::from_dir(root)?;
    TextEncoder::load(&ckpt, &Device::Cpu, DType::F32)
}

fn rewrite_weights(root: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let p = root.join("umt5-base/model.safetensors");
    let mut t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    edit(&mut t);
    candle_core::safetensors::save(&t, &p).unwrap();
}

#[test]
fn not_a_checkpoint_dir() {
    let dir = tempfile::tempdir().unwrap();
    let e = Checkpoint::from_dir(dir.path()).unwrap_err();
    assert!(matches!(e, Error::NotACheckpoint { .. }), "{e}");
    let e = Checkpoint::from_dir(dir.path().join("nope")).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn missing_component_folder_is_named() {
    let root = copy_tiny();
    let ckpt = Checkpoint::from_dir(root.path()).unwrap();
    let e = acestep::dit::AceStepTransformerConfig::from_checkpoint(&ckpt)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ace_step_transformer"), "{e}");
    let e = ckpt.validate().unwrap_err().to_string();
    assert!(e.contains("music_dcae_f8c8"), "{e}");
    assert!(ckpt.component_dir(Component::TextEncoder).is_ok());
}

#[test]
fn missing_file_is_named() {
    let root = copy_tiny();
    std::fs::remove_file(root.path().join("umt5-base/tokenizer.json")).unwrap();
    let e = load(root.path()).err().unwrap();
    assert!(matches!(e, Error::MissingPath { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

#[test]
fn bad_json_is_named() {
    let root = copy_tiny();
    std::fs::write(
        root.path().join("umt5-base/config.json"),
        "{\"d_model\": 64,",
    )
    .unwrap();
    let e = load(root.path()).err().unwrap();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn missing_tensor_is_named_with_file() {
    let root = copy_tiny();
    rewrite_weights(root.path(), |t| {
        t.remove("encoder.block.3.layer.1.DenseReluDense.wo.weight");
    });
    let e = load(root.path()).err().unwrap();
    match &e {
        Error::MissingTensor { path, name } => {
            assert_eq!(name, "encoder.block.3.layer.1.DenseReluDense.wo.weight");
            assert!(path.ends_with("umt5-base/model.safetensors"));
        }
        other => panic!("expected MissingTensor, got {other}"),
    }
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let root = copy_tiny();
    let cfg_path = root.path().join("umt5-base/config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let text = text.replace("\"d_ff\": 96", "\"d_ff\": 100");
    std::fs::write(&cfg_path, text).unwrap();
    let e = load(root.path()).err().unwrap();
    match &e {
        Error::TensorShape {
            name,
            expected,
            found,
            ..
        } => {
            assert!(name.contains("DenseReluDense.wi_0"), "{name}");
            assert_eq!(expected, &vec![100, 64]);
            assert_eq!(found, &vec![96, 64]);
        }
        other => panic!("expected TensorShape, got {other}"),
    }
}

#[test]
fn integer_weights_are_a_dtype_error() {
    let root = copy_tiny();
    rewrite_weights(root.path(), |t| {
        let w = t["encoder.final_layer_norm.weight"]
            .to_dtype(DType::I64)
            .unwrap();
        t.insert("encoder.final_layer_norm.weight".into(), w);
    });
    let e = load(root.path()).err().unwrap();
    assert!(matches!(e, Error::TensorDType { .. }), "{e}");
    assert!(
        e.to_string().contains("encoder.final_layer_norm.weight"),
        "{e}"
    );
}

#[test]
fn unreachable_hub_says_how_to_use_a_local_dir() {
    let cache = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        // Nothing listens on port 9 of the loopback: the connection is refused at once.
        endpoint: Some("http://127.0.0.1:9".into()),
        cache_dir: Some(cache.path().to_path_buf()),
        progress: false,
        token: None,
    };
    let e = Checkpoint::download_with("ACE-Step/ACE-Step-v1-3.5B", &opts).unwrap_err();
    assert!(matches!(e, Error::Hub { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("--checkpoint-dir") && msg.contains("ACESTEP_CHECKPOINT_DIR"),
        "{msg}"
    );
}

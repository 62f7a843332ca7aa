//! Writes a full-size checkpoint of seeded random weights in the real folder layout, from the
//! tensor manifests of `tests/fixtures/manifests/` (configs and shapes of ACE-Step v1 3.5B), for
//! measuring memory and speed where the real weights are not available:
//!
//! ```sh
//! cargo run --release --example random_checkpoint -- /data/acestep-random
//! ```
//!
//! About 15 GB (f32). Values: normal with standard deviation 0.02 (norm gains around one), the
//! same for every run (each tensor's generator is seeded by its name). The UMT5 tokenizer is the
//! tiny fixture's (its ids are valid for the full vocabulary).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

const CHUNK: usize = 1 << 20;

fn seed_of(name: &str, chunk: usize) -> u64 {
    // FNV-1a of the name, mixed with the chunk index.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h ^ (chunk as u64).wrapping_mul(0x9e3779b97f4a7c15)
}

fn values(name: &str, n: usize) -> Vec<f32> {
    let gain = name.ends_with("norm.weight") || name.ends_with("norm1.weight");
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed_of(name, i));
        for x in c.iter_mut() {
            let v: f32 = rng.sample(rand_distr::StandardNormal);
            *x = if gain { 1.0 + 0.02 * v } else { 0.02 * v };
        }
    });
    out
}

/// Streams a safetensors file of f32 tensors (header first, then each tensor as generated).
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>)]) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}),
        );
        offset += 4 * n;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(path)?);
    f.write_all(&(text.len() as u64).to_le_bytes())?;
    f.write_all(text.as_bytes())?;
    for (name, shape) in tensors {
        let v = values(name, shape.iter().product());
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        f.write_all(&bytes)?;
    }
    f.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: random_checkpoint OUT_DIR")?,
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (component, weights) in [
        (
            "ace_step_transformer",
            "diffusion_pytorch_model.safetensors",
        ),
        ("music_dcae_f8c8", "diffusion_pytorch_model.safetensors"),
        ("music_vocoder", "diffusion_pytorch_model.safetensors"),
        ("umt5-base", "model.safetensors"),
    ] {
        let text = std::fs::read_to_string(
            root.join("tests/fixtures/manifests")
                .join(format!("{component}.json")),
        )?;
        let m: serde_json::Value = serde_json::from_str(&text)?;
        let dir = out.join(component);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&m["config"])?,
        )?;
        let mut tensors: Vec<(String, Vec<usize>)> = m["tensors"]
            .as_object()
            .ok_or("manifest without tensors")?
            .iter()
            .map(|(k, v)| {
                let shape = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|d| d.as_u64())
                            .map(|d| d as usize)
                            .collect()
                    })
                    .unwrap_or_default();
                (k.clone(), shape)
            })
            .collect();
        tensors.sort();
        let t0 = std::time::Instant::now();
        write_safetensors(&dir.join(weights), &tensors)?;
        let params: usize = tensors
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        println!(
            "{component}: {} tensors, {:.2} B parameters, {:.0} s",
            tensors.len(),
            params as f64 / 1e9,
            t0.elapsed().as_secs_f64()
        );
        if component == "umt5-base" {
            for f in [
                "tokenizer.json",
                "special_tokens_map.json",
                "tokenizer_config.json",
            ] {
                std::fs::copy(
                    root.join("tests/fixtures/tiny/umt5-base").join(f),
                    dir.join(f),
                )?;
            }
        }
    }
    Ok(())
}

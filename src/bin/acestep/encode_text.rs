//! `acestep encode-text`.

use std::time::Instant;

use acestep::{QueryScale, TextEncoder};

use crate::model::ModelArgs;

/// Options of `acestep encode-text`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The prompt (tags), e.g. "funk, groovy bass, 110 bpm".
    prompt: String,
    /// Also compute the ERG-tag null condition (queries of layers 8..10 scaled by 0.01).
    #[arg(long)]
    erg: bool,
    #[command(flatten)]
    model: ModelArgs,
}

/// Encodes the prompt and prints the shape, a checksum and the timings as JSON.
pub fn run(a: Args) -> acestep::Result<()> {
    let m = a.model.resolve()?;
    let (device, dtype) = (&m.options.device, m.dtype());
    let t0 = Instant::now();
    let enc = TextEncoder::load(&m.checkpoint, device, dtype)?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let out = if a.erg {
        enc.encode_null(&[a.prompt.as_str()], &QueryScale::text_default())?
    } else {
        enc.encode(&[a.prompt.as_str()])?
    };
    let h = out.hidden_states.to_dtype(candle_core::DType::F32)?;
    let sum = h.sum_all()?.to_scalar::<f32>()?;
    let abs_mean = h.abs()?.mean_all()?.to_scalar::<f32>()?;
    let enc_s = t1.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "shape": h.dims(),
            "dtype": format!("{dtype:?}").to_lowercase(),
            "device": format!("{device:?}"),
            "tokens": out.attention_mask.sum_all()?.to_scalar::<f32>()? as usize,
            "erg_tag": a.erg,
            "checksum_sum": sum,
            "checksum_abs_mean": abs_mean,
            "load_seconds": load_s,
            "encode_seconds": enc_s,
        })
    );
    Ok(())
}

//! `acestep quantize`.

use std::path::PathBuf;
use std::time::Instant;

use acestep::Checkpoint;

/// Options of `acestep quantize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The float checkpoint to read.
    #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
    checkpoint_dir: PathBuf,
    /// q8_0, q6k, q5k or q4k.
    #[arg(long)]
    to: String,
    /// The new checkpoint folder (must not exist or be empty).
    #[arg(short, long)]
    output: PathBuf,
}

/// Writes the quantized checkpoint.
pub fn run(a: Args) -> acestep::Result<()> {
    let q: acestep::quant::Quantization = a.to.parse()?;
    let src = Checkpoint::from_dir(&a.checkpoint_dir)?;
    let t0 = Instant::now();
    acestep::quant::quantize_checkpoint(&src, q, &a.output)?;
    println!(
        "wrote {} ({q}) in {:.1} s",
        a.output.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

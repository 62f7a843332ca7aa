//! The `acestep` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use acestep::device::{parse_device, parse_dtype};
use acestep::{Checkpoint, QueryScale, TextEncoder};
use clap::{Args, Parser, Subcommand};

/// ACE-Step v1 3.5B music generation, in pure Rust.
#[derive(Parser, Debug)]
#[command(name = "acestep", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that loads the model.
#[derive(Args, Debug)]
struct ModelArgs {
    /// Local checkpoint directory (ace_step_transformer/, music_dcae_f8c8/, music_vocoder/,
    /// umt5-base/). Without it, the hub repository is downloaded into the Hugging Face cache.
    #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Hub repository to download when no directory is given.
    #[arg(long, default_value = acestep::DEFAULT_REPO_ID)]
    repo_id: String,
    /// auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// auto (bf16 on GPU, f32 on CPU), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encode a prompt with the UMT5 text encoder and print the shape and a checksum.
    EncodeText {
        /// The prompt (tags), e.g. "funk, groovy bass, 110 bpm".
        prompt: String,
        /// Also compute the ERG-tag null condition (queries of layers 8..10 scaled by 0.01).
        #[arg(long)]
        erg: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn checkpoint(m: &ModelArgs) -> acestep::Result<Checkpoint> {
    match &m.checkpoint_dir {
        Some(d) => Checkpoint::from_dir(d),
        None => Checkpoint::download(&m.repo_id),
    }
}

fn setup_threads(n: Option<usize>) -> acestep::Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(acestep::Error::InvalidArgument {
                name: "threads",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        // candle's CPU kernels use rayon's global pool and gemm's own threading.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
    }
    Ok(())
}

fn run(cli: Cli) -> acestep::Result<()> {
    match cli.command {
        Command::EncodeText { prompt, erg, model } => {
            setup_threads(model.threads)?;
            let device = parse_device(&model.device)?;
            let dtype = parse_dtype(&model.dtype, &device)?;
            let ckpt = checkpoint(&model)?;
            let t0 = Instant::now();
            let enc = TextEncoder::load(&ckpt, &device, dtype)?;
            let load_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let out = if erg {
                enc.encode_null(&[prompt.as_str()], &QueryScale::text_default())?
            } else {
                enc.encode(&[prompt.as_str()])?
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
                    "erg_tag": erg,
                    "checksum_sum": sum,
                    "checksum_abs_mean": abs_mean,
                    "load_seconds": load_s,
                    "encode_seconds": enc_s,
                })
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

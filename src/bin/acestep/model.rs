//! The options of every command that loads the model, and the one loader they share.

use std::path::PathBuf;

use acestep::device::{parse_device, parse_dtype};
use acestep::{Checkpoint, Pipeline, PipelineOptions};

/// Options shared by every command that loads the model.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Local checkpoint directory (ace_step_transformer/, music_dcae_f8c8/, music_vocoder/,
    /// umt5-base/). Without it, the hub repository is downloaded into the Hugging Face cache.
    #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Hub repository to download when no directory is given.
    #[arg(long, default_value = acestep::DEFAULT_REPO_ID)]
    pub repo_id: String,
    /// auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// auto (bf16 on GPU, f32 on CPU), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Quantize the DiT's and the text encoder's linear layers and embedding as they load:
    /// q8_0, q6k, q5k or q4k (a checkpoint written by `acestep quantize` is read as stored).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Keep each model in memory only while its stage runs (text encoder, DiT, DCAE + vocoder):
    /// the smallest peak, for a reload of each model per generation.
    #[arg(long)]
    pub offload: bool,
}

/// The lyric options of the commands that read lyrics.
#[derive(clap::Args, Debug)]
pub struct LyricArgs {
    /// The lyric vocab.json (else $ACESTEP_LYRIC_VOCAB, <checkpoint>/lyric_tokenizer/, or a
    /// download from the ACE-Step Space).
    #[arg(long, env = "ACESTEP_LYRIC_VOCAB")]
    pub lyric_vocab: Option<PathBuf>,
    /// The UniDic dictionary folder of unidic-lite 1.0.8 for Japanese lyric lines (romaji); by
    /// default it is downloaded from the Python package index on first use (into the cache).
    #[arg(long, env = "ACESTEP_JA_DICT")]
    pub ja_dict: Option<PathBuf>,
}

/// What a command needs to load models: the checkpoint and the pipeline options.
pub struct Loaded {
    /// The checkpoint (a local folder, or the hub download).
    pub checkpoint: Checkpoint,
    /// Device, dtype, quantization, offload.
    pub options: PipelineOptions,
}

impl ModelArgs {
    /// Sets the CPU threads, then resolves the device, dtype and checkpoint.
    pub fn resolve(&self) -> acestep::Result<Loaded> {
        setup_threads(self.threads)?;
        let device = parse_device(&self.device)?;
        let dtype = parse_dtype(&self.dtype, &device)?;
        let checkpoint = match &self.checkpoint_dir {
            Some(d) => Checkpoint::from_dir(d)?,
            None => Checkpoint::download(&self.repo_id)?,
        };
        Ok(Loaded {
            checkpoint,
            options: PipelineOptions {
                device,
                dtype: Some(dtype),
                quantize: self.quantize.as_deref().map(str::parse).transpose()?,
                offload: self.offload,
                ..Default::default()
            },
        })
    }
}

impl Loaded {
    /// The dtype the models load in.
    pub fn dtype(&self) -> candle_core::DType {
        self.options.dtype()
    }

    /// Loads the whole pipeline behind a spinner.
    pub fn pipeline(&self) -> acestep::Result<Pipeline> {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message("loading the text encoder, DiT, DCAE and vocoder");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let pipe = Pipeline::load(&self.checkpoint, &self.options);
        spinner.finish_and_clear();
        pipe
    }
}

/// Sizes rayon's global pool (candle's CPU kernels use it and gemm's own threading).
fn setup_threads(n: Option<usize>) -> acestep::Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(acestep::Error::InvalidArgument {
                name: "threads",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
    }
    Ok(())
}

//! The engine's error type (the job manager and server add theirs in
//! [`crate::jobs::JobError`]).
//!
//! Every failure that a user can cause (a missing checkpoint file, a malformed `config.json`, a
//! tensor of the wrong shape, a bad device string, ...) is reported as a typed [`Error`] variant that
//! names the offending file, tensor or value. Numerical failures from candle are wrapped in
//! [`Error::Candle`].

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `acestep`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder the checkpoint layout requires does not exist.
    #[error("{what} not found: {path}")]
    MissingPath {
        /// What was expected there (e.g. "checkpoint folder `umt5-base`").
        what: String,
        /// The path that was looked up.
        path: PathBuf,
    },

    /// A directory was given as a checkpoint but holds none of its component folders.
    #[error(
        "{path} is not an ACE-Step checkpoint directory: none of the folders \
         ace_step_transformer/, music_dcae_f8c8/, music_vocoder/, umt5-base/ is in it"
    )]
    NotACheckpoint {
        /// The directory that was given.
        path: PathBuf,
    },

    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A `config.json` is not valid JSON or lacks a required key.
    #[error("invalid config {path}: {source}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parse error (names the key and line).
        #[source]
        source: serde_json::Error,
    },

    /// A config value is out of the range the model supports.
    #[error("invalid config {path}: {message}")]
    ConfigValue {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key and its value.
        message: String,
    },

    /// A safetensors file cannot be opened or parsed.
    #[error("cannot open safetensors file {path}: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },

    /// A tensor the model needs is absent from the weights file.
    #[error("tensor `{name}` is missing from {path}")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
    },

    /// A tensor has a shape other than the config implies.
    #[error("tensor `{name}` in {path} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },

    /// A tensor is stored with a dtype that cannot hold model weights.
    #[error("tensor `{name}` in {path} has dtype {found}, expected a floating-point dtype (f32, f16, bf16)")]
    TensorDType {
        /// The weights file.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The dtype stored in the file.
        found: String,
    },

    /// The Hugging Face Hub could not be reached or the download failed.
    #[error(
        "could not download `{file}` of {repo} from the Hugging Face Hub ({message}); \
         to use a checkpoint already on disk, pass --checkpoint-dir DIR or set ACESTEP_CHECKPOINT_DIR=DIR \
         (DIR holding ace_step_transformer/, music_dcae_f8c8/, music_vocoder/ and umt5-base/)"
    )]
    Hub {
        /// The repository id.
        repo: String,
        /// The file that failed.
        file: String,
        /// The client's message.
        message: String,
    },

    /// The text tokenizer failed to load or to encode.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizer's message.
        message: String,
    },

    /// An audio file cannot be read or written.
    #[error("audio file {path}: {message}")]
    Audio {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A LoRA adapter cannot be read or does not fit the model (names the keys).
    #[error("LoRA adapter {adapter}: {message}")]
    Lora {
        /// The adapter's path or hub repo id.
        adapter: String,
        /// What is wrong.
        message: String,
    },

    /// A caller-supplied argument is invalid.
    #[error("invalid {name} `{}`: {expected}", short(.value))]
    InvalidArgument {
        /// The parameter.
        name: &'static str,
        /// The offending value.
        value: String,
        /// What is allowed.
        expected: String,
    },

    /// The requested device is not compiled in or not present.
    #[error("device `{device}` is unavailable: {message}")]
    DeviceUnavailable {
        /// The device string the caller gave.
        device: String,
        /// Why it cannot be used.
        message: String,
    },

    /// The caller's progress callback asked to stop; nothing was produced.
    #[error("cancelled at step {step} of {total}")]
    Cancelled {
        /// The step boundary the run stopped at.
        step: usize,
        /// The steps the run would have taken.
        total: usize,
    },

    /// A failure of the engine itself (a task that died, a broken invariant), not of the input.
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },

    /// A numerical error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// At most 200 characters of `s` (values echoed in errors stay small, whatever was sent).
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_string()
    } else {
        let head: String = s.chars().take(200).collect();
        format!("{head}... ({} bytes)", s.len())
    }
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

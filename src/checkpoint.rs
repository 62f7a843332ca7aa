//! The `ACE-Step/ACE-Step-v1-3.5B` checkpoint layout: where each component's files are, from a
//! local directory or the Hugging Face Hub ([`crate::hub`]). Paths and files only: each model's
//! config type reads its own `config.json` (`AceStepTransformerConfig::from_checkpoint`, ...).
//!
//! ```text
//! <root>/ace_step_transformer/{config.json, diffusion_pytorch_model.safetensors}
//! <root>/music_dcae_f8c8/{config.json, diffusion_pytorch_model.safetensors}
//! <root>/music_vocoder/{config.json, diffusion_pytorch_model.safetensors}
//! <root>/umt5-base/{config.json, model.safetensors, tokenizer.json, ...}
//! ```
//!
//! ```no_run
//! use acestep::Checkpoint;
//! // A local copy ...
//! let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! // ... or the hub (files are cached in the standard Hugging Face cache).
//! let ckpt = Checkpoint::download("ACE-Step/ACE-Step-v1-3.5B")?;
//! let cfg = acestep::dit::AceStepTransformerConfig::from_checkpoint(&ckpt)?;
//! # Ok::<(), acestep::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hub::{hub_file, HubOptions, HubRepo};

/// The default hub repository.
pub const DEFAULT_REPO_ID: &str = "ACE-Step/ACE-Step-v1-3.5B";

/// Environment variable naming a local checkpoint directory.
pub const CHECKPOINT_DIR_ENV: &str = "ACESTEP_CHECKPOINT_DIR";

/// One of the four checkpoint folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// `ace_step_transformer/`: the DiT and lyric encoder.
    Transformer,
    /// `music_dcae_f8c8/`: the mel autoencoder.
    Dcae,
    /// `music_vocoder/`: the mel vocoder.
    Vocoder,
    /// `umt5-base/`: the prompt encoder and its tokenizer.
    TextEncoder,
}

impl Component {
    /// All four, in the reference's order.
    pub const ALL: [Component; 4] = [
        Component::Dcae,
        Component::Vocoder,
        Component::Transformer,
        Component::TextEncoder,
    ];

    /// The folder name.
    pub fn folder(self) -> &'static str {
        match self {
            Component::Transformer => "ace_step_transformer",
            Component::Dcae => "music_dcae_f8c8",
            Component::Vocoder => "music_vocoder",
            Component::TextEncoder => "umt5-base",
        }
    }

    /// The weights file inside the folder.
    pub fn weights_file(self) -> &'static str {
        match self {
            Component::TextEncoder => "model.safetensors",
            _ => "diffusion_pytorch_model.safetensors",
        }
    }

    /// Whether the component's weights may be stored quantized (GGUF): the DiT and the text
    /// encoder.
    pub fn quantizable(self) -> bool {
        matches!(self, Component::Transformer | Component::TextEncoder)
    }

    /// Every file the component needs, relative to its folder.
    pub fn required_files(self) -> &'static [&'static str] {
        match self {
            Component::TextEncoder => &["config.json", "model.safetensors", "tokenizer.json"],
            _ => &["config.json", "diffusion_pytorch_model.safetensors"],
        }
    }
}

/// A resolved checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    root: PathBuf,
}

impl Checkpoint {
    /// Uses a local directory in the real layout.
    ///
    /// The directory must exist and hold at least one of the component folders; each component's
    /// own files are checked when it is loaded (or all at once with [`Checkpoint::validate`]).
    pub fn from_dir(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::MissingPath {
                what: "checkpoint directory".into(),
                path: root,
            });
        }
        if !Component::ALL
            .iter()
            .any(|c| root.join(c.folder()).is_dir())
        {
            return Err(Error::NotACheckpoint { path: root });
        }
        Ok(Self { root })
    }

    /// Downloads (or finds in the Hugging Face cache) every file of `repo_id`, with a progress bar
    /// per file.
    pub fn download(repo_id: &str) -> Result<Self> {
        Self::download_with(repo_id, &HubOptions::default())
    }

    /// [`Checkpoint::download`] with explicit hub options.
    pub fn download_with(repo_id: &str, opts: &HubOptions) -> Result<Self> {
        let hub_err = |file: &str, message: String| Error::Hub {
            repo: repo_id.to_string(),
            file: file.to_string(),
            message,
        };
        let get = |file: &str| hub_file(opts, HubRepo::Model(repo_id), file);
        let mut root: Option<PathBuf> = None;
        for c in Component::ALL {
            for f in c.required_files() {
                let rel = format!("{}/{}", c.folder(), f);
                let path = match get(&rel) {
                    Ok(p) => p,
                    // A quantized checkpoint (`acestep quantize`) holds `<stem>.gguf` instead of
                    // the DiT's and the text encoder's safetensors.
                    Err(e) if *f == c.weights_file() && c.quantizable() => {
                        let gguf = format!(
                            "{}/{}",
                            c.folder(),
                            Path::new(f).with_extension("gguf").display()
                        );
                        get(&gguf).map_err(|_| hub_err(&rel, format!("{e} (nor {gguf})")))?
                    }
                    Err(e) => return Err(hub_err(&rel, e)),
                };
                if root.is_none() {
                    // <snapshot>/<folder>/<file> -> <snapshot>
                    root = path.parent().and_then(Path::parent).map(Path::to_path_buf);
                }
            }
        }
        let root = root.ok_or_else(|| hub_err("(snapshot)", "no files resolved".into()))?;
        Ok(Self { root })
    }

    /// Resolves the checkpoint the way the CLI does: an explicit directory, else the
    /// `ACESTEP_CHECKPOINT_DIR` environment variable, else a download of [`DEFAULT_REPO_ID`].
    pub fn resolve(dir: Option<&Path>) -> Result<Self> {
        if let Some(d) = dir {
            return Self::from_dir(d);
        }
        if let Ok(d) = std::env::var(CHECKPOINT_DIR_ENV) {
            if !d.is_empty() {
                return Self::from_dir(d);
            }
        }
        Self::download(DEFAULT_REPO_ID)
    }

    /// The checkpoint root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `c`, checked to exist.
    pub fn component_dir(&self, c: Component) -> Result<PathBuf> {
        let p = self.root.join(c.folder());
        if !p.is_dir() {
            return Err(Error::MissingPath {
                what: format!("checkpoint folder `{}`", c.folder()),
                path: p,
            });
        }
        Ok(p)
    }

    /// A file of component `c`, checked to exist.
    pub fn file(&self, c: Component, name: &str) -> Result<PathBuf> {
        let p = self.component_dir(c)?.join(name);
        if !p.is_file() {
            return Err(Error::MissingPath {
                what: format!("file `{name}` of `{}`", c.folder()),
                path: p,
            });
        }
        Ok(p)
    }

    /// The weights file of `c`, checked to exist.
    pub fn weights_path(&self, c: Component) -> Result<PathBuf> {
        self.file(c, c.weights_file())
    }

    /// A component's `config.json`.
    pub fn config_path(&self, c: Component) -> Result<PathBuf> {
        self.file(c, "config.json")
    }

    /// Checks that every required file of all four components exists and that every
    /// `config.json` is a JSON object (each model's loader checks its keys).
    pub fn validate(&self) -> Result<()> {
        for c in Component::ALL {
            for f in c.required_files() {
                let quantized = *f == c.weights_file()
                    && c.quantizable()
                    && crate::quant::gguf_path(&self.component_dir(c)?, c).is_file();
                if !quantized {
                    self.file(c, f)?;
                }
            }
        }
        for c in Component::ALL {
            let _: serde_json::Map<String, serde_json::Value> =
                crate::config::read_config(&self.config_path(c)?)?;
        }
        Ok(())
    }
}

//! The `ACE-Step/ACE-Step-v1-3.5B` checkpoint layout: where each component's files are, from a
//! local directory or the Hugging Face Hub.
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
//! let cfg = ckpt.transformer_config()?;
//! # Ok::<(), acestep::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::config::read_config;
use crate::dcae::AutoencoderDcConfig;
use crate::dit::AceStepTransformerConfig;
use crate::error::{Error, Result};
use crate::text_encoder::Umt5Config;
use crate::vocoder::VocoderConfig;

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

/// Options for [`Checkpoint::download_with`].
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Hub endpoint; `None` uses `HF_ENDPOINT` or the public hub.
    pub endpoint: Option<String>,
    /// Cache directory; `None` uses `HF_HOME`/the standard cache.
    pub cache_dir: Option<PathBuf>,
    /// Show a progress bar per file.
    pub progress: bool,
    /// Access token (`HF_TOKEN` when `None`).
    pub token: Option<String>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            cache_dir: None,
            progress: true,
            token: std::env::var("HF_TOKEN").ok(),
        }
    }
}

/// A repository on the Hugging Face Hub.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HubRepo<'a> {
    /// A model repository (`owner/name`).
    Model(&'a str),
    /// A Space (`owner/name`).
    Space(&'a str),
}

/// The local path of `file` of `repo`: downloaded into the Hugging Face cache, or found there.
#[cfg(feature = "hub")]
pub(crate) fn hub_file(
    opts: &HubOptions,
    repo: HubRepo<'_>,
    file: &str,
) -> std::result::Result<PathBuf, String> {
    let api = hub_api(opts)?;
    let r = match repo {
        HubRepo::Model(id) => api.model(id.to_string()),
        HubRepo::Space(id) => api.repo(hf_hub::Repo::new(id.to_string(), hf_hub::RepoType::Space)),
    };
    r.get(file).map_err(|e| e.to_string())
}

/// Without the `hub` feature nothing is downloaded: files are given locally.
#[cfg(not(feature = "hub"))]
pub(crate) fn hub_file(
    _opts: &HubOptions,
    repo: HubRepo<'_>,
    file: &str,
) -> std::result::Result<PathBuf, String> {
    let (HubRepo::Model(id) | HubRepo::Space(id)) = repo;
    Err(format!(
        "{file} of {id}: this build has no Hugging Face Hub access (cargo feature `hub`); give \
         the files locally"
    ))
}

/// A Hugging Face Hub client with `opts` (endpoint, cache, token, progress bars).
#[cfg(feature = "hub")]
fn hub_api(opts: &HubOptions) -> std::result::Result<hf_hub::api::sync::Api, String> {
    let mut builder = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(opts.progress)
        .with_token(opts.token.clone())
        .with_retries(2);
    if let Some(e) = &opts.endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    if let Some(c) = &opts.cache_dir {
        builder = builder.with_cache_dir(c.clone());
    }
    builder.build().map_err(|e| e.to_string())
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
                            std::path::Path::new(f).with_extension("gguf").display()
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

    /// `ace_step_transformer/config.json`.
    pub fn transformer_config(&self) -> Result<AceStepTransformerConfig> {
        read_config(&self.file(Component::Transformer, "config.json")?)
    }

    /// `music_dcae_f8c8/config.json`.
    pub fn dcae_config(&self) -> Result<AutoencoderDcConfig> {
        read_config(&self.file(Component::Dcae, "config.json")?)
    }

    /// `music_vocoder/config.json`.
    pub fn vocoder_config(&self) -> Result<VocoderConfig> {
        read_config(&self.file(Component::Vocoder, "config.json")?)
    }

    /// `umt5-base/config.json`.
    pub fn text_encoder_config(&self) -> Result<Umt5Config> {
        read_config(&self.file(Component::TextEncoder, "config.json")?)
    }

    /// Checks that every required file of all four components exists and that every config parses.
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
        self.transformer_config()?;
        self.dcae_config()?;
        self.vocoder_config()?;
        self.text_encoder_config()?;
        Ok(())
    }
}

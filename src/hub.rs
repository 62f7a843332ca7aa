//! Downloads: the Hugging Face Hub (checkpoints, hub LoRA ids, the lyric vocab) and pinned files
//! of the Python package index (the UniDic dictionary), into the caches. Behind the `hub`
//! feature; without it every file is given locally.

use std::path::PathBuf;

/// Hub access: endpoint, cache, token, progress (for [`crate::Checkpoint::download_with`] and
/// the downloads made while generating).
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

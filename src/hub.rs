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
) -> Result<PathBuf, String> {
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
) -> Result<PathBuf, String> {
    let (HubRepo::Model(id) | HubRepo::Space(id)) = repo;
    Err(format!(
        "{file} of {id}: this build has no Hugging Face Hub access (cargo feature `hub`); give \
         the files locally"
    ))
}

/// A Hugging Face Hub client with `opts` (endpoint, cache, token, progress bars).
#[cfg(feature = "hub")]
fn hub_api(opts: &HubOptions) -> Result<hf_hub::api::sync::Api, String> {
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

/// Downloads `url` to `dest`, checking its SHA-256 against `sha256` (hex) as it streams: the
/// file appears at `dest` only when complete and verified (a `.part` file is removed on any
/// failure). Network errors and a hash mismatch are returned as text.
#[cfg(feature = "hub")]
pub(crate) fn fetch_pinned(url: &str, sha256: &str, dest: &std::path::Path) -> Result<(), String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    let part = dest.with_extension(format!("part-{}", std::process::id()));
    let result = (|| {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(30))
            .timeout_read(std::time::Duration::from_secs(120))
            .build();
        let resp = agent.get(url).call().map_err(|e| e.to_string())?;
        let mut body = resp.into_reader();
        let mut out =
            std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = body.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("{}: {e}", part.display()))?;
        }
        out.sync_all()
            .map_err(|e| format!("{}: {e}", part.display()))?;
        let got: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(sha256) {
            return Err(format!(
                "{url}: SHA-256 {got} is not the published {sha256} (a broken or altered download)"
            ));
        }
        std::fs::rename(&part, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// The folder downloads other than the Hugging Face Hub's are cached in: `$ACESTEP_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/acestep`, else `~/.cache/acestep`.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("ACESTEP_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("acestep")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("acestep")))
        .unwrap_or_else(|| std::env::temp_dir().join("acestep-cache"))
}

/// Whether downloads are off: `ACESTEP_OFFLINE` or `HF_HUB_OFFLINE` set to `1` / `true`.
pub fn offline() -> bool {
    ["ACESTEP_OFFLINE", "HF_HUB_OFFLINE"].iter().any(|k| {
        std::env::var(k)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    })
}

#[cfg(all(test, feature = "hub"))]
/// Serves `body` once over HTTP on a free local port; returns its URL (for download tests).
pub(crate) fn serve_once(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/file.tar.gz")
}

#[cfg(all(test, feature = "hub"))]
mod tests {
    use super::*;

    #[test]
    fn pinned_downloads_are_verified_and_never_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        // sha256("hello world")
        let good = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let dest = dir.path().join("a.bin");
        fetch_pinned(&serve_once(b"hello world".to_vec()), good, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        let dest = dir.path().join("b.bin");
        let e = fetch_pinned(&serve_once(b"hello world!".to_vec()), good, &dest).unwrap_err();
        assert!(e.contains("SHA-256") && e.contains(good), "{e}");
        assert!(!dest.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only a.bin: {left:?}");
    }
}

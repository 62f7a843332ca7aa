//! `acestep serve`: the HTTP server over the job manager: with its own workers over one loaded
//! pipeline, or API-only (`--workers 0`) in front of `acestep worker` processes.

use crate::jobs_args::{stop_signal, JobArgs};
use crate::model::ModelArgs;

/// Options of `acestep serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to bind (use 0.0.0.0 to listen on every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Accepted API key (repeatable); when any is set every API call needs
    /// `Authorization: Bearer <key>`. Also ACESTEP_API_KEYS=key1,key2.
    #[arg(long = "api-key", env = "ACESTEP_API_KEYS", value_delimiter = ',')]
    api_keys: Vec<String>,
    /// Seconds a synchronous `POST /producer/audios` waits before returning the running task.
    #[arg(long, default_value_t = 600)]
    sync_timeout: u64,
    /// Base URL put in links (default: http://<Host header>).
    #[arg(long)]
    public_url: Option<String>,
    /// Accept server-side file paths for source / reference audio (`src_audio_path`,
    /// `reference_audio_path`, `ref_audio_input`) and LoRA; without it only uploads and hub
    /// LoRA ids are accepted.
    #[arg(long)]
    allow_local_paths: bool,
    /// Largest JSON, text or x-www-form-urlencoded request body, in KiB (413 beyond it).
    #[arg(long, default_value_t = 1024)]
    max_body_kb: usize,
    /// Largest multipart/form-data request (uploads included), in MiB (413 beyond it).
    #[arg(long, default_value_t = 100)]
    max_upload_mb: usize,
    /// Seconds a client may take to send a request's headers, and (x6) its body.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Submissions per API key, e.g. `30/min`, `5/s`, `1000/h` (429 with Retry-After beyond
    /// it; bursts up to the count). Default: no rate limit (the quota still holds).
    #[arg(long, env = "ACESTEP_RATE_LIMIT")]
    rate_limit: Option<acestep::server::RateLimit>,
    /// Seconds between keep-alive comments on an idle event stream (`.../events`).
    #[arg(long, default_value_t = 15)]
    sse_keep_alive: u64,
    #[command(flatten)]
    jobs: JobArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `acestep serve`.
pub fn run(args: Args) -> acestep::jobs::Result<()> {
    use std::sync::Arc;
    let Args {
        host,
        port,
        api_keys,
        rate_limit,
        sse_keep_alive,
        sync_timeout,
        public_url,
        allow_local_paths,
        max_body_kb,
        max_upload_mb,
        request_timeout,
        jobs: job_args,
        model,
    } = args;
    let api_keys: Vec<String> = api_keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    // Checked before the model loads (minutes), so that a bad flag fails at once.
    job_args.config(None)?;
    let generator = job_args.generator(&model)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| acestep::Error::io("tokio runtime", e))?;
    let addr = format!("{host}:{port}");
    // Bound first, so that links and callbacks can name the address actually listened on.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|e| acestep::Error::io(&addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| acestep::Error::io(&addr, e))?;
    let link_host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    let base_url = public_url
        .clone()
        .unwrap_or_else(|| format!("http://{link_host}:{}", local.port()));
    let config = job_args.config(Some(base_url))?;
    let jobs = Arc::new(acestep::jobs::JobManager::open(config, generator)?);
    let grace = job_args.grace();
    let server_config = acestep::server::ServerConfig {
        api_keys,
        sync_timeout: std::time::Duration::from_secs(sync_timeout),
        public_url,
        allow_local_paths,
        limits: acestep::server::BodyLimits {
            max_body_bytes: max_body_kb.saturating_mul(1024),
            max_upload_bytes: max_upload_mb.saturating_mul(1 << 20),
            ..Default::default()
        },
        header_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
        body_timeout: std::time::Duration::from_secs(request_timeout.max(1).saturating_mul(6)),
        shutdown_grace: grace,
        sse_keep_alive: std::time::Duration::from_secs(sse_keep_alive.max(1)),
        rate_limit,
        ..Default::default()
    };
    let auth = !server_config.api_keys.is_empty();
    let state = acestep::server::AppState::new(jobs.clone(), server_config);
    let store = jobs.store();
    let data_dir = job_args.data_dir.clone();
    let workers = job_args.workers;
    rt.block_on(async move {
        println!(
            "acestep serve: listening on http://{local} (data dir {}, store {store}, {}, {})",
            data_dir.display(),
            if workers == 0 {
                "API only".to_string()
            } else {
                format!("{workers} worker(s)")
            },
            if auth {
                "API keys required"
            } else {
                "no authentication"
            }
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        acestep::server::serve(listener, state, stop_signal("serve")).await
    })?;
    eprintln!(
        "acestep serve: stopping (a job decoding gets {} s to finish; others are \
         re-queued for the next start)",
        grace.as_secs()
    );
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match Arc::try_unwrap(jobs) {
        Ok(jobs) => jobs.shutdown(grace),
        Err(jobs) => drop(jobs),
    }
    Ok(())
}

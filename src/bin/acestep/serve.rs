//! `acestep serve`: the job manager and the HTTP server over one loaded pipeline.

use std::path::PathBuf;

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
    /// Where jobs.sqlite, outputs/ and uploads/ live.
    #[arg(long, env = "ACESTEP_DATA_DIR", default_value = "acestep-data")]
    data_dir: PathBuf,
    /// Accepted API key (repeatable); when any is set every API call needs
    /// `Authorization: Bearer <key>`. Also ACESTEP_API_KEYS=key1,key2.
    #[arg(long = "api-key", env = "ACESTEP_API_KEYS", value_delimiter = ',')]
    api_keys: Vec<String>,
    /// Generation workers sharing the loaded model.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Maximum queued + running jobs per API key.
    #[arg(long, default_value_t = 10)]
    quota: usize,
    /// Most jobs waiting in the queue, all keys together (429 beyond it; 0: no limit).
    #[arg(long, default_value_t = 1000)]
    max_queue: usize,
    /// Hours outputs are kept (download links expire after it).
    #[arg(long, default_value_t = 24.0)]
    retention_hours: f64,
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
    /// Deliver completion callbacks to loopback, private and link-local addresses too (off:
    /// such `callback_url`s are refused).
    #[arg(long)]
    allow_private_callbacks: bool,
    /// Largest JSON, text or x-www-form-urlencoded request body, in KiB (413 beyond it).
    #[arg(long, default_value_t = 1024)]
    max_body_kb: usize,
    /// Largest multipart/form-data request (uploads included), in MiB (413 beyond it).
    #[arg(long, default_value_t = 100)]
    max_upload_mb: usize,
    /// Seconds a client may take to send a request's headers, and (x6) its body.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Seconds a stop (Ctrl-C, SIGTERM) waits for requests in flight and for a running job to
    /// finish decoding before the job is put back in the queue.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Submissions per API key, e.g. `30/min`, `5/s`, `1000/h` (429 with Retry-After beyond
    /// it; bursts up to the count). Default: no rate limit (the quota still holds).
    #[arg(long, env = "ACESTEP_RATE_LIMIT")]
    rate_limit: Option<acestep::server::RateLimit>,
    /// Key that signs every webhook delivery (HMAC-SHA256, Standard Webhooks headers
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`); `whsec_<base64>` or any string.
    #[arg(long, env = "ACESTEP_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Seconds between keep-alive comments on an idle event stream (`.../events`).
    #[arg(long, default_value_t = 15)]
    sse_keep_alive: u64,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `acestep serve`.
pub fn run(args: Args) -> acestep::jobs::Result<()> {
    use std::sync::Arc;
    let Args {
        host,
        port,
        data_dir,
        api_keys,
        workers,
        quota,
        max_queue,
        rate_limit,
        webhook_secret,
        sse_keep_alive,
        retention_hours,
        sync_timeout,
        public_url,
        allow_local_paths,
        allow_private_callbacks,
        max_body_kb,
        max_upload_mb,
        request_timeout,
        shutdown_grace,
        model,
    } = args;
    if !(retention_hours.is_finite() && retention_hours >= 0.0) {
        return Err(acestep::Error::InvalidArgument {
            name: "retention-hours",
            value: retention_hours.to_string(),
            expected: "a number of hours >= 0".into(),
        }
        .into());
    }
    let api_keys: Vec<String> = api_keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let pipe = model.resolve()?.pipeline();
    let generator = acestep::jobs::PipelineGenerator::new(pipe?);
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
    let mut config = acestep::jobs::ManagerConfig::new(&data_dir);
    config.workers = workers;
    config.max_active_per_owner = quota;
    config.max_queue = max_queue;
    config.retention = std::time::Duration::from_secs_f64(retention_hours * 3600.0);
    config.callback.allow_private = allow_private_callbacks;
    config.callback.public_url = Some(base_url);
    config.callback.secret = webhook_secret;
    let jobs = Arc::new(acestep::jobs::JobManager::open(
        config,
        Arc::new(generator),
    )?);
    let grace = std::time::Duration::from_secs(shutdown_grace);
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
    rt.block_on(async move {
        println!(
            "acestep serve: listening on http://{local} (data dir {}, {})",
            data_dir.display(),
            if auth {
                "API keys required"
            } else {
                "no authentication"
            }
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        acestep::server::serve(listener, state, stop_signal()).await
    })?;
    eprintln!(
        "acestep serve: stopping (a job decoding gets {shutdown_grace} s to finish; others are \
         re-queued for the next start)"
    );
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match Arc::try_unwrap(jobs) {
        Ok(jobs) => jobs.shutdown(grace),
        Err(jobs) => drop(jobs),
    }
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: both stop the server gracefully.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("acestep serve: shutting down");
}

//! The job-manager options `acestep serve` and `acestep worker` share, and the manager they
//! build from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acestep::jobs::{Generator, ManagerConfig, StoreLocation};

use crate::model::ModelArgs;

/// Options of the job manager (the store, the workers, retention, callbacks).
#[derive(clap::Args, Debug)]
pub struct JobArgs {
    /// Where outputs/ and uploads/ live (and jobs.sqlite with the default store). Every process
    /// of a cluster names the same folder (a shared mount).
    #[arg(long, env = "ACESTEP_DATA_DIR", default_value = "acestep-data")]
    pub data_dir: PathBuf,
    /// The job store: `postgres://user:password@host/db` (a cluster of API front ends and
    /// workers), `sqlite:<path>`, or empty for <data-dir>/jobs.sqlite (one process).
    #[arg(long, env = "ACESTEP_STORE", default_value = "")]
    pub store: String,
    /// Generation workers sharing the loaded model (0 with a PostgreSQL store: an API-only
    /// front end that loads no model; `acestep worker` processes run the jobs).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Maximum queued + running jobs per API key (checked at submit, cluster-wide).
    #[arg(long, default_value_t = 10)]
    pub quota: usize,
    /// Most jobs waiting in the queue, all keys together (429 beyond it; 0: no limit).
    #[arg(long, default_value_t = 1000)]
    pub max_queue: usize,
    /// Hours outputs are kept (download links expire after it); give every process of a
    /// cluster the same value.
    #[arg(long, default_value_t = 24.0)]
    pub retention_hours: f64,
    /// Deliver completion callbacks to loopback, private and link-local addresses too (off:
    /// such `callback_url`s are refused).
    #[arg(long)]
    pub allow_private_callbacks: bool,
    /// Key that signs every webhook delivery (HMAC-SHA256, Standard Webhooks headers
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`); `whsec_<base64>` or any string.
    #[arg(long, env = "ACESTEP_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Seconds a worker holds a running job without a heartbeat (PostgreSQL store): the job of
    /// a worker that died is queued again (once) after it.
    #[arg(long, default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Seconds a stop (Ctrl-C, SIGTERM) waits for a running job to finish decoding before the
    /// job is put back in the queue.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,
}

impl JobArgs {
    /// The store named by `--store`.
    pub fn store(&self) -> acestep::Result<StoreLocation> {
        self.store.parse()
    }

    /// The manager settings; `public_url` is put in callback bodies' download links.
    pub fn config(&self, public_url: Option<String>) -> acestep::Result<ManagerConfig> {
        if !(self.retention_hours.is_finite() && self.retention_hours >= 0.0) {
            return Err(acestep::Error::InvalidArgument {
                name: "retention-hours",
                value: self.retention_hours.to_string(),
                expected: "a number of hours >= 0".into(),
            });
        }
        if !(self.lease_seconds.is_finite() && self.lease_seconds >= 1.0) {
            return Err(acestep::Error::InvalidArgument {
                name: "lease-seconds",
                value: self.lease_seconds.to_string(),
                expected: "a number of seconds >= 1".into(),
            });
        }
        let mut config = ManagerConfig::new(&self.data_dir);
        config.store = self.store()?;
        config.workers = self.workers;
        config.max_active_per_owner = self.quota;
        config.max_queue = self.max_queue;
        config.retention = Duration::from_secs_f64(self.retention_hours * 3600.0);
        config.lease = Duration::from_secs_f64(self.lease_seconds);
        config.callback.allow_private = self.allow_private_callbacks;
        config.callback.public_url = public_url;
        config.callback.secret = self.webhook_secret.clone();
        Ok(config)
    }

    /// The generator: the loaded pipeline, or none for an API-only front end (`--workers 0`).
    pub fn generator(&self, model: &ModelArgs) -> acestep::Result<Arc<dyn Generator>> {
        if self.workers == 0 {
            if !matches!(self.store()?, StoreLocation::Postgres(_)) {
                return Err(acestep::Error::InvalidArgument {
                    name: "workers",
                    value: "0".into(),
                    expected: "at least 1 (0 only with --store postgres://...: the \
                               `acestep worker` processes run the jobs)"
                        .into(),
                });
            }
            return Ok(Arc::new(acestep::jobs::QueueOnly));
        }
        let pipe = model.resolve()?.pipeline()?;
        Ok(Arc::new(acestep::jobs::PipelineGenerator::new(pipe)))
    }

    /// The shutdown grace.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace)
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: both stop the process gracefully.
pub async fn stop_signal(what: &str) {
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
    eprintln!("acestep {what}: shutting down");
}

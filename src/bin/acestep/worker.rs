//! `acestep worker`: a process that holds the model and runs the jobs of a shared (PostgreSQL)
//! job store, beside API front ends (`acestep serve --workers 0`) and other workers.

use crate::jobs_args::{stop_signal, JobArgs};
use crate::model::ModelArgs;

/// Options of `acestep worker`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    jobs: JobArgs,
    /// The API's base URL, put in the download links of callback bodies (the front ends' or
    /// their load balancer's, e.g. https://music.example.com).
    #[arg(long, env = "ACESTEP_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `acestep worker` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> acestep::jobs::Result<()> {
    let Args {
        jobs: job_args,
        public_url,
        model,
    } = args;
    if !matches!(job_args.store()?, acestep::jobs::StoreLocation::Postgres(_)) {
        return Err(acestep::Error::InvalidArgument {
            name: "store",
            value: job_args.store.clone(),
            expected: "postgres://... (a worker shares the job store with the API front ends; \
                       `acestep serve` runs jobs itself over SQLite)"
                .into(),
        }
        .into());
    }
    if job_args.workers == 0 {
        return Err(acestep::Error::InvalidArgument {
            name: "workers",
            value: "0".into(),
            expected: "at least 1".into(),
        }
        .into());
    }
    let config = job_args.config(public_url)?;
    let generator = job_args.generator(&model)?;
    let jobs = acestep::jobs::JobManager::open(config, generator)?;
    println!(
        "acestep worker: {} running {} worker(s) on {} (data dir {})",
        jobs.worker_id(),
        job_args.workers,
        jobs.store(),
        job_args.data_dir.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| acestep::Error::io("tokio runtime", e))?;
    rt.block_on(stop_signal("worker"));
    let grace = job_args.grace();
    eprintln!(
        "acestep worker: stopping (a job decoding gets {} s to finish; others are re-queued)",
        grace.as_secs()
    );
    jobs.shutdown(grace);
    Ok(())
}

//! Run the job manager inside your own program: a persistent queue (SQLite under a data folder),
//! workers sharing one loaded pipeline, progress and cancellation, without the HTTP server.
//!
//! ```sh
//! cargo run --release --example embedded_jobs -- /path/to/ACE-Step-v1-3.5B /tmp/acestep-jobs
//! ```

use std::sync::Arc;
use std::time::Duration;

use acestep::jobs::{JobManager, JobRequest, ManagerConfig, PipelineGenerator};
use acestep::{Checkpoint, GenerationParams, Pipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(ckpt), Some(data)) = (args.next(), args.next()) else {
        eprintln!("usage: embedded_jobs CHECKPOINT_DIR DATA_DIR");
        std::process::exit(2);
    };
    let pipeline = Pipeline::load(&Checkpoint::from_dir(ckpt)?, &Default::default())?;
    let mut config = ManagerConfig::new(&data);
    config.workers = 1;
    let jobs = JobManager::open(config, Arc::new(PipelineGenerator::new(pipeline)))?;
    // State changes of every job, as they happen.
    let events = jobs.subscribe();
    let ids: Vec<String> = ["ambient, pads", "funk, slap bass"]
        .into_iter()
        .map(|prompt| {
            let request = JobRequest {
                params: GenerationParams {
                    prompt: prompt.into(),
                    audio_duration: 5.0,
                    infer_step: 10,
                    ..Default::default()
                },
                ..Default::default()
            };
            jobs.submit(request, "me")
        })
        .collect::<Result<_, _>>()?;
    println!("submitted {ids:?}");
    let mut done = 0;
    while done < ids.len() {
        match events.recv_timeout(Duration::from_secs(1)) {
            Ok(ev) if ev.state.is_terminal() => {
                let job = jobs.poll(&ev.id)?;
                println!(
                    "{} {:?}: {:?}",
                    ev.id,
                    job.state,
                    job.result.map(|r| r.files)
                );
                done += 1;
            }
            Ok(ev) => println!("{} is {:?}", ev.id, ev.state),
            Err(_) => {
                for id in &ids {
                    let job = jobs.poll(id)?;
                    println!(
                        "{id}: {:.0}% (eta {:?} s)",
                        job.progress.percent, job.eta_seconds
                    );
                }
            }
        }
    }
    jobs.shutdown(Duration::from_secs(5));
    Ok(())
}

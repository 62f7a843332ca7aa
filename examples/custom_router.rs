//! Serve the three API dialects from your own axum application: the crate's router merged with
//! your routes and layers, on your listener.
//!
//! ```sh
//! cargo run --release --example custom_router -- /path/to/ACE-Step-v1-3.5B /tmp/acestep-data 127.0.0.1:8001
//! curl http://127.0.0.1:8001/hello
//! ```

use std::sync::Arc;

use acestep::jobs::{JobManager, ManagerConfig, PipelineGenerator};
use acestep::server::{AppState, ServerConfig};
use acestep::{Checkpoint, Pipeline};
use axum::routing::get;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(ckpt), Some(data), Some(addr)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: custom_router CHECKPOINT_DIR DATA_DIR HOST:PORT");
        std::process::exit(2);
    };
    let pipeline = Pipeline::load(&Checkpoint::from_dir(ckpt)?, &Default::default())?;
    let jobs = Arc::new(JobManager::open(
        ManagerConfig::new(&data),
        Arc::new(PipelineGenerator::new(pipeline)),
    )?);
    let config = ServerConfig {
        api_keys: vec!["secret-key".into()],
        ..Default::default()
    };
    let state = AppState::new(jobs, config);
    // The crate's routes (three dialects, downloads, /health, /metrics, /openapi.json) and ours.
    let app = acestep::server::router(state)
        .route("/hello", get(|| async { "hello from my app" }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await
    })?;
    Ok(())
}

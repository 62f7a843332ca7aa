//! `GET /files/{job}/{file}`: output downloads (capability links with range support).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::error::{dialect_error, Class};
use super::state::AppState;

#[derive(serde::Deserialize)]
/// The query of a download link.
pub(super) struct DownloadQuery {
    /// The dialect of the download's errors (`async_task`, `producer`, `acestep`).
    pub(super) d: Option<String>,
}

/// `GET /files/{job}/{file}`: a job's output file, with range support, checked against the size
/// and checksum recorded when it was written.
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath((job, file)): UrlPath<(String, String)>,
    Query(q): Query<DownloadQuery>,
    req: Request,
) -> Response {
    let dialect = q.d.as_deref().unwrap_or("async_task");
    let error = |class: Class, msg: &str| dialect_error(dialect, class, msg);
    let file_id = file.split('.').next().unwrap_or_default().to_string();
    let target = job.clone();
    let rec = match state.blocking(move |s| s.jobs.poll(&target)).await {
        Ok(r) => r,
        Err(e) => return error(Class::of(&e), &e.to_string()),
    };
    let Some(result) = rec.result else {
        return error(
            Class::NotFound,
            &format!("job `{job}` has no output ({})", rec.state),
        );
    };
    let Some(f) = result.files.iter().find(|f| f.id == file_id) else {
        return error(
            Class::NotFound,
            &format!("job `{job}` has no file `{file}`"),
        );
    };
    if result.expired {
        return error(
            Class::Gone,
            &format!("the output of job `{job}` expired and was deleted"),
        );
    }
    // The checksum is read through once per version of the file (size and modification time),
    // not on every range request of a player.
    let stamp = std::fs::metadata(&f.path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    let known = stamp.is_some()
        && state
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&f.id)
            == stamp.as_ref();
    if !known {
        let check = {
            let f = f.clone();
            tokio::task::spawn_blocking(move || f.verify()).await
        };
        match check {
            Ok(Ok(())) => {
                if let Some(st) = stamp {
                    state
                        .verified
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(f.id.clone(), st);
                }
            }
            Ok(Err(why)) => {
                tracing::error!("output {} of job {job}: {why}", f.id);
                // The record says what the download says: the output is gone.
                let target = job.clone();
                if let Err(e) = state
                    .blocking(move |s| s.jobs.mark_output_lost(&target))
                    .await
                {
                    tracing::warn!("marking the output of {job} lost: {e}");
                }
                return error(
                    Class::Gone,
                    &format!("the output of job `{job}` is no longer available ({why})"),
                );
            }
            Err(e) => return error(Class::Internal, &e.to_string()),
        }
    }
    match tower_http::services::ServeFile::new(&f.path)
        .oneshot(req)
        .await
    {
        Ok(resp) => resp.into_response(),
        Err(e) => error(Class::Internal, &e.to_string()),
    }
}

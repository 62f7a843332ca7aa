//! Dialect 1: the async task API (seed 000): `POST /v1/async/music/generations` (multipart with
//! every value a string, or JSON), `GET /api/v1/task/{id}`, `POST /api/v1/task/{id}/cancel`,
//! `GET /v1/task/{id}/status`, `GET /v1/task/{id}`, `GET /v1/tasks/available-quota`.
//!
//! Status words: `waiting`, `in_progress`, `success`, `failure`, `cancelled`. Errors:
//! `{"error": {"code", "message", "type"}}` with the HTTP status (400, 401, 404, 409, 429, 500).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::Error;
use crate::jobs::{JobProgress, JobRecord, JobRequest, JobState};
use crate::pipeline::GenerationParams;
use crate::server::{form, Answer, AppState, Class, Dialect};

/// The dialect's error format.
pub struct AsyncTask;

impl Dialect for AsyncTask {
    fn error(class: Class, message: &str) -> Response {
        let code = match class {
            Class::BadRequest => "invalid_request",
            Class::Unauthorized => "invalid_token",
            Class::NotFound => "not_found",
            Class::Conflict => "task_finished",
            Class::Quota => "quota_exceeded",
            Class::Gone => "expired",
            Class::TooLarge => "payload_too_large",
            Class::MethodNotAllowed => "method_not_allowed",
            Class::Unavailable => "unavailable",
            Class::Internal => "internal_error",
        };
        let error = AsyncErrorDetail {
            code: code.into(),
            message: message.into(),
            kind: code.into(),
        };
        (
            class.status(),
            Json(AsyncError {
                error,
                request_id: None,
            }),
        )
            .into_response()
    }
}

/// The dialect's status word.
pub fn status_word(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "waiting",
        JobState::Running => "in_progress",
        JobState::Succeeded => "success",
        JobState::Failed => "failure",
        JobState::Cancelled => "cancelled",
    }
}

/// Field names of this dialect that differ from the reference's.
const ALIASES: &[(&str, &str)] = &[
    ("duration", "audio_duration"),
    ("infer_steps", "infer_step"),
    ("seeds", "manual_seeds"),
    ("seed", "manual_seeds"),
    ("output_format", "format"),
    ("lora_name", "lora_name_or_path"),
];

/// Checks the `model` field names ACE-Step v1.
pub(crate) fn check_supported(fields: &form::Fields) -> crate::jobs::Result<()> {
    if let Some(model) = fields.str("model") {
        let m = model.to_ascii_lowercase();
        if !(m.contains("ace-step") || m.contains("acestep")) {
            return Err(Error::InvalidArgument {
                name: "model",
                value: model,
                expected: "ACE-Step-v1-3.5B (the model this server runs)".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// `POST /v1/async/music/generations`.
pub async fn submit(State(state): State<Arc<AppState>>, req: Request) -> Answer<AsyncTask> {
    let (headers, owner, fields) = state.read_submission::<AsyncTask>(req).await?;
    let (rec, ()) = state
        .submit(fields, owner, |fields, state| {
            check_supported(fields)?;
            let base = GenerationParams {
                format: "mp3".into(),
                ..Default::default()
            };
            let (callback_url, webhook_events_filter) = form::webhook(fields)?;
            let request = JobRequest {
                params: form::params(fields, base, ALIASES, state.inputs())?,
                callback_url,
                webhook_events_filter,
                metadata: json!({"dialect": "async_task", "request": Value::Object(fields.map.clone())}),
            };
            Ok((request, ()))
        })
        .await?;
    Ok(Json(Task::of(&state, &headers, &rec)).into_response())
}

/// The task object of this dialect (submit, query and cancel answers; `GET /v1/task/{id}` adds
/// the record fields).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AsyncTask)]
pub struct Task {
    /// The task id.
    pub task_id: String,
    /// `waiting`, `in_progress`, `success`, `failure` or `cancelled`.
    pub status: &'static str,
    /// Unix seconds of submission.
    pub created_at: f64,
    /// Unix seconds it started.
    pub started_at: Option<f64>,
    /// Unix seconds it ended.
    pub completed_at: Option<f64>,
    /// 1-based position in the queue; 0 when running or finished.
    pub queue_position: usize,
    /// Estimated seconds until its diffusion ends.
    pub eta_seconds: Option<f64>,
    /// Progress.
    pub progress: JobProgress,
    /// The result, once it succeeded.
    pub output: Option<TaskOutput>,
    /// Why it failed.
    pub error: Option<TaskError>,
    /// Where to poll and cancel it.
    pub urls: TaskUrls,
    /// Cancel answers: a cancel was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// `GET /v1/task/{id}`: the request's fields as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// `GET /v1/task/{id}`: the parameters it runs with (reference names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// `GET /v1/task/{id}`: the result record (files with links, seeds, timings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// `GET /v1/task/{id}`: times a worker started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// `GET /v1/task/{id}`: Unix seconds its files expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<f64>,
}

/// A succeeded task's output.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskOutput {
    /// The first file's download link.
    pub file_url: Option<String>,
    /// Every file's download link.
    pub file_urls: Vec<String>,
    /// The seeds used.
    pub seeds: Option<Vec<u64>>,
    /// Seconds of audio per file.
    pub duration: f64,
    /// True once the retention expired (the links answer 410).
    pub expired: bool,
}

/// A failed task's error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskError {
    /// A stable code (`generation_failed`, `interrupted`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A task's own endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskUrls {
    /// `GET` it here.
    pub get: String,
    /// `POST` here to cancel it.
    pub cancel: String,
}

/// `GET /v1/task/{id}/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskStatus {
    /// The task id.
    pub task_id: String,
    /// As [`Task::status`].
    pub status: &'static str,
    /// 1-based position in the queue; 0 when running or finished.
    pub queue_position: usize,
    /// Estimated seconds until its diffusion ends.
    pub eta_seconds: Option<f64>,
    /// Overall completion, 0 to 100.
    pub percent: f64,
}

/// `GET /v1/tasks/available-quota`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quota {
    /// Jobs the key may still queue.
    pub available_quota: usize,
    /// Queued + running jobs allowed per key.
    pub total_quota: usize,
    /// Queued + running jobs now.
    pub used_quota: usize,
}

/// The dialect's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AsyncError {
    /// The error.
    pub error: AsyncErrorDetail,
    /// The request's id (also the `x-request-id` header), added to every error answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// See [`AsyncError`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AsyncErrorDetail {
    /// `invalid_request`, `invalid_token`, `not_found`, `task_finished`, `quota_exceeded`,
    /// `expired`, `payload_too_large`, `method_not_allowed`, `unavailable`, `internal_error`.
    pub code: String,
    /// What was wrong, naming the field and value.
    pub message: String,
    /// The same as `code`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Task {
    /// The task object of `rec`.
    pub fn of(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Self {
        let base = state.base_url(headers);
        let files = state.file_urls(headers, rec, "async_task");
        let output = (rec.state == JobState::Succeeded).then(|| TaskOutput {
            file_url: files.first().cloned(),
            seeds: rec.result.as_ref().map(|r| r.seeds.clone()),
            duration: rec.request.params.audio_duration,
            expired: rec.result.as_ref().is_some_and(|r| r.expired),
            file_urls: files,
        });
        Task {
            task_id: rec.id.clone(),
            status: status_word(rec.state),
            created_at: rec.created_at,
            started_at: rec.started_at,
            completed_at: rec.finished_at,
            queue_position: rec.queue_position,
            eta_seconds: rec.eta_seconds,
            progress: rec.progress,
            output,
            error: rec.error.as_ref().map(|e| TaskError {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            urls: TaskUrls {
                get: format!("{base}/api/v1/task/{}", rec.id),
                cancel: format!("{base}/api/v1/task/{}/cancel", rec.id),
            },
            cancel_requested: None,
            request: None,
            parameters: None,
            result: None,
            attempts: None,
            expires_at: None,
        }
    }
}

/// The task object of `rec` as JSON (the end of its event stream).
pub(crate) fn task_json(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Value {
    serde_json::to_value(Task::of(state, headers, rec)).unwrap_or_default()
}

/// `GET /api/v1/task/{id}`.
pub async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<AsyncTask> {
    let rec = state.job_for::<AsyncTask>(&headers, &id).await?;
    Ok(Json(Task::of(&state, &headers, &rec)).into_response())
}

/// `POST /api/v1/task/{id}/cancel`: cancels a waiting or in-progress task.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<AsyncTask> {
    state.job_for::<AsyncTask>(&headers, &id).await?;
    let target = id.clone();
    let rec = state.blocking(move |s| s.jobs.cancel(&target)).await?;
    let mut task = Task::of(&state, &headers, &rec);
    task.cancel_requested = Some(true);
    Ok(Json(task).into_response())
}

/// `GET /v1/task/{id}/status`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<AsyncTask> {
    let rec = state.job_for::<AsyncTask>(&headers, &id).await?;
    Ok(Json(TaskStatus {
        task_id: rec.id.clone(),
        status: status_word(rec.state),
        queue_position: rec.queue_position,
        eta_seconds: rec.eta_seconds,
        percent: rec.progress.percent,
    })
    .into_response())
}

/// `GET /v1/task/{id}`: the full task record (request, parameters, progress, result).
pub async fn record(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<AsyncTask> {
    let rec = state.job_for::<AsyncTask>(&headers, &id).await?;
    let mut task = Task::of(&state, &headers, &rec);
    task.request = Some(rec.request.metadata["request"].clone());
    // No server paths: inputs by file name, outputs by their links.
    let public = rec.public_json(Some(&state.base_url(&headers)));
    task.parameters = Some(public["parameters"].clone());
    task.result = Some(public["result"].clone());
    task.attempts = Some(rec.attempts);
    task.expires_at = rec.expires_at;
    Ok(Json(task).into_response())
}

/// `GET /v1/tasks/available-quota`.
pub async fn quota(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Answer<AsyncTask> {
    let owner = state.authorize::<AsyncTask>(&headers)?;
    let q = state.blocking(move |s| s.jobs.quota(&owner)).await?;
    Ok(Json(Quota {
        available_quota: q.available,
        total_quota: q.limit,
        used_quota: q.active,
    })
    .into_response())
}

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
use serde_json::{json, Value};

use super::{form, AppState, Class, Dialect};
use crate::error::Error;
use crate::jobs::{JobRecord, JobRequest, JobState};
use crate::pipeline::GenerationParams;

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
        (
            class.status(),
            Json(json!({"error": {"code": code, "message": message, "type": code}})),
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
pub(crate) fn check_supported(fields: &form::Fields) -> crate::Result<()> {
    if let Some(model) = fields.str("model") {
        let m = model.to_ascii_lowercase();
        if !(m.contains("ace-step") || m.contains("acestep")) {
            return Err(Error::InvalidArgument {
                name: "model",
                value: model,
                expected: "ACE-Step-v1-3.5B (the model this server runs)".into(),
            });
        }
    }
    Ok(())
}

/// `POST /v1/async/music/generations`.
pub async fn submit(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (headers, owner, fields) = match state.read_submission::<AsyncTask>(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let submitted = state
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
        .await;
    match submitted {
        Ok((rec, ())) => Json(task_json(&state, &headers, &rec)).into_response(),
        Err(e) => AsyncTask::from_error(&e),
    }
}

/// The task object of this dialect.
pub(crate) fn task_json(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Value {
    let base = state.base_url(headers);
    let files = state.file_urls(headers, rec, "async_task");
    let output = if rec.state == JobState::Succeeded {
        json!({
            "file_url": files.first(),
            "file_urls": files,
            "seeds": rec.result.as_ref().map(|r| r.seeds.clone()),
            "duration": rec.request.params.audio_duration,
            "expired": rec.result.as_ref().is_some_and(|r| r.expired),
        })
    } else {
        Value::Null
    };
    json!({
        "task_id": rec.id,
        "status": status_word(rec.state),
        "created_at": rec.created_at,
        "started_at": rec.started_at,
        "completed_at": rec.finished_at,
        "queue_position": rec.queue_position,
        "eta_seconds": rec.eta_seconds,
        "progress": {
            "stage": rec.progress.stage,
            "step": rec.progress.step,
            "total": rec.progress.total,
            "percent": rec.progress.percent,
        },
        "output": output,
        "error": rec.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
        "urls": {
            "get": format!("{base}/api/v1/task/{}", rec.id),
            "cancel": format!("{base}/api/v1/task/{}/cancel", rec.id),
        },
    })
}

/// `GET /api/v1/task/{id}`.
pub async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    state
        .job_for::<AsyncTask>(&headers, &id)
        .await
        .map(|rec| Json(task_json(&state, &headers, &rec)).into_response())
        .unwrap_or_else(|resp| resp)
}

/// `POST /api/v1/task/{id}/cancel`: cancels a waiting or in-progress task.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Err(resp) = state.job_for::<AsyncTask>(&headers, &id).await {
        return resp;
    }
    let target = id.clone();
    match state.blocking(move |s| s.jobs.cancel(&target)).await {
        Ok(rec) => {
            let mut v = task_json(&state, &headers, &rec);
            v["cancel_requested"] = json!(true);
            Json(v).into_response()
        }
        Err(e) => AsyncTask::from_error(&e),
    }
}

/// `GET /v1/task/{id}/status`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    state
        .job_for::<AsyncTask>(&headers, &id)
        .await
        .map(|rec| {
            Json(json!({
                "task_id": rec.id,
                "status": status_word(rec.state),
                "queue_position": rec.queue_position,
                "eta_seconds": rec.eta_seconds,
                "percent": rec.progress.percent,
            }))
            .into_response()
        })
        .unwrap_or_else(|resp| resp)
}

/// `GET /v1/task/{id}`: the full task record (request, parameters, progress, result).
pub async fn record(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    state
        .job_for::<AsyncTask>(&headers, &id)
        .await
        .map(|rec| {
            let mut v = task_json(&state, &headers, &rec);
            v["request"] = rec.request.metadata["request"].clone();
            // No server paths: inputs by file name, outputs by their links.
            let public = rec.public_json(Some(&state.base_url(&headers)));
            v["parameters"] = public["parameters"].clone();
            v["result"] = public["result"].clone();
            v["attempts"] = json!(rec.attempts);
            v["expires_at"] = json!(rec.expires_at);
            Json(v).into_response()
        })
        .unwrap_or_else(|resp| resp)
}

/// `GET /v1/tasks/available-quota`.
pub async fn quota(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let owner = match state.authorize::<AsyncTask>(&headers) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    match state.blocking(move |s| s.jobs.quota(&owner)).await {
        Ok(q) => Json(json!({
            "available_quota": q.available,
            "total_quota": q.limit,
            "used_quota": q.active,
        }))
        .into_response(),
        Err(e) => AsyncTask::from_error(&e),
    }
}

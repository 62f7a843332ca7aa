//! Dialect 2: the producer tasks API (seed 001): `POST /producer/audios` (`action: "generate"`)
//! and `POST /producer/tasks` (`action: "retrieve"` with `id`, `"retrieve_batch"` with `ids`).
//!
//! Errors: `{"success": false, "error": {"code", "message"}, "trace_id"}` with the seed's codes:
//! 400 `token_mismatched` (bad or missing parameters, unknown task), 400 `api_not_implemented`
//! (an action or option this server does not offer), 401 `invalid_token`, 429
//! `too_many_requests` (quota), 500 `api_error`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::Error;
use crate::jobs::{JobRecord, JobRequest, JobState};
use crate::pipeline::GenerationParams;
use crate::server::{form, iso8601, Answer, AppState, Class, Dialect, DialectError};

/// The dialect's error format.
pub struct Producer;

fn trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Dialect for Producer {
    fn error(class: Class, message: &str) -> Response {
        let (status, code) = match class {
            Class::BadRequest | Class::NotFound | Class::Conflict => {
                (StatusCode::BAD_REQUEST, "token_mismatched")
            }
            Class::Unauthorized => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Class::Quota => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Class::Gone => (StatusCode::GONE, "token_mismatched"),
            Class::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Class::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "api_not_implemented"),
            Class::Unavailable | Class::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "api_error")
            }
        };
        (
            status,
            Json(ProducerError {
                success: false,
                error: ProducerErrorDetail {
                    code: code.into(),
                    message: message.into(),
                },
                trace_id: trace_id(),
                request_id: None,
            }),
        )
            .into_response()
    }
}

fn not_implemented(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(ProducerError {
            success: false,
            error: ProducerErrorDetail {
                code: "api_not_implemented".into(),
                message: message.into(),
            },
            trace_id: trace_id(),
            request_id: None,
        }),
    )
        .into_response()
}

/// The dialect's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerError {
    /// Always false.
    pub success: bool,
    /// The error.
    pub error: ProducerErrorDetail,
    /// This request's trace id.
    pub trace_id: String,
    /// The request's id (also the `x-request-id` header), added to every error answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// See [`ProducerError`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerErrorDetail {
    /// `token_mismatched`, `invalid_token`, `too_many_requests`, `payload_too_large`,
    /// `api_not_implemented`, `api_error`.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

/// An asynchronous `POST /producer/audios`' answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerAccepted {
    /// Always true.
    pub success: bool,
    /// The task id.
    pub task_id: String,
    /// This request's trace id.
    pub trace_id: String,
}

/// The `response` object: the task and one item per song (a synchronous
/// `POST /producer/audios` answers it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerResponse {
    /// Always true.
    pub success: bool,
    /// The task id.
    pub task_id: String,
    /// The submitting request's trace id.
    pub trace_id: Value,
    /// One item per song of the batch.
    pub data: Vec<ProducerSong>,
}

/// One song of a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerSong {
    /// The song id (stable per task and index).
    pub id: String,
    /// The title given, else the first lyric line.
    pub title: String,
    /// Always null (no cover art).
    pub image_url: Option<String>,
    /// The lyrics.
    pub lyric: String,
    /// The download link, once done.
    pub audio_url: Option<String>,
    /// Always null.
    pub video_url: Option<String>,
    /// Always null.
    pub image_id: Option<String>,
    /// Always null.
    pub topic: Option<String>,
    /// The seed, as text.
    pub seed: Option<String>,
    /// The prompt.
    pub sound: String,
    /// RFC 3339 time of submission.
    pub created_at: String,
    /// The model name.
    pub model: String,
    /// Progress as `NN%`.
    pub progress: String,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: &'static str,
    /// Seconds of audio, as text.
    pub duration: String,
}

/// The task record (`POST /producer/tasks` `retrieve`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerRecord {
    /// The task id without dashes.
    #[serde(rename = "_id")]
    pub raw_id: String,
    /// The task id.
    pub id: String,
    /// The API the task was made with (a stable UUID of `POST /producer/audios`; the hosted
    /// service's API id).
    pub api_id: String,
    /// A stable UUID of this server's model (the hosted service's application id).
    pub application_id: String,
    /// A stable UUID of the API key that submitted it (never the key).
    pub credential_id: String,
    /// Unix seconds of submission.
    pub created_at: f64,
    /// The request's fields as sent.
    pub request: Value,
    /// The submitting request's trace id.
    pub trace_id: Value,
    /// Always `audios`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The quota owner (a digest of the API key).
    pub user_id: String,
    /// As [`ProducerSong::state`].
    pub state: &'static str,
    /// The task and its songs.
    pub response: ProducerResponse,
    /// Seconds it ran, once ended.
    pub duration: Option<f64>,
    /// Unix seconds it ended.
    pub finished_at: Option<f64>,
    /// Why it failed.
    pub error: Option<ProducerTaskError>,
}

/// A failed task's error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerTaskError {
    /// A stable code.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// `POST /producer/tasks` `retrieve_batch`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducerBatch {
    /// The records found, in the order asked.
    pub items: Vec<ProducerRecord>,
    /// How many.
    pub count: usize,
}

/// The state word of a song item.
fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "pending",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// Field names of this dialect that differ from the reference's.
const ALIASES: &[(&str, &str)] = &[
    ("lyric", "lyrics"),
    ("duration", "audio_duration"),
    ("infer_steps", "infer_step"),
    ("seed", "manual_seeds"),
];

/// `POST /producer/audios`.
pub async fn audios(State(state): State<Arc<AppState>>, req: Request) -> Answer<Producer> {
    let (headers, owner, fields) = state.read_submission::<Producer>(req).await?;
    let action = fields.str("action").unwrap_or_else(|| "generate".into());
    if action != "generate" {
        return Ok(not_implemented(&format!(
            "action `{action}` is not implemented by this server (only `generate`)"
        )));
    }
    let trace = trace_id();
    let trace_in = trace.clone();
    let (rec, is_async) = state
        .submit(fields, owner, move |fields, state| {
            // Any `model` name is accepted and recorded (this server runs ACE-Step v1 3.5B).
            let instrumental = fields.bool("instrumental")?.unwrap_or(false);
            let base = GenerationParams {
                format: "mp3".into(),
                ..Default::default()
            };
            let mut params = form::params(fields, base, ALIASES, state.inputs())?;
            if instrumental {
                params.lyrics.clear();
            }
            let (callback_url, webhook_events_filter) = form::webhook(fields)?;
            let is_async = fields.bool("async")?.unwrap_or(false) || callback_url.is_some();
            Ok((
                JobRequest {
                    params,
                    callback_url,
                    webhook_events_filter,
                    metadata: json!({
                        "dialect": "producer",
                        "trace_id": trace_in,
                        "request": Value::Object(fields.map.clone()),
                    }),
                },
                is_async,
            ))
        })
        .await?;
    let id = rec.id;
    if is_async {
        return Ok(Json(ProducerAccepted {
            success: true,
            task_id: id,
            trace_id: trace,
        })
        .into_response());
    }
    // Synchronous: wait on the job's own event feed (no thread held, no other job's events)
    // for its terminal event, at most the configured timeout. The feed keeps a finished job's
    // events, so an end before this point is seen at once.
    let mut follower = state.jobs.events().follow(&id, true);
    let ended = async {
        let Some(f) = follower.as_mut() else { return };
        let mut seen = 0;
        loop {
            let events = f.after(seen);
            if events.iter().any(|e| e.is_terminal()) {
                return;
            }
            seen = events.last().map_or(seen, |e| e.seq);
            f.changed().await;
        }
    };
    let _ = tokio::time::timeout(state.config.sync_timeout, ended).await;
    let target = id.clone();
    let rec = state.blocking(move |s| s.jobs.poll(&target)).await?;
    Ok(match rec.state {
        JobState::Failed | JobState::Cancelled => {
            let msg = rec
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_else(|| format!("the task was {}", rec.state));
            Producer::error(Class::Internal, &msg)
        }
        // Succeeded, or still running when the timeout came: the task as it is.
        _ => Json(response_json(&state, &headers, &rec)).into_response(),
    })
}

/// The `response` object of `rec`.
fn response_json(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> ProducerResponse {
    let urls = state.file_urls(headers, rec, "producer");
    let meta = &rec.request.metadata;
    let req = &meta["request"];
    let title = req["title"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| default_title(rec));
    let model = req["model"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| state.config.model_name.clone());
    let job_uuid = uuid::Uuid::parse_str(&rec.id).unwrap_or_default();
    let n = rec.request.params.batch_size.max(1);
    let data = (0..n)
        .map(|i| {
            let file = rec.result.as_ref().and_then(|r| r.files.get(i));
            let seed = file
                .map(|f| f.seed)
                .or_else(|| rec.request.params.manual_seeds.get(i).copied());
            ProducerSong {
                id: uuid::Uuid::new_v5(&job_uuid, i.to_string().as_bytes()).to_string(),
                title: title.clone(),
                image_url: None,
                lyric: rec.request.params.lyrics.clone(),
                audio_url: urls.get(i).cloned(),
                video_url: None,
                image_id: None,
                topic: None,
                seed: seed.map(|s| s.to_string()),
                sound: rec.request.params.prompt.clone(),
                created_at: iso8601(rec.created_at),
                model: model.clone(),
                progress: format!("{:.0}%", rec.progress.percent),
                state: state_word(rec.state),
                duration: file
                    .map(|f| f.duration_seconds)
                    .unwrap_or(rec.request.params.audio_duration)
                    .to_string(),
            }
        })
        .collect();
    ProducerResponse {
        success: true,
        task_id: rec.id.clone(),
        trace_id: meta["trace_id"].clone(),
        data,
    }
}

/// The first lyric line that is not a structure tag, else the prompt.
fn default_title(rec: &JobRecord) -> String {
    rec.request
        .params
        .lyrics
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('['))
        .unwrap_or(&rec.request.params.prompt)
        .chars()
        .take(80)
        .collect()
}

/// The task record of the seed's shape.
fn record(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> ProducerRecord {
    let meta = &rec.request.metadata;
    ProducerRecord {
        raw_id: rec.id.replace('-', ""),
        id: rec.id.clone(),
        api_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"acestep:/producer/audios")
            .to_string(),
        application_id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("acestep:model/{}", state.config.model_name).as_bytes(),
        )
        .to_string(),
        credential_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, rec.owner.as_bytes())
            .to_string(),
        created_at: rec.created_at,
        request: meta["request"].clone(),
        trace_id: meta["trace_id"].clone(),
        kind: "audios",
        user_id: rec.owner.clone(),
        state: state_word(rec.state),
        response: response_json(state, headers, rec),
        duration: match (rec.started_at, rec.finished_at) {
            (Some(s), Some(f)) => Some(f - s),
            _ => None,
        },
        finished_at: rec.finished_at,
        error: rec.error.as_ref().map(|e| ProducerTaskError {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
    }
}

/// The task record of `rec` as JSON (the end of its event stream).
pub(crate) fn record_json(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Value {
    serde_json::to_value(record(state, headers, rec)).unwrap_or_default()
}

/// Most ids one `retrieve_batch` may ask for.
pub const MAX_BATCH_IDS: usize = 20;

/// `POST /producer/tasks`.
pub async fn tasks(State(state): State<Arc<AppState>>, req: Request) -> Answer<Producer> {
    let (headers, owner, fields) = state.read_request::<Producer>(req).await?;
    let missing = |name: &'static str| -> DialectError<Producer> {
        Error::InvalidArgument {
            name,
            value: "(missing)".into(),
            expected: "a task id".into(),
        }
        .into()
    };
    match fields.str("action").as_deref() {
        Some("retrieve") => {
            let id = fields.str("id").ok_or_else(|| missing("id"))?;
            let who = owner.clone();
            let rec = state.blocking(move |s| s.job_of(&id, &who)).await?;
            Ok(Json(record(&state, &headers, &rec)).into_response())
        }
        Some("retrieve_batch") => {
            let ids: Vec<String> = match fields.get("ids") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) => s
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
                _ => return Err(missing("ids")),
            };
            if ids.len() > MAX_BATCH_IDS {
                return Err(Error::InvalidArgument {
                    name: "ids",
                    value: format!("{} ids", ids.len()),
                    expected: format!("at most {MAX_BATCH_IDS} task ids"),
                }
                .into());
            }
            let recs = state.blocking(move |s| s.jobs.retrieve_batch(&ids)).await?;
            let items: Vec<ProducerRecord> = recs
                .iter()
                .filter(|r| state.config.api_keys.is_empty() || r.owner == owner)
                .map(|r| record(&state, &headers, r))
                .collect();
            let count = items.len();
            Ok(Json(ProducerBatch { items, count }).into_response())
        }
        Some(other) => Ok(not_implemented(&format!(
            "action `{other}` is not implemented (use `retrieve` or `retrieve_batch`)"
        ))),
        None => Err(missing("action")),
    }
}

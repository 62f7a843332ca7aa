//! `GET /openapi.json`: the server's contract as OpenAPI 3.1. The schemas are generated
//! (`utoipa`) from the types the handlers answer with and parse into ([`GenerationParams`],
//! each dialect's answer and error structs); the paths below name them per endpoint, status and
//! content type. `tests/openapi.rs` validates real answers of every endpoint against it.

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::{OpenApi, ToSchema};

use super::{acestep_api as ace, async_task as at, producer as pr};
use crate::guidance::CfgType;
use crate::jobs::{JobProgress, Stage, WebhookEvent};
use crate::pipeline::{GenerationParams, Task};
use crate::schedulers::SchedulerType;

/// Fields of the async task API's submit besides the reference parameters (its names for
/// some of them, and the webhook).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct AsyncSubmitFields {
    /// The model: a name containing `ace-step` (default: this server's).
    model: Option<String>,
    /// `audio_duration`.
    duration: Option<f64>,
    /// `infer_step`.
    infer_steps: Option<usize>,
    /// `manual_seeds` (a list or comma-separated).
    seeds: Option<Vec<u64>>,
    /// `manual_seeds` (one).
    seed: Option<u64>,
    /// `format` (default mp3).
    output_format: Option<String>,
    /// `lora_name_or_path`.
    lora_name: Option<String>,
    /// Source audio upload (multipart) for repaint / extend / edit / retake.
    #[schema(format = Binary, value_type = Option<String>)]
    src_audio: Option<String>,
    /// Reference audio upload (multipart) for audio2audio.
    #[schema(format = Binary, value_type = Option<String>)]
    ref_audio: Option<String>,
    /// Webhook target (`http(s)`, public unless `--allow-private-callbacks`).
    callback_url: Option<String>,
    /// What the webhook is sent (default `[completed]`).
    webhook_events_filter: Option<Vec<WebhookEvent>>,
}

/// Fields of the ACE-Step API's submit (seed 002) besides the reference parameters.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct AceSubmitFields {
    /// `prompt`.
    caption: Option<String>,
    /// Appended to the prompt as `, N bpm` (20 to 400).
    bpm: Option<f64>,
    /// Appended to the prompt (`C Major`).
    key_scale: Option<String>,
    /// Appended to the prompt as `, 4/4 time`.
    time_signature: Option<String>,
    /// `lyrics_language` unless `en` / `auto` / `unknown`.
    vocal_language: Option<String>,
    /// `format` (default mp3).
    audio_format: Option<String>,
    /// `infer_step` (default 8).
    inference_steps: Option<usize>,
    /// False: `seed` is used.
    use_random_seed: Option<bool>,
    /// The seed when `use_random_seed` is false (-1: random).
    seed: Option<i64>,
    /// `text2music`, `cover` or `repaint`.
    task_type: Option<String>,
    /// `repaint_start`.
    repainting_start: Option<f64>,
    /// `repaint_end`.
    repainting_end: Option<f64>,
    /// `ref_audio_strength` (below 1).
    audio_cover_strength: Option<f64>,
    /// Source audio upload (multipart).
    #[schema(format = Binary, value_type = Option<String>)]
    src_audio: Option<String>,
    /// Reference audio upload (multipart).
    #[schema(format = Binary, value_type = Option<String>)]
    reference_audio: Option<String>,
    /// Server path of the source audio (`--allow-local-paths`).
    src_audio_path: Option<String>,
    /// Server path of the reference audio (`--allow-local-paths`).
    reference_audio_path: Option<String>,
    /// Webhook target (an extension of this server).
    callback_url: Option<String>,
    /// What the webhook is sent (default `[completed]`).
    webhook_events_filter: Option<Vec<WebhookEvent>>,
}

/// Fields of the producer API's `POST /producer/audios` besides the reference parameters.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ProducerSubmitFields {
    /// `generate` (the only action implemented).
    action: Option<String>,
    /// The song title (default: the first lyric line).
    title: Option<String>,
    /// The model name reported.
    model: Option<String>,
    /// `lyrics`.
    lyric: Option<String>,
    /// True: no lyrics.
    instrumental: Option<bool>,
    /// `audio_duration`.
    duration: Option<f64>,
    /// `infer_step`.
    infer_steps: Option<usize>,
    /// `manual_seeds`.
    seed: Option<u64>,
    /// `format` (default mp3).
    output_format: Option<String>,
    /// True (or a `callback_url`): answer at once with the task id; else wait for the end.
    #[serde(rename = "async")]
    is_async: Option<bool>,
    /// Webhook target.
    callback_url: Option<String>,
    /// What the webhook is sent (default `[completed]`).
    webhook_events_filter: Option<Vec<WebhookEvent>>,
}

/// `POST /producer/tasks`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ProducerTasksFields {
    /// `retrieve` or `retrieve_batch`.
    action: String,
    /// The task id (`retrieve`).
    id: Option<String>,
    /// Up to 20 task ids, a list or comma-separated (`retrieve_batch`).
    ids: Option<Vec<String>>,
}

/// The `data:` of a non-terminal server-sent event (`queued`, `running`, `progress`,
/// `decoding`, `writing`); the terminal events carry the dialect's poll answer.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct JobEventData {
    /// The job id.
    id: String,
    /// `queued` or `running`.
    state: String,
    /// `queued`: 1-based queue position.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_position: Option<usize>,
    /// `running`: the attempt (1 unless re-queued by a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    /// `progress`, `decoding`, `writing`: the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    /// Diffusion steps done.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    /// Diffusion steps in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    /// Overall completion, 0 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<f64>,
    /// Estimated seconds until the diffusion ends.
    eta_seconds: Option<f64>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "acestep serve",
        description = "ACE-Step v1 3.5B music generation behind three async-task API dialects: \
                       the async task API, the producer API and the ACE-Step API server."
    ),
    components(schemas(
        GenerationParams,
        Task,
        SchedulerType,
        CfgType,
        WebhookEvent,
        JobProgress,
        Stage,
        at::Task,
        at::TaskOutput,
        at::TaskError,
        at::TaskUrls,
        at::TaskStatus,
        at::Quota,
        at::AsyncError,
        at::AsyncErrorDetail,
        ace::AceSubmitted,
        ace::AceJob,
        ace::AceJobResult,
        ace::AceError,
        pr::ProducerAccepted,
        pr::ProducerResponse,
        pr::ProducerSong,
        pr::ProducerRecord,
        pr::ProducerTaskError,
        pr::ProducerBatch,
        pr::ProducerError,
        pr::ProducerErrorDetail,
        AsyncSubmitFields,
        AceSubmitFields,
        ProducerSubmitFields,
        ProducerTasksFields,
        JobEventData,
        Health,
    ))
)]
struct Schemas;

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON response with schema `name`.
fn json_response(description: &str, name: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref(name)}},
    })
}

/// The error answers `codes` in schema `error`.
fn errors(responses: &mut Map<String, Value>, codes: &[u16], error: &str) {
    for c in codes {
        let what = match c {
            400 => "Invalid request (the field and value named)",
            401 => "Missing or wrong API key",
            404 => "No such job for this key",
            409 => "The job already ended",
            410 => "The output expired",
            413 => "Body or upload too large",
            429 => "Quota, queue bound or rate limit reached (`Retry-After` with a rate limit)",
            500 => "Server error",
            503 => "Storage unavailable or stopping",
            _ => "Error",
        };
        responses.insert(c.to_string(), json_response(what, error));
    }
}

/// A request body: `fields` (the dialect's names) over the reference parameters, as JSON,
/// form and multipart.
fn submit_body(fields: &str) -> Value {
    let schema = json!({"allOf": [schema_ref("GenerationParams"), schema_ref(fields)]});
    json!({
        "required": true,
        "content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
            "multipart/form-data": {"schema": schema},
        },
    })
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}])
}

fn events_op(tag: &str, end: &str) -> Value {
    json!({"get": {
        "tags": [tag],
        "summary": "Live progress of a job (server-sent events)",
        "description": format!(
            "`text/event-stream`: `queued` (queue position changes), `running`, `progress` \
             (each diffusion step), `decoding`, `writing` carry a `JobEventData`; the terminal \
             event (`succeeded`, `failed`, `cancelled`) carries a `{end}` and closes the \
             stream. Every event has an id `<run>.<seq>`; send `Last-Event-ID` to resume. Idle \
             streams get keep-alive comments."),
        "parameters": id_param().as_array().cloned().unwrap_or_default().into_iter()
            .chain([json!({"name": "Last-Event-ID", "in": "header", "required": false,
                           "schema": {"type": "string"}})]).collect::<Vec<_>>(),
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "The event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        },
    }})
}

/// The OpenAPI 3.1 document of every route of [`super::router`].
pub fn document() -> Value {
    let mut doc = serde_json::to_value(Schemas::openapi()).unwrap_or_default();
    let op = |tag: &str, summary: &str, body: Option<Value>, ok: Value, errs: (&[u16], &str)| {
        let mut responses = Map::new();
        responses.insert("200".into(), ok);
        errors(&mut responses, errs.0, errs.1);
        let mut o = json!({
            "tags": [tag],
            "summary": summary,
            "security": [{"bearer": []}],
            "responses": responses,
        });
        if let Some(b) = body {
            o["requestBody"] = b;
        }
        o
    };
    let with_id = |mut o: Value| {
        o["parameters"] = id_param();
        o
    };
    const AT: &str = "async task API";
    const PR: &str = "producer API";
    const ACE: &str = "ACE-Step API";
    let submit_errs: &[u16] = &[400, 401, 413, 429, 503];
    let paths = json!({
        "/v1/async/music/generations": {"post": op(AT, "Submit a generation",
            Some(submit_body("AsyncSubmitFields")),
            json_response("The task, queued", "AsyncTask"), (submit_errs, "AsyncError"))},
        "/api/v1/task/{id}": {"get": with_id(op(AT, "Poll a task", None,
            json_response("The task", "AsyncTask"), (&[401, 404], "AsyncError")))},
        "/api/v1/task/{id}/cancel": {"post": with_id(op(AT, "Cancel a task", None,
            json_response("The task, cancel_requested", "AsyncTask"), (&[401, 404, 409], "AsyncError")))},
        "/api/v1/task/{id}/events": events_op(AT, "AsyncTask"),
        "/v1/task/{id}/status": {"get": with_id(op(AT, "A task's status", None,
            json_response("The status", "TaskStatus"), (&[401, 404], "AsyncError")))},
        "/v1/task/{id}": {"get": with_id(op(AT, "A task's full record", None,
            json_response("The task with its request, parameters and result", "AsyncTask"),
            (&[401, 404], "AsyncError")))},
        "/v1/tasks/available-quota": {"get": op(AT, "The key's quota", None,
            json_response("The quota", "Quota"), (&[401], "AsyncError"))},
        "/producer/audios": {"post": op(PR, "Submit a generation (async, or wait for it)",
            Some(submit_body("ProducerSubmitFields")),
            json!({"description": "`async`: the task id; else the finished task",
                   "content": {"application/json": {"schema": {"anyOf": [
                       schema_ref("ProducerAccepted"), schema_ref("ProducerResponse")]}}}}),
            (&[400, 401, 413, 429, 500], "ProducerError"))},
        "/producer/tasks": {"post": op(PR, "Retrieve tasks",
            Some(json!({"required": true, "content": {
                "application/json": {"schema": schema_ref("ProducerTasksFields")},
                "application/x-www-form-urlencoded": {"schema": schema_ref("ProducerTasksFields")},
            }})),
            json!({"description": "`retrieve`: the record; `retrieve_batch`: the records",
                   "content": {"application/json": {"schema": {"anyOf": [
                       schema_ref("ProducerRecord"), schema_ref("ProducerBatch")]}}}}),
            (&[400, 401], "ProducerError"))},
        "/producer/tasks/{id}/events": events_op(PR, "ProducerRecord"),
        "/v1/music/generate": {"post": op(ACE, "Submit a generation",
            Some(submit_body("AceSubmitFields")),
            json_response("The job, queued", "AceSubmitted"), (submit_errs, "AceError"))},
        "/v1/jobs/{id}": {"get": with_id(op(ACE, "Poll a job", None,
            json_response("The job", "AceJob"), (&[401, 404], "AceError")))},
        "/v1/jobs/{id}/events": events_op(ACE, "AceJob"),
        "/files/{job}/{file}": {"get": {
            "tags": ["downloads"],
            "summary": "A generated file (capability link; HTTP ranges)",
            "parameters": [
                {"name": "job", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "file", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "d", "in": "query", "required": false,
                 "description": "The dialect of error answers: async_task, producer, acestep",
                 "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The audio", "content": {
                    "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
                    "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                    "audio/x-wav": {"schema": {"type": "string", "format": "binary"}},
                    "audio/flac": {"schema": {"type": "string", "format": "binary"}}}},
                "206": {"description": "A range of it"},
                "404": {"description": "No such file (the dialect's error)"},
                "410": {"description": "Expired (the dialect's error)"},
            },
        }},
        "/health": {"get": {"tags": ["operations"], "summary": "Liveness",
            "responses": {"200": json_response("Up", "Health")}}},
        "/metrics": {"get": {"tags": ["operations"], "summary": "Prometheus metrics",
            "responses": {"200": {"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"tags": ["operations"], "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    });
    doc["paths"] = paths;
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "`Authorization: Bearer <key>` when the server has API keys"}
    });
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc
}

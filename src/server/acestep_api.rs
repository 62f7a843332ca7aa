//! Dialect 3: the ACE-Step API server (seed 002): `POST /v1/music/generate` (JSON,
//! x-www-form-urlencoded, or multipart with the files `reference_audio` / `src_audio`) and
//! `GET /v1/jobs/{job_id}`. Errors are FastAPI's `{"detail": "..."}` with the HTTP status.
//!
//! Mapping onto the v1 pipeline:
//!
//! | seed field | v1 parameter |
//! | --- | --- |
//! | `caption` | `prompt` |
//! | `bpm`, `key_scale`, `time_signature` | appended to the prompt as tags: `, 120 bpm, C Major, 4/4 time` |
//! | `lyrics` | `lyrics` |
//! | `vocal_language` (default `en`) | `lyrics_language`: the language of Latin-script lyric lines |
//! | `audio_format` (default `mp3`) | `format` |
//! | `audio_duration` (null: 60 s) | `audio_duration` |
//! | `inference_steps` (default 8) | `infer_step` |
//! | `guidance_scale` (default 7.0) | `guidance_scale` |
//! | `use_random_seed` (default true), `seed` (default -1) | `manual_seeds` (`[seed]` when `use_random_seed` is false and `seed` >= 0) |
//! | `batch_size` (null: 1) | `batch_size` |
//! | `task_type` `text2music` | text2music; `cover` / `repaint` and reference / source audio need the editing tasks (400 until they are in) |
//! | `use_5hz_lm`, `lm_*` | 400: they belong to ACE-Step 1.5's 5 Hz language model, which v1 has not |
//!
//! Every other v1 parameter (`scheduler_type`, `cfg_type`, `omega_scale`, ...) is accepted under
//! its reference name.

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
pub struct AceStepApi;

impl Dialect for AceStepApi {
    fn error(class: Class, message: &str) -> Response {
        (class.status(), Json(json!({"detail": message}))).into_response()
    }
}

/// The seed's status words (a cancelled job reads `failed` with error `cancelled`).
fn status_word(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed | JobState::Cancelled => "failed",
    }
}

const ALIASES: &[(&str, &str)] = &[
    ("caption", "prompt"),
    ("audio_format", "format"),
    ("inference_steps", "infer_step"),
];

fn refuse(name: &'static str, value: String, expected: &str) -> Error {
    Error::InvalidArgument {
        name,
        value,
        expected: expected.into(),
    }
}

/// The v1 parameters of a request of this dialect.
fn params_of(fields: &form::Fields) -> crate::Result<GenerationParams> {
    if fields.bool("use_5hz_lm")?.unwrap_or(false) {
        return Err(refuse(
            "use_5hz_lm",
            "true".into(),
            "false or absent (the 5 Hz LM is part of ACE-Step 1.5; this server runs ACE-Step v1 3.5B, which has none)",
        ));
    }
    if let Some(k) = fields
        .map
        .keys()
        .find(|k| k.starts_with("lm_") && fields.has(k))
    {
        return Err(Error::InvalidArgument {
            name: "lm_*",
            value: k.clone(),
            expected:
                "no lm_* parameters: they configure ACE-Step 1.5's 5 Hz LM; this server runs \
                       ACE-Step v1 3.5B, which has none"
                    .into(),
        });
    }
    let task = fields
        .str("task_type")
        .unwrap_or_else(|| "text2music".into());
    if task != "text2music" {
        return Err(refuse(
            "task_type",
            task,
            "text2music (cover and repaint need the editing tasks, not available in this build yet)",
        ));
    }
    for name in [
        "reference_audio",
        "reference_audio_path",
        "src_audio",
        "src_audio_path",
    ] {
        if fields.has(name) || fields.files.contains_key(name) {
            return Err(refuse(
                "reference_audio",
                name.into(),
                "no reference or source audio: style transfer, cover and repaint need the \
                 editing tasks, not available in this build yet",
            ));
        }
    }
    let base = GenerationParams {
        format: "mp3".into(),
        infer_step: 8,
        guidance_scale: 7.0,
        ..Default::default()
    };
    let mut p = form::params(fields, base, ALIASES)?;
    // The seed's lyric language drives the language of Latin-script lyric lines.
    if p.lyrics_language.is_none() {
        if let Some(lang) = fields
            .str("vocal_language")
            .filter(|l| !l.trim().is_empty())
        {
            p.lyrics_language = Some(lang.trim().to_ascii_lowercase());
            p.lyric_language().map_err(|_| {
                refuse(
                    "vocal_language",
                    lang,
                    "one of en de fr es it pt pl tr ru cs nl ar zh ja hu ko hi",
                )
            })?;
        }
    }
    let mut tags = vec![];
    if let Some(bpm) = fields.f64("bpm")? {
        if !(20.0..=400.0).contains(&bpm) {
            return Err(refuse("bpm", bpm.to_string(), "20 to 400"));
        }
        tags.push(format!("{} bpm", bpm.round()));
    }
    if let Some(k) = fields.str("key_scale").filter(|s| !s.trim().is_empty()) {
        tags.push(k.trim().to_string());
    }
    if let Some(t) = fields
        .str("time_signature")
        .filter(|s| !s.trim().is_empty())
    {
        tags.push(format!("{} time", t.trim()));
    }
    if !tags.is_empty() {
        let mut prompt = p.prompt.trim().trim_end_matches(',').to_string();
        for t in tags {
            if !prompt.is_empty() {
                prompt.push_str(", ");
            }
            prompt.push_str(&t);
        }
        p.prompt = prompt;
    }
    let random = fields.bool("use_random_seed")?.unwrap_or(true);
    if !random {
        if let Some(seed) = fields.f64("seed")? {
            if seed >= 0.0 {
                if seed.fract() != 0.0 || seed > u64::MAX as f64 {
                    return Err(refuse(
                        "seed",
                        seed.to_string(),
                        "a whole number (-1: random)",
                    ));
                }
                p.manual_seeds = vec![seed as u64];
            }
        }
    }
    // Validated as a whole by the job manager on submit.
    Ok(p)
}

/// `POST /v1/music/generate`.
pub async fn generate(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (_, owner, fields) = match state.read_request::<AceStepApi>(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let submitted = params_of(&fields).and_then(|params| {
        state.jobs.submit(
            JobRequest {
                params,
                callback_url: None,
                metadata: json!({"dialect": "acestep_api", "request": Value::Object(fields.map.clone())}),
            },
            &owner,
        )
    });
    for path in fields.files.values() {
        let _ = std::fs::remove_file(path);
    }
    match submitted.and_then(|id| state.jobs.poll(&id)) {
        Ok(rec) => Json(json!({
            "job_id": rec.id,
            "status": status_word(rec.state),
            "queue_position": rec.queue_position,
        }))
        .into_response(),
        Err(e) => AceStepApi::from_error(&e),
    }
}

fn generation_info(rec: &JobRecord) -> String {
    let p = &rec.request.params;
    let seeds = rec
        .result
        .as_ref()
        .map(|r| {
            r.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let time = rec
        .result
        .as_ref()
        .map(|r| format!(", Time: {:.1} s", r.elapsed_seconds))
        .unwrap_or_default();
    format!(
        "Steps: {}, Scale: {}, Scheduler: {}, CFG: {}, Duration: {} s, Seeds: {seeds}{time}",
        p.infer_step,
        p.guidance_scale,
        serde_json::to_value(p.scheduler_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        serde_json::to_value(p.cfg_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        p.audio_duration,
    )
}

/// `GET /v1/jobs/{job_id}`.
pub async fn job(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let rec = match state.job_for::<AceStepApi>(&headers, &id) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let urls = state.file_urls(&headers, &rec, "acestep");
    let result = (rec.state == JobState::Succeeded).then(|| {
        json!({
            "first_audio_path": urls.first(),
            "second_audio_path": urls.get(1),
            "audio_paths": urls,
            "generation_info": generation_info(&rec),
            "status_message": "✅ Generation completed successfully!",
            "seed_value": rec.result.as_ref().map(|r| r.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
        })
    });
    let error = match rec.state {
        JobState::Cancelled => Some("cancelled".to_string()),
        _ => rec
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.code, e.message)),
    };
    Json(json!({
        "job_id": rec.id,
        "status": status_word(rec.state),
        "created_at": rec.created_at,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "queue_position": rec.queue_position,
        "eta_seconds": rec.eta_seconds,
        "progress": rec.progress.percent,
        "result": result,
        "error": error,
    }))
    .into_response()
}

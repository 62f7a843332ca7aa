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
//! | `vocal_language` (default `en`) | `lyrics_language` (every lyric line read in it) when not `en` / `auto` / `unknown`; else per-line detection |
//! | `audio_format` (default `mp3`) | `format` |
//! | `audio_duration` (null: 60 s) | `audio_duration` |
//! | `inference_steps` (default 8) | `infer_step` |
//! | `guidance_scale` (default 7.0) | `guidance_scale` |
//! | `use_random_seed` (default true), `seed` (default -1) | `manual_seeds` (`[seed]` when `use_random_seed` is false and `seed` >= 0) |
//! | `batch_size` (null: 1) | `batch_size` |
//! | `task_type` `text2music` (default) | text2music; with `reference_audio`: audio2audio (style transfer) |
//! | `task_type` `cover` + `src_audio` (or `reference_audio`) | audio2audio from that clip, `ref_audio_strength` = `audio_cover_strength` when below 1, else 0.5 |
//! | `task_type` `repaint` + `src_audio`, `repainting_start` / `repainting_end` (null: the source's end) | repaint; a span before 0 or past the source's end: extend |
//! | `src_audio` / `reference_audio` (uploads) | the source / reference clip; `src_audio_path` / `reference_audio_path` are server paths, accepted with `acestep serve --allow-local-paths` |
//! | `instruction` | ignored (ACE-Step 1.5's edit instruction) |
//! | `use_5hz_lm`, `lm_*` | 400: they belong to ACE-Step 1.5's 5 Hz language model, which v1 has not |
//!
//! Every other v1 parameter (`scheduler_type`, `cfg_type`, `omega_scale`, ...) is accepted under
//! its reference name.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::Error;
use crate::jobs::JobError;
use crate::jobs::{JobRecord, JobRequest, JobState};
use crate::pipeline::GenerationParams;
use crate::server::{form, Answer, AppState, Class, Dialect};

/// The dialect's error format.
pub struct AceStepApi;

impl Dialect for AceStepApi {
    fn error(class: Class, message: &str) -> Response {
        let body = AceError {
            detail: message.into(),
            request_id: None,
        };
        (class.status(), Json(body)).into_response()
    }
}

/// The dialect's error body (FastAPI's).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AceError {
    /// What was wrong.
    pub detail: String,
    /// The request's id (also the `x-request-id` header), added to every error answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `POST /v1/music/generate`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AceSubmitted {
    /// The job id.
    pub job_id: String,
    /// Always `queued` (the job's own record moves on).
    pub status: &'static str,
    /// 1-based position in the queue when it was accepted.
    pub queue_position: usize,
}

/// `GET /v1/jobs/{job_id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AceJob {
    /// The job id.
    pub job_id: String,
    /// `queued`, `running`, `succeeded` or `failed` (a cancelled job reads `failed`).
    pub status: &'static str,
    /// Unix seconds of submission.
    pub created_at: f64,
    /// Unix seconds it started.
    pub started_at: Option<f64>,
    /// Unix seconds it ended.
    pub finished_at: Option<f64>,
    /// 1-based position in the queue; 0 when running or finished.
    pub queue_position: usize,
    /// Estimated seconds until its diffusion ends.
    pub eta_seconds: Option<f64>,
    /// Overall completion, 0 to 100.
    pub progress: f64,
    /// The result, once it succeeded.
    pub result: Option<AceJobResult>,
    /// `cancelled`, or the failure's `code: message`.
    pub error: Option<String>,
}

/// A succeeded job's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AceJobResult {
    /// The first file's download link.
    pub first_audio_path: Option<String>,
    /// The second file's download link (batch of two or more).
    pub second_audio_path: Option<String>,
    /// Every file's download link.
    pub audio_paths: Vec<String>,
    /// Steps, scale, scheduler, guidance, duration, seeds and time, as one line.
    pub generation_info: String,
    /// The seed's completion message.
    pub status_message: &'static str,
    /// The seeds, comma-separated.
    pub seed_value: Option<String>,
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
    ("repainting_start", "repaint_start"),
    ("repainting_end", "repaint_end"),
    ("audio_cover_strength", "ref_audio_strength"),
];

fn refuse(name: &'static str, value: String, expected: &str) -> JobError {
    Error::InvalidArgument {
        name,
        value,
        expected: expected.into(),
    }
    .into()
}

/// The seed's `task_type` as v1 tasks: the fields rewritten under the reference's names.
fn map_task_type(fields: &form::Fields, inputs: form::Inputs) -> crate::jobs::Result<form::Fields> {
    let task = fields
        .str("task_type")
        .unwrap_or_else(|| "text2music".into())
        .trim()
        .to_ascii_lowercase();
    let mut f = fields.clone();
    let src = form::audio_input(fields, form::SRC_AUDIO_FIELDS, inputs)?;
    let as_ref = |f: &mut form::Fields, path: &str| {
        for k in form::SRC_AUDIO_FIELDS {
            f.files.remove(*k);
            f.map.remove(*k);
        }
        f.files.insert("ref_audio".into(), path.into());
    };
    match task.as_str() {
        "text2music" => {
            if src.is_some() {
                return Err(refuse(
                    "src_audio",
                    "given with task_type text2music".into(),
                    "task_type cover or repaint (a style reference goes in reference_audio)",
                ));
            }
        }
        "cover" => {
            let clip = match src {
                Some(s) => s,
                None => {
                    form::audio_input(fields, form::REF_AUDIO_FIELDS, inputs)?.ok_or_else(|| {
                        refuse(
                            "src_audio",
                            "none".into(),
                            "the clip to cover (upload src_audio)",
                        )
                    })?
                }
            };
            as_ref(&mut f, &clip);
            // ACE-Step 1.5's default strength 1.0 has no v1 counterpart (v1 needs < 1).
            if fields
                .f64("audio_cover_strength")?
                .is_some_and(|s| s >= 1.0)
            {
                f.map.remove("audio_cover_strength");
            }
        }
        "repaint" => {
            let src = src.ok_or_else(|| {
                refuse(
                    "src_audio",
                    "none".into(),
                    "the clip to repaint (upload src_audio)",
                )
            })?;
            let seconds = fields
                .probe("src_audio", std::path::Path::new(&src))?
                .seconds;
            let start = fields.f64("repainting_start")?.unwrap_or(0.0);
            let end = fields.f64("repainting_end")?.unwrap_or(seconds);
            let extend = start < 0.0 || end > seconds;
            f.map.insert(
                "task".into(),
                Value::from(if extend { "extend" } else { "repaint" }),
            );
            f.map.insert("repainting_start".into(), Value::from(start));
            f.map.insert("repainting_end".into(), Value::from(end));
        }
        _ => return Err(refuse("task_type", task, "text2music, cover or repaint")),
    }
    Ok(f)
}

/// The v1 parameters of a request of this dialect.
fn params_of(fields: &form::Fields, inputs: form::Inputs) -> crate::jobs::Result<GenerationParams> {
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
        }
        .into());
    }
    let fields = &map_task_type(fields, inputs)?;
    let base = GenerationParams {
        format: "mp3".into(),
        infer_step: 8,
        guidance_scale: 7.0,
        ..Default::default()
    };
    let mut p = form::params(fields, base, ALIASES, inputs)?;
    // The seed's lyric language, where it is not its default `en` (which clients send whatever
    // the lyrics), reads every lyric line in that language; otherwise each line's language is
    // detected as the reference does.
    if p.lyrics_language.is_none() {
        if let Some(lang) = fields.str("vocal_language").filter(|l| {
            let l = l.trim().to_ascii_lowercase();
            !["", "en", "auto", "unknown"].contains(&l.as_str())
        }) {
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
pub async fn generate(State(state): State<Arc<AppState>>, req: Request) -> Answer<AceStepApi> {
    let (_, owner, fields) = state.read_submission::<AceStepApi>(req).await?;
    let (rec, ()) = state
        .submit(fields, owner, |fields, state| {
            let (callback_url, webhook_events_filter) = form::webhook(fields)?;
            let request = JobRequest {
                params: params_of(fields, state.inputs())?,
                callback_url,
                webhook_events_filter,
                metadata: json!({"dialect": "acestep_api", "request": Value::Object(fields.map.clone())}),
            };
            Ok((request, ()))
        })
        .await?;
    // As the seed's example: a new job reads `queued` with a 1-based position, even when a
    // worker took it at once (its record then says `running`).
    Ok(Json(AceSubmitted {
        job_id: rec.id,
        status: "queued",
        queue_position: rec.queue_position.max(1),
    })
    .into_response())
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
) -> Answer<AceStepApi> {
    let rec = state.job_for::<AceStepApi>(&headers, &id).await?;
    Ok(Json(AceJob::of(&state, &headers, &rec)).into_response())
}

/// The job object of `rec` as JSON (the end of its event stream).
pub(crate) fn job_json(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Value {
    serde_json::to_value(AceJob::of(state, headers, rec)).unwrap_or_default()
}

impl AceJob {
    /// The job object of `rec`.
    pub fn of(state: &AppState, headers: &HeaderMap, rec: &JobRecord) -> Self {
        let urls = state.file_urls(headers, rec, "acestep");
        let result = (rec.state == JobState::Succeeded).then(|| AceJobResult {
            first_audio_path: urls.first().cloned(),
            second_audio_path: urls.get(1).cloned(),
            generation_info: generation_info(rec),
            status_message: "✅ Generation completed successfully!",
            seed_value: rec.result.as_ref().map(|r| {
                r.seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            audio_paths: urls,
        });
        let error = match rec.state {
            JobState::Cancelled => Some("cancelled".to_string()),
            _ => rec
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message)),
        };
        AceJob {
            job_id: rec.id.clone(),
            status: status_word(rec.state),
            created_at: rec.created_at,
            started_at: rec.started_at,
            finished_at: rec.finished_at,
            queue_position: rec.queue_position,
            eta_seconds: rec.eta_seconds,
            progress: rec.progress.percent,
            result,
            error,
        }
    }
}

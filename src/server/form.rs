//! Request bodies of every dialect (JSON, `application/x-www-form-urlencoded`,
//! `multipart/form-data` with files) read into one field map, and [`GenerationParams`] built from
//! it with the loose typing the seed clients use (every value may be a string; lists
//! comma-joined; booleans "true"/"false"; null as "", "None" or JSON null).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::{short, Error};
use crate::jobs::{JobError, Result};
use crate::pipeline::GenerationParams;

/// The fields of a request body, and the files it uploaded.
///
/// The uploaded files belong to the request until [`Fields::keep`] is called (after a job that
/// reads them was accepted): when the last clone of a request's fields is dropped without it,
/// its files are deleted, so nothing of a refused or broken request stays on disk.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    /// Text fields (JSON values as sent; form values as strings).
    pub map: Map<String, Value>,
    /// Uploaded files: field name -> saved path.
    pub files: HashMap<String, PathBuf>,
    /// The saved uploads, deleted on drop unless kept.
    uploads: Arc<Uploads>,
    /// Audio inputs already probed for this request (each file is decoded through once).
    probed: Arc<Mutex<HashMap<PathBuf, crate::audio::AudioInfo>>>,
}

/// The files a request saved; deleted when dropped unless kept.
#[derive(Debug, Default)]
struct Uploads {
    paths: Mutex<Vec<PathBuf>>,
    kept: AtomicBool,
}

impl Drop for Uploads {
    fn drop(&mut self) {
        if self.kept.load(Ordering::SeqCst) {
            return;
        }
        let paths = self.paths.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in paths.drain(..) {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing the upload {}: {e}", p.display());
                }
            }
        }
    }
}

/// Size limits of request bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// JSON, text and x-www-form-urlencoded bodies (default 1 MiB).
    pub max_body_bytes: usize,
    /// A whole multipart/form-data body, files included (default 100 MiB).
    pub max_upload_bytes: usize,
    /// File parts in one multipart body (default 4).
    pub max_files: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_upload_bytes: 100 << 20,
            max_files: 4,
        }
    }
}

fn bad_body(expected: &str, detail: impl ToString) -> JobError {
    Error::InvalidArgument {
        name: "request body",
        value: detail.to_string(),
        expected: expected.to_string(),
    }
    .into()
}

/// The error of a failed multipart read: 413 for the size limit, else 400.
fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> JobError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        JobError::PayloadTooLarge {
            what: "the multipart/form-data body".into(),
            limit: limit as u64,
        }
    } else {
        bad_body("a complete multipart/form-data body", e.body_text())
    }
}

/// The whole of a non-multipart body, at most `limit` bytes.
async fn body_bytes(req: Request, limit: usize, what: &str) -> Result<axum::body::Bytes> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(JobError::PayloadTooLarge {
            what: format!("the {what} body"),
            limit: limit as u64,
        }),
        Err(e) => Err(bad_body(
            "a body sent in full (the connection broke or was too slow)",
            e,
        )),
    }
}

/// Writes an upload's chunks to `path` as they arrive (never the whole file in memory).
async fn save_upload(
    field: &mut axum::extract::multipart::Field<'_>,
    path: &Path,
    limit: usize,
) -> Result<()> {
    use std::io::Write;
    let storage = |e: std::io::Error| JobError::StorageUnavailable {
        path: PathBuf::from("uploads"),
        message: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(storage)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        out.write_all(&chunk).map_err(storage)?;
    }
    out.flush().map_err(storage)?;
    Ok(())
}

/// Reads the body of `req` by its content type (JSON when none is given), within `limits`;
/// uploaded files are streamed to disk under `uploads`.
pub(crate) async fn read(req: Request, uploads: &Path, limits: BodyLimits) -> Result<Fields> {
    let ctype = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let mut fields = Fields::default();
    if ctype.starts_with("multipart/form-data") {
        let limit = limits.max_upload_bytes;
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| bad_body("a multipart/form-data body", e.body_text()))?;
        while let Some(mut field) = mp
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            let name = field.name().unwrap_or_default().to_string();
            match field.file_name().map(sanitize) {
                Some(file_name) => {
                    if fields.files.contains_key(&name) {
                        return Err(Error::InvalidArgument {
                            name: "request body",
                            value: format!("file field `{name}` given twice"),
                            expected: "each file field at most once".into(),
                        }
                        .into());
                    }
                    if fields.files.len() >= limits.max_files {
                        return Err(Error::InvalidArgument {
                            name: "request body",
                            value: format!("more than {} files", limits.max_files),
                            expected: format!("at most {} uploaded files", limits.max_files),
                        }
                        .into());
                    }
                    std::fs::create_dir_all(uploads).map_err(|e| JobError::StorageUnavailable {
                        path: PathBuf::from("uploads"),
                        message: e.to_string(),
                    })?;
                    let path = uploads.join(format!("{}-{file_name}", uuid::Uuid::new_v4()));
                    lock(&fields.uploads.paths).push(path.clone());
                    save_upload(&mut field, &path, limit).await?;
                    fields.files.insert(name, path);
                }
                None => {
                    let text = field.text().await.map_err(|e| {
                        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                            multipart_error(e, limit)
                        } else {
                            bad_body("UTF-8 form fields", e.body_text())
                        }
                    })?;
                    fields.map.insert(name, Value::String(text));
                }
            }
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        let bytes = body_bytes(req, limits.max_body_bytes, "x-www-form-urlencoded").await?;
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in pairs {
            fields.map.insert(k, Value::String(v));
        }
    } else if ctype.starts_with("application/json") || ctype.starts_with("text/plain") {
        let bytes = body_bytes(req, limits.max_body_bytes, "JSON").await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => fields.map = m,
                Ok(other) => return Err(bad_body("a JSON object", short(&other.to_string()))),
                Err(e) => return Err(bad_body("a JSON object", e)),
            }
        }
    } else {
        return Err(Error::InvalidArgument {
            name: "Content-Type",
            value: short(&ctype),
            expected: "application/json, application/x-www-form-urlencoded or multipart/form-data"
                .into(),
        }
        .into());
    }
    Ok(fields)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file name without directories or odd characters.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("upload");
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        format!("upload{clean}")
    } else {
        clean
    }
}

/// JSON null, "", "None", "none", "null": the client left the field unset.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => matches!(s.trim(), "" | "None" | "none" | "null" | "NULL"),
        _ => false,
    }
}

impl Fields {
    /// [`crate::audio::probe_input`] of the audio input `path` (field `name`), once per file
    /// for the whole request.
    pub fn probe(&self, name: &'static str, path: &Path) -> Result<crate::audio::AudioInfo> {
        if let Some(info) = lock(&self.probed).get(path) {
            return Ok(*info);
        }
        let info = crate::audio::probe_input(name, path)?;
        lock(&self.probed).insert(path.to_path_buf(), info);
        Ok(info)
    }

    /// Keeps the request's uploads on disk (a job that reads them was accepted).
    pub fn keep(&self) {
        self.uploads.kept.store(true, Ordering::SeqCst);
    }

    /// The value of `name`, unless unset.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !is_unset(v))
    }

    /// Whether `name` is present and set.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A string field (numbers and booleans are written out).
    pub fn str(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A boolean field: JSON bool, or "true"/"false"/"1"/"0"/"yes"/"no".
    pub fn bool(&self, name: &'static str) -> Result<Option<bool>> {
        self.get(name).map(|v| to_bool(name, v)).transpose()
    }

    /// A number field: JSON number or a numeric string.
    pub fn f64(&self, name: &'static str) -> Result<Option<f64>> {
        self.get(name).map(|v| to_f64(name, v)).transpose()
    }
}

fn invalid(name: &'static str, v: &Value, expected: &str) -> JobError {
    Error::InvalidArgument {
        name,
        value: short(&match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        expected: expected.into(),
    }
    .into()
}

fn to_bool(name: &'static str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(name, v, "true or false")),
        },
        _ => Err(invalid(name, v, "true or false")),
    }
}

fn to_f64(name: &'static str, v: &Value) -> Result<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match x {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(invalid(name, v, "a number")),
    }
}

fn to_usize(name: &'static str, v: &Value) -> Result<usize> {
    let x = to_f64(name, v).map_err(|_| invalid(name, v, "a whole number"))?;
    if x < 0.0 || x.fract() != 0.0 || x > u32::MAX as f64 {
        return Err(invalid(name, v, "a whole number >= 0"));
    }
    Ok(x as usize)
}

/// How a reference parameter is typed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Count,
    Flag,
    Text,
    List,
}

/// Every reference parameter and its loose type, read once from the schema of
/// [`GenerationParams`] (the one `/openapi.json` serves): a JSON boolean is a flag, an integer a
/// count, a number a float, an array a list of whole numbers, anything else (strings, enums,
/// optional strings) text. The audio inputs are read apart ([`audio_input`]).
fn schema_params() -> &'static [(&'static str, Kind)] {
    static PARAMS: std::sync::OnceLock<Vec<(&'static str, Kind)>> = std::sync::OnceLock::new();
    PARAMS.get_or_init(|| {
        let schema = serde_json::to_value(<GenerationParams as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(name, _)| {
                !SRC_AUDIO_FIELDS.contains(&name.as_str())
                    && !REF_AUDIO_FIELDS.contains(&name.as_str())
            })
            .map(|(name, prop)| {
                let types: Vec<&str> = match prop.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let kind = if types.contains(&"boolean") {
                    Kind::Flag
                } else if types.contains(&"integer") {
                    Kind::Count
                } else if types.contains(&"number") {
                    Kind::Float
                } else if types.contains(&"array") {
                    Kind::List
                } else {
                    Kind::Text
                };
                // Names live for the whole run (errors carry `&'static str`): one per parameter,
                // made once.
                (&*String::leak(name.clone()), kind)
            })
            .collect()
    })
}

/// Field names (uploads or server paths) of the source audio of repaint / extend / edit.
pub(crate) const SRC_AUDIO_FIELDS: &[&str] = &["src_audio", "src_audio_path", "source_audio"];
/// Field names (uploads or server paths) of the reference audio of audio2audio.
pub(crate) const REF_AUDIO_FIELDS: &[&str] = &[
    "ref_audio",
    "ref_audio_input",
    "reference_audio",
    "reference_audio_path",
];

/// Where a request's audio inputs and LoRA may come from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Inputs {
    /// Server-side paths (`src_audio_path`, `ref_audio_input`, a local LoRA) are accepted.
    pub allow_local_paths: bool,
}

/// The audio file of the first of `names` present: an upload, else a server path (when
/// allowed). Errors name the field.
pub(crate) fn audio_input(
    fields: &Fields,
    names: &[&'static str],
    inputs: Inputs,
) -> Result<Option<String>> {
    for &name in names {
        if let Some(p) = fields.files.get(name) {
            return Ok(Some(p.to_string_lossy().into_owned()));
        }
    }
    for &name in names {
        let Some(v) = fields.str(name).filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        if !inputs.allow_local_paths {
            return Err(invalid(
                name,
                &Value::String(v),
                "an uploaded file (multipart/form-data); server-side paths need `acestep serve \
                 --allow-local-paths`",
            ));
        }
        let path = PathBuf::from(v.trim());
        if !path.is_absolute() || !path.is_file() {
            return Err(invalid(
                name,
                &Value::String(v),
                "an absolute path of an audio file on the server",
            ));
        }
        return Ok(Some(path.to_string_lossy().into_owned()));
    }
    Ok(None)
}

/// Builds [`GenerationParams`] from `base` overridden by the reference-named fields present, and
/// by `aliases` (`(field name of the dialect, reference name)`; the reference name wins when
/// both are given). Errors name the field as the client sent it.
pub(crate) fn params(
    fields: &Fields,
    base: GenerationParams,
    aliases: &[(&'static str, &'static str)],
    inputs: Inputs,
) -> Result<GenerationParams> {
    let mut obj = match serde_json::to_value(&base) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for &(name, kind) in schema_params() {
        let given = fields.get(name).map(|v| (name, v)).or_else(|| {
            aliases
                .iter()
                .filter(|(_, r)| *r == name)
                .find_map(|(a, _)| fields.get(a).map(|v| (*a, v)))
        });
        let Some((key, v)) = given else { continue };
        let value = match kind {
            Kind::Float => Value::from(to_f64(key, v)?),
            Kind::Count => Value::from(to_usize(key, v)?),
            Kind::Flag => Value::from(to_bool(key, v)?),
            Kind::Text => Value::String(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            Kind::List => match v {
                Value::Array(items) => {
                    let mut out = Vec::new();
                    for it in items {
                        out.push(Value::from(to_usize(key, it)? as u64));
                    }
                    Value::Array(out)
                }
                Value::Number(_) => Value::Array(vec![Value::from(to_usize(key, v)? as u64)]),
                Value::String(s) => {
                    let mut out = Vec::new();
                    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let n: u64 = part.parse().map_err(|_| {
                            invalid(key, v, "whole numbers, as a list or comma-separated")
                        })?;
                        out.push(Value::from(n));
                    }
                    Value::Array(out)
                }
                _ => {
                    return Err(invalid(
                        key,
                        v,
                        "whole numbers, as a list or comma-separated",
                    ))
                }
            },
        };
        match name {
            "scheduler_type" => {
                value
                    .as_str()
                    .unwrap_or_default()
                    .parse::<crate::schedulers::SchedulerType>()?;
            }
            "cfg_type" => {
                value
                    .as_str()
                    .unwrap_or_default()
                    .parse::<crate::guidance::CfgType>()?;
            }
            _ => {}
        }
        obj.insert(name.to_string(), value);
    }
    let mut params: GenerationParams =
        serde_json::from_value(Value::Object(obj)).map_err(|e| Error::InvalidArgument {
            name: "request",
            value: "generation parameters".into(),
            expected: e.to_string(),
        })?;
    params.src_audio_path = audio_input(fields, SRC_AUDIO_FIELDS, inputs)?;
    if let Some(r) = audio_input(fields, REF_AUDIO_FIELDS, inputs)? {
        // A reference clip given is a request for audio2audio unless it is turned off.
        if fields.get("audio2audio_enable").is_none() {
            params.audio2audio_enable = true;
        }
        params.ref_audio_input = Some(r);
    }
    if let Some(lora) = params.lora() {
        let local = Path::new(lora).exists();
        if !local && lora.split('/').count() != 2 {
            return Err(invalid(
                "lora_name_or_path",
                &Value::String(lora.to_string()),
                "a hub repo id (owner/name) holding pytorch_lora_weights.safetensors, or none",
            ));
        }
        if !inputs.allow_local_paths && local {
            return Err(invalid(
                "lora_name_or_path",
                &Value::String(lora.to_string()),
                "a hub repo id (owner/name); server-side LoRA paths need `acestep serve \
                 --allow-local-paths`",
            ));
        }
    }
    params.validate().map_err(|e| rename(e, aliases))?;
    Ok(params)
}

/// The request's webhook: `callback_url` and `webhook_events_filter` (`start`, `progress`,
/// `completed`, as a list or comma-separated; default `completed`).
pub(crate) fn webhook(fields: &Fields) -> Result<(Option<String>, Vec<crate::jobs::WebhookEvent>)> {
    let url = fields.str("callback_url");
    let Some(v) = fields.get("webhook_events_filter") else {
        return Ok((url, Vec::new()));
    };
    let expected = "a list of start, progress, completed";
    let names: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("webhook_events_filter", v, expected))?,
        Value::String(s) => {
            // A JSON list sent as a form value, or comma-separated names.
            match serde_json::from_str::<Vec<String>>(s) {
                Ok(list) => list,
                Err(_) => s.split(',').map(|p| p.trim().to_string()).collect(),
            }
        }
        _ => return Err(invalid("webhook_events_filter", v, expected)),
    };
    let mut events = Vec::new();
    for n in names.iter().filter(|n| !n.trim().is_empty()) {
        let e = crate::jobs::WebhookEvent::parse(n)
            .ok_or_else(|| invalid("webhook_events_filter", v, expected))?;
        if !events.contains(&e) {
            events.push(e);
        }
    }
    if url.is_none() && !events.is_empty() {
        return Err(invalid(
            "webhook_events_filter",
            v,
            "given with a callback_url",
        ));
    }
    Ok((url, events))
}

/// Renames a validation error's reference field to the dialect's name for it.
fn rename(e: Error, aliases: &[(&'static str, &'static str)]) -> Error {
    match e {
        Error::InvalidArgument {
            name,
            value,
            expected,
        } => Error::InvalidArgument {
            name: aliases
                .iter()
                .find(|(_, r)| *r == name)
                .map(|(a, _)| *a)
                .unwrap_or(name),
            value,
            expected,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_types_come_from_the_schema() {
        let params = schema_params();
        let kind = |n: &str| params.iter().find(|(p, _)| *p == n).map(|(_, k)| *k);
        // Every field of GenerationParams but the two audio inputs (read apart).
        assert_eq!(params.len(), 35, "{params:?}");
        assert_eq!(kind("audio_duration"), Some(Kind::Float));
        assert_eq!(kind("infer_step"), Some(Kind::Count));
        assert_eq!(kind("use_erg_tag"), Some(Kind::Flag));
        assert_eq!(kind("manual_seeds"), Some(Kind::List));
        assert_eq!(kind("oss_steps"), Some(Kind::List));
        assert_eq!(kind("scheduler_type"), Some(Kind::Text));
        assert_eq!(kind("lyrics_language"), Some(Kind::Text));
        assert_eq!(kind("edit_target_prompt"), Some(Kind::Text));
        assert_eq!(kind("src_audio_path"), None);
        assert_eq!(kind("ref_audio_input"), None);
    }
}

//! Errors in each dialect's format: the error class of a job manager or engine error, the
//! [`Dialect`] trait of the three APIs, [`DialectError`] (what handlers return), and the
//! middleware that gives every response a request id and every error its dialect's body.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::state::{AppState, RequestStats, REQUEST_SECONDS_BUCKETS};
use super::{acestep_api, async_task, producer};
use crate::error::Error;
use crate::jobs::JobError;

/// How an error is reported, whatever the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    BadRequest,
    Unauthorized,
    NotFound,
    Conflict,
    Quota,
    Gone,
    TooLarge,
    MethodNotAllowed,
    Unavailable,
    Internal,
}

impl Class {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Class::BadRequest => StatusCode::BAD_REQUEST,
            Class::Unauthorized => StatusCode::UNAUTHORIZED,
            Class::NotFound => StatusCode::NOT_FOUND,
            Class::Conflict => StatusCode::CONFLICT,
            Class::Quota => StatusCode::TOO_MANY_REQUESTS,
            Class::Gone => StatusCode::GONE,
            Class::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Class::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The class of a job manager or engine error.
    pub(crate) fn of(e: &JobError) -> Self {
        match e {
            JobError::Engine(Error::InvalidArgument { .. } | Error::Audio { .. }) => {
                Class::BadRequest
            }
            JobError::JobNotFound { .. } => Class::NotFound,
            JobError::JobFinished { .. } => Class::Conflict,
            JobError::QuotaExceeded { .. }
            | JobError::QueueFull { .. }
            | JobError::RateLimited { .. } => Class::Quota,
            JobError::ShuttingDown
            | JobError::StorageUnavailable { .. }
            | JobError::Store { .. } => Class::Unavailable,
            JobError::PayloadTooLarge { .. } => Class::TooLarge,
            _ => Class::Internal,
        }
    }

    /// The class of an HTTP error status (for responses made outside the handlers).
    fn of_status(s: StatusCode) -> Self {
        match s {
            StatusCode::UNAUTHORIZED => Class::Unauthorized,
            StatusCode::NOT_FOUND => Class::NotFound,
            StatusCode::CONFLICT => Class::Conflict,
            StatusCode::TOO_MANY_REQUESTS => Class::Quota,
            StatusCode::GONE => Class::Gone,
            StatusCode::PAYLOAD_TOO_LARGE => Class::TooLarge,
            StatusCode::METHOD_NOT_ALLOWED => Class::MethodNotAllowed,
            StatusCode::SERVICE_UNAVAILABLE => Class::Unavailable,
            s if s.is_client_error() => Class::BadRequest,
            _ => Class::Internal,
        }
    }
}

/// An error in one dialect's format.
pub(crate) trait Dialect {
    /// The response for `class` with `message`.
    fn error(class: Class, message: &str) -> Response;

    /// The response for a crate error (a rate limit's with `Retry-After`).
    fn from_error(e: &JobError) -> Response {
        let mut resp = Self::error(Class::of(e), &e.to_string());
        if let JobError::RateLimited {
            retry_after_secs, ..
        } = e
        {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_secs),
            );
        }
        resp
    }

    /// 401 for a missing or wrong key.
    fn unauthorized() -> Response {
        Self::error(
            Class::Unauthorized,
            "missing or invalid API key: send `Authorization: Bearer <key>`",
        )
    }
}

/// An error answered in dialect `D`'s format (an HTTP response with its status and body): what
/// the handlers return
/// ([`Answer`]`<D>`), made with `?` from job manager and engine errors.
pub struct DialectError<D> {
    response: Box<Response>,
    dialect: std::marker::PhantomData<D>,
}

impl<D> DialectError<D> {
    /// A finished error response.
    pub(crate) fn from_response(response: Response) -> Self {
        Self {
            response: Box::new(response),
            dialect: std::marker::PhantomData,
        }
    }
}

impl<D: Dialect> From<JobError> for DialectError<D> {
    fn from(e: JobError) -> Self {
        Self::from_response(D::from_error(&e))
    }
}

impl<D: Dialect> From<Error> for DialectError<D> {
    fn from(e: Error) -> Self {
        JobError::from(e).into()
    }
}

impl<D> IntoResponse for DialectError<D> {
    fn into_response(self) -> Response {
        *self.response
    }
}

/// A handler's answer in dialect `D`: its response, or its error in `D`'s format.
pub type Answer<D> = Result<Response, DialectError<D>>;

/// Which dialect a request path belongs to, for errors made outside its handlers.
pub(super) fn dialect_of(path: &str, query: Option<&str>) -> &'static str {
    if path == "/metrics" || path == "/health" {
        "other"
    } else if path.starts_with("/producer/") {
        "producer"
    } else if path.starts_with("/v1/music/") || path.starts_with("/v1/jobs/") {
        "acestep"
    } else if path.starts_with("/files/") {
        match query
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("d="))
        {
            Some("producer") => "producer",
            Some("acestep") => "acestep",
            _ => "async_task",
        }
    } else {
        "async_task"
    }
}

/// An error response in the named dialect's format.
pub(super) fn dialect_error(dialect: &str, class: Class, message: &str) -> Response {
    match dialect {
        "producer" => producer::Producer::error(class, message),
        "acestep" => acestep_api::AceStepApi::error(class, message),
        _ => async_task::AsyncTask::error(class, message),
    }
}

/// Every request gets an id (the client's `x-request-id` when it is a short token, else a new
/// UUID), returned in the `x-request-id` header and in every error body, logged with its
/// method, path, status and latency, and counted for `/metrics`. Every error leaves in its
/// dialect's JSON format (axum's own rejections, a 405, an unknown route, a body limit) and
/// without server paths.
pub(super) async fn dialect_errors(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let t0 = std::time::Instant::now();
    let dialect = dialect_of(req.uri().path(), req.uri().query());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let mut out = if (status.is_client_error() || status.is_server_error())
        && status != StatusCode::RANGE_NOT_SATISFIABLE
    {
        error_response(&state, dialect, resp, &request_id).await
    } else {
        resp
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        out.headers_mut().insert("x-request-id", v);
    }
    let secs = t0.elapsed().as_secs_f64();
    {
        let mut reqs = state.requests.lock().unwrap_or_else(|e| e.into_inner());
        let stats = reqs.entry(dialect).or_insert_with(|| RequestStats {
            by_status: Default::default(),
            seconds: crate::jobs::Histogram::new(&REQUEST_SECONDS_BUCKETS),
        });
        *stats.by_status.entry(status.as_u16()).or_default() += 1;
        stats.seconds.observe(secs);
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        status = status.as_u16(),
        latency_ms = secs * 1e3,
        "request"
    );
    out
}

/// An error response in `dialect`'s JSON format, without server paths, carrying `request_id`.
async fn error_response(
    state: &AppState,
    dialect: &str,
    resp: Response,
    request_id: &str,
) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let mut value = if json {
        serde_json::from_str::<serde_json::Value>(&state.scrub(&text)).unwrap_or_default()
    } else {
        let message = match text.trim() {
            "" => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string(),
            t => t.to_string(),
        };
        let made = dialect_error(dialect, Class::of_status(status), &state.scrub(&message));
        let b = axum::body::to_bytes(made.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&b).unwrap_or_default()
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("request_id".into(), serde_json::Value::from(request_id));
    }
    let mut out = (status, axum::Json(value)).into_response();
    for (k, v) in parts.headers.iter() {
        if k == axum::http::header::ALLOW || k == axum::http::header::RETRY_AFTER {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

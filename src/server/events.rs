//! Live progress of a job as server-sent events (`text/event-stream`), under each dialect's task
//! path: `GET /v1/jobs/{id}/events` (ACE-Step API), `GET /api/v1/task/{id}/events` (async task
//! API), `GET /producer/tasks/{id}/events` (producer API). Authorised as the dialect's poll is.
//!
//! Events, in the order they happened (see [`crate::jobs::EventFeed`]):
//!
//! | `event:` | when | `data:` (JSON) |
//! | --- | --- | --- |
//! | `queued` | submitted, and each time the queue position changes | `id`, `state`, `queue_position`, `eta_seconds` |
//! | `running` | a worker started the job | `id`, `state`, `attempt` |
//! | `progress` | each diffusion step | `id`, `state`, `stage`, `step`, `total`, `percent`, `eta_seconds` |
//! | `decoding`, `writing` | the audio is decoded, then written | as `progress` |
//! | `succeeded`, `failed`, `cancelled` | the end (the stream then closes) | the dialect's poll answer for the job, with its result links |
//!
//! Each event has an `id:` (`<run>.<seq>`); a client that reconnects with `Last-Event-ID` gets
//! the events after it (an id of an earlier server run starts over from the job's first kept
//! event). A stream with no event for a while gets a keep-alive comment
//! ([`super::ServerConfig::sse_keep_alive`]). A job the server has no events for (queued before
//! a restart, or finished long ago) starts with its current state (an event with id `<run>.0`).
//! When the server stops, open streams end at once (clients reconnect with `Last-Event-ID`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use super::{Answer, AppState, Dialect};
use crate::jobs::{FeedEvent, Follower, JobRecord, JobState};

/// Renders a job in a dialect's poll format.
type Render = fn(&AppState, &HeaderMap, &JobRecord) -> Value;

/// What a stream needs between two events.
struct Stream {
    state: Arc<AppState>,
    headers: HeaderMap,
    id: String,
    render: Render,
    follower: Option<Follower>,
    /// The sequence number of the last event sent.
    last: u64,
    pending: VecDeque<Arc<FeedEvent>>,
    /// The first event to send (the job's current state), when it has no feed.
    first: Option<Event>,
    done: bool,
    /// True once the server stops: the stream ends (the client reconnects elsewhere or later
    /// with `Last-Event-ID`).
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// The current state of `rec` as one event (for a job without kept events).
fn snapshot(state: &AppState, headers: &HeaderMap, rec: &JobRecord, render: Render) -> Event {
    let (kind, data) = match rec.state {
        JobState::Queued => (
            "queued",
            json!({
                "id": rec.id,
                "state": rec.state,
                "queue_position": rec.queue_position,
                "eta_seconds": rec.eta_seconds,
            }),
        ),
        JobState::Running => (
            "progress",
            json!({
                "id": rec.id,
                "state": rec.state,
                "stage": rec.progress.stage,
                "step": rec.progress.step,
                "total": rec.progress.total,
                "percent": rec.progress.percent,
                "eta_seconds": rec.eta_seconds,
            }),
        ),
        s => (s.as_str(), render(state, headers, rec)),
    };
    Event::default()
        .id(state.jobs.events().event_id(0))
        .event(kind)
        .data(data.to_string())
}

impl Stream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.pending.pop_front() {
                self.last = ev.seq;
                let mut data = ev.data.to_string();
                if ev.is_terminal() {
                    self.done = true;
                    // The end carries the dialect's record (with its result links).
                    let id = self.id.clone();
                    if let Ok(rec) = self.state.blocking(move |s| s.jobs.poll(&id)).await {
                        data = (self.render)(&self.state, &self.headers, &rec).to_string();
                    }
                }
                let event = Event::default()
                    .id(self.state.jobs.events().event_id(ev.seq))
                    .event(ev.kind)
                    .data(data);
                return Some((Ok(event), self));
            }
            if *self.stopping.borrow() {
                return None;
            }
            let follower = self.follower.as_mut()?;
            self.pending = follower.after(self.last).into();
            if self.pending.is_empty() {
                tokio::select! {
                    _ = follower.changed() => {}
                    _ = self.stopping.wait_for(|s| *s) => return None,
                }
            }
        }
    }
}

/// The event stream of job `id` for an authorised request of dialect `D`, or `D`'s error.
pub(crate) async fn stream<D: Dialect>(
    state: Arc<AppState>,
    headers: HeaderMap,
    id: String,
    render: Render,
) -> Answer<D> {
    let rec = state.job_for::<D>(&headers, &id).await?;
    let feed = state.jobs.events();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| feed.parse_event_id(v));
    let mut follower = feed.follow(&id, !rec.state.is_terminal());
    let more = follower
        .as_mut()
        .is_some_and(|f| !f.after(resume.unwrap_or(0)).is_empty());
    // No kept events (queued before this run, or finished long ago) and no resume: the state
    // now comes first.
    let first = (!more && resume.is_none()).then(|| snapshot(&state, &headers, &rec, render));
    // A finished job with nothing after the resume point: the stream ends at once.
    let done = rec.state.is_terminal() && !more;
    let stream = Stream {
        state: state.clone(),
        headers,
        id,
        render,
        follower,
        last: resume.unwrap_or(0),
        pending: VecDeque::new(),
        first,
        done,
        stopping: state.stopping(),
    };
    let body = futures_util::stream::unfold(stream, Stream::next);
    let mut resp = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(state.config.sse_keep_alive))
        .into_response();
    // Proxies must pass events on as they come.
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

/// `GET /v1/jobs/{id}/events` (ACE-Step API).
pub async fn acestep_api(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<super::acestep_api::AceStepApi> {
    stream::<super::acestep_api::AceStepApi>(state, headers, id, super::acestep_api::job_json).await
}

/// `GET /api/v1/task/{id}/events` (async task API).
pub async fn async_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<super::async_task::AsyncTask> {
    stream::<super::async_task::AsyncTask>(state, headers, id, super::async_task::task_json).await
}

/// `GET /producer/tasks/{id}/events` (producer API).
pub async fn producer(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<super::producer::Producer> {
    stream::<super::producer::Producer>(state, headers, id, super::producer::record_json).await
}

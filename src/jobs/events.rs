//! [`EventFeed`]: each job's live events (queue position changes, start, every diffusion step,
//! decoding, the end), kept in order per job so that a follower (the server's event streams)
//! can replay them from any point and wait for the next one.
//!
//! Every event of a job has a sequence number (1, 2, ...) that grows by one per event; an event
//! id, as sent to clients, is `<boot>.<seq>` where `boot` names this process's run, so that an id
//! from before a restart is never taken for one of this run.
//!
//! Memory stays bounded by what is live: a new queue position replaces the job's previous one
//! when nothing came between them (a job waiting behind 1000 others keeps one `queued` event,
//! not 1000), a job keeps its last [`MAX_EVENTS_PER_JOB`] events, a finished job's progress
//! events are folded into its last one [`COMPACT_AFTER`] after its end, and its feed is dropped
//! [`FINISHED_RETENTION`] after its end (at most [`MAX_FINISHED_FEEDS`] kept), after which only
//! its record tells how it ended.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Events kept per job (the oldest go first; a job of 1000 steps sends about 1010).
pub const MAX_EVENTS_PER_JOB: usize = 4096;
/// How long a finished job's events are kept.
pub const FINISHED_RETENTION: Duration = Duration::from_secs(600);
/// Finished jobs whose events are kept, at most.
pub const MAX_FINISHED_FEEDS: usize = 10_000;
/// How long after its end a finished job keeps every progress event (then only the last).
pub const COMPACT_AFTER: Duration = Duration::from_secs(60);

/// One event of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Its sequence number in the job's feed (1 for the first).
    pub seq: u64,
    /// What happened: `queued` (with the queue position), `running`, `progress` (a diffusion
    /// step), `decoding`, `writing`, or a terminal state: `succeeded`, `failed`, `cancelled`.
    pub kind: &'static str,
    /// The event as a JSON object (`id`, `state` and the kind's fields).
    pub data: Arc<str>,
}

impl FeedEvent {
    /// True for the job's last event (`succeeded`, `failed`, `cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, "succeeded" | "failed" | "cancelled")
    }
}

/// One job's events and the signal its followers wait on.
struct JobFeed {
    events: Mutex<VecDeque<Arc<FeedEvent>>>,
    /// The newest sequence number.
    last: tokio::sync::watch::Sender<u64>,
}

impl JobFeed {
    fn new() -> Self {
        Self {
            events: Mutex::new(VecDeque::new()),
            last: tokio::sync::watch::Sender::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Feeds {
    jobs: HashMap<String, Arc<JobFeed>>,
    /// Finished jobs in the order they finished.
    finished: VecDeque<(Instant, String)>,
    /// Finished jobs whose progress events are not folded yet, in the order they finished.
    to_compact: VecDeque<(Instant, String)>,
}

/// The live events of every job (see the module docs).
pub struct EventFeed {
    boot: String,
    feeds: Mutex<Feeds>,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl EventFeed {
    /// An empty feed with a new boot id.
    pub fn new() -> Self {
        Self {
            boot: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            feeds: Mutex::new(Feeds::default()),
        }
    }

    /// The id of this process's run (the first part of every event id).
    pub fn boot(&self) -> &str {
        &self.boot
    }

    /// The client-facing id of event `seq`: `<boot>.<seq>`.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}.{seq}", self.boot)
    }

    /// The sequence number a client's `Last-Event-ID` names in this run, or None (another run's
    /// id, or not one of ours).
    pub fn parse_event_id(&self, id: &str) -> Option<u64> {
        let (boot, seq) = id.trim().split_once('.')?;
        (boot == self.boot).then(|| seq.parse().ok()).flatten()
    }

    /// Appends an event of kind `kind` to job `id`'s feed and wakes its followers; a feed that
    /// ended (a terminal event) takes nothing more.
    pub(crate) fn push(&self, id: &str, kind: &'static str, data: serde_json::Value) {
        let feed = {
            let mut feeds = lock(&self.feeds);
            if feeds
                .jobs
                .get(id)
                .is_some_and(|f| lock(&f.events).back().is_some_and(|e| e.is_terminal()))
            {
                return;
            }
            if kind == "succeeded" || kind == "failed" || kind == "cancelled" {
                feeds.finished.push_back((Instant::now(), id.to_string()));
                feeds.to_compact.push_back((Instant::now(), id.to_string()));
                Self::expire(&mut feeds);
            }
            feeds
                .jobs
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(JobFeed::new()))
                .clone()
        };
        let mut events = lock(&feed.events);
        let seq = events.back().map_or(1, |e| e.seq + 1);
        // A new queue position supersedes the previous one.
        if kind == "queued" && events.back().is_some_and(|e| e.kind == "queued") {
            events.pop_back();
        }
        events.push_back(Arc::new(FeedEvent {
            seq,
            kind,
            data: data.to_string().into(),
        }));
        if events.len() > MAX_EVENTS_PER_JOB {
            events.pop_front();
        }
        drop(events);
        feed.last.send_replace(seq);
    }

    /// Forgets the feeds of jobs that finished too long ago (or too many ago).
    fn expire(feeds: &mut Feeds) {
        Self::expire_with(feeds, COMPACT_AFTER)
    }

    /// [`EventFeed::expire`] folding the progress of jobs finished `compact_after` ago.
    fn expire_with(feeds: &mut Feeds, compact_after: Duration) {
        while let Some((at, _)) = feeds.to_compact.front() {
            if at.elapsed() < compact_after {
                break;
            }
            let Some((_, id)) = feeds.to_compact.pop_front() else {
                break;
            };
            if let Some(feed) = feeds.jobs.get(&id) {
                let mut events = lock(&feed.events);
                let last = events.iter().rposition(|e| e.kind == "progress");
                let mut i = 0;
                events.retain(|e| {
                    i += 1;
                    e.kind != "progress" || Some(i - 1) == last
                });
            }
        }
        while let Some((at, _)) = feeds.finished.front() {
            if at.elapsed() < FINISHED_RETENTION && feeds.finished.len() <= MAX_FINISHED_FEEDS {
                break;
            }
            if let Some((_, id)) = feeds.finished.pop_front() {
                feeds.jobs.remove(&id);
            }
        }
    }

    /// The jobs whose feed has not ended (no terminal event yet).
    pub(crate) fn open_ids(&self) -> Vec<String> {
        lock(&self.feeds)
            .jobs
            .iter()
            .filter(|(_, f)| !lock(&f.events).back().is_some_and(|e| e.is_terminal()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether job `id`'s feed exists and has not ended.
    pub(crate) fn is_open(&self, id: &str) -> bool {
        lock(&self.feeds)
            .jobs
            .get(id)
            .is_some_and(|f| !lock(&f.events).back().is_some_and(|e| e.is_terminal()))
    }

    /// A follower of job `id`'s events. `create`: make an empty feed when the job has none (a
    /// job queued before this run, or finished long ago); else None then.
    pub fn follow(&self, id: &str, create: bool) -> Option<Follower> {
        let mut feeds = lock(&self.feeds);
        Self::expire(&mut feeds);
        let feed = match feeds.jobs.get(id) {
            Some(f) => f.clone(),
            None if create => feeds
                .jobs
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(JobFeed::new()))
                .clone(),
            None => return None,
        };
        let rx = feed.last.subscribe();
        Some(Follower { feed, rx })
    }
}

/// Follows one job's events: [`Follower::after`] reads what is there, [`Follower::changed`]
/// waits for more.
pub struct Follower {
    feed: Arc<JobFeed>,
    rx: tokio::sync::watch::Receiver<u64>,
}

impl Follower {
    /// The kept events with a sequence number above `seq`, oldest first (events dropped from a
    /// long job's window are skipped).
    pub fn after(&mut self, seq: u64) -> Vec<Arc<FeedEvent>> {
        self.rx.mark_unchanged();
        let events = lock(&self.feed.events);
        let start = events.partition_point(|e| e.seq <= seq);
        events.range(start..).cloned().collect()
    }

    /// Waits until an event newer than the last [`Follower::after`] call saw may be there.
    pub async fn changed(&mut self) {
        // The sender lives as long as this follower's feed: an error cannot happen.
        let _ = self.rx.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_replayed_and_resumed() {
        let feed = EventFeed::new();
        assert!(feed.follow("a", false).is_none());
        feed.push("a", "queued", serde_json::json!({"queue_position": 2}));
        feed.push("a", "queued", serde_json::json!({"queue_position": 1}));
        feed.push("b", "queued", serde_json::json!({"queue_position": 1}));
        feed.push("a", "running", serde_json::json!({}));
        let mut f = feed.follow("a", false).unwrap();
        let all = f.after(0);
        // The second position replaced the first.
        assert_eq!(
            all.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
            [(2, "queued"), (3, "running")]
        );
        assert_eq!(&*all[0].data, r#"{"queue_position":1}"#);
        assert_eq!(f.after(2).len(), 1);
        assert!(f.after(3).is_empty());
        let id = feed.event_id(2);
        assert_eq!(feed.parse_event_id(&id), Some(2));
        assert_eq!(feed.parse_event_id("0123456789ab.2"), None);
        assert_eq!(feed.parse_event_id("junk"), None);
        feed.push("a", "succeeded", serde_json::json!({}));
        assert!(f.after(3)[0].is_terminal());
    }

    #[test]
    fn finished_jobs_fold_their_progress() {
        let feed = EventFeed::new();
        feed.push("a", "queued", serde_json::json!({}));
        feed.push("a", "running", serde_json::json!({}));
        for _ in 0..5 {
            feed.push("a", "progress", serde_json::json!({}));
        }
        feed.push("a", "decoding", serde_json::json!({}));
        feed.push("a", "succeeded", serde_json::json!({}));
        let mut f = feed.follow("a", false).unwrap();
        assert_eq!(f.after(0).len(), 9);
        EventFeed::expire_with(&mut lock(&feed.feeds), Duration::ZERO);
        let kept: Vec<(u64, &str)> = f.after(0).iter().map(|e| (e.seq, e.kind)).collect();
        assert_eq!(
            kept,
            [
                (1, "queued"),
                (2, "running"),
                (7, "progress"),
                (8, "decoding"),
                (9, "succeeded")
            ]
        );
    }

    #[test]
    fn long_jobs_keep_their_last_events() {
        let feed = EventFeed::new();
        for _ in 0..MAX_EVENTS_PER_JOB + 10 {
            feed.push("a", "progress", serde_json::json!({}));
        }
        let mut f = feed.follow("a", false).unwrap();
        let kept = f.after(0);
        assert_eq!(kept.len(), MAX_EVENTS_PER_JOB);
        assert_eq!(kept[0].seq, 11);
        assert_eq!(kept.last().unwrap().seq, (MAX_EVENTS_PER_JOB + 10) as u64);
    }

    #[tokio::test]
    async fn followers_wake_on_new_events() {
        let feed = Arc::new(EventFeed::new());
        feed.push("a", "queued", serde_json::json!({}));
        let mut f = feed.follow("a", false).unwrap();
        assert_eq!(f.after(0).len(), 1);
        let pusher = feed.clone();
        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            pusher.push("a", "running", serde_json::json!({}));
        });
        tokio::time::timeout(Duration::from_secs(5), f.changed())
            .await
            .unwrap();
        assert_eq!(f.after(1)[0].kind, "running");
        t.await.unwrap();
    }
}

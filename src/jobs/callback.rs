//! Completion callbacks: a thread that POSTs job records to their callback URLs, retrying with
//! exponential backoff, so that workers never wait on the network.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::CallbackConfig;

/// One delivery to make.
pub(crate) struct Delivery {
    /// The job.
    pub id: String,
    /// Where to POST.
    pub url: String,
    /// The JSON body.
    pub body: String,
}

/// Messages to the dispatcher thread.
pub(crate) enum Message {
    Deliver(Delivery),
    Stop,
}

struct Pending {
    due: Instant,
    seq: u64,
    attempt: u32,
    delivery: Delivery,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// POSTs `body` to `url`; Ok on a 2xx answer.
fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    match agent
        .post(url)
        .set("Content-Type", "application/json")
        .set("User-Agent", concat!("acestep/", env!("CARGO_PKG_VERSION")))
        .send_string(body)
    {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the dispatcher until [`Message::Stop`] or the channel closes; `done(id, delivered)` is
/// called once per delivery when it succeeded or ran out of attempts. Deliveries still waiting
/// for a retry at stop are left pending (their jobs' callback state stays `pending` and they are
/// resent on the next start).
pub(crate) fn run(rx: Receiver<Message>, config: CallbackConfig, done: impl Fn(&str, bool)) {
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        let wait = heap
            .peek()
            .map(|Reverse(p)| p.due.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Message::Deliver(delivery)) => {
                seq += 1;
                heap.push(Reverse(Pending {
                    due: Instant::now(),
                    seq,
                    attempt: 0,
                    delivery,
                }));
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        while heap
            .peek()
            .is_some_and(|Reverse(p)| p.due <= Instant::now())
        {
            let Some(Reverse(mut p)) = heap.pop() else {
                break;
            };
            p.attempt += 1;
            match post(&p.delivery.url, &p.delivery.body, config.timeout) {
                Ok(()) => done(&p.delivery.id, true),
                Err(e) if p.attempt >= config.max_attempts => {
                    tracing::warn!(job = %p.delivery.id, url = %p.delivery.url, "callback failed after {} attempts: {e}", p.attempt);
                    done(&p.delivery.id, false);
                }
                Err(e) => {
                    let backoff = config.initial_backoff * 2u32.saturating_pow(p.attempt - 1);
                    tracing::info!(job = %p.delivery.id, "callback attempt {} failed ({e}); retrying in {backoff:?}", p.attempt);
                    p.due = Instant::now() + backoff;
                    heap.push(Reverse(p));
                }
            }
        }
    }
}

/// A sender handle to the dispatcher.
pub(crate) type CallbackSender = Sender<Message>;

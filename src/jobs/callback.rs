//! Webhooks: a dispatcher that POSTs job records to their callback URLs (each
//! delivery on its own thread, a few per target at a time), retrying with exponential backoff,
//! so that workers never wait on the network and a slow target delays only itself. Targets are
//! `http(s)` on public addresses unless private ones are allowed (SSRF).
//!
//! Every delivery carries the [Standard Webhooks](https://www.standardwebhooks.com) headers:
//! `webhook-id` (the same for every attempt of one message), `webhook-timestamp` (Unix seconds
//! of the attempt) and, with a secret, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">` (see [`webhook_signature`]); `x-acestep-event`
//! names the event (`start`, `progress`, `completed`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;

use super::{CallbackConfig, WebhookEvent};
use crate::error::Error;
use crate::jobs::{JobError, Result};

/// How far a receiver should accept a delivery's `webhook-timestamp` from its own clock (the
/// Standard Webhooks recommendation: 5 minutes), to refuse replays.
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// The `webhook-signature` value of a delivery: `v1,` and the base64 HMAC-SHA256 of
/// `"{msg_id}.{timestamp}.{body}"` under `secret` (a `whsec_<base64>` secret is those bytes, any
/// other string its UTF-8 bytes). A receiver recomputes it from the `webhook-id` and
/// `webhook-timestamp` headers and the raw body, and compares in constant time.
pub fn webhook_signature(secret: &str, msg_id: &str, timestamp: u64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// One delivery to make.
pub(crate) struct Delivery {
    /// The job.
    pub id: String,
    /// What it is about.
    pub event: WebhookEvent,
    /// The message id (`webhook-id`): the same for every attempt.
    pub msg_id: String,
    /// Where to POST.
    pub url: String,
    /// The JSON body.
    pub body: String,
}

/// Messages to the dispatcher thread.
pub(crate) enum Message {
    Deliver(Delivery),
    /// A delivery attempt ended (sent by its thread).
    Finished(Box<Pending>, std::result::Result<(), String>),
    Stop,
}

pub(crate) struct Pending {
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

/// Whether `ip` is an address a callback must not reach unless private targets are allowed:
/// loopback, private, link-local (cloud metadata), shared, unspecified, broadcast, multicast.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a callback URL at submit: `http(s)://` with a host, and (unless `allow_private`) not
/// an address or name of this machine or a private network.
pub(crate) fn check_url(url: &str, allow_private: bool) -> Result<()> {
    let refuse = |why: &str| Error::InvalidArgument {
        name: "callback_url",
        value: crate::error::short(url),
        expected: why.to_string(),
    };
    let parsed = url::Url::parse(url.trim()).map_err(|_| refuse("an http:// or https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(JobError::from(refuse("an http:// or https:// URL")));
    }
    let private = "a public address (private, loopback and link-local targets need `acestep \
                   serve --allow-private-callbacks`)";
    match parsed.host() {
        None => {
            return Err(JobError::from(refuse(
                "an http:// or https:// URL with a host",
            )))
        }
        Some(url::Host::Ipv4(ip)) if !allow_private && is_private(IpAddr::V4(ip)) => {
            return Err(JobError::from(refuse(private)))
        }
        Some(url::Host::Ipv6(ip)) if !allow_private && is_private(IpAddr::V6(ip)) => {
            return Err(JobError::from(refuse(private)))
        }
        Some(url::Host::Domain(d)) if !allow_private => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(JobError::from(refuse(private)));
            }
        }
        _ => {}
    }
    Ok(())
}

/// POSTs `body` to `url`; Ok on a 2xx answer. Names resolve only to public addresses unless
/// `allow_private` (checked at connect time, so a name that changes its address is caught too).
fn post(
    delivery: &Delivery,
    timeout: Duration,
    allow_private: bool,
    secret: Option<&str>,
) -> std::result::Result<(), String> {
    let (url, body) = (delivery.url.as_str(), delivery.body.as_str());
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .resolver(move |addr: &str| -> std::io::Result<Vec<SocketAddr>> {
            let all: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
            let ok: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if ok.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{addr} resolves only to private addresses"),
                ));
            }
            Ok(ok)
        })
        .build();
    let timestamp = super::now() as u64;
    let mut request = agent
        .post(url)
        .set("Content-Type", "application/json")
        .set("User-Agent", concat!("acestep/", env!("CARGO_PKG_VERSION")))
        .set("webhook-id", &delivery.msg_id)
        .set("webhook-timestamp", &timestamp.to_string())
        .set("x-acestep-event", delivery.event.as_str());
    if let Some(secret) = secret {
        request = request.set(
            "webhook-signature",
            &webhook_signature(secret, &delivery.msg_id, timestamp, body),
        );
    }
    match request.send_string(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The host and port a URL delivers to (deliveries to one target are limited together).
fn target_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or_default(),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_default()
}

/// Deliveries in flight at once, in all.
const MAX_IN_FLIGHT: usize = 32;
/// Deliveries in flight at once to one target (host and port).
const MAX_PER_TARGET: usize = 2;

/// Runs the dispatcher until [`Message::Stop`] or the channel closes; `done(id, delivered)` is
/// called once per `completed` delivery when it succeeded or ran out of attempts. Deliveries are made
/// concurrently on their own threads (at most [`MAX_PER_TARGET`] per target and
/// [`MAX_IN_FLIGHT`] in all), so a slow target delays only its own deliveries; `tx` is the
/// sender of `rx`, through which those threads report. Deliveries still waiting for a retry or
/// in flight at stop are left pending (their jobs' callback state stays `pending` and they are
/// resent on the next start).
pub(crate) fn run(
    rx: Receiver<Message>,
    tx: Sender<Message>,
    config: CallbackConfig,
    done: impl Fn(&str, bool),
) {
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    let mut total_in_flight = 0usize;
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
            Ok(Message::Finished(mut p, outcome)) => {
                let target = target_of(&p.delivery.url);
                if let Some(n) = in_flight.get_mut(&target) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        in_flight.remove(&target);
                    }
                }
                total_in_flight = total_in_flight.saturating_sub(1);
                let completed = p.delivery.event == WebhookEvent::Completed;
                match outcome {
                    Ok(()) => {
                        if completed {
                            done(&p.delivery.id, true)
                        }
                    }
                    Err(e) if p.attempt >= config.max_attempts => {
                        tracing::warn!(job = %p.delivery.id, url = %p.delivery.url, "callback failed after {} attempts: {e}", p.attempt);
                        if completed {
                            done(&p.delivery.id, false);
                        }
                    }
                    Err(e) => {
                        let backoff = config.initial_backoff * 2u32.saturating_pow(p.attempt - 1);
                        tracing::info!(job = %p.delivery.id, "callback attempt {} failed ({e}); retrying in {backoff:?}", p.attempt);
                        p.due = Instant::now() + backoff;
                        heap.push(Reverse(*p));
                    }
                }
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Start every due delivery whose target has room; the others wait a little.
        let mut later = Vec::new();
        while heap
            .peek()
            .is_some_and(|Reverse(p)| p.due <= Instant::now())
        {
            let Some(Reverse(mut p)) = heap.pop() else {
                break;
            };
            let target = target_of(&p.delivery.url);
            let busy = in_flight.get(&target).copied().unwrap_or(0);
            if busy >= MAX_PER_TARGET || total_in_flight >= MAX_IN_FLIGHT {
                p.due = Instant::now() + Duration::from_millis(50);
                later.push(p);
                continue;
            }
            *in_flight.entry(target).or_default() += 1;
            total_in_flight += 1;
            p.attempt += 1;
            let tx = tx.clone();
            let (timeout, allow_private) = (config.timeout, config.allow_private);
            let secret = config.secret.clone();
            let spawned = std::thread::Builder::new()
                .name("acestep-callback".into())
                .spawn(move || {
                    let outcome = post(&p.delivery, timeout, allow_private, secret.as_deref());
                    let _ = tx.send(Message::Finished(Box::new(p), outcome));
                });
            if let Err(e) = spawned {
                tracing::warn!("starting a callback delivery: {e}");
            }
        }
        for p in later {
            heap.push(Reverse(p));
        }
    }
}

/// A sender handle to the dispatcher.
pub(crate) type CallbackSender = Sender<Message>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks reference libraries.
        let sig = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // A plain secret is its bytes; any change of id, time or body changes the signature.
        let a = webhook_signature("s3cret", "m1", 10, "{}");
        assert_ne!(a, webhook_signature("s3cret", "m1", 11, "{}"));
        assert_ne!(a, webhook_signature("s3cret", "m2", 10, "{}"));
        assert_ne!(a, webhook_signature("s3cret", "m1", 10, "{ }"));
        assert_ne!(a, webhook_signature("other", "m1", 10, "{}"));
    }
}

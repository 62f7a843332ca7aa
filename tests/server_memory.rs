//! Issue 19, items 2 and 11: the server's memory stays bounded under large bodies. Its own test
//! binary (one test), so that the process's peak resident memory (`VmHWM`) is this test's alone:
//! a streamed 512 MiB JSON body, an 80 MiB upload (accepted, streamed to disk, then refused as
//! not audio) and a 300 MiB multipart body (413) may raise the peak by at most 64 MiB.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use acestep::jobs::{JobManager, ManagerConfig};
use acestep::server::{AppState, ServerConfig};
use common::Fake;

/// Peak and current resident memory of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Sends `head`, then `len` bytes of `fill` in 64 KiB writes (never more in memory), then
/// `tail`; returns the status line of the answer (empty if the server closed first).
fn send_streamed(
    addr: std::net::SocketAddr,
    head: &str,
    len: usize,
    fill: u8,
    tail: &[u8],
) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![fill; 64 << 10];
    let mut sent = 0;
    while sent < len {
        let n = chunk.len().min(len - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break; // the server answered early and closed
        }
        sent += n;
    }
    let _ = s.write_all(tail);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn large_bodies_keep_the_servers_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Arc::new(JobManager::open(ManagerConfig::new(dir.path()), Fake::new(1)).unwrap());
    let state = AppState::new(
        jobs,
        ServerConfig {
            public_url: Some("http://127.0.0.1".into()),
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(acestep::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    // Warm up (first request, allocator arenas), then take the baseline.
    let ok = send_streamed(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        0,
        0,
        b"",
    );
    assert!(ok.contains("200"), "{ok}");
    let (peak0, rss0) = memory_kib();

    // A 512 MiB JSON body, chunked (no length announced): 413 at 1 MiB.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/async/music/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    let mut sent = 0usize;
    while sent < 512 << 20 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        sent += 0x10000;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    println!(
        "streamed JSON: 413 after the client sent {} MiB",
        sent >> 20
    );

    // An 80 MiB upload under the 100 MiB limit: streamed to disk, refused as not audio, deleted.
    let boundary = "memboundary";
    let head_part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"ref_audio\"; filename=\"big.wav\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let file_len = 80 << 20;
    let total = head_part.len() + file_len + tail.len();
    let status = send_streamed(
        addr,
        &format!("POST /v1/async/music/generations HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{head_part}"),
        file_len,
        b'z',
        tail.as_bytes(),
    );
    assert!(status.contains("400"), "{status}");
    let uploads = dir.path().join("uploads");
    assert_eq!(
        std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0),
        0
    );

    // A 300 MiB multipart body: 413 at 100 MiB.
    let file_len = 300 << 20;
    let total = head_part.len() + file_len + tail.len();
    let status = send_streamed(
        addr,
        &format!("POST /producer/audios HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{head_part}"),
        file_len,
        b'z',
        tail.as_bytes(),
    );
    assert!(status.contains("413"), "{status}");
    assert_eq!(
        std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0),
        0
    );

    let (peak1, rss1) = memory_kib();
    let grew = peak1.saturating_sub(peak0.max(rss0));
    println!(
        "peak RSS {} -> {} MiB (+{} MiB), RSS {} -> {} MiB",
        peak0 >> 10,
        peak1 >> 10,
        grew >> 10,
        rss0 >> 10,
        rss1 >> 10
    );
    assert!(grew < 64 << 10, "the peak grew by {} MiB", grew >> 10);
}

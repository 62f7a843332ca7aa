//! The cluster on one machine: two API front ends (`acestep serve --workers 0`) and three
//! workers (`acestep worker`, tiny checkpoint) over one PostgreSQL database and one data
//! directory. 300 jobs are submitted through both front ends from many threads under per-key
//! quotas; some are cancelled through the other front end; one worker is killed with SIGKILL
//! mid-job and another started. Every job must end exactly once, none lost or run twice to
//! completion, cancels must land, quotas hold, callbacks arrive once, and both front ends must
//! answer the same. Needs a PostgreSQL server: run through `tools/with-postgres`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KEYS: [&str; 6] = ["key-a", "key-b", "key-c", "key-d", "key-e", "key-f"];
const JOBS: usize = 300;
const QUOTA: i64 = 8;
const LEASE: &str = "3";
const PUBLIC: &str = "http://music.example";

/// An HTTP answer: status and JSON body.
fn call(method: &str, url: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let req = agent
        .request(method, url)
        .set("authorization", &format!("Bearer {key}"));
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let res = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = res.status();
    let text = res.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn spawn_worker(db: &str, data: &str) -> common::Served {
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny");
    common::spawn_acestep(
        &[
            "worker",
            "--store",
            db,
            "--data-dir",
            data,
            "--checkpoint-dir",
            tiny,
            "--threads",
            "1",
            "--lease-seconds",
            LEASE,
            "--allow-private-callbacks",
            "--public-url",
            PUBLIC,
        ],
        "acestep worker: ",
        &[("RUST_LOG", "acestep::jobs=info")],
    )
}

fn spawn_front(db: &str, data: &str) -> common::Served {
    let quota = QUOTA.to_string();
    let keys = KEYS.join(",");
    common::spawn_acestep(
        &[
            "serve",
            "--port",
            "0",
            "--workers",
            "0",
            "--store",
            db,
            "--data-dir",
            data,
            "--quota",
            &quota,
            "--api-key",
            &keys,
            "--lease-seconds",
            LEASE,
            "--allow-private-callbacks",
            "--public-url",
            PUBLIC,
        ],
        "listening on ",
        &[],
    )
}

#[test]
fn two_front_ends_three_workers_300_jobs_a_worker_killed() {
    let db = common::postgres_database();
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_string_lossy().into_owned();
    let (hook, deliveries) = common::webhook_receiver();
    let fronts = [spawn_front(&db, &data), spawn_front(&db, &data)];
    let urls: Vec<String> = fronts.iter().map(|f| f.url.clone()).collect();
    let mut workers = vec![
        spawn_worker(&db, &data),
        spawn_worker(&db, &data),
        spawn_worker(&db, &data),
    ];
    let mut pg = postgres::Client::connect(&db, postgres::NoTls).unwrap();

    // The quota, checked against the database itself while everything runs.
    let stop = Arc::new(AtomicBool::new(false));
    let most_active = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (db, stop, most) = (db.clone(), stop.clone(), most_active.clone());
        std::thread::spawn(move || {
            let mut pg = postgres::Client::connect(&db, postgres::NoTls).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let row = pg
                    .query_one(
                        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM jobs \
                         WHERE state IN ('queued', 'running') GROUP BY owner) t",
                        &[],
                    )
                    .unwrap();
                most.fetch_max(row.get::<_, i64>(0) as usize, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // A job submitted through one front end, streamed from the other: the start, progress and
    // end come from a worker elsewhere, relayed through the store.
    let (status, v) = call(
        "POST",
        &format!("{}/v1/async/music/generations", urls[0]),
        KEYS[0],
        Some(&json!({"prompt": "streamed", "duration": 1, "infer_steps": 3})),
    );
    assert_eq!(status, 200, "{v}");
    let streamed = v["task_id"].as_str().unwrap().to_string();
    let stream = {
        let url = format!("{}/api/v1/task/{streamed}/events", urls[1]);
        std::thread::spawn(move || {
            let res = ureq::get(&url)
                .set("authorization", &format!("Bearer {}", KEYS[0]))
                .timeout(Duration::from_secs(120))
                .call()
                .unwrap();
            let mut kinds = Vec::new();
            for line in BufReader::new(res.into_reader()).lines() {
                let Ok(line) = line else { break };
                if let Some(kind) = line.strip_prefix("event: ") {
                    kinds.push(kind.to_string());
                    if matches!(kind, "succeeded" | "failed" | "cancelled") {
                        break;
                    }
                }
            }
            kinds
        })
    };

    // 300 jobs from 12 threads (two per key), each alternating front ends; a refusal for the
    // quota is retried. Every 15th job is cancelled at once through the other front end.
    let t0 = Instant::now();
    let refused = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..12)
        .map(|t| {
            let (urls, hook, refused) = (urls.clone(), hook.clone(), refused.clone());
            std::thread::spawn(move || {
                let key = KEYS[t % KEYS.len()];
                let mut mine = Vec::new();
                for j in 0..JOBS / 12 {
                    let n = t * (JOBS / 12) + j;
                    let front = &urls[n % 2];
                    let body = json!({
                        "prompt": format!("job {n}"),
                        "duration": 1,
                        "infer_steps": 3,
                        "callback_url": hook,
                    });
                    let id = loop {
                        let (status, v) = call(
                            "POST",
                            &format!("{front}/v1/async/music/generations"),
                            key,
                            Some(&body),
                        );
                        match status {
                            200 => break v["task_id"].as_str().unwrap().to_string(),
                            429 => {
                                refused.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            s => panic!("submit: {s} {v}"),
                        }
                    };
                    let cancelled = if n % 15 == 7 {
                        let other = &urls[(n + 1) % 2];
                        let (status, v) = call(
                            "POST",
                            &format!("{other}/api/v1/task/{id}/cancel"),
                            key,
                            None,
                        );
                        // 409: it had already finished.
                        assert!(status == 200 || status == 409, "cancel: {status} {v}");
                        status == 200
                    } else {
                        false
                    };
                    mine.push((id, key, cancelled));
                }
                mine
            })
        })
        .collect();

    // One worker is killed (SIGKILL) while it runs a job, once a third of the jobs ended; a
    // new worker is started in its place.
    let mut killed: Option<(String, String, Instant)> = None;
    while killed.is_none() {
        let done: i64 = pg
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled')",
                &[],
            )
            .unwrap()
            .get(0);
        if done >= (JOBS / 3) as i64 {
            for row in pg
                .query(
                    "SELECT id, worker FROM jobs WHERE state = 'running' AND NOT cancel_requested",
                    &[],
                )
                .unwrap()
            {
                let (job, worker): (String, String) = (row.get(0), row.get(1));
                if let Some(w) = workers.iter_mut().find(|w| w.url == worker) {
                    w.child.kill().unwrap();
                    w.child.wait().unwrap();
                    killed = Some((job, worker, Instant::now()));
                    break;
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no job to kill a worker on"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (victim, killed_worker, killed_at) = killed.unwrap();
    workers.push(spawn_worker(&db, &data));
    // The victim's job is queued again once its lease lapses and taken by another worker.
    let recovered = loop {
        let row = pg
            .query_one(
                "SELECT state, COALESCE(worker, ''), attempts FROM jobs WHERE id = $1",
                &[&victim],
            )
            .unwrap();
        let (state, attempts): (String, i64) = (row.get(0), row.get(2));
        if state != "running" || attempts >= 2 {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    };

    let submitted: Vec<(String, &str, bool)> = submitters
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(submitted.len(), JOBS);
    // Every job ends.
    let all_ended = loop {
        let left: i64 = pg
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "{left} jobs never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::SeqCst);
    monitor.join().unwrap();

    let kinds = stream.join().unwrap();
    assert!(kinds.iter().any(|k| k == "running"), "{kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("succeeded"),
        "{kinds:?}"
    );

    // None lost, none unknown: the store holds exactly the jobs submitted (and the streamed one).
    let rows = pg
        .query("SELECT id FROM jobs WHERE id = $1", &[&streamed])
        .unwrap();
    assert_eq!(rows.len(), 1);
    pg.execute("DELETE FROM jobs WHERE id = $1", &[&streamed])
        .unwrap();
    let rows = pg
        .query("SELECT id, state, attempts, error_code FROM jobs", &[])
        .unwrap();
    let stored: HashMap<String, (String, i64, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let ids: HashSet<&String> = submitted.iter().map(|s| &s.0).collect();
    assert_eq!(ids.len(), JOBS);
    assert_eq!(stored.len(), JOBS);
    assert!(ids.iter().all(|id| stored.contains_key(*id)));

    // Cancels land; the others succeed (the killed worker's job on its second attempt).
    let mut cancelled = 0;
    for (id, _, was_cancelled) in &submitted {
        let (state, attempts, code) = &stored[id];
        if *was_cancelled {
            assert_eq!(state, "cancelled", "job {id}");
            cancelled += 1;
        } else {
            assert_eq!(state, "succeeded", "job {id}: {code:?}");
        }
        let expected = if *id == victim { 2 } else { 1 };
        assert!(*attempts <= expected, "job {id} ran {attempts} times");
    }
    assert_eq!(stored[&victim].1, 2, "the killed worker's job ran again");

    // Each job that ran ended once, by one worker: the workers' logs name every end they
    // recorded, and no worker ran a job whose lease it had lost to the end.
    let mut ends: HashMap<String, usize> = HashMap::new();
    let mut ended_by_killed: HashSet<String> = HashSet::new();
    for w in &workers {
        let log = w.stderr.lock().unwrap().clone();
        if w.url == killed_worker {
            ended_by_killed.extend(log.lines().filter(|l| l.contains(" (worker ")).filter_map(
                |l| {
                    l.split("acestep::jobs::manager: job ")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_string)
                },
            ));
        }
        assert!(!log.contains("result dropped"), "{log}");
        for line in log.lines() {
            // `job <id> <state> (worker <id>)`: an end the worker recorded.
            if let Some(rest) = line.split("acestep::jobs::manager: job ").nth(1) {
                if rest.contains(" (worker ") {
                    let id = rest.split_whitespace().next().unwrap().to_string();
                    *ends.entry(id).or_default() += 1;
                }
            }
        }
    }
    for (id, (state, _, _)) in &stored {
        let n = ends.get(id).copied().unwrap_or(0);
        if state == "succeeded" {
            assert_eq!(n, 1, "job {id} ended {n} times");
        } else {
            assert!(n <= 1, "job {id} ended {n} times");
        }
    }

    // One completion callback per job, from whichever process ended it.
    let t_cb = Instant::now();
    let mut redelivered = 0;
    loop {
        let got: Vec<String> = deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, _)| headers["webhook-id"].clone())
            .collect();
        let mut per: HashMap<String, usize> = HashMap::new();
        for id in got.iter().filter(|m| m.ends_with("-completed")) {
            *per.entry(id.trim_end_matches("-completed").to_string())
                .or_default() += 1;
        }
        if per.len() == JOBS {
            // At least once: a callback the killed worker may have delivered without recording
            // it is delivered again (with the same webhook-id) by the process that takes it
            // over; any other is delivered once.
            for (id, n) in &per {
                if *n > 1 {
                    assert!(
                        ended_by_killed.contains(id),
                        "job {id}'s callback was sent {n} times"
                    );
                    redelivered += 1;
                }
            }
            break;
        }
        assert!(
            t_cb.elapsed() < Duration::from_secs(60),
            "{} of {JOBS} callbacks arrived",
            per.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Quotas held, and were reached.
    let most = most_active.load(Ordering::SeqCst) as i64;
    assert!(
        most <= QUOTA,
        "an owner had {most} active jobs (quota {QUOTA})"
    );
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the quota never refused"
    );

    // Both front ends answer the same, and enforce ownership the same.
    for (id, key, _) in &submitted {
        let a = call("GET", &format!("{}/api/v1/task/{id}", urls[0]), key, None);
        let b = call("GET", &format!("{}/api/v1/task/{id}", urls[1]), key, None);
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(a, b, "job {id}");
    }
    let (id, key, _) = &submitted[0];
    let other = KEYS.iter().find(|k| *k != key).unwrap();
    assert_eq!(
        call("GET", &format!("{}/api/v1/task/{id}", urls[1]), other, None).0,
        404
    );

    let secs = all_ended.as_secs_f64();
    println!(
        "cluster: {JOBS} jobs ({cancelled} cancelled) through 2 front ends on 3 workers (one \
         killed, one started) in {secs:.1} s: {:.2} jobs/s; the killed worker's job was queued \
         again {:.2} s after the kill (lease {LEASE} s); {} submits refused by the quota; \
         {redelivered} callbacks of the killed worker delivered again",
        JOBS as f64 / secs,
        recovered.as_secs_f64(),
        refused.load(Ordering::SeqCst)
    );
    for mut p in fronts.into_iter().chain(workers) {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

//! `cargo bench -p ai-team-functions --bench cold_start [-- --runs N]`
//!
//! Starts the release `ai-team serve` binary N times (default 20) on a
//! SQLite database that is already migrated, and measures process start
//! to the first `200` from `/health` (polled over raw TCP every 100 µs);
//! then the idle resident set size after the first request. The first
//! start, which creates and migrates the database, is reported apart.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

fn start(db: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ai-team"))
        .args(["serve", "--port", &port.to_string()])
        .env("DATABASE_URL", db)
        .env("AI_TEAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ai-team")
}

/// Start to first 200, in milliseconds; the child is left running.
fn time_to_ready(db: &str) -> (f64, Child, u16) {
    let port = free_port();
    let started = Instant::now();
    let mut child = start(db, port);
    loop {
        if health_ok(port) {
            return (started.elapsed().as_secs_f64() * 1000.0, child, port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ai-team exited early: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not ready in 10 s"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("ai_team_cold_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite:///{}", dir.join("cold.db").display());

    let (first, child, _) = time_to_ready(&db);
    stop(child);

    let mut samples = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let (ms, child, port) = time_to_ready(&db);
        samples.push(ms);
        for _ in 0..10 {
            health_ok(port);
        }
        std::thread::sleep(Duration::from_millis(500));
        rss.push(rss_kib(child.id()));
        stop(child);
    }
    samples.sort_by(f64::total_cmp);
    rss.sort_unstable();
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!("binary: {}", env!("CARGO_BIN_EXE_ai-team"));
    println!("first start (creates and migrates the SQLite database): {first:.1} ms");
    println!(
        "start to first 200 from /health over {runs} runs: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        pct(&samples, 0.5),
        pct(&samples, 0.9),
        samples[samples.len() - 1]
    );
    println!(
        "idle RSS after 10 requests: median {:.1} MiB, max {:.1} MiB",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(dir);
}

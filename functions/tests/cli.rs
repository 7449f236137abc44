//! The `ai-team` binary as a user runs it: bad settings stop start-up
//! with one line naming the variable; `migrate` builds the schema; `serve`
//! answers `/health`.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ai_team() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-team"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AI_TEAM_LOG", "info");
    c
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ai_team_cli_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_malformed_setting_stops_start_up_with_one_line_naming_it() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("AI_TEAM_RATE_LIMIT_PER_MINUTE", "-3"),
        ("HEARTBEAT_INTERVAL_SECONDS", "soon"),
    ] {
        let out = ai_team().arg("serve").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line for {var}: {stderr}"
        );
        assert!(stderr.contains(var), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[test]
fn an_unreachable_database_stops_start_up_naming_database_url() {
    let out = ai_team()
        .arg("migrate")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn migrate_creates_the_schema_in_a_sqlalchemy_style_sqlite_url() {
    let dir = temp_dir("migrate");
    let db = dir.join("nested").join("ai.db");
    let out = ai_team()
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite:///{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    // Applying again is a no-op.
    let again = ai_team()
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite:///{}", db.display()))
        .output()
        .unwrap();
    assert!(again.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_answers_health_and_logs_one_json_line_per_request() {
    let dir = temp_dir("serve");
    let mut child = ai_team()
        .args(["serve", "--port", "0"])
        .env(
            "DATABASE_URL",
            format!("sqlite:///{}", dir.join("a.db").display()),
        )
        // Any configured model: serving does not call it.
        .env("LLM_PROVIDER", "openai")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_MODEL", "gpt-4o-mini")
        .env("AI_TEAM_DATA_DIR", dir.join("data"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("a log line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if v["message"] == "listening" {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    let mut s = TcpStream::connect(&address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\":\"ok\""));

    let line = lines.next().unwrap().unwrap();
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(log["message"], "request");
    assert_eq!(log["method"], "GET");
    assert_eq!(log["route"], "/health");
    assert_eq!(log["status"], 200);
    assert!(log["latency_ms"].is_number());
    assert!(log["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

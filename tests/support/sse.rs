//! A small Server-Sent Events client for tests: reads a stream's frames
//! (`id`, `event`, `data`) as they arrive.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct SseFrame {
    pub id: Option<i64>,
    pub event: String,
    pub data: serde_json::Value,
}

pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
    /// When the stream ended (the server closed it).
    pub ended: bool,
}

impl SseClient {
    pub async fn connect(url: &str, last_event_id: Option<i64>) -> Self {
        let client = reqwest::Client::new();
        let mut req = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.expect("connect");
        assert_eq!(response.status(), 200, "SSE connect to {url}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            response,
            buffer: String::new(),
            ended: false,
        }
    }

    fn parse(block: &str) -> Option<SseFrame> {
        let mut frame = SseFrame {
            id: None,
            event: "message".into(),
            data: serde_json::Value::Null,
        };
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                frame.id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                frame.event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if data.is_empty() && frame.id.is_none() {
            return None;
        }
        frame.data = serde_json::from_str(&data).expect("data is JSON");
        Some(frame)
    }

    /// The next frame, or `None` when the stream ended or `timeout` passed.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseFrame> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..i + 2).collect();
                match Self::parse(&block) {
                    Some(f) => return Some(f),
                    None => continue,
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None) | Err(_)) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Event frames (heartbeats skipped) until `n` arrived or `timeout`.
    pub async fn events(&mut self, n: usize, timeout: Duration) -> Vec<SseFrame> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.next(left).await {
                Some(f) if f.event == "heartbeat" => {}
                Some(f) => out.push(f),
                None => break,
            }
        }
        out
    }
}

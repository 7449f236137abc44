//! GitHub webhook deliveries: the `X-Hub-Signature-256` check (HMAC-SHA256
//! of the raw body under the shared secret, compared in constant time) and
//! the parsing of `pull_request`, `check_run` and `check_suite` payloads
//! into a delivery the store can match to a workflow and apply.

use ai_team_core::delivery::{WebhookChange, WebhookDelivery, WebhookTarget};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::review::{check_run, check_suite, pull_request};

type HmacSha256 = Hmac<Sha256>;

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub sends it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex_encode(&mac.finalize().into_bytes()))
}

/// Whether `header` (the `X-Hub-Signature-256` value) is the signature of
/// `body` under `secret`. Anything but `sha256=` and 64 hex digits is
/// refused; the digests are compared in constant time. An empty secret
/// verifies nothing.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(given) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(hex_decode)
    else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    given.len() == expected.len() && bool::from(expected.as_slice().ct_eq(&given))
}

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Ping,
    /// An event this service does not follow.
    Ignored,
    Apply(Box<WebhookDelivery>),
}

fn numbers(prs: &Value) -> Vec<i64> {
    prs.as_array()
        .map(|a| a.iter().filter_map(|p| p["number"].as_i64()).collect())
        .unwrap_or_default()
}

/// Parses a verified delivery. `Err` names what the payload lacks.
pub fn parse(event: &str, delivery_id: &str, body: &Value) -> Result<Parsed, String> {
    let repository = || {
        body["repository"]["full_name"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "repository.full_name is missing".to_owned())
    };
    let action = body["action"].as_str().map(str::to_owned);
    let (target, change) = match event {
        "ping" => return Ok(Parsed::Ping),
        "pull_request" => {
            let repository = repository()?;
            let pr = &body["pull_request"];
            let update = pull_request(pr, &repository)
                .ok_or("pull_request lacks number, html_url, head.ref or base.ref")?;
            (
                WebhookTarget {
                    repository,
                    pr_numbers: vec![update.number],
                    head_branch: Some(update.head_branch.clone()),
                    title: Some(update.title.clone()),
                    head_sha: update.head_sha.clone(),
                },
                WebhookChange::PullRequest(update),
            )
        }
        "check_run" => {
            let run = &body["check_run"];
            let update = check_run(run).ok_or("check_run.id is missing")?;
            (
                WebhookTarget {
                    repository: repository()?,
                    pr_numbers: numbers(&run["pull_requests"]),
                    head_branch: run["check_suite"]["head_branch"]
                        .as_str()
                        .map(str::to_owned),
                    title: None,
                    head_sha: run["head_sha"].as_str().map(str::to_owned),
                },
                WebhookChange::Check(update),
            )
        }
        "check_suite" => {
            let suite = &body["check_suite"];
            let update = check_suite(suite).ok_or("check_suite.id is missing")?;
            (
                WebhookTarget {
                    repository: repository()?,
                    pr_numbers: numbers(&suite["pull_requests"]),
                    head_branch: suite["head_branch"].as_str().map(str::to_owned),
                    title: None,
                    head_sha: suite["head_sha"].as_str().map(str::to_owned),
                },
                WebhookChange::Check(update),
            )
        }
        _ => return Ok(Parsed::Ignored),
    };
    Ok(Parsed::Apply(Box::new(WebhookDelivery {
        delivery_id: delivery_id.to_owned(),
        event: event.to_owned(),
        action,
        target,
        change,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The example of GitHub's "Validating webhook deliveries" page.
    #[test]
    fn githubs_documented_example_verifies() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(header)
        ));
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let secret = b"s3cret";
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = sign(secret, body);
        assert!(verify(secret, body, Some(&good)));
        assert!(!verify(secret, body, None));
        assert!(!verify(secret, body, Some("")));
        assert!(!verify(b"other", body, Some(&good)));
        assert!(!verify(b"", body, Some(&sign(b"", body))));
        assert!(!verify(
            secret,
            br#"{"zen":"Keep it logically awesome!"}"#,
            Some(&good)
        ));
        assert!(!verify(
            secret,
            body,
            Some(&good.replace("sha256=", "sha1="))
        ));
        assert!(!verify(secret, body, Some(&good[..good.len() - 2])));
        assert!(!verify(secret, body, Some("sha256=zz")));
    }

    #[test]
    fn unknown_events_are_ignored_and_bad_payloads_named() {
        assert_eq!(parse("push", "d", &json!({})).unwrap(), Parsed::Ignored);
        assert_eq!(parse("ping", "d", &json!({})).unwrap(), Parsed::Ping);
        assert!(parse("check_run", "d", &json!({"check_run": {"id": 1}})).is_err());
        assert!(
            parse(
                "pull_request",
                "d",
                &json!({"repository": {"full_name": "o/r"}})
            )
            .is_err()
        );
    }
}

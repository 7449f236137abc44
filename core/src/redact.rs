//! Keeps secrets out of what is written (`AI_TEAM_REDACT_SENSITIVE`): one
//! pass of patterns over the whole text (not word by word, so a secret on
//! its own line, inside quotes or glued to punctuation is found), plus
//! values under sensitive keys of JSON bodies. Applied before a prompt,
//! answer, message, call body, blob, checkpoint, event or log line reaches
//! the database, a blob store or a log.
//!
//! The shapes: OpenAI keys (`sk-…`, `sk-proj-…`), AWS access key ids
//! (`AKIA…`/`ASIA…`) and secret keys (40 characters after
//! `aws_secret_access_key` and similar, or next to an access key id),
//! GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`),
//! Slack tokens (`xox[abprs]-…`, `xapp-…`), JWTs, passwords inside URLs
//! (`scheme://user:PASSWORD@host`), Azure `AccountKey=`/`SharedAccessKey=`
//! (and SAS `sig=`), PEM private keys, bearer/basic credentials, and
//! `password=`/`secret:`/`token=`-style pairs.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "access_key",
    "private_key",
    "credential",
    "connection_string",
];

fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // `max_tokens`, `prompt_tokens`: counts, not credentials.
    !k.ends_with("tokens") && SENSITIVE.iter().any(|s| k.contains(s))
}

/// Redacts a JSON value in place.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_sensitive_key(k) && val.is_string() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

/// A redacted copy of a JSON value.
pub fn redacted_value(v: &Value) -> Value {
    let mut v = v.clone();
    redact_value(&mut v);
    v
}

/// Redacts secrets inside free text.
pub fn redact_text(text: &str) -> String {
    redact(text).into_owned()
}

/// How a match is replaced: the whole match, or only one group of it
/// (the rest, such as `password=` or `https://user:`, is kept).
enum Keep {
    /// Replace the whole match.
    Nothing,
    /// Replace group `n`, keep the text around it.
    AllBut(usize),
}

struct Pattern {
    re: Regex,
    keep: Keep,
    /// Whether the group to replace really is a secret (filters prose that
    /// matches the shape, e.g. `Basic authentication`).
    check: fn(&str) -> bool,
}

fn any(_: &str) -> bool {
    true
}

/// A credential-looking value after `key:` — prose ("Password: must be
/// long") is left alone: a value needs a digit or a symbol.
fn credential_like(v: &str) -> bool {
    v.len() >= 3 && v.chars().any(|c| !c.is_alphabetic())
}

/// A bearer token: anything but a lower-case word ("bearer tokens are…").
fn token_like(v: &str) -> bool {
    !v.chars().all(|c| c.is_ascii_lowercase())
}

/// A value assigned to a sensitive name: not code that reads it from
/// elsewhere (`password = request.form["password"]`, `token=None`,
/// `secret = os.environ.get(…)`), which says nothing secret.
fn assigned_secret(v: &str) -> bool {
    let literal = matches!(
        v.to_ascii_lowercase().as_str(),
        "none" | "null" | "nil" | "true" | "false" | "undefined" | "\"\"" | "''"
    );
    let dotted_name = v.contains('.')
        && v.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    !(literal || dotted_name || v.contains('(') || v.contains('['))
}

/// Base64 of `user:password` mixes cases or has digits, `+`, `/`, `=`;
/// a word after "Basic" ("authentication", "Authentication") does not.
fn base64_like(v: &str) -> bool {
    let upper = v.chars().filter(char::is_ascii_uppercase).count();
    let lower = v.chars().filter(char::is_ascii_lowercase).count();
    (upper >= 2 && lower >= 2)
        || v.chars()
            .any(|c| c.is_ascii_digit() || matches!(c, '+' | '/' | '='))
}

/// A 40-character AWS secret key: mixed case (a git sha is lower-case hex).
fn aws_secret_like(v: &str) -> bool {
    v.chars().any(|c| c.is_ascii_uppercase()) && v.chars().any(|c| c.is_ascii_lowercase())
}

fn pattern(re: &str, keep: Keep, check: fn(&str) -> bool) -> Pattern {
    Pattern {
        re: Regex::new(re).expect("redaction patterns are valid"),
        keep,
        check,
    }
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    vec![
        // PEM private keys, whole blocks.
        pattern(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            Keep::Nothing,
            any,
        ),
        // scheme://user:PASSWORD@host
        pattern(
            r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]*://[^\s:/@]*:([^\s@/]+)@",
            Keep::AllBut(1),
            any,
        ),
        // JWT: header.payload.signature (the signature may be empty).
        pattern(
            r"(?-u:\b)eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            Keep::Nothing,
            any,
        ),
        // OpenAI: sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…
        pattern(r"(?-u:\b)sk-[A-Za-z0-9_\-]{16,}", Keep::Nothing, any),
        // GitHub classic and fine-grained tokens.
        pattern(
            r"(?-u:\b)(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",
            Keep::Nothing,
            any,
        ),
        pattern(r"(?-u:\b)github_pat_[A-Za-z0-9_]{20,}", Keep::Nothing, any),
        // Slack bot/user/app tokens.
        pattern(
            r"(?-u:\b)xox[abposre]-[A-Za-z0-9\-]{10,}",
            Keep::Nothing,
            any,
        ),
        pattern(r"(?-u:\b)xapp-[A-Za-z0-9\-]{10,}", Keep::Nothing, any),
        // AWS secret access key after its name.
        pattern(
            r#"(?i)(?:aws[_\- ]?secret(?:[_\- ]?access)?(?:[_\- ]?key)?|secret[_\- ]?access[_\- ]?key)["']?\s*(?:[:=]|=>|\s)\s*["']?([A-Za-z0-9/+]{40,})"#,
            Keep::AllBut(1),
            any,
        ),
        // AWS access key ids (long-term and temporary).
        pattern(
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}(?-u:\b)",
            Keep::Nothing,
            any,
        ),
        // Azure storage and Service Bus keys, SAS signatures.
        pattern(
            r#"(?i)(?-u:\b)(?:AccountKey|SharedAccessKey|SharedAccessSignature|sig)=([^;\s"'&<>\\]+)"#,
            Keep::AllBut(1),
            any,
        ),
        // Bearer and Basic credentials.
        pattern(
            r"(?i)(?-u:\b)bearer\s+([A-Za-z0-9._~+/=\-]{3,})",
            Keep::AllBut(1),
            token_like,
        ),
        pattern(
            r"(?i)(?-u:\b)basic\s+([A-Za-z0-9+/]{8,}={0,2})",
            Keep::AllBut(1),
            base64_like,
        ),
        // key=value with a sensitive key: any value but code reading it.
        pattern(
            r#"(?i)(?-u:\b)(?:password|passwd|pwd|secret|client_secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|token|private[_\-]?key)["']?\s*=\s*("[^"\n\\]*"|'[^'\n\\]*'|[^\s,;&"'<>)\]}\\]+)"#,
            Keep::AllBut(1),
            assigned_secret,
        ),
        // key: value with a sensitive key: a value that looks like a
        // credential (prose after "Password:" is kept).
        pattern(
            r#"(?i)(?-u:\b)(?:password|passwd|pwd|secret|client_secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|token|private[_\-]?key)["']?\s*:\s*("[^"\n\\]*"|'[^'\n\\]*'|[^\s,;&"'<>)\]}\\]+)"#,
            Keep::AllBut(1),
            credential_like,
        ),
    ]
});

/// A bare 40-character secret key next to an access key id (`AKIA… /
/// wJalr…`): only looked for when the text holds an access key id.
static AWS_KEY_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)").expect("valid pattern")
});
static BARE_AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)")
        .expect("valid pattern")
});

fn replace_pattern<'t>(text: Cow<'t, str>, p: &Pattern) -> Cow<'t, str> {
    if !p.re.is_match(&text) {
        return text;
    }
    let hay: &str = &text;
    let replaced = p.re.replace_all(hay, |c: &Captures<'_>| {
        let whole = c.get(0).map_or("", |m| m.as_str());
        match p.keep {
            Keep::Nothing if (p.check)(whole) => REDACTED.to_owned(),
            Keep::AllBut(n) => match c.get(n) {
                // Already redacted (a second pass): left as it is.
                Some(g) if (p.check)(g.as_str()) && !hay[g.start()..].starts_with(REDACTED) => {
                    let start = g.start() - c.get(0).map_or(0, |m| m.start());
                    let end = start + g.len();
                    format!("{}{REDACTED}{}", &whole[..start], &whole[end..])
                }
                _ => whole.to_owned(),
            },
            Keep::Nothing => whole.to_owned(),
        }
    });
    Cow::Owned(replaced.into_owned())
}

/// The text with every secret shape replaced by `[REDACTED]`; borrowed
/// when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    let had_key_id = AWS_KEY_ID.is_match(text);
    let mut out = Cow::Borrowed(text);
    for p in PATTERNS.iter() {
        out = replace_pattern(out, p);
    }
    if had_key_id {
        let bare = Pattern {
            re: BARE_AWS_SECRET.clone(),
            keep: Keep::AllBut(1),
            check: aws_secret_like,
        };
        out = replace_pattern(out, &bare);
    }
    out
}

/// Whether the text holds something `redact` would replace.
pub fn has_secret(text: &str) -> bool {
    matches!(redact(text), Cow::Owned(ref s) if s != text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_redacted(text: &str, secret: &str) {
        let r = redact_text(text);
        assert!(!r.contains(secret), "{secret} leaked from {text:?}: {r:?}");
        assert!(r.contains(REDACTED), "{r}");
    }

    #[test]
    fn sensitive_keys_and_key_shaped_words_are_redacted() {
        let mut v = json!({
            "api_key": "abc", "headers": {"Authorization": "Bearer xyz"},
            "messages": [{"content": "use sk-proj-0123456789abcdefXYZ and password=hunter2, token: t0k"}],
            "max_tokens": 5
        });
        redact_value(&mut v);
        let s = v.to_string();
        for secret in [
            "abc",
            "xyz",
            "sk-proj-0123456789abcdefXYZ",
            "hunter2",
            "t0k",
        ] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
        assert_eq!(v["max_tokens"], 5, "token counts are not secrets");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for t in [
            "Reset the password via email; tokens expire after 1 hour.",
            "Password: must be long. Basic authentication is refused.",
            "See https://example.com/a/b?x=1 and git sha 3f786850e387550fdab836ed7e6dc881de23001b.",
            "fn task-runner-for-everything() {}",
            "The secret of good code is tests.",
            "password = request.form[\"password\"]",
            "token = os.environ.token; secret=None",
            "Send bearer tokens over TLS only.",
        ] {
            assert_eq!(redact_text(t), t);
        }
        assert_eq!(
            redact_text("Authorization: Bearer abc.def"),
            "Authorization: Bearer [REDACTED]"
        );
    }

    #[test]
    fn openai_keys_on_their_own_line_are_redacted() {
        assert_redacted(
            "key:\nsk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOpQrStUvWx\nend",
            "Ab12Cd34Ef56Gh78Ij90",
        );
        assert_redacted(
            "OPENAI_API_KEY=\"sk-0123456789abcdefABCDEF0123\"",
            "0123456789abcdefABCDEF",
        );
    }

    #[test]
    fn aws_key_pairs_are_redacted() {
        let text = "AWS creds: AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_redacted(text, "AKIAIOSFODNN7EXAMPLE");
        assert_redacted(text, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_redacted(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        );
        assert_redacted(
            "\"AWS_SECRET_ACCESS_KEY\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
            "wJalrXUtnFEMI",
        );
        assert_redacted(
            "temporary ASIAY34FZKBOKMUTVV7A here",
            "ASIAY34FZKBOKMUTVV7A",
        );
    }

    #[test]
    fn github_tokens_are_redacted() {
        for t in [
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghr_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS",
        ] {
            assert_redacted(&format!("(token:{t})"), t);
        }
    }

    #[test]
    fn slack_tokens_are_redacted() {
        for t in [
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxp-123456789012-123456789012-123456789012-abcdef0123456789",
            "xoxa-2-123456789012-abcdef",
            "xapp-1-A0123456789-1234567890123-abcdef0123",
        ] {
            assert_redacted(&format!("slack:{t}."), t);
        }
    }

    #[test]
    fn jwts_are_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_redacted(&format!("cookie={jwt};"), "dozjgNryP4J3jVmNHl0w5N");
        assert_redacted(&format!("id token\n{jwt}\n"), "eyJzdWIiOiIxMjM0NTY3ODkwIn0");
    }

    #[test]
    fn passwords_inside_urls_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_text("DATABASE_URL=postgres://app:s3cr3t-Pa55@db.internal:5432/shop"),
            "DATABASE_URL=postgres://app:[REDACTED]@db.internal:5432/shop"
        );
        assert_redacted("redis://:hunter22@cache:6379/0", "hunter22");
        assert_redacted(
            "see https://bob:pa%24%24word@git.example.com/x.git",
            "pa%24%24word",
        );
    }

    #[test]
    fn azure_keys_are_redacted() {
        let conn = "DefaultEndpointsProtocol=https;AccountName=shop;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net";
        assert_redacted(conn, "Eby8vdM02xNOcqFlqUwJ");
        assert!(redact_text(conn).contains("AccountName=shop"));
        assert_redacted(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0c2VjcmV0=",
            "c2VjcmV0c2VjcmV0",
        );
    }

    #[test]
    fn generic_password_pairs_are_redacted() {
        assert_redacted("login with password=hunter2!", "hunter2");
        assert_redacted("PASSWORD: 'correct horse battery'", "correct horse");
        assert_redacted("\"client_secret\": \"x9-y8z7\"", "x9-y8z7");
        assert_redacted("api_key=abcdef", "abcdef");
    }

    #[test]
    fn private_keys_and_basic_credentials_are_redacted() {
        assert_redacted(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIEpAIBAAKCAQEA",
        );
        assert_redacted("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz");
    }

    #[test]
    fn redaction_is_idempotent_and_finds_secrets() {
        let once = redact_text("password=hunter2 sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn");
        assert_eq!(redact_text(&once), once);
        assert!(has_secret("password=hunter2"));
        assert!(!has_secret("no secrets here"));
        assert!(!has_secret(&once));
    }
}

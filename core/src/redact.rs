//! Keeps secrets out of what is written (`AI_TEAM_REDACT_SENSITIVE`):
//! values under sensitive keys, bearer tokens, API-key-shaped words and
//! `key=value` pairs with a sensitive key are replaced before a request
//! or response reaches the database, a blob or a log.

use serde_json::Value;

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
        Value::String(s) => *s = redact_text(s),
        _ => {}
    }
}

/// Redacts secrets inside free text, word by word.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_was_bearer = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '(' | ')'));
        let secret_word = previous_was_bearer
            || looks_like_key(bare)
            || bare
                .split_once(['=', ':'])
                .is_some_and(|(k, v)| !v.is_empty() && is_sensitive_key(k));
        previous_was_bearer =
            bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("basic");
        if secret_word && !bare.is_empty() {
            out.push_str(&word.replace(bare, REDACTED));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Provider key shapes: OpenAI `sk-…`, GitHub `ghp_…`/`github_pat_…`,
/// AWS access key ids, Slack `xox…`.
fn looks_like_key(w: &str) -> bool {
    let long_tail = |p: &str| w.strip_prefix(p).is_some_and(|t| t.len() >= 16);
    long_tail("sk-")
        || long_tail("ghp_")
        || long_tail("github_pat_")
        || long_tail("xoxb-")
        || (w.len() == 20
            && w.starts_with("AKIA")
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_keys_and_key_shaped_words_are_redacted() {
        let mut v = json!({
            "api_key": "abc", "headers": {"Authorization": "Bearer xyz"},
            "messages": [{"content": "use sk-proj-0123456789abcdefXYZ and password=hunter2, token: t0k"}],
            "max_tokens": 5
        });
        redact_value(&mut v);
        let s = v.to_string();
        for secret in ["abc", "xyz", "sk-proj-0123456789abcdefXYZ", "hunter2"] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
        assert_eq!(v["max_tokens"], 5, "token counts are not secrets");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let t = "Reset the password via email; tokens expire after 1 hour.";
        assert_eq!(redact_text(t), t);
        assert_eq!(
            redact_text("Authorization: Bearer abc.def"),
            "Authorization: Bearer [REDACTED]"
        );
    }
}

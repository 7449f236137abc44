//! A Jira Cloud v3 issue (`GET /rest/api/3/issue/{key}?expand=names`)
//! turned into a [`Ticket`], as pure functions: which field holds the
//! acceptance criteria differs per Jira site (a custom field with a
//! site-specific id), so it is the configured id, else the field whose
//! name says so, else a custom field whose text reads like criteria.

use ai_team_core::ticket::Ticket;
use serde_json::Value;

use super::adf;

/// A rich-text (ADF), plain-text or list field value as Markdown.
pub fn field_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.trim().to_owned(),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("doc") => {
            adf::to_markdown(value)
        }
        Value::Object(o) => o
            .get("value")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Value::Array(items) => items
            .iter()
            .filter_map(field_text)
            .map(|t| format!("- {t}"))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

fn looks_like_criteria_name(name: &str) -> bool {
    let n = name.to_lowercase();
    n.contains("acceptance criteria") || n.contains("acceptance-criteria") || n == "ac"
}

fn looks_like_criteria_text(text: &str) -> bool {
    let t = text.trim_start_matches(['#', '*', ' ']).to_lowercase();
    t.starts_with("acceptance criteria")
        || (t.contains("given ") && t.contains(" then ") && t.contains("when "))
}

/// The id of the acceptance-criteria field of this issue, if any.
pub fn criteria_field(issue: &Value, configured: Option<&str>) -> Option<String> {
    let fields = issue["fields"].as_object()?;
    if let Some(id) = configured {
        return fields.contains_key(id).then(|| id.to_owned());
    }
    if let Some(names) = issue["names"].as_object() {
        let mut ids: Vec<&String> = names
            .iter()
            .filter(|(_, n)| n.as_str().is_some_and(looks_like_criteria_name))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        if let Some(id) = ids.into_iter().find(|id| !fields[*id].is_null()) {
            return Some(id.clone());
        }
    }
    let mut custom: Vec<&String> = fields
        .keys()
        .filter(|k| k.starts_with("customfield_"))
        .collect();
    custom.sort();
    custom
        .into_iter()
        .find(|k| field_text(&fields[*k]).is_some_and(|t| looks_like_criteria_text(&t)))
        .cloned()
}

/// The ticket of an issue response; `None` when it has no key or summary
/// (not an issue).
pub fn ticket(issue: &Value, base_url: &str, criteria: Option<&str>) -> Option<Ticket> {
    let key = issue["key"].as_str()?.to_owned();
    let fields = &issue["fields"];
    let summary = fields["summary"].as_str()?.trim().to_owned();
    let description = field_text(&fields["description"]).unwrap_or_default();
    let acceptance_criteria = criteria_field(issue, criteria)
        .and_then(|id| field_text(&fields[id.as_str()]))
        .map(|t| {
            // The field's own heading would repeat ours. The index is
            // taken from the text itself: lower-casing can change byte
            // lengths (U+212A KELVIN SIGN becomes a one-byte `k`).
            match t.find('\n') {
                Some(i)
                    if looks_like_criteria_name(
                        t[..i]
                            .trim_start_matches(['#', '*', ' '])
                            .trim_end_matches([':', '*']),
                    ) =>
                {
                    t[i..].trim().to_owned()
                }
                _ => t,
            }
        });
    let labels = fields["labels"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let priority = fields["priority"]["name"].as_str().map(str::to_owned);
    Some(Ticket {
        url: Some(format!("{}/browse/{key}", base_url.trim_end_matches('/'))),
        key,
        summary,
        description,
        acceptance_criteria,
        labels,
        priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issue(fields: Value, names: Value) -> Value {
        json!({"key": "SHOP-1", "fields": fields, "names": names})
    }

    #[test]
    fn criteria_come_from_the_configured_field_else_by_name_else_by_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Given a user, when X, then Y"}]}]});
        let i = issue(
            json!({"summary": "S", "customfield_10100": "other", "customfield_10200": doc}),
            json!({"summary": "Summary", "customfield_10100": "Team", "customfield_10200": "Acceptance Criteria"}),
        );
        assert_eq!(
            criteria_field(&i, None).as_deref(),
            Some("customfield_10200")
        );
        assert_eq!(
            criteria_field(&i, Some("customfield_10100")).as_deref(),
            Some("customfield_10100")
        );
        assert_eq!(criteria_field(&i, Some("customfield_9")), None);
        let unnamed = issue(
            json!({"summary": "S", "customfield_1": "Given a, when b, then c", "customfield_0": 3}),
            json!({}),
        );
        assert_eq!(
            criteria_field(&unnamed, None).as_deref(),
            Some("customfield_1")
        );
        let none = issue(json!({"summary": "S", "customfield_1": "x"}), json!({}));
        assert_eq!(criteria_field(&none, None), None);
    }

    #[test]
    fn an_issue_becomes_a_ticket() {
        let i = issue(
            json!({
                "summary": " Reset password ",
                "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Body"}]}]},
                "labels": ["auth"],
                "priority": {"name": "High", "id": "2"},
                "customfield_10035": "Acceptance criteria:\n- mail sent",
            }),
            json!({"customfield_10035": "Acceptance criteria"}),
        );
        let t = ticket(&i, "https://x.atlassian.net/", None).unwrap();
        assert_eq!(t.summary, "Reset password");
        assert_eq!(t.description, "Body");
        assert_eq!(t.acceptance_criteria.as_deref(), Some("- mail sent"));
        assert_eq!(t.labels, ["auth"]);
        assert_eq!(t.priority.as_deref(), Some("High"));
        assert_eq!(
            t.url.as_deref(),
            Some("https://x.atlassian.net/browse/SHOP-1")
        );
        assert!(ticket(&json!({"errorMessages": []}), "x", None).is_none());
    }

    #[test]
    fn criteria_with_a_kelvin_sign_do_not_panic() {
        for text in [
            "\u{212A}elvin criteria:\n- 300 \u{212A}",
            "Acceptance criteria \u{212A}:\n- 300 \u{212A}",
            "\u{212A}\u{212A}\u{212A}\n- x",
        ] {
            let i = issue(
                json!({"summary": "S", "customfield_10035": text}),
                json!({"customfield_10035": "Acceptance criteria"}),
            );
            let t = ticket(&i, "https://x", None).unwrap();
            assert!(t.acceptance_criteria.is_some(), "{text}");
        }
    }
}

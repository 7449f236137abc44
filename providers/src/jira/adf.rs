//! Atlassian Document Format (Jira Cloud v3's rich text, a JSON tree) to
//! Markdown, as pure functions: the team reads the story as Markdown, and
//! lists, code blocks and tables must survive the trip. Unknown nodes
//! degrade to their text rather than vanish; nothing here can fail.

use serde_json::Value;

/// The Markdown of an ADF document (or of any ADF node).
pub fn to_markdown(doc: &Value) -> String {
    let out = if doc["type"] == "doc" {
        blocks(children(doc), "\n\n")
    } else {
        block(doc).unwrap_or_default()
    };
    out.trim_end().to_owned()
}

fn children(node: &Value) -> &[Value] {
    node["content"].as_array().map_or(&[], Vec::as_slice)
}

fn attr<'a>(node: &'a Value, name: &str) -> &'a Value {
    &node["attrs"][name]
}

/// Block nodes rendered and joined (blank line between blocks; a single
/// newline inside a tight list item).
fn blocks(nodes: &[Value], separator: &str) -> String {
    nodes
        .iter()
        .filter_map(block)
        .filter(|b| !b.trim().is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

fn block(node: &Value) -> Option<String> {
    let kind = node["type"].as_str().unwrap_or_default();
    Some(match kind {
        "paragraph" => inline(children(node)),
        "heading" => {
            let level = attr(node, "level").as_u64().unwrap_or(1).clamp(1, 6) as usize;
            format!("{} {}", "#".repeat(level), inline(children(node)))
        }
        "bulletList" => list(node, None),
        "orderedList" => list(node, Some(attr(node, "order").as_u64().unwrap_or(1))),
        "taskList" => task_list(node),
        "decisionList" => children(node)
            .iter()
            .map(|item| indent_after("- ", &item_body(item)))
            .collect::<Vec<_>>()
            .join("\n"),
        "codeBlock" => code_block(node),
        "blockquote" => quote(&blocks(children(node), "\n\n")),
        "panel" => panel(node),
        "rule" => "---".into(),
        "table" => table(node),
        "expand" | "nestedExpand" => {
            let title = attr(node, "title").as_str().unwrap_or_default();
            let body = blocks(children(node), "\n\n");
            if title.is_empty() {
                body
            } else {
                format!("**{title}**\n\n{body}")
            }
        }
        "mediaSingle" | "mediaGroup" => blocks(children(node), "\n"),
        "media" => {
            let name = attr(node, "alt")
                .as_str()
                .or_else(|| attr(node, "id").as_str())
                .unwrap_or("file");
            format!("[attachment: {name}]")
        }
        "blockCard" | "embedCard" => attr(node, "url").as_str().unwrap_or_default().to_owned(),
        "listItem" | "taskItem" | "decisionItem" => item_body(node),
        "text" | "hardBreak" | "mention" | "emoji" | "date" | "status" | "inlineCard" => {
            inline(std::slice::from_ref(node))
        }
        _ if node["content"].is_array() => {
            // Unknown container: keep what it holds, block or inline.
            let inner = children(node);
            if inner.iter().all(is_inline) {
                inline(inner)
            } else {
                blocks(inner, "\n\n")
            }
        }
        _ => return node["text"].as_str().map(str::to_owned),
    })
}

fn is_inline(node: &Value) -> bool {
    matches!(
        node["type"].as_str(),
        Some(
            "text"
                | "hardBreak"
                | "mention"
                | "emoji"
                | "date"
                | "status"
                | "inlineCard"
                | "placeholder"
        )
    )
}

/// An item's blocks, tight: nested lists follow their paragraph directly.
fn item_body(item: &Value) -> String {
    let inner = children(item);
    if inner.iter().all(is_inline) {
        return inline(inner);
    }
    blocks(inner, "\n")
}

/// `marker` before the first line, its width of spaces before the others.
fn indent_after(marker: &str, body: &str) -> String {
    let pad = " ".repeat(marker.chars().count());
    let mut out = String::new();
    for (i, line) in body.lines().enumerate() {
        if i == 0 {
            out.push_str(marker);
            out.push_str(line);
        } else {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
    }
    if out.is_empty() {
        out.push_str(marker.trim_end());
    }
    out
}

fn list(node: &Value, start: Option<u64>) -> String {
    children(node)
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let marker = match start {
                Some(n) => format!("{}. ", n + i as u64),
                None => "- ".into(),
            };
            indent_after(&marker, &item_body(item))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn task_list(node: &Value) -> String {
    children(node)
        .iter()
        .map(|item| {
            if item["type"] == "taskList" {
                return indent_after("  ", &task_list(item));
            }
            let done = attr(item, "state").as_str() == Some("DONE");
            indent_after(if done { "- [x] " } else { "- [ ] " }, &item_body(item))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn code_block(node: &Value) -> String {
    let text: String = children(node)
        .iter()
        .filter_map(|t| t["text"].as_str())
        .collect();
    let language = attr(node, "language").as_str().unwrap_or_default();
    // A fence longer than any backtick run inside the code.
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "{fence}{language}\n{}\n{fence}",
        text.trim_end_matches('\n')
    )
}

fn quote(body: &str) -> String {
    body.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_owned()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A panel as a GitHub-style alert, which Markdown readers show as a
/// plain quote.
fn panel(node: &Value) -> String {
    let label = match attr(node, "panelType").as_str().unwrap_or("info") {
        "warning" => "WARNING",
        "error" => "CAUTION",
        "success" => "TIP",
        "note" => "IMPORTANT",
        _ => "NOTE",
    };
    format!("> [!{label}]\n{}", quote(&blocks(children(node), "\n\n")))
}

fn table(node: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header_row = false;
    for (i, row) in children(node).iter().enumerate() {
        let mut cells = Vec::new();
        let mut all_headers = true;
        for cell in children(row) {
            all_headers &= cell["type"] == "tableHeader";
            let text = blocks(children(cell), "\n")
                .replace('|', "\\|")
                .replace('\n', "<br>");
            let span = attr(cell, "colspan").as_u64().unwrap_or(1).clamp(1, 64);
            cells.push(text);
            for _ in 1..span {
                cells.push(String::new());
            }
        }
        if i == 0 {
            header_row = all_headers && !cells.is_empty();
        }
        rows.push(cells);
    }
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    for r in &mut rows {
        r.resize(width, String::new());
    }
    let line = |cells: &[String]| format!("| {} |", cells.join(" | "));
    let separator = format!("|{}", " --- |".repeat(width));
    let mut out = Vec::new();
    let body: &[Vec<String>] = if header_row {
        out.push(line(&rows[0]));
        &rows[1..]
    } else {
        // Markdown tables need a header: an empty one keeps every row data.
        out.push(line(&vec![String::new(); width]));
        &rows
    };
    out.push(separator);
    out.extend(body.iter().map(|r| line(r)));
    out.join("\n")
}

/// Inline nodes (text with marks, breaks, mentions, …) as one string.
pub fn inline(nodes: &[Value]) -> String {
    let mut out = String::new();
    for node in nodes {
        match node["type"].as_str().unwrap_or_default() {
            "text" => out.push_str(&marked(
                node["text"].as_str().unwrap_or_default(),
                node["marks"].as_array().map_or(&[], Vec::as_slice),
            )),
            "hardBreak" => out.push_str("  \n"),
            "mention" => {
                let text = attr(node, "text").as_str().unwrap_or_default();
                if text.is_empty() {
                    out.push('@');
                    out.push_str(attr(node, "id").as_str().unwrap_or("someone"));
                } else if text.starts_with('@') {
                    out.push_str(text);
                } else {
                    out.push('@');
                    out.push_str(text);
                }
            }
            "emoji" => out.push_str(
                attr(node, "text")
                    .as_str()
                    .or_else(|| attr(node, "shortName").as_str())
                    .unwrap_or_default(),
            ),
            "date" => {
                let ms = attr(node, "timestamp")
                    .as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .or_else(|| attr(node, "timestamp").as_i64());
                if let Some(d) = ms.and_then(chrono::DateTime::from_timestamp_millis) {
                    out.push_str(&d.format("%Y-%m-%d").to_string());
                }
            }
            "status" => {
                out.push('[');
                out.push_str(attr(node, "text").as_str().unwrap_or_default());
                out.push(']');
            }
            "inlineCard" => {
                if let Some(url) = attr(node, "url").as_str() {
                    out.push('<');
                    out.push_str(url);
                    out.push('>');
                }
            }
            _ => {
                if let Some(t) = node["text"].as_str() {
                    out.push_str(t);
                } else if node["content"].is_array() {
                    out.push_str(&inline(children(node)));
                }
            }
        }
    }
    out
}

/// Text with its marks, the markers kept inside the whitespace (Markdown
/// ignores `** bold**`).
fn marked(text: &str, marks: &[Value]) -> String {
    if text.trim().is_empty() || marks.is_empty() {
        return text.to_owned();
    }
    let start = text.len() - text.trim_start().len();
    let end = text.trim_end().len();
    let (lead, core, trail) = (&text[..start], &text[start..end], &text[end..]);
    let has = |t: &str| marks.iter().any(|m| m["type"] == t);
    let mut s = core.to_owned();
    if has("code") {
        let tick = if s.contains('`') { "``" } else { "`" };
        let pad = if s.starts_with('`') || s.ends_with('`') {
            " "
        } else {
            ""
        };
        s = format!("{tick}{pad}{s}{pad}{tick}");
    }
    if has("em") {
        s = format!("*{s}*");
    }
    if has("strong") {
        s = format!("**{s}**");
    }
    if has("strike") {
        s = format!("~~{s}~~");
    }
    if let Some(href) = marks
        .iter()
        .find(|m| m["type"] == "link")
        .and_then(|link| link["attrs"]["href"].as_str())
    {
        s = format!("[{s}]({href})");
    }
    format!("{lead}{s}{trail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(t: &str) -> Value {
        json!({"type": "text", "text": t})
    }

    fn para(content: Vec<Value>) -> Value {
        json!({"type": "paragraph", "content": content})
    }

    fn doc(content: Vec<Value>) -> Value {
        json!({"type": "doc", "version": 1, "content": content})
    }

    #[test]
    fn paragraphs_and_headings() {
        let d = doc(vec![
            json!({"type": "heading", "attrs": {"level": 2}, "content": [text("Goal")]}),
            para(vec![text("First.")]),
            para(vec![text("Second.")]),
        ]);
        assert_eq!(to_markdown(&d), "## Goal\n\nFirst.\n\nSecond.");
    }

    #[test]
    fn marks_wrap_the_text_inside_its_spaces() {
        let d = doc(vec![para(vec![
            json!({"type": "text", "text": "bold ", "marks": [{"type": "strong"}]}),
            json!({"type": "text", "text": "it", "marks": [{"type": "em"}]}),
            text(" and "),
            json!({"type": "text", "text": "x()", "marks": [{"type": "code"}]}),
            text(", "),
            json!({"type": "text", "text": "docs", "marks": [{"type": "link", "attrs": {"href": "https://example.com/d"}}]}),
            text(", "),
            json!({"type": "text", "text": "gone", "marks": [{"type": "strike"}]}),
        ])]);
        assert_eq!(
            to_markdown(&d),
            "**bold** *it* and `x()`, [docs](https://example.com/d), ~~gone~~"
        );
    }

    #[test]
    fn nested_lists_indent_under_their_item() {
        let item = |content: Vec<Value>| json!({"type": "listItem", "content": content});
        let d = doc(vec![json!({"type": "bulletList", "content": [
            item(vec![para(vec![text("one")]), json!({"type": "orderedList", "attrs": {"order": 3}, "content": [
                item(vec![para(vec![text("three")])]),
                item(vec![para(vec![text("four")]), json!({"type": "bulletList", "content": [item(vec![para(vec![text("deep")])])]})]),
            ]})]),
            item(vec![para(vec![text("two")])]),
        ]})]);
        assert_eq!(
            to_markdown(&d),
            "- one\n  3. three\n  4. four\n     - deep\n- two"
        );
    }

    #[test]
    fn code_blocks_keep_language_and_text_verbatim() {
        let d = doc(vec![
            json!({"type": "codeBlock", "attrs": {"language": "python"},
            "content": [text("def f():\n    return `x`\n")]}),
        ]);
        assert_eq!(to_markdown(&d), "```python\ndef f():\n    return `x`\n```");
        let plain = doc(vec![
            json!({"type": "codeBlock", "content": [text("a ``` b")]}),
        ]);
        assert_eq!(to_markdown(&plain), "````\na ``` b\n````");
    }

    #[test]
    fn tables_become_pipe_tables() {
        let cell = |kind: &str, t: &str| json!({"type": kind, "content": [para(vec![text(t)])]});
        let d = doc(vec![json!({"type": "table", "content": [
            {"type": "tableRow", "content": [cell("tableHeader", "Field"), cell("tableHeader", "Rule")]},
            {"type": "tableRow", "content": [cell("tableCell", "email"), cell("tableCell", "a|b")]},
            {"type": "tableRow", "content": [{"type": "tableCell", "attrs": {"colspan": 2}, "content": [para(vec![text("wide")])]}]},
        ]})]);
        assert_eq!(
            to_markdown(&d),
            "| Field | Rule |\n| --- | --- |\n| email | a\\|b |\n| wide |  |"
        );
    }

    #[test]
    fn breaks_mentions_emoji_dates_status_and_cards() {
        let d = doc(vec![para(vec![
            text("Hi"),
            json!({"type": "hardBreak"}),
            json!({"type": "mention", "attrs": {"id": "5b10", "text": "@Ada Lovelace"}}),
            text(" "),
            json!({"type": "emoji", "attrs": {"shortName": ":smile:", "text": "😄"}}),
            text(" due "),
            json!({"type": "date", "attrs": {"timestamp": "1735689600000"}}),
            text(" "),
            json!({"type": "status", "attrs": {"text": "IN REVIEW", "color": "blue"}}),
            text(" "),
            json!({"type": "inlineCard", "attrs": {"url": "https://example.com/x"}}),
        ])]);
        assert_eq!(
            to_markdown(&d),
            "Hi  \n@Ada Lovelace 😄 due 2025-01-01 [IN REVIEW] <https://example.com/x>"
        );
    }

    #[test]
    fn panels_quotes_rules_and_tasks() {
        let d = doc(vec![
            json!({"type": "panel", "attrs": {"panelType": "warning"}, "content": [para(vec![text("Careful.")])]}),
            json!({"type": "blockquote", "content": [para(vec![text("Said.")]), para(vec![text("Twice.")])]}),
            json!({"type": "rule"}),
            json!({"type": "taskList", "attrs": {"localId": "t"}, "content": [
                {"type": "taskItem", "attrs": {"state": "DONE", "localId": "1"}, "content": [text("done")]},
                {"type": "taskItem", "attrs": {"state": "TODO", "localId": "2"}, "content": [text("todo")]},
            ]}),
        ]);
        assert_eq!(
            to_markdown(&d),
            "> [!WARNING]\n> Careful.\n\n> Said.\n>\n> Twice.\n\n---\n\n- [x] done\n- [ ] todo"
        );
    }

    #[test]
    fn unknown_or_malformed_nodes_degrade_to_text() {
        assert_eq!(to_markdown(&json!(null)), "");
        assert_eq!(to_markdown(&json!({"type": "doc"})), "");
        let d = doc(vec![
            json!({"type": "futureThing", "content": [text("kept")]}),
            json!(42),
        ]);
        assert_eq!(to_markdown(&d), "kept");
    }
}

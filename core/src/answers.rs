//! What the agents' answers mean: code files from fenced blocks that name
//! a file (in the info string, or as a `file:` comment on the first line),
//! the product manager's acceptance criteria, and the reviewer's verdict
//! with the changes requested. Answers from small models are messy: every
//! parser degrades to "nothing found" rather than failing.

use serde::{Deserialize, Serialize};

use crate::codehost::{is_ci_path, normalise_path};

/// One file an answer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedFile {
    /// Path relative to the repository root, normalised.
    pub path: String,
    /// The fence's language, else the extension's (see `language_of`); `None` if neither.
    pub language: Option<String>,
    /// The file's full text.
    pub content: String,
}

/// The files of an answer, and the paths that were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFiles {
    /// Files the policy allows; a later block for a path replaces the earlier.
    pub files: Vec<ParsedFile>,
    /// Paths refused, as the answer gave them: outside the repository, under `.git`, or CI paths the policy does not allow.
    pub refused: Vec<String>,
}

/// Which paths an answer may write besides ordinary repository files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathPolicy {
    /// `.github/workflows/…`, `.gitmodules`, `.gitattributes`
    /// (`AI_TEAM_ALLOW_CI_PATHS`); off, they are refused.
    pub allow_ci_paths: bool,
}

/// Fenced blocks (``` or ~~~) naming a file, under the default policy
/// (no CI or git-metadata paths).
pub fn code_files(text: &str) -> ParsedFiles {
    code_files_with(text, PathPolicy::default())
}

/// Fenced blocks (``` or ~~~) naming a file. A later block with the same
/// path replaces the earlier one; a block with no file name is prose. A
/// path that escapes the repository, has a `.git` component, or is a CI
/// path the policy does not allow is refused.
pub fn code_files_with(text: &str, policy: PathPolicy) -> ParsedFiles {
    let mut out = ParsedFiles::default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let fence = if trimmed.starts_with("```") {
            "```"
        } else if trimmed.starts_with("~~~") {
            "~~~"
        } else {
            continue;
        };
        let info = trimmed
            .trim_start_matches(fence.chars().next().unwrap_or('`'))
            .trim();
        let mut body: Vec<&str> = Vec::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with(fence)
                && l.trim()
                    .trim_start_matches(fence.chars().next().unwrap_or('`'))
                    .is_empty()
            {
                break;
            }
            body.push(l);
        }
        let (language, mut path) = info_string(info);
        if path.is_none()
            && let Some(first) = body.first()
            && let Some(p) = file_comment(first)
        {
            path = Some(p);
            body.remove(0);
        }
        let Some(raw) = path else { continue };
        match normalise_path(&raw).filter(|p| policy.allow_ci_paths || !is_ci_path(p)) {
            Some(p) => {
                let mut content = body.join("\n");
                content.push('\n');
                let language = language.or_else(|| language_of(&p));
                out.files.retain(|f| f.path != p);
                out.files.push(ParsedFile {
                    path: p,
                    language,
                    content,
                });
            }
            None => out.refused.push(raw),
        }
    }
    out
}

/// `python app/reset.py`, `app/reset.py`, `python:app/reset.py`,
/// `python title="app/reset.py"` → (language, path).
fn info_string(info: &str) -> (Option<String>, Option<String>) {
    let mut words = info.split_whitespace();
    let Some(first) = words.next() else {
        return (None, None);
    };
    if let Some((lang, path)) = first.split_once(':')
        && looks_like_path(path)
    {
        return (Some(lang.to_lowercase()), Some(path.to_owned()));
    }
    if looks_like_path(first) {
        return (None, Some(first.to_owned()));
    }
    // Only the word right after the language names a file: prose that
    // follows on the fence line ("```python # the code for a token.") does not.
    let rest: Option<String> = words
        .next()
        .map(|w| {
            w.trim_start_matches("title=")
                .trim_start_matches("file=")
                .trim_matches('"')
                .to_owned()
        })
        .filter(|w| looks_like_path(w));
    (Some(first.to_lowercase()), rest)
}

fn looks_like_path(s: &str) -> bool {
    let name = s.rsplit('/').next().unwrap_or(s);
    // A file name with an extension (`reset.py`), or a path (`bin/run`).
    let has_extension = name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric())
    });
    (s.contains('/') || has_extension)
        && !s.starts_with("http")
        && name.len() > 1
        && s.chars()
            .all(|c| c.is_alphanumeric() || "._-/\\".contains(c))
}

/// `# file: app/reset.py`, `// file: src/a.ts`, `<!-- file: web/a.html -->`.
fn file_comment(line: &str) -> Option<String> {
    let l = line.trim();
    let rest = ["#", "//", "--", "<!--", "/*", ";"]
        .iter()
        .find_map(|p| l.strip_prefix(p))?
        .trim();
    // Compared on the bytes of `rest` itself: lower-casing can change
    // lengths, so an index into the lower-cased text may not fit `rest`.
    let after = ["file:", "filename:"].iter().find_map(|p| {
        rest.get(..p.len())
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| &rest[p.len()..])
    })?;
    let p = after
        .trim()
        .trim_end_matches("-->")
        .trim_end_matches("*/")
        .trim();
    looks_like_path(p).then(|| p.to_owned())
}

/// The language of a file by its extension (`py` is `python`, ...); `None` for one not listed.
pub fn language_of(path: &str) -> Option<String> {
    let ext = path.rsplit_once('.')?.1.to_lowercase();
    Some(
        match ext.as_str() {
            "py" => "python",
            "rs" => "rust",
            "ts" | "tsx" => "typescript",
            "js" | "jsx" | "mjs" => "javascript",
            "html" | "htm" => "html",
            "css" => "css",
            "go" => "go",
            "java" => "java",
            "rb" => "ruby",
            "sql" => "sql",
            "md" => "markdown",
            "json" => "json",
            "yaml" | "yml" => "yaml",
            "toml" => "toml",
            "sh" => "bash",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Bullets under an "Acceptance Criteria" heading; failing that, every
/// bullet of the answer; failing that, none.
pub fn acceptance_criteria(text: &str) -> Vec<String> {
    let under = bullets_under(text, &["acceptance criteria"]);
    if !under.is_empty() {
        return under;
    }
    text.lines().filter_map(bullet).collect()
}

/// The reviewer's verdict and the changes it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the reviewer approved the change.
    pub approved: bool,
    /// The changes asked for; empty when approved.
    pub changes: Vec<String>,
}

/// `VERDICT: APPROVED` / `VERDICT: CHANGES_REQUESTED` wins; otherwise
/// "changes requested" or "request changes" anywhere asks for changes;
/// anything else approves (a reviewer that says nothing blocks nothing,
/// and the loop is bounded anyway).
pub fn verdict(text: &str) -> Verdict {
    let upper = text.to_uppercase();
    let approved = if let Some(i) = upper.find("VERDICT:") {
        let rest = upper[i + 8..].trim_start();
        !(rest.starts_with("CHANGES") || rest.starts_with("REQUEST") || rest.starts_with("REJECT"))
    } else {
        !(upper.contains("CHANGES REQUESTED")
            || upper.contains("CHANGES_REQUESTED")
            || upper.contains("REQUEST CHANGES"))
    };
    let changes = if approved {
        Vec::new()
    } else {
        bullets_under(text, &["changes", "requested changes", "issues"])
    };
    Verdict { approved, changes }
}

/// The bullets of the first section whose heading is one of `names`.
fn bullets_under(text: &str, names: &[&str]) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(h) = heading(t) {
            if inside && !out.is_empty() {
                break;
            }
            let h = h.to_lowercase();
            inside = names.iter().any(|n| h.trim_end_matches(':') == *n);
            continue;
        }
        if inside && let Some(b) = bullet(t) {
            out.push(b);
        }
    }
    out
}

fn heading(line: &str) -> Option<&str> {
    if let Some(h) = line.strip_prefix('#') {
        return Some(h.trim_start_matches('#').trim());
    }
    let bold = line
        .strip_prefix("**")?
        .strip_suffix("**")
        .or_else(|| line.strip_prefix("**")?.strip_suffix("**:"))?;
    Some(bold.trim())
}

fn bullet(line: &str) -> Option<String> {
    let t = line.trim();
    let rest = if let Some(r) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) {
        r
    } else {
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        t[digits..]
            .strip_prefix(". ")
            .or_else(|| t[digits..].strip_prefix(") "))?
    };
    let rest = rest.trim_start_matches("[ ] ").trim();
    (!rest.is_empty()).then(|| rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_from_info_strings_and_first_line_comments() {
        let text = "Here:\n```python app/reset.py\nprint(1)\n```\nprose\n```ts\n// file: src/reset.ts\nexport {}\n```\n```python\nprint('no name: prose')\n```\n";
        let parsed = code_files(text);
        assert_eq!(parsed.files.len(), 2);
        assert_eq!(parsed.files[0].path, "app/reset.py");
        assert_eq!(parsed.files[0].language.as_deref(), Some("python"));
        assert_eq!(parsed.files[0].content, "print(1)\n");
        assert_eq!(parsed.files[1].path, "src/reset.ts");
        assert_eq!(parsed.files[1].content, "export {}\n");
    }

    #[test]
    fn escaping_paths_are_refused_and_repeats_replace() {
        let text = "```python ../etc/x.py\nx\n```\n```python /abs.py\nx\n```\n```python a.py\n1\n```\n```python ./a.py\n2\n```\n";
        let parsed = code_files(text);
        assert_eq!(parsed.refused, ["../etc/x.py", "/abs.py"]);
        assert_eq!(parsed.files.len(), 1);
        assert_eq!(parsed.files[0].content, "2\n");
    }

    #[test]
    fn git_internals_and_ci_paths_are_refused_unless_allowed() {
        let text = "```sh .GIT/hooks/post-commit\nrm -rf /\n```\n```ini sub/.git/config\nx\n```\n\
                    ```yaml .github/workflows/x.yml\non: push\n```\n```text lib/.gitmodules\nx\n```\n\
                    ```text sub/.gitattributes\nx\n```\n```python app/a.py\n1\n```\n";
        let parsed = code_files(text);
        assert_eq!(
            parsed.refused,
            [
                ".GIT/hooks/post-commit",
                "sub/.git/config",
                ".github/workflows/x.yml",
                "lib/.gitmodules",
                "sub/.gitattributes"
            ]
        );
        let paths: Vec<_> = parsed.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["app/a.py"]);

        let allowed = code_files_with(
            text,
            PathPolicy {
                allow_ci_paths: true,
            },
        );
        assert_eq!(
            allowed.refused,
            [".GIT/hooks/post-commit", "sub/.git/config"]
        );
        assert_eq!(allowed.files.len(), 4);
    }

    #[test]
    fn a_file_comment_with_non_ascii_text_does_not_panic() {
        assert!(
            code_files("```\n# \u{212A}ile: x\nbody\n```")
                .files
                .is_empty()
        );
        assert_eq!(
            code_files("```\n# FILE: a/b.py\nx\n```").files[0].path,
            "a/b.py"
        );
    }

    #[test]
    fn hash_comment_and_other_fences() {
        let parsed = code_files(
            "~~~\n# file: app/x.py\nx = 1\n~~~\n```html title=\"web/i.html\"\n<p></p>\n```",
        );
        let paths: Vec<_> = parsed.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["app/x.py", "web/i.html"]);
    }

    #[test]
    fn prose_on_the_fence_line_is_not_a_file_name() {
        let parsed = code_files(
            "```python  # the code for a new token.\nx = 1\n```\n```python token.\nx\n```\n",
        );
        assert!(parsed.files.is_empty(), "{:?}", parsed.files);
    }

    #[test]
    fn unterminated_block_still_yields_its_file() {
        let parsed = code_files("```python app/a.py\nx = 1");
        assert_eq!(parsed.files[0].content, "x = 1\n");
    }

    #[test]
    fn criteria_under_their_heading() {
        let text = "## Scope\n- not this\n## Acceptance Criteria\n- Users can reset\n2. Links expire\n* [ ] Rate limited\n## Other\n- no";
        assert_eq!(
            acceptance_criteria(text),
            ["Users can reset", "Links expire", "Rate limited"]
        );
        assert_eq!(acceptance_criteria("- a\n- b"), ["a", "b"]);
        assert!(acceptance_criteria("nothing").is_empty());
    }

    #[test]
    fn verdicts() {
        let v = verdict("VERDICT: CHANGES_REQUESTED\n## Changes\n- hash the token\n- add expiry");
        assert!(!v.approved);
        assert_eq!(v.changes, ["hash the token", "add expiry"]);
        assert!(verdict("VERDICT: APPROVED\n## Changes\n").approved);
        assert!(verdict("Looks good to me.").approved);
        assert!(!verdict("I request changes: **Changes**\n- x").approved);
    }
}

//! A story from a local Markdown file: `# PROJ-12: Title` on the first
//! line names it (key and summary); without a key the file's name gives
//! one (`LOCAL-<NAME>`). The whole text is the description.

use std::path::Path;

/// A story read from a local Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryFile {
    /// The story's key: from the heading, else `LOCAL-<NAME>` from the file name.
    pub key: String,
    /// The story's title, from the first line.
    pub title: String,
    /// The whole text of the file, trimmed.
    pub description: String,
}

impl StoryFile {
    /// The workflow name, as a workflow made from Jira is named.
    pub fn workflow_name(&self) -> String {
        format!("{}: {}", self.key, self.title)
    }
}

fn is_key(s: &str) -> bool {
    let Some((project, number)) = s.split_once('-') else {
        return false;
    };
    !project.is_empty()
        && project
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
        && project
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// Reads the story in `text`, the contents of the file at `path`; an empty file is an error.
pub fn parse(path: &Path, text: &str) -> Result<StoryFile, String> {
    let description = text.trim().to_owned();
    if description.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    let first = description.lines().next().unwrap_or_default().trim();
    let heading = first.trim_start_matches('#').trim();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "story".into());
    let fallback_key = format!(
        "LOCAL-{}",
        stem.chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            })
            .collect::<String>()
    );
    let (key, title) = match heading.split_once(':') {
        Some((k, t)) if is_key(k.trim()) => (k.trim().to_owned(), t.trim().to_owned()),
        _ if first.starts_with('#') && !heading.is_empty() => (fallback_key, heading.to_owned()),
        _ => (fallback_key, stem),
    };
    Ok(StoryFile {
        key,
        title: title.chars().take(400).collect(),
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_title_come_from_the_heading_or_the_file_name() {
        let s = parse(
            Path::new("x/reset.md"),
            "# SHOP-42: Password reset\n\nAs a user…",
        )
        .unwrap();
        assert_eq!(
            (s.key.as_str(), s.title.as_str()),
            ("SHOP-42", "Password reset")
        );
        assert_eq!(s.workflow_name(), "SHOP-42: Password reset");
        let s = parse(Path::new("todo-list.md"), "# A todo list\nbody").unwrap();
        assert_eq!(
            (s.key.as_str(), s.title.as_str()),
            ("LOCAL-TODO-LIST", "A todo list")
        );
        let s = parse(Path::new("plain.txt"), "no heading: here").unwrap();
        assert_eq!(s.key, "LOCAL-PLAIN");
        assert!(parse(Path::new("e.md"), "  \n").is_err());
    }
}

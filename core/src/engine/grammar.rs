//! Fitting a step's output grammar to its run: when the story or the
//! design names the files to write (`app/slug.py`, `tests/test_slug.py`),
//! the grammar's `info` rule (the fence's info string: a language and a
//! path) is replaced by exactly those files, so a model that samples under
//! the grammar writes the files the design asked for rather than paths it
//! makes up. Which named files fit which grammar: the test files for
//! `test_files`, the web files for `frontend`, the others for `code_files`;
//! another grammar, or a run that names no fitting file, keeps its own
//! `info` rule.

use std::sync::OnceLock;

use regex::Regex;

use crate::codehost::normalise_path;
use crate::engine::parse::language_of;

/// At most this many named files go into a grammar.
const MAX_PATHS: usize = 6;

/// The relative paths `texts` name, normalised, in order of first
/// appearance, without duplicates.
pub fn named_paths(texts: &[&str]) -> Vec<String> {
    static PATH: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = PATH
        .get_or_init(|| {
            Regex::new(r"(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.(?:py|js|ts|html|css|rs|go|sh)\b")
                .ok()
        })
        .as_ref()
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for text in texts {
        for m in re.find_iter(text) {
            // `example.com/a.py` and `../x.py` are not repository files.
            let before = text[..m.start()].chars().next_back();
            if matches!(before, Some('/' | '.' | ':')) {
                continue;
            }
            if let Some(p) = normalise_path(m.as_str())
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
    }
    out
}

fn is_test(path: &str) -> bool {
    path.split('/').any(|s| {
        s == "tests"
            || s == "test"
            || s.starts_with("test_")
            || s.contains("_test.")
            || s.contains(".test.")
    })
}

fn is_web(path: &str) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    matches!(ext, "html" | "css") || path.starts_with("web/") || path.starts_with("static/")
}

/// `grammar` (named `name` in the team file) with its `info` rule made of
/// the `paths` that fit it; unchanged when none fits or it has no `info`
/// rule.
pub fn fit(name: &str, grammar: &str, paths: &[String]) -> String {
    let fits: Vec<&String> = paths
        .iter()
        .filter(|p| match name {
            "test_files" => is_test(p),
            "frontend" => is_web(p) && !is_test(p),
            "code_files" => !is_test(p) && !is_web(p),
            _ => false,
        })
        .filter(|p| language_of(p).is_some())
        .take(MAX_PATHS)
        .collect();
    let lines: Vec<&str> = grammar.lines().collect();
    let is_rule = |l: &str, rule: &str| {
        l.strip_prefix(rule)
            .is_some_and(|rest| rest.trim_start().starts_with("::="))
    };
    if fits.is_empty() {
        // The run names the files to write and none of them fits this
        // grammar: where the grammar has a `none` answer (frontend: "No
        // user-facing part: ..."), that is the answer; a small model
        // otherwise takes the file branch and invents a page nobody asked
        // for (seen: web/example.html for a story with no user interface).
        let has_none = lines.iter().any(|l| is_rule(l, "none"));
        let root = lines.iter().position(|l| is_rule(l, "root"));
        if let (false, true, Some(root)) = (paths.is_empty(), has_none, root) {
            let mut out: Vec<&str> = lines.clone();
            out[root] = "root  ::= none";
            let mut text = out.join("\n");
            text.push('\n');
            return text;
        }
        return grammar.to_owned();
    }
    let Some(start) = lines.iter().position(|l| is_rule(l, "info")) else {
        return grammar.to_owned();
    };
    // The rule goes on while lines are indented (continued alternatives).
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.starts_with([' ', '\t']))
        .map_or(lines.len(), |n| start + 1 + n);
    let alternatives: Vec<String> = fits
        .iter()
        .map(|p| {
            let language = language_of(p).unwrap_or_default();
            format!("\"{language} {p}\"")
        })
        .collect();
    let rule = format!("info  ::= {}", alternatives.join(" | "));
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.push(&rule);
    out.extend_from_slice(&lines[end..]);
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAMMAR: &str = "root  ::= \"```\" info \"\\n\"\ninfo  ::= ( \"python \" seg \".py\"\n        | \"go \" seg \".go\" )\nseg   ::= [a-z]+\n";

    #[test]
    fn paths_named_in_the_story_and_design_are_found_once_in_order() {
        let story = "Write `app/slug.py` with tests in `tests/test_slug.py`; see https://x.org/a.py and ../up.py.";
        let design = "## Files\n- app/slug.py: the function\n- web/index.html: none";
        assert_eq!(
            named_paths(&[story, design]),
            ["app/slug.py", "tests/test_slug.py", "web/index.html"]
        );
        assert!(named_paths(&["no files here, e.g. this."]).is_empty());
    }

    #[test]
    fn the_info_rule_becomes_the_named_files_that_fit_the_grammar() {
        let paths: Vec<String> = ["app/slug.py", "tests/test_slug.py", "web/index.html"]
            .map(String::from)
            .to_vec();

        let code = fit("code_files", GRAMMAR, &paths);
        let tests = fit("test_files", GRAMMAR, &paths);
        let web = fit("frontend", GRAMMAR, &paths);

        assert!(
            code.contains("info  ::= \"python app/slug.py\"\n"),
            "{code}"
        );
        assert!(
            !code.contains("\"go \""),
            "the old alternatives are gone: {code}"
        );
        assert!(code.contains("seg   ::= [a-z]+"), "{code}");
        assert!(
            tests.contains("info  ::= \"python tests/test_slug.py\"\n"),
            "{tests}"
        );
        assert!(web.contains("info  ::= \"html web/index.html\"\n"), "{web}");
    }

    #[test]
    fn a_run_naming_files_but_no_web_file_gets_the_frontend_none_answer() {
        let frontend = "root  ::= none | file\nnone  ::= \"No user-facing part: \" [a-z]+\nfile  ::= \"```\" info\ninfo  ::= \"html \" [a-z]+\n";
        let named = vec!["app/slug.py".to_owned(), "tests/test_slug.py".to_owned()];
        let fitted = fit("frontend", frontend, &named);
        assert!(fitted.starts_with("root  ::= none\n"), "{fitted}");
        assert!(
            fitted.contains("none  ::= \"No user-facing part: \""),
            "{fitted}"
        );
        // Nothing named: the model chooses.
        assert_eq!(fit("frontend", frontend, &[]), frontend);
    }

    #[test]
    fn a_run_naming_no_fitting_file_or_another_grammar_keeps_the_grammar() {
        let only_tests = vec!["tests/test_slug.py".to_owned()];
        assert_eq!(fit("code_files", GRAMMAR, &only_tests), GRAMMAR);
        assert_eq!(fit("code_files", GRAMMAR, &[]), GRAMMAR);
        assert_eq!(fit("verdict", GRAMMAR, &only_tests), GRAMMAR);
        assert_eq!(
            fit("code_files", "root ::= \"x\"\n", &["a/b.py".into()]),
            "root ::= \"x\"\n"
        );
    }
}

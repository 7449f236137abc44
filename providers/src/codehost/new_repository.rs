//! A repository this service makes for a workflow, written in-process:
//! what `git init` and one `git fast-import` of the delivery's commits
//! leave on disk (the layout of `git init --template=`, loose objects, the
//! branch's ref), without the two processes per workflow, which were most
//! of a delivery's CPU (README: Speed where users feel it). It is built
//! beside the target in a directory of its own (`.git.new-<pid>-<n>`) and
//! renamed into place, so a process that dies leaves no half repository
//! (at worst that directory; nothing is fsynced, so a power loss is not
//! covered). Two deliveries racing to make the same repository: one
//! rename wins, the other fails as passing and its retry takes the git
//! path. Everything else (an existing repository, a path or branch git
//! would quote or refuse) goes through git.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ai_team_core::codehost::CommitRequest;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use sha1::{Digest, Sha1};

/// A tree being built: a file's blob id, or a directory of entries.
enum Node {
    File([u8; 20]),
    Dir(BTreeMap<String, Node>),
}

/// Whether git would store `path` as it is: relative, `/`-separated, no
/// empty, `.`, `..` or `.git` component, no control character, no quote
/// at the start (fast-import's quoting). Other paths take the git path.
pub fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('"')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.eq_ignore_ascii_case(".git"))
}

/// Whether `branch` is a name `git check-ref-format` takes as it is, in
/// the narrow form the engine makes (`ai-team/<slug>-execution-<id>`):
/// plain components of letters, digits, `.`, `_` and `-`, none starting
/// with `.` or ending in `.lock`. Other names take the git path.
pub fn is_plain_branch(branch: &str) -> bool {
    is_plain(branch)
        && branch.split('/').all(|c| {
            !c.starts_with('.')
                && !c.ends_with(".lock")
                && !c.contains("..")
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// Writes a new repository at `dir` (which must have no `.git`) with
/// `main` as its unborn HEAD and `commits` on `branch_ref`, each on the
/// one before, authored and committed by `author` at `now` (UTC); returns
/// the last commit's id. The same objects as the fast-import stream of
/// `local_git` (one commit per request, its files over the previous tree).
pub fn write(
    dir: &Path,
    branch_ref: &str,
    commits: &[&CommitRequest],
    author: &str,
    trailer: &str,
    now: i64,
) -> io::Result<String> {
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let git_dir = dir.join(".git");
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let building = dir.join(format!(".git.new-{}-{n}", std::process::id()));
    // `create_dir`, not `create_dir_all`: the name is this build's alone.
    std::fs::create_dir(&building)?;
    let result = fill(&building, branch_ref, commits, author, trailer, now).and_then(|head| {
        if git_dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another delivery made the repository first",
            ));
        }
        std::fs::rename(&building, &git_dir).map(|()| head)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    result
}

fn fill(
    git_dir: &Path,
    branch_ref: &str,
    commits: &[&CommitRequest],
    author: &str,
    trailer: &str,
    now: i64,
) -> io::Result<String> {
    for sub in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(git_dir.join(sub))?;
    }
    std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(
        git_dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
    )?;
    let objects = git_dir.join("objects");
    let mut root = BTreeMap::new();
    let mut parent: Option<String> = None;
    for c in commits {
        for f in &c.files {
            let blob = put(&objects, "blob", f.content.as_bytes())?;
            insert(&mut root, &f.path, blob);
        }
        let tree = hex(&write_tree(&objects, &root)?);
        let mut body = format!("tree {tree}\n");
        if let Some(p) = &parent {
            body += &format!("parent {p}\n");
        }
        body += &format!(
            "author {author} {now} +0000\ncommitter {author} {now} +0000\n\n{}\n\n{trailer}: {}\n",
            without_nul(&c.message),
            without_nul(&c.step_key)
        );
        parent = Some(hex(&put(&objects, "commit", body.as_bytes())?));
    }
    let head = parent.ok_or_else(|| io::Error::other("no commit to write"))?;
    let ref_path = git_dir.join(branch_ref);
    if let Some(up) = ref_path.parent() {
        std::fs::create_dir_all(up)?;
    }
    std::fs::write(ref_path, format!("{head}\n"))?;
    Ok(head)
}

/// A commit message git keeps whole: `git fsck` refuses a NUL in one, and
/// `%(trailers)` stops reading at it (a repeat would not find the step).
pub fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "").into()
    } else {
        text.into()
    }
}

/// Puts `id` at `path` in the tree; a file where a directory is needed
/// (or the reverse) is replaced, as fast-import's `M` does.
fn insert(dir: &mut BTreeMap<String, Node>, path: &str, id: [u8; 20]) {
    match path.split_once('/') {
        None => {
            dir.insert(path.to_owned(), Node::File(id));
        }
        Some((first, rest)) => {
            let node = dir
                .entry(first.to_owned())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            if let Node::File(_) = node {
                *node = Node::Dir(BTreeMap::new());
            }
            if let Node::Dir(sub) = node {
                insert(sub, rest, id);
            }
        }
    }
}

/// Writes the tree objects of `dir` and below; returns its id. Git orders
/// entries by name with a directory's name taken as ending in `/`.
fn write_tree(objects: &Path, dir: &BTreeMap<String, Node>) -> io::Result<[u8; 20]> {
    let mut entries: Vec<(Vec<u8>, &str, [u8; 20])> = Vec::with_capacity(dir.len());
    for (name, node) in dir {
        let (key, mode, id) = match node {
            Node::File(id) => (name.as_bytes().to_vec(), "100644", *id),
            Node::Dir(sub) => {
                let mut key = name.as_bytes().to_vec();
                key.push(b'/');
                (key, "40000", write_tree(objects, sub)?)
            }
        };
        entries.push((key, mode, id));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = Vec::new();
    for (key, mode, id) in &entries {
        let name = key.strip_suffix(b"/").unwrap_or(key);
        body.extend_from_slice(mode.as_bytes());
        body.push(b' ');
        body.extend_from_slice(name);
        body.push(0);
        body.extend_from_slice(id);
    }
    put(objects, "tree", &body)
}

/// Stores one loose object (zlib of `"{kind} {len}\0{body}"` under its
/// SHA-1) unless it is there already; returns its id.
fn put(objects: &Path, kind: &str, body: &[u8]) -> io::Result<[u8; 20]> {
    let header = format!("{kind} {}\0", body.len());
    let id: [u8; 20] = Sha1::new()
        .chain_update(header.as_bytes())
        .chain_update(body)
        .finalize()
        .into();
    let name = hex(&id);
    let path: PathBuf = objects.join(&name[..2]).join(&name[2..]);
    if path.exists() {
        return Ok(id);
    }
    std::fs::create_dir_all(objects.join(&name[..2]))?;
    let mut z = ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2 + 64),
        Compression::default(),
    );
    z.write_all(header.as_bytes())?;
    z.write_all(body)?;
    std::fs::write(path, z.finish()?)?;
    Ok(id)
}

fn hex(id: &[u8; 20]) -> String {
    use std::fmt::Write as _;
    id.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_what_git_stores_unquoted() {
        for ok in ["a.py", "app/x/b.py", "a b/ü.txt", ".github-like/x", "x.git"] {
            assert!(is_plain(ok), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            ".git/config",
            "x/.GIT/y",
            "\"q",
            "a\nb",
            "tab\there",
        ] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_plain_branch_names_are_written_here() {
        assert!(is_plain_branch("ai-team/slug-1-execution-12"));
        for bad in [
            "",
            "a/../b",
            "a/.hidden",
            "x.lock",
            "a..b",
            "a b",
            "a~1",
            "a:b",
            "a\\b",
            "ü",
        ] {
            assert!(!is_plain_branch(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_nul_never_reaches_a_commit_message() {
        assert_eq!(without_nul("a\0b"), "ab");
        assert!(matches!(
            without_nul("ab"),
            std::borrow::Cow::Borrowed("ab")
        ));
    }

    #[test]
    fn a_directory_sorts_as_if_its_name_ended_in_a_slash() {
        // git's order: "a.b" (0x2e) before "a/" (0x2f) before "a0" (0x30);
        // a plain byte order of the names would put "a" first.
        let mut root = BTreeMap::new();
        let id = [7u8; 20];
        for p in ["a0", "a/x", "a.b"] {
            insert(&mut root, p, id);
        }
        let dir = std::env::temp_dir().join(format!("ai-team-tree-{}", std::process::id()));
        let tree = write_tree(&dir, &root).unwrap();
        let name = hex(&tree);
        let raw = std::fs::read(dir.join(&name[..2]).join(&name[2..])).unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&raw[..]), &mut body)
            .unwrap();
        let mut names = Vec::new();
        let header_end = body.iter().position(|b| *b == 0).unwrap();
        assert_eq!(
            &body[..header_end],
            format!("tree {}", body.len() - header_end - 1).as_bytes()
        );
        let mut rest = &body[header_end + 1..];
        while let Some(nul) = rest.iter().position(|b| *b == 0) {
            let (mode_name, after) = rest.split_at(nul);
            let text = String::from_utf8_lossy(mode_name);
            names.push(text.split_once(' ').unwrap().1.to_owned());
            rest = &after[21..];
        }
        assert_eq!(names, ["a.b", "a", "a0"], "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

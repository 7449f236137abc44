//! A repository this service makes for a workflow, written in-process:
//! what `git init` and one `git fast-import` of the delivery's commits
//! leave on disk (the layout of `git init --template=`, the objects in one
//! pack with its index, the branch's ref), without the two processes per
//! workflow, which were most of a delivery's CPU (README: Speed where
//! users feel it). One pack, as fast-import writes, not loose objects: a
//! directory per object's first byte made each delivery allocate a dozen
//! more directory inodes, which on a busy ext4 cost more CPU than git. It
//! is built beside the target in a directory of its own
//! (`.git.new-<pid>-<n>`) and renamed into place, so a process that dies leaves no half repository
//! (at worst that directory; nothing is fsynced, so a power loss is not
//! covered). Two deliveries racing to make the same repository: one
//! rename wins, the other fails as passing and its retry takes the git
//! path. Everything else (an existing repository, a path or branch git
//! would quote or refuse) goes through git.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::Path;

use ai_team_core::codehost::CommitRequest;
use flate2::{Compress, Compression, FlushCompress, Status};
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
    let signature = format!("{author} {now} +0000");
    let git_dir = dir.join(".git");
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let building = dir.join(format!(".git.new-{}-{n}", std::process::id()));
    // `create_dir`, not `create_dir_all`: the name is this build's alone.
    std::fs::create_dir(&building)?;
    let result = fill(&building, branch_ref, commits, &signature, trailer).and_then(|head| {
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

/// The repository's files in `git_dir`; `signature` is the author and
/// committer line's value (`name <email> seconds +0000`).
fn fill(
    git_dir: &Path,
    branch_ref: &str,
    commits: &[&CommitRequest],
    signature: &str,
    trailer: &str,
) -> io::Result<String> {
    for sub in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(git_dir.join(sub))?;
    }
    std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(
        git_dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
    )?;
    let pack = &mut Pack::new();
    let mut root = BTreeMap::new();
    let mut parent: Option<String> = None;
    for c in commits {
        for f in &c.files {
            let blob = pack.put(Kind::Blob, f.content.as_bytes())?;
            insert(&mut root, &f.path, blob);
        }
        let tree = hex(&write_tree(pack, &root)?);
        let mut body = format!("tree {tree}\n");
        if let Some(p) = &parent {
            body += &format!("parent {p}\n");
        }
        body += &format!(
            "author {signature}\ncommitter {signature}\n\n{}\n\n{trailer}: {}\n",
            without_nul(&c.message),
            without_nul(&c.step_key)
        );
        parent = Some(hex(&pack.put(Kind::Commit, body.as_bytes())?));
    }
    let head = parent.ok_or_else(|| io::Error::other("no commit to write"))?;
    pack.finish(&git_dir.join("objects/pack"))?;
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

/// Writes the tree objects of `dir` and below; returns its id.
fn write_tree(pack: &mut Pack, dir: &BTreeMap<String, Node>) -> io::Result<[u8; 20]> {
    let mut entries = Vec::with_capacity(dir.len());
    for (name, node) in dir {
        entries.push(match node {
            Node::File(id) => (name.as_str(), false, *id),
            Node::Dir(sub) => (name.as_str(), true, write_tree(pack, sub)?),
        });
    }
    pack.put(Kind::Tree, &tree_body(entries))
}

/// A tree object's body. Git orders entries by name with a directory's
/// name taken as ending in `/`.
fn tree_body(mut entries: Vec<(&str, bool, [u8; 20])>) -> Vec<u8> {
    let key = |(name, is_dir, _): &(&str, bool, [u8; 20])| {
        let mut k = name.as_bytes().to_vec();
        if *is_dir {
            k.push(b'/');
        }
        k
    };
    entries.sort_by_cached_key(key);
    let mut body = Vec::new();
    for (name, is_dir, id) in &entries {
        body.extend_from_slice(if *is_dir { b"40000 " } else { b"100644 " });
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(id);
    }
    body
}

/// The kinds of object a delivery writes, by their pack type numbers.
#[derive(Clone, Copy)]
enum Kind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
        }
    }
}

/// A delivery's objects as one pack (version 2, every object whole) and
/// its index (version 2), kept in memory until `finish`.
struct Pack {
    /// One deflate state (about 270 KiB) for every object, not one each.
    z: Compress,
    data: Vec<u8>,
    /// (id, CRC-32 of the packed entry, its offset), one per object.
    entries: Vec<([u8; 20], u32, u32)>,
    seen: HashSet<[u8; 20]>,
}

impl Pack {
    fn new() -> Self {
        let mut data = Vec::with_capacity(4096);
        data.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\0"); // the count comes at the end
        Self {
            z: Compress::new(Compression::default(), true),
            data,
            entries: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Adds one object (once, whatever the number of times it is put);
    /// returns its id, the SHA-1 of `"{kind} {len}\0{body}"`.
    fn put(&mut self, kind: Kind, body: &[u8]) -> io::Result<[u8; 20]> {
        let id: [u8; 20] = Sha1::new()
            .chain_update(format!("{} {}\0", kind.name(), body.len()).as_bytes())
            .chain_update(body)
            .finalize()
            .into();
        if !self.seen.insert(id) {
            return Ok(id);
        }
        let offset = self.data.len();
        let offset_u32 = u32::try_from(offset)
            .ok()
            .filter(|o| *o < 0x8000_0000)
            .ok_or_else(|| io::Error::other("a delivery of over 2 GiB"))?;
        // Type and size: 4 bits of size beside the type, then 7 bits a byte.
        let mut size = body.len();
        let mut byte = ((kind as u8) << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            self.data.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        self.data.push(byte);
        self.z.reset();
        self.data.reserve(body.len() + body.len() / 8 + 64);
        loop {
            let read = usize::try_from(self.z.total_in()).map_or(body.len(), |n| n.min(body.len()));
            let status = self
                .z
                .compress_vec(&body[read..], &mut self.data, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
            self.data.reserve(self.data.capacity().max(64));
        }
        let crc = crc32fast::hash(&self.data[offset..]);
        self.entries.push((id, crc, offset_u32));
        Ok(id)
    }

    /// Writes `pack-<checksum>.pack` and `.idx` into `dir`.
    fn finish(&mut self, dir: &Path) -> io::Result<()> {
        let count = u32::try_from(self.entries.len()).map_err(io::Error::other)?;
        self.data[8..12].copy_from_slice(&count.to_be_bytes());
        let checksum: [u8; 20] = Sha1::digest(&self.data).into();
        self.data.extend_from_slice(&checksum);
        self.entries.sort_unstable_by_key(|e| e.0);
        let mut idx = Vec::with_capacity(8 + 1024 + self.entries.len() * 28 + 40);
        idx.extend_from_slice(b"\xfftOc\0\0\0\x02");
        for first in 0..=255u8 {
            let below = self.entries.partition_point(|e| e.0[0] <= first);
            idx.extend_from_slice(&u32::try_from(below).unwrap_or(u32::MAX).to_be_bytes());
        }
        for (id, _, _) in &self.entries {
            idx.extend_from_slice(id);
        }
        for (_, crc, _) in &self.entries {
            idx.extend_from_slice(&crc.to_be_bytes());
        }
        for (_, _, offset) in &self.entries {
            idx.extend_from_slice(&offset.to_be_bytes());
        }
        idx.extend_from_slice(&checksum);
        let idx_checksum: [u8; 20] = Sha1::digest(&idx).into();
        idx.extend_from_slice(&idx_checksum);
        let name = format!("pack-{}", hex(&checksum));
        std::fs::write(dir.join(format!("{name}.pack")), &self.data)?;
        std::fs::write(dir.join(format!("{name}.idx")), &idx)
    }
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
    fn a_pack_of_objects_of_any_size_reads_back_through_git() {
        let dir = std::env::temp_dir().join(format!("ai-team-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("--git-dir")
                .arg(&dir)
                .args(args)
                .output()
                .unwrap()
        };
        assert!(git(&["init", "-q", "--bare"]).status.success());
        let mut x = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        let bodies: [&[u8]; 5] = [b"", b"small\n", &noise, &[b'a'; 300_000], b"small\n"];
        let mut pack = Pack::new();
        let ids: Vec<[u8; 20]> = bodies
            .iter()
            .map(|b| pack.put(Kind::Blob, b).unwrap())
            .collect();
        assert_eq!(pack.entries.len(), 4, "the same blob is packed once");
        pack.finish(&dir.join("objects/pack")).unwrap();
        for (id, body) in ids.iter().zip(bodies) {
            let out = git(&["cat-file", "blob", &hex(id)]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout, body);
        }
        let idx = std::fs::read_dir(dir.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        let verify = git(&["verify-pack", "-v", &idx.display().to_string()]);
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
        let id = [7u8; 20];
        let body = tree_body(vec![("a0", false, id), ("a", true, id), ("a.b", false, id)]);
        let mut names = Vec::new();
        let mut rest = &body[..];
        while let Some(nul) = rest.iter().position(|b| *b == 0) {
            let (mode_name, after) = rest.split_at(nul);
            names.push(String::from_utf8_lossy(mode_name).into_owned());
            rest = &after[21..];
        }
        assert_eq!(names, ["100644 a.b", "40000 a", "100644 a0"]);
    }
}

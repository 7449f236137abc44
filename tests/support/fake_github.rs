//! A local GitHub that speaks the REST shapes of GitHub's documentation
//! (the JSON of `tests/fixtures/github/`, with shas and names filled in):
//! a stateful Git data API (blobs, trees, commits, refs with fast-forward
//! checks), pull requests, check runs and suites, compare, Actions runs
//! and artifacts. Every call is recorded as `METHOD /path`, so tests can
//! check the exact sequence, and failures (rate limits) can be scripted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let text = match name {
        "repository" => include_str!("../fixtures/github/repository.json"),
        "ref" => include_str!("../fixtures/github/ref.json"),
        "not_found" => include_str!("../fixtures/github/not_found.json"),
        "blob_created" => include_str!("../fixtures/github/blob_created.json"),
        "tree_created" => include_str!("../fixtures/github/tree_created.json"),
        "git_commit" => include_str!("../fixtures/github/git_commit.json"),
        "commit_list_item" => include_str!("../fixtures/github/commit_list_item.json"),
        "pull_request" => include_str!("../fixtures/github/pull_request.json"),
        "check_runs" => include_str!("../fixtures/github/check_runs.json"),
        "check_suites" => include_str!("../fixtures/github/check_suites.json"),
        "compare" => include_str!("../fixtures/github/compare.json"),
        "workflow_runs" => include_str!("../fixtures/github/workflow_runs.json"),
        "artifacts" => include_str!("../fixtures/github/artifacts.json"),
        "secondary_rate_limit" => include_str!("../fixtures/github/secondary_rate_limit.json"),
        "primary_rate_limit" => include_str!("../fixtures/github/primary_rate_limit.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture JSON")
}

/// The repository the fixtures describe.
pub const REPO: &str = "octocat/Hello-World";
/// The head commit of the pull requests the tests seed.
pub const HEAD_SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
pub const BASE_BRANCH: &str = "master";
const BASE_SHA: &str = "aa218f56b14c9653891f9e74264a383fa43fefbd";
const BASE_TREE: &str = "827efc6d56897b048c772eb4087f854f46256132";

/// A scripted answer for the next request matching `method` and a path
/// containing `path_part`.
#[derive(Clone)]
pub struct Failure {
    pub method: Method,
    pub path_part: String,
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

struct Commit {
    message: String,
    tree: String,
    parents: Vec<String>,
}

#[derive(Default)]
struct Git {
    calls: Vec<String>,
    bodies: Vec<(String, Value)>,
    refs: HashMap<String, String>,
    commits: HashMap<String, Commit>,
    trees: HashMap<String, BTreeMap<String, String>>,
    blobs: HashMap<String, String>,
    pulls: Vec<Value>,
    counter: u64,
    failures: VecDeque<Failure>,
}

impl Git {
    fn sha(&mut self) -> String {
        self.counter += 1;
        format!("{:040x}", 0xa1_0000_u64 + self.counter)
    }

    /// Whether `ancestor` is reachable from `sha`.
    fn descends(&self, sha: &str, ancestor: &str) -> bool {
        let mut stack = vec![sha.to_owned()];
        while let Some(s) = stack.pop() {
            if s == ancestor {
                return true;
            }
            if let Some(c) = self.commits.get(&s) {
                stack.extend(c.parents.iter().cloned());
            }
        }
        false
    }
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub address: SocketAddr,
    git: Arc<Mutex<Git>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl FakeGitHub {
    pub async fn start() -> Self {
        let mut git = Git::default();
        git.refs
            .insert(format!("heads/{BASE_BRANCH}"), BASE_SHA.into());
        git.commits.insert(
            BASE_SHA.into(),
            Commit {
                message: "Initial commit".into(),
                tree: BASE_TREE.into(),
                parents: vec![],
            },
        );
        git.blobs.insert("readme".into(), "# Hello\n".into());
        git.trees.insert(
            BASE_TREE.into(),
            BTreeMap::from([("README.md".to_owned(), "readme".to_owned())]),
        );
        let git = Arc::new(Mutex::new(git));
        let router = Router::new().fallback(handle).with_state(git.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            git,
            server: Arc::new(server),
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `METHOD /path` of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.git.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.git.lock().unwrap().calls.clear();
    }

    /// The JSON bodies sent to paths containing `path_part`.
    pub fn bodies(&self, path_part: &str) -> Vec<Value> {
        self.git
            .lock()
            .unwrap()
            .bodies
            .iter()
            .filter(|(p, _)| p.contains(path_part))
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn fail_next(&self, failure: Failure) {
        self.git.lock().unwrap().failures.push_back(failure);
    }

    pub fn branch_sha(&self, branch: &str) -> Option<String> {
        self.git
            .lock()
            .unwrap()
            .refs
            .get(&format!("heads/{branch}"))
            .cloned()
    }

    /// Path → content of the branch's tree.
    pub fn files(&self, branch: &str) -> BTreeMap<String, String> {
        let git = self.git.lock().unwrap();
        let Some(sha) = git.refs.get(&format!("heads/{branch}")) else {
            return BTreeMap::new();
        };
        let tree = &git.commits[sha].tree;
        git.trees[tree]
            .iter()
            .map(|(p, b)| (p.clone(), git.blobs[b].clone()))
            .collect()
    }

    /// Commit messages of the branch, newest first, down to the base.
    pub fn messages(&self, branch: &str) -> Vec<String> {
        let git = self.git.lock().unwrap();
        let mut out = Vec::new();
        let mut at = git.refs.get(&format!("heads/{branch}")).cloned();
        while let Some(sha) = at {
            let Some(c) = git.commits.get(&sha) else {
                break;
            };
            out.push(c.message.clone());
            at = c.parents.first().cloned();
        }
        out
    }

    pub fn pulls(&self) -> Vec<Value> {
        self.git.lock().unwrap().pulls.clone()
    }

    /// Changes a pull request as a person on GitHub would.
    pub fn update_pull(&self, number: i64, patch: Value) {
        let mut git = self.git.lock().unwrap();
        if let Some(p) = git.pulls.iter_mut().find(|p| p["number"] == number)
            && let (Some(p), Value::Object(patch)) = (p.as_object_mut(), patch)
        {
            p.extend(patch);
        }
    }

    /// A pull request that exists already (made outside the team).
    pub fn add_pull(&self, head: &str, head_sha: &str) -> i64 {
        let mut git = self.git.lock().unwrap();
        let number = 1347 + git.pulls.len() as i64;
        let mut pr = fixture("pull_request");
        pr["number"] = json!(number);
        pr["html_url"] = json!(format!("https://github.com/{REPO}/pull/{number}"));
        pr["url"] = json!(format!(
            "https://api.github.com/repos/{REPO}/pulls/{number}"
        ));
        pr["head"]["ref"] = json!(head);
        pr["head"]["sha"] = json!(head_sha);
        pr["head"]["label"] = json!(format!("octocat:{head}"));
        git.pulls.push(pr);
        number
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn handle(State(git): State<Arc<Mutex<Git>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default();
    let auth_ok = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Bearer ghp_test_token");
    let versioned = request.headers().contains_key("x-github-api-version");
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 10 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut git = git.lock().unwrap();
    git.calls.push(format!("{method} {path}"));
    if !body.is_null() {
        git.bodies.push((path.clone(), body.clone()));
    }
    if !auth_ok || !versioned {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Requires authentication", "status": "401"}),
        );
    }
    if let Some(i) = git
        .failures
        .iter()
        .position(|f| f.method == method && path.contains(&f.path_part))
    {
        let f = git.failures.remove(i).expect("failure");
        let mut headers = HeaderMap::new();
        for (k, v) in &f.headers {
            headers.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header"),
            );
        }
        return (f.status, headers, Json(f.body)).into_response();
    }
    let prefix = format!("/repos/{REPO}");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return reply(StatusCode::NOT_FOUND, fixture("not_found"));
    };
    route(&mut git, &method, rest, &query, &body)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn git_commit_json(sha: &str, c: &Commit) -> Value {
    let mut v = fixture("git_commit");
    v["sha"] = json!(sha);
    v["url"] = json!(format!(
        "https://api.github.com/repos/{REPO}/git/commits/{sha}"
    ));
    v["html_url"] = json!(format!("https://github.com/{REPO}/commit/{sha}"));
    v["message"] = json!(c.message);
    v["tree"]["sha"] = json!(c.tree);
    v["parents"] = json!(
        c.parents
            .iter()
            .map(|p| json!({"sha": p, "url": format!("https://api.github.com/repos/{REPO}/git/commits/{p}")}))
            .collect::<Vec<_>>()
    );
    v
}

fn ref_json(name: &str, sha: &str) -> Value {
    let mut v = fixture("ref");
    v["ref"] = json!(format!("refs/{name}"));
    v["url"] = json!(format!(
        "https://api.github.com/repos/{REPO}/git/refs/{name}"
    ));
    v["object"]["sha"] = json!(sha);
    v["object"]["url"] = json!(format!(
        "https://api.github.com/repos/{REPO}/git/commits/{sha}"
    ));
    v
}

fn route(
    git: &mut Git,
    method: &Method,
    rest: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Response {
    let not_found = || reply(StatusCode::NOT_FOUND, fixture("not_found"));
    match (method.as_str(), rest) {
        ("GET", "") => reply(StatusCode::OK, fixture("repository")),
        ("GET", r) if r.starts_with("/git/ref/") => {
            let name = &r["/git/ref/".len()..];
            match git.refs.get(name) {
                Some(sha) => reply(StatusCode::OK, ref_json(name, sha)),
                None => not_found(),
            }
        }
        ("GET", "/commits") => {
            let branch = query.get("sha").cloned().unwrap_or_default();
            let mut at = git.refs.get(&format!("heads/{branch}")).cloned();
            let mut list = Vec::new();
            while let Some(sha) = at {
                let Some(c) = git.commits.get(&sha) else {
                    break;
                };
                let mut item = fixture("commit_list_item");
                item["sha"] = json!(sha);
                item["commit"]["message"] = json!(c.message);
                item["commit"]["tree"]["sha"] = json!(c.tree);
                item["parents"] = json!(
                    c.parents
                        .iter()
                        .map(|p| json!({"sha": p}))
                        .collect::<Vec<_>>()
                );
                list.push(item);
                at = c.parents.first().cloned();
            }
            reply(StatusCode::OK, Value::Array(list))
        }
        ("GET", r) if r.starts_with("/git/trees/") => {
            let name = &r["/git/trees/".len()..];
            let commit = git.refs.get(&format!("heads/{name}")).cloned();
            let tree = commit
                .and_then(|c| git.commits.get(&c).map(|c| c.tree.clone()))
                .or_else(|| git.trees.contains_key(name).then(|| name.to_owned()));
            match tree.and_then(|t| git.trees.get(&t).map(|files| (t, files.clone()))) {
                Some((sha, files)) => {
                    let entries: Vec<Value> = files
                        .iter()
                        .map(|(path, blob)| {
                            json!({"path": path, "mode": "100644", "type": "blob",
                            "sha": blob, "size": git.blobs.get(blob).map_or(0, String::len)})
                        })
                        .collect();
                    reply(
                        StatusCode::OK,
                        json!({"sha": sha, "tree": entries, "truncated": false}),
                    )
                }
                None => reply(
                    StatusCode::CONFLICT,
                    json!({"message": "Git Repository is empty."}),
                ),
            }
        }
        ("GET", r) if r.starts_with("/contents/") => {
            use base64::Engine as _;
            let path = &r["/contents/".len()..];
            let branch = query.get("ref").cloned().unwrap_or_else(|| "main".into());
            let content = git
                .refs
                .get(&format!("heads/{branch}"))
                .and_then(|c| git.commits.get(c))
                .and_then(|c| git.trees.get(&c.tree))
                .and_then(|files| files.get(path))
                .and_then(|blob| git.blobs.get(blob));
            match content {
                Some(text) => reply(
                    StatusCode::OK,
                    json!({"type": "file", "path": path, "encoding": "base64",
                           "content": base64::engine::general_purpose::STANDARD.encode(text)}),
                ),
                None => not_found(),
            }
        }
        ("GET", r) if r.starts_with("/git/commits/") => {
            let sha = &r["/git/commits/".len()..];
            match git.commits.get(sha) {
                Some(c) => reply(StatusCode::OK, git_commit_json(sha, c)),
                None => not_found(),
            }
        }
        ("POST", "/git/blobs") => {
            let Some(content) = body["content"].as_str() else {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Invalid request.\n\n\"content\" wasn't supplied."}),
                );
            };
            let sha = git.sha();
            git.blobs.insert(sha.clone(), content.to_owned());
            let mut v = fixture("blob_created");
            v["sha"] = json!(sha);
            v["url"] = json!(format!(
                "https://api.github.com/repos/{REPO}/git/blobs/{sha}"
            ));
            reply(StatusCode::CREATED, v)
        }
        ("POST", "/git/trees") => {
            let mut files = body["base_tree"]
                .as_str()
                .and_then(|b| git.trees.get(b).cloned())
                .unwrap_or_default();
            let mut listed = Vec::new();
            for e in body["tree"].as_array().cloned().unwrap_or_default() {
                let (Some(path), Some(blob)) = (e["path"].as_str(), e["sha"].as_str()) else {
                    return reply(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Invalid tree info"}),
                    );
                };
                if !git.blobs.contains_key(blob) {
                    return reply(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Invalid tree info"}),
                    );
                }
                files.insert(path.to_owned(), blob.to_owned());
                listed.push(json!({"path": path, "mode": "100644", "type": "blob", "size": git.blobs[blob].len(), "sha": blob,
                    "url": format!("https://api.github.com/repos/{REPO}/git/blobs/{blob}")}));
            }
            let sha = git.sha();
            git.trees.insert(sha.clone(), files);
            let mut v = fixture("tree_created");
            v["sha"] = json!(sha);
            v["url"] = json!(format!("https://api.github.com/repos/{REPO}/trees/{sha}"));
            v["tree"] = Value::Array(listed);
            v["truncated"] = json!(false);
            reply(StatusCode::CREATED, v)
        }
        ("POST", "/git/commits") => {
            let tree = body["tree"].as_str().unwrap_or_default().to_owned();
            if !git.trees.contains_key(&tree) {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Tree SHA does not exist"}),
                );
            }
            let parents: Vec<String> = body["parents"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let sha = git.sha();
            let c = Commit {
                message: body["message"].as_str().unwrap_or_default().to_owned(),
                tree,
                parents,
            };
            let v = git_commit_json(&sha, &c);
            git.commits.insert(sha, c);
            reply(StatusCode::CREATED, v)
        }
        ("POST", "/git/refs") => {
            let name = body["ref"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("refs/")
                .to_owned();
            let sha = body["sha"].as_str().unwrap_or_default().to_owned();
            if git.refs.contains_key(&name) {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Reference already exists"}),
                );
            }
            git.refs.insert(name.clone(), sha.clone());
            reply(StatusCode::CREATED, ref_json(&name, &sha))
        }
        ("PATCH", r) if r.starts_with("/git/refs/") => {
            let name = r["/git/refs/".len()..].to_owned();
            let sha = body["sha"].as_str().unwrap_or_default().to_owned();
            let Some(current) = git.refs.get(&name).cloned() else {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Reference does not exist"}),
                );
            };
            if body["force"] != json!(true) && !git.descends(&sha, &current) {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Update is not a fast forward"}),
                );
            }
            git.refs.insert(name.clone(), sha.clone());
            reply(StatusCode::OK, ref_json(&name, &sha))
        }
        ("GET", "/pulls") => {
            let head = query.get("head").cloned().unwrap_or_default();
            let branch = head.split_once(':').map_or(head.as_str(), |(_, b)| b);
            let state = query.get("state").map_or("open", String::as_str);
            let found: Vec<Value> = git
                .pulls
                .iter()
                .filter(|p| p["head"]["ref"] == branch && (state == "all" || p["state"] == state))
                .cloned()
                .collect();
            reply(StatusCode::OK, Value::Array(found))
        }
        ("POST", "/pulls") => {
            let head = body["head"].as_str().unwrap_or_default().to_owned();
            let Some(head_sha) = git.refs.get(&format!("heads/{head}")).cloned() else {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}),
                );
            };
            if git
                .pulls
                .iter()
                .any(|p| p["head"]["ref"] == head && p["state"] == "open")
            {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for octocat:{head}.")}]}),
                );
            }
            let number = 1347 + git.pulls.len() as i64;
            let mut pr = fixture("pull_request");
            pr["number"] = json!(number);
            pr["html_url"] = json!(format!("https://github.com/{REPO}/pull/{number}"));
            pr["url"] = json!(format!(
                "https://api.github.com/repos/{REPO}/pulls/{number}"
            ));
            pr["title"] = body["title"].clone();
            pr["body"] = body["body"].clone();
            pr["head"]["ref"] = json!(head);
            pr["head"]["label"] = json!(format!("octocat:{head}"));
            pr["head"]["sha"] = json!(head_sha);
            pr["base"]["ref"] = body["base"].clone();
            pr["draft"] = json!(body["draft"].as_bool().unwrap_or(false));
            pr["created_at"] = json!("2026-11-23T22:30:51Z");
            pr["updated_at"] = json!("2026-11-23T22:30:51Z");
            git.pulls.push(pr.clone());
            reply(StatusCode::CREATED, pr)
        }
        ("GET", r) if r.starts_with("/pulls/") => {
            let n: i64 = r["/pulls/".len()..].parse().unwrap_or(-1);
            match git.pulls.iter().find(|p| p["number"] == n) {
                Some(p) => reply(StatusCode::OK, p.clone()),
                None => not_found(),
            }
        }
        ("GET", r) if r.starts_with("/commits/") && r.ends_with("/check-runs") => {
            let sha = r
                .trim_start_matches("/commits/")
                .trim_end_matches("/check-runs");
            let mut v = fixture("check_runs");
            if let Some(runs) = v["check_runs"].as_array_mut() {
                for run in runs {
                    run["head_sha"] = json!(sha);
                }
            }
            reply(StatusCode::OK, v)
        }
        ("GET", r) if r.starts_with("/commits/") && r.ends_with("/check-suites") => {
            let sha = r
                .trim_start_matches("/commits/")
                .trim_end_matches("/check-suites");
            let mut v = fixture("check_suites");
            if let Some(suites) = v["check_suites"].as_array_mut() {
                for s in suites {
                    s["head_sha"] = json!(sha);
                }
            }
            reply(StatusCode::OK, v)
        }
        ("GET", r) if r.starts_with("/compare/") => reply(StatusCode::OK, fixture("compare")),
        ("GET", "/actions/runs") => {
            let mut v = fixture("workflow_runs");
            if let Some(sha) = query.get("head_sha") {
                v["workflow_runs"][0]["head_sha"] = json!(sha);
            }
            reply(StatusCode::OK, v)
        }
        ("GET", r) if r.starts_with("/actions/runs/") && r.ends_with("/artifacts") => {
            reply(StatusCode::OK, fixture("artifacts"))
        }
        _ => not_found(),
    }
}

/// A 403 secondary rate limit that names its wait in `retry-after`.
pub fn secondary_limit(method: Method, path_part: &str, retry_after_secs: u64) -> Failure {
    Failure {
        method,
        path_part: path_part.into(),
        status: StatusCode::FORBIDDEN,
        headers: vec![
            ("retry-after", retry_after_secs.to_string()),
            ("x-ratelimit-remaining", "4321".into()),
        ],
        body: fixture("secondary_rate_limit"),
    }
}

/// A 403 primary rate limit: nothing left until `reset_epoch`.
pub fn primary_limit(method: Method, path_part: &str, reset_epoch: i64) -> Failure {
    Failure {
        method,
        path_part: path_part.into(),
        status: StatusCode::FORBIDDEN,
        headers: vec![
            ("x-ratelimit-limit", "5000".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-used", "5000".into()),
            ("x-ratelimit-reset", reset_epoch.to_string()),
        ],
        body: fixture("primary_rate_limit"),
    }
}

/// The settings a test GitHub client uses: no pauses, short waits.
pub fn test_settings(api_url: &str) -> ai_team_providers::github::GitHubSettings {
    let mut s = ai_team_providers::github::GitHubSettings::new(api_url, "ghp_test_token");
    s.write_pause = std::time::Duration::ZERO;
    s.max_wait = std::time::Duration::from_secs(5);
    s.secondary_wait = std::time::Duration::from_secs(1);
    s
}

/// An open pull request row of `repository`, as the integration step stores it.
pub fn pr_row(
    repository: &str,
    number: i64,
    head_branch: &str,
) -> ai_team_core::delivery::PullRequestUpdate {
    ai_team_core::delivery::PullRequestUpdate {
        repository: repository.into(),
        number,
        url: format!("https://github.com/{repository}/pull/{number}"),
        state: "open".into(),
        title: "SHOP-7: Reset".into(),
        head_branch: head_branch.into(),
        base_branch: "master".into(),
        head_sha: Some(HEAD_SHA.into()),
        merged: false,
        draft: false,
        updated_at: "2011-01-26T19:01:12Z".parse().unwrap(),
    }
}

//! `ai-team run --story FILE [--repo DIR]`: the main job in one process.
//! Creates the workflow from the story file, runs every step in-process
//! through the same durable queue and engine as `serve`, prints a line per
//! step as it finishes, and a summary at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::ledger::EventKind;
use ai_team_core::models::{Event, ExecutionStatus};
use ai_team_core::query::NewWorkflow;
use ai_team_core::{StoreError, story};

use crate::worker::Worker;

/// What the run ended as, for the exit code.
pub struct RunSummary {
    pub completed: bool,
}

fn dollars(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn progress_line(e: &Event, started: Instant) -> Option<String> {
    let d = &e.data;
    let at = format!("{:>6.1}s", started.elapsed().as_secs_f64());
    match e.kind()? {
        EventKind::Conversation => Some(format!(
            "{at}  {:<15} {:<10} {:>6} tokens  ${:.6}  {} file(s){}",
            d["step"].as_str().unwrap_or("?"),
            d["agent"].as_str().unwrap_or("?"),
            d["prompt_tokens"].as_i64().unwrap_or(0) + d["completion_tokens"].as_i64().unwrap_or(0),
            dollars(&d["cost"]),
            d["files"].as_array().map_or(0, Vec::len),
            if d["cached"].as_bool() == Some(true) {
                "  (stored response reused)"
            } else {
                ""
            }
        )),
        EventKind::Governance if d["decision"] == "shrunk" => Some(format!(
            "{at}  {:<15} prompt shrunk to fit: {}",
            d["step"].as_str().unwrap_or("?"),
            d["truncated_sections"]
        )),
        EventKind::Collaboration => Some(format!(
            "{at}  review          reviewer sends the work back to the developer: {} change(s)",
            d["changes"].as_array().map_or(0, Vec::len)
        )),
        EventKind::Escalation => Some(format!(
            "{at}  ESCALATION: {}",
            d["message"].as_str().unwrap_or("")
        )),
        EventKind::Workflow if d["step"] == "story_retrieval" => Some(format!(
            "{at}  story_retrieval {} ({} chars)",
            d["story"].as_str().unwrap_or("?"),
            d["chars"]
        )),
        EventKind::Workflow if d["step"] == "repository_context" => Some(format!(
            "{at}  {:<15} {} file(s){}",
            "repository",
            d["files"],
            d["languages"]
                .as_array()
                .filter(|l| !l.is_empty())
                .map(|l| format!(
                    " ({})",
                    l.iter()
                        .filter_map(|p| p[0].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        )),
        EventKind::Verification => Some(format!(
            "{at}  {:<15} {}",
            d["step"].as_str().unwrap_or("verification"),
            d["summary"].as_str().unwrap_or("?")
        )),
        EventKind::Workflow if d["step"] == "integration" => Some(format!(
            "{at}  integration     branch {} ({} new commit(s))",
            d["delivered"]["branch"].as_str().unwrap_or("?"),
            d["delivered"]["new_commits"]
        )),
        _ => None,
    }
}

/// The repository a run commits into: `--repo`, else
/// `./ai-team-output/<story key>`; the operator's choice, so the engine
/// is allowed to write there.
pub fn target_repository(story_path: &Path, repo: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match repo {
        Some(r) => std::path::absolute(r)?,
        None => {
            let story = read_story(story_path)?;
            std::path::absolute(PathBuf::from("ai-team-output").join(story.key.to_lowercase()))?
        }
    })
}

fn read_story(story_path: &Path) -> anyhow::Result<story::StoryFile> {
    let text = std::fs::read_to_string(story_path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", story_path.display()))?;
    story::parse(story_path, &text).map_err(|e| anyhow::anyhow!(e))
}

/// Runs the story to the end (or to a failure) and prints as it goes;
/// `repo` comes from `target_repository`.
pub async fn run(
    engine: Engine,
    worker: Worker,
    story_path: &Path,
    repo: PathBuf,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let story = read_story(story_path)?;
    let new = NewWorkflow::parse(
        &story.workflow_name(),
        &story.key,
        Some(&repo.display().to_string()),
        Some(&story.description),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "invalid story: {}",
            e.iter()
                .map(|f| f.msg.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let store = engine.store.clone();
    let workflow = store.create_workflow(&new).await?.into_inner();
    println!(
        "AI Team · {} · model {} ({})",
        workflow.name,
        engine.llm.model(),
        engine.llm.provider()
    );
    println!("workflow {} · repository {}", workflow.id, repo.display());
    worker.recover().await?;
    let execution = match engine.start(workflow.id).await {
        Ok(e) => e,
        Err(ai_team_core::engine::EngineError::Store(StoreError::Conflict(_))) => {
            let live = store
                .list_executions(workflow.id, None)
                .await?
                .items
                .into_iter()
                .find(|e| {
                    matches!(
                        e.status,
                        ExecutionStatus::Pending | ExecutionStatus::Running
                    )
                })
                .ok_or_else(|| anyhow::anyhow!("an execution is live but cannot be found"))?;
            println!(
                "execution {} was still live (an earlier run stopped): continuing it",
                live.id
            );
            live
        }
        Err(e) => return Err(e.into()),
    };
    println!("execution {} started\n", execution.id);
    let mut last_event = store
        .events_after(workflow.id, 0, i64::MAX)
        .await?
        .iter()
        .filter(|e| e.execution_id != Some(execution.id))
        .map(|e| e.id)
        .max()
        .unwrap_or(0);
    loop {
        let outcome = worker.try_execute_next().await?;
        for e in store.events_after(workflow.id, last_event, 1000).await? {
            last_event = e.id;
            if e.execution_id == Some(execution.id)
                && let Some(line) = progress_line(&e, started)
            {
                println!("{line}");
            }
        }
        let now = store.execution_by_id(execution.id).await?;
        if !matches!(
            now.status,
            ExecutionStatus::Pending | ExecutionStatus::Running
        ) {
            break;
        }
        match outcome {
            None | Some(Outcome::Busy { .. } | Outcome::Retry { .. }) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(_) => {}
        }
    }
    let done = store.execution_by_id(execution.id).await?;
    let files: Vec<_> = store
        .workflow_code_files(workflow.id)
        .await?
        .into_iter()
        .filter(|f| f.execution_id == Some(execution.id))
        .collect();
    let checkpoint = store.latest_checkpoint(execution.id).await?;
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    println!(
        "\n== {} ==",
        if done.status == ExecutionStatus::Completed {
            "done"
        } else {
            done.status.as_str()
        }
    );
    println!("files      {} ({})", paths.len(), paths.join(", "));
    println!(
        "calls      {} · tokens {} ({} prompt + {} completion) · cost ${:.6}",
        done.total_calls,
        done.total_tokens,
        done.prompt_tokens,
        done.completion_tokens,
        ai_team_core::money::nanos_to_dollars(done.total_cost)
    );
    println!("time       {:.1} s", started.elapsed().as_secs_f64());
    if let Some(d) = checkpoint
        .and_then(|c| c.state.ok())
        .and_then(|s| s.delivered)
    {
        let head: String = d.head_sha.chars().take(12).collect();
        println!("branch     {} in {} (head {head})", d.branch, d.location);
        println!("           git -C {} log --stat {}", d.location, d.branch);
    }
    if let Some(err) = &done.error {
        println!("error      {err}");
    }
    Ok(RunSummary {
        completed: done.status == ExecutionStatus::Completed,
    })
}

//! Deterministic seed data: workflows with conversations and calls whose
//! fields vary enough to exercise every filter and sort.

use ai_team_core::Store;
use ai_team_core::models::{Agent, LlmCallStatus, NewConversation, NewLlmCall};
use ai_team_core::query::NewWorkflow;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// A small deterministic generator (no dependency needed for tests).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6364136223846793005).wrapping_add(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "smollm2-135m"];
pub const WORDS: &[&str] = &[
    "Reset",
    "password",
    "login",
    "Token",
    "email",
    "50%_off",
    "ünïcode",
];

pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

pub async fn workflow(store: &dyn Store, story: &str) -> i64 {
    let new = NewWorkflow::parse(&format!("Story {story}"), story, None, Some("seeded")).unwrap();
    store.create_workflow(&new).await.unwrap().into_inner().id
}

pub async fn conversation(
    store: &dyn Store,
    workflow_id: i64,
    execution_id: Option<i64>,
    step: &str,
) -> i64 {
    store
        .create_conversation(&NewConversation {
            workflow_id,
            execution_id,
            agent: Agent::Developer,
            step: step.into(),
            prompt: "Implement the story".into(),
            output: Some("done".into()),
            details: json!({"seeded": true}),
            timestamp: Utc::now(),
        })
        .await
        .unwrap()
        .id
}

/// One call with varied fields; timestamps spread over ten days, with
/// collisions on purpose so that id tie-breaks matter.
pub fn call(rng: &mut Lcg, conversation_id: i64, execution_id: Option<i64>) -> NewLlmCall {
    let prompt_tokens = rng.below(4000) as i64;
    let completion_tokens = rng.below(1000) as i64;
    let text = format!("{} {} {}", rng.pick(WORDS), rng.pick(WORDS), rng.below(100));
    let status = *rng.pick(&[
        LlmCallStatus::Success,
        LlmCallStatus::Success,
        LlmCallStatus::Failed,
    ]);
    NewLlmCall {
        conversation_id,
        execution_id,
        model: (*rng.pick(MODELS)).to_owned(),
        prompt_tokens,
        completion_tokens,
        max_tokens: Some(1024),
        total_tokens_requested: Some(prompt_tokens + 1024),
        response_time_ms: rng.below(5000) as i64,
        status,
        error_code: (status == LlmCallStatus::Failed).then(|| "429".to_owned()),
        truncated_sections: vec![],
        prompt_hash: format!("{:064x}", rng.next_u64()),
        response_hash: Some(format!("{:064x}", rng.next_u64())),
        budget_snapshot: json!({"step_tokens_left": rng.below(10000)}),
        cost: rng.below(50_000_000) as i64,
        timestamp: base_time() + Duration::minutes(rng.below(14_400) as i64),
        request_data: json!({"messages": [{"role": "user", "content": text}]}),
        response_data: json!({"content": format!("answer {}", rng.pick(WORDS))}),
    }
}

"""COMPARISON BASELINE — not a product, not the AI Team service.

A minimal FastAPI + SQLAlchemy 2.x service that does, for one execution, the
same visible steps as AI Team (../../README.md "The engine, in short"), the
way the original Python service's stack did them, plainly: story retrieval
from the workflow's description, then the six agent calls in order (pm,
architect, developer, frontend, tester, reviewer), each one HTTP POST to an
OpenAI-compatible /v1/chat/completions (httpx), each recorded in the
database (the LLM call with request/response text, tokens and cost, a
conversation, its system/user/assistant messages, an event) with a
checkpoint per step; then, as AI Team does, the files of the developer's
and the tester's answers delivered on a branch of a git repository made for
the workflow (`git init` and one `git fast-import`, the same two processes
AI Team's local delivery runs for such a repository; BASELINE_DELIVERY=0
leaves it out); then completion. It exists only so that
`scripts/bench-vs-python` can time AI Team against a Python stack doing the
same work; see README.md beside this file.

Plain on purpose: sync SQLAlchemy ORM, one session per step, FastAPI's
BackgroundTasks (Starlette runs a sync task in its thread pool), one shared
httpx.Client. SQLite in WAL with synchronous=NORMAL and foreign keys, as AI
Team's own SQLite store is opened. No deliberate slowness, no tuning.

    DATABASE_URL=sqlite:///./baseline.db OPENAI_BASE_URL=http://127.0.0.1:9999/v1 \
      uvicorn app:app --port 8001 --workers 1
"""
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./baseline.db")
BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1").rstrip("/")
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
API_KEY = os.environ.get("OPENAI_API_KEY", "x")
DELIVERY = os.environ.get("BASELINE_DELIVERY", "1") != "0"
REPOS = Path(os.environ.get("BASELINE_DATA_DIR", "./data")) / "repos"
# a fenced block whose info string names its path: ```python app/feature.py
FENCE = re.compile(r"^```[\w+-]*[ \t]+([\w./-]+)[ \t]*\n(.*?)^```", re.M | re.S)
# gpt-4o-mini list prices, US dollars per token (prompt, completion)
PRICE = (0.15 / 1e6, 0.60 / 1e6)

# (step, agent, display name, goal, task): the team of AI Team's core/agents/team.toml
TEAM = [
    ("analysis", "pm", "Product Manager",
     "Turn the user story into clear, testable acceptance criteria and a short scope statement.",
     "Write the scope and the acceptance criteria (a list under '## Acceptance Criteria')."),
    ("architecture", "architect", "Solution Architect",
     "Design the smallest sound solution: components, files, data and interfaces.",
     "Write the design and list every file to create or change under '## Files'."),
    ("implementation", "developer", "Backend Developer",
     "Write the backend code of the design, complete and runnable.",
     "Write every backend file as a fenced block whose info string names its path."),
    ("frontend", "frontend", "Frontend Developer",
     "Write the user-facing part of the design.",
     "Write the user-facing files as fenced blocks, or say the story has no user-facing part."),
    ("testing", "tester", "QA Tester",
     "Write automated tests that check the acceptance criteria against the code.",
     "Write the tests as fenced blocks whose info string names their path."),
    ("review", "reviewer", "Code Reviewer",
     "Review the code against the acceptance criteria and decide: approve, or request specific changes.",
     "Answer 'VERDICT: APPROVED' or 'VERDICT: CHANGES_REQUESTED' with a list of changes."),
]


def now():
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Workflow(Base):
    __tablename__ = "workflows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    jira_story_id: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    repository_url: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=now, onupdate=now)


class Execution(Base):
    __tablename__ = "executions"
    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    total_calls: Mapped[int] = mapped_column(default=0)
    total_tokens: Mapped[int] = mapped_column(default=0)
    total_cost: Mapped[float] = mapped_column(Float, default=0.0)
    total_latency_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    agent: Mapped[str] = mapped_column(String(20))
    step: Mapped[str] = mapped_column(String(40))
    prompt: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    total_tokens_used: Mapped[int] = mapped_column(default=0)
    total_cost: Mapped[float] = mapped_column(Float, default=0.0)
    timestamp: Mapped[dt.datetime] = mapped_column(default=now)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    artifacts: Mapped[list] = mapped_column(JSON, default=list)
    message_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class LlmCall(Base):
    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    total_tokens: Mapped[int] = mapped_column(default=0)
    max_tokens: Mapped[int | None]
    response_time_ms: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(20))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    response_hash: Mapped[str | None] = mapped_column(String(64))
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    timestamp: Mapped[dt.datetime] = mapped_column(default=now)
    request_data: Mapped[dict] = mapped_column(JSON, default=dict)
    response_data: Mapped[dict] = mapped_column(JSON, default=dict)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class CodeFile(Base):
    __tablename__ = "code_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(String(1024))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(40))
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False, "timeout": 10})


@event.listens_for(engine, "connect")
def _sqlite_pragmas(conn, _record):
    if DATABASE_URL.startswith("sqlite"):
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)
Base.metadata.create_all(engine)
llm = httpx.Client(base_url=BASE_URL, timeout=120, headers={"authorization": f"Bearer {API_KEY}"})
app = FastAPI(title="AI Team comparison baseline (not a product)")


def execution_view(e: Execution) -> dict:
    return {"id": e.id, "workflow_id": e.workflow_id, "status": e.status,
            "started_at": e.started_at and e.started_at.isoformat(),
            "finished_at": e.finished_at and e.finished_at.isoformat(),
            "total_calls": e.total_calls, "total_tokens": e.total_tokens, "total_cost": e.total_cost,
            "avg_latency_ms": e.total_latency_ms / e.total_calls if e.total_calls else 0.0,
            "models": [MODEL] if e.total_calls else [], "error": e.error, "meta": e.meta}


def workflow_view(w: Workflow) -> dict:
    return {"id": w.id, "name": w.name, "jira_story_id": w.jira_story_id, "description": w.description,
            "repository_url": w.repository_url, "status": w.status,
            "created_at": w.created_at.isoformat(), "updated_at": w.updated_at.isoformat()}


def checkpoint(db: Session, execution_id: int, step: str, state: dict):
    db.add(Checkpoint(execution_id=execution_id, step=step, state=state))


def agent_step(execution_id: int, step: str, agent: str, name: str, goal: str, task: str, state: dict):
    """One agent step: one session, one model call, its records, a checkpoint."""
    with SessionLocal() as db:
        ex = db.get(Execution, execution_id)
        system = f"You are the {name} of an AI software team. Goal: {goal}"
        context = "\n\n".join(f"## {k}\n{v}" for k, v in state["outputs"].items())
        user = f"# Story {state['story_key']}\n{state['story']}\n\n{context}\n\n# Task\n{task}"
        body = {"model": MODEL, "messages": [{"role": "system", "content": system},
                                             {"role": "user", "content": user}],
                "temperature": 0.2, "max_tokens": 1500}
        started = time.perf_counter()
        resp = llm.post("/chat/completions", json=body)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        resp.raise_for_status()
        data = resp.json()
        output = data["choices"][0]["message"]["content"]
        usage = data.get("usage") or {}
        p, c = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        cost = p * PRICE[0] + c * PRICE[1]
        # Written after the call, so no write transaction is open across it.
        conv = Conversation(workflow_id=ex.workflow_id, execution_id=ex.id, agent=agent, step=step, prompt=user)
        db.add(conv)
        db.flush()
        db.add(LlmCall(conversation_id=conv.id, execution_id=ex.id, model=data.get("model", MODEL),
                       prompt_tokens=p, completion_tokens=c, total_tokens=p + c, max_tokens=body["max_tokens"],
                       response_time_ms=elapsed_ms, status="success",
                       prompt_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
                       response_hash=hashlib.sha256(output.encode()).hexdigest(), cost=cost,
                       request_data=body, response_data=data))
        meta = {"agent": agent, "step": step}
        db.add_all([Message(conversation_id=conv.id, role="system", content=system, message_metadata=meta),
                    Message(conversation_id=conv.id, role="user", content=user, message_metadata=meta),
                    Message(conversation_id=conv.id, role="assistant", content=output, message_metadata=meta)])
        conv.output, conv.total_tokens_used, conv.total_cost = output, p + c, cost
        conv.details = {"usage": usage, "cost": cost}
        db.add(Event(workflow_id=ex.workflow_id, execution_id=ex.id, type="conversation",
                     data={"conversation_id": conv.id, "agent": agent, "step": step, "tokens": p + c, "cost": cost}))
        ex.total_calls += 1
        ex.total_tokens += p + c
        ex.total_cost += cost
        ex.total_latency_ms += elapsed_ms
        state["outputs"][f"{step} ({name})"] = output
        checkpoint(db, ex.id, step, state)
        db.commit()


def deliver(execution_id: int, state: dict):
    """The files of the implementation and testing answers, one commit per
    step, on a branch of the workflow's own repository (made here), with a
    code-file row each: `git init` and one `git fast-import`."""
    with SessionLocal() as db:
        ex = db.get(Execution, execution_id)
        commits = []
        for step in ("implementation", "testing"):
            output = next((v for k, v in state["outputs"].items() if k.startswith(step + " ")), "")
            files = [(m.group(1), m.group(2)) for m in FENCE.finditer(output)]
            for path, content in files:
                db.add(CodeFile(workflow_id=ex.workflow_id, execution_id=ex.id, step=step, path=path,
                                content=content))
            if files:
                commits.append((step, files))
        repo = REPOS / f"workflow-{ex.workflow_id}"
        if commits:
            if not (repo / ".git").exists():
                repo.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "init", "-q", "-b", "main", "--template=", str(repo)], check=True)
            branch = f"refs/heads/ai-team/{state['story_key'].lower()}-execution-{ex.id}"
            stream = bytearray()
            for n, (step, files) in enumerate(commits, 1):
                message = f"{state['story_key']}: {step}\n".encode()
                stream += f"commit {branch}\nmark :{n}\ncommitter AI Team <ai-team@localhost> {int(time.time())} +0000\n".encode()
                stream += b"data %d\n%s\n" % (len(message), message)
                for path, content in files:
                    data = content.encode()
                    stream += f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data)
                stream += b"\n"
            stream += f"get-mark :{len(commits)}\ndone\n".encode()
            head = subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet", "--done", "--cat-blob-fd=1"],
                                  input=bytes(stream), capture_output=True, check=True).stdout.decode().strip()
            state["delivered"] = {"branch": branch, "head_sha": head}
        checkpoint(db, ex.id, "integration", {"delivered": state.get("delivered")})
        db.commit()


def run_execution(execution_id: int):
    """The background task: story retrieval, six agent steps, completion."""
    try:
        with SessionLocal() as db:
            ex = db.get(Execution, execution_id)
            wf = db.get(Workflow, ex.workflow_id)
            ex.status, ex.started_at, wf.status = "running", now(), "running"
            state = {"story_key": wf.jira_story_id, "story": wf.description or wf.name, "outputs": {}}
            db.add(Event(workflow_id=wf.id, execution_id=ex.id, type="execution",
                         data={"step": "story_retrieval", "chars": len(state["story"])}))
            checkpoint(db, ex.id, "story_retrieval", state)
            db.commit()
        for step, agent, name, goal, task in TEAM:
            agent_step(execution_id, step, agent, name, goal, task, state)
        if DELIVERY:
            deliver(execution_id, state)
        with SessionLocal() as db:
            ex = db.get(Execution, execution_id)
            wf = db.get(Workflow, ex.workflow_id)
            ex.status, ex.finished_at, wf.status = "completed", now(), "completed"
            db.add(Event(workflow_id=wf.id, execution_id=ex.id, type="execution", data={"status": "completed"}))
            checkpoint(db, ex.id, "completion", {"status": "completed"})
            db.commit()
    except Exception as e:  # the execution fails with the reason, as a service would record it
        with SessionLocal() as db:
            ex = db.get(Execution, execution_id)
            wf = db.get(Workflow, ex.workflow_id)
            ex.status, ex.finished_at, ex.error, wf.status = "failed", now(), f"{type(e).__name__}: {e}", "failed"
            db.commit()


class CreateWorkflow(BaseModel):
    jira_story_id: str
    name: str | None = None
    jira_story_title: str | None = None
    description: str | None = None
    repository_url: str | None = None


@app.get("/health")
def health():
    return {"status": "ok", "database": "ok", "version": "baseline"}


@app.post("/workflows", status_code=201)
def create_workflow(body: CreateWorkflow):
    with SessionLocal() as db:
        found = db.scalar(select(Workflow).where(Workflow.jira_story_id == body.jira_story_id))
        if found:
            return workflow_view(found)
        name = body.name or f"{body.jira_story_id}: {body.jira_story_title or ''}"
        wf = Workflow(name=name, jira_story_id=body.jira_story_id, description=body.description,
                      repository_url=body.repository_url)
        db.add(wf)
        db.commit()
        return workflow_view(wf)


@app.post("/workflows/{workflow_id}/execute", status_code=202)
def execute(workflow_id: int, tasks: BackgroundTasks):
    with SessionLocal() as db:
        if db.get(Workflow, workflow_id) is None:
            raise HTTPException(404, "Workflow not found")
        live = db.scalar(select(Execution).where(Execution.workflow_id == workflow_id,
                                                 Execution.status.in_(("pending", "running"))))
        if live:
            raise HTTPException(409, "An execution is already running")
        ex = Execution(workflow_id=workflow_id, status="pending", meta={})
        db.add(ex)
        db.commit()
        tasks.add_task(run_execution, ex.id)
        return {"message": "Execution started", "workflow_id": workflow_id, "execution_id": ex.id,
                "id": ex.id, "status": ex.status}


@app.get("/workflows/{workflow_id}/executions/{execution_id}")
def get_execution(workflow_id: int, execution_id: int):
    with SessionLocal() as db:
        ex = db.get(Execution, execution_id)
        if ex is None or ex.workflow_id != workflow_id:
            raise HTTPException(404, "Execution not found")
        return execution_view(ex)

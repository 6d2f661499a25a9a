"""Job-aware impact: before a drain, a ``state=down`` or a GPU reset is proposed, the jobs on the
node say what it costs.

``list_node_jobs`` runs the read-only ``node_jobs`` check (Slurm ``squeue -w`` on the inventory's
controller for the node's Slurm name, ``Toolkit.place``; Kubernetes pods by ``spec.nodeName``) and,
when jobs run, ``job_checkpoint`` on the node (the last checkpoint in the job's log and its age).
``add_impact`` gives every proposal that takes capacity (``drain_node``, ``reset_gpu``) an
``Impact``: "stops job 4412 of alice, 64 GPUs, running 3 h 10 min, last checkpoint 14 min ago",
"no jobs running on node-05", or — when the jobs could not be listed — "unknown: could not list
the jobs (…)", never "no jobs". Where jobs run, the gentle Slurm drain (``state=drain``: "drain
after the job ends") comes before the proposals that stop them, added when none was proposed.
The impact is shown, not hashed (pipelines.api.Impact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from diagnostics.types import Status, ToolResult, ValidationError
from pipelines.api import Cause, Impact, ImpactStatus, Proposal
from pipelines.proposals import gentle_drain

CAPACITY_TOOLS = frozenset({"drain_node", "reset_gpu"})

Runner = Callable[[str, str, dict[str, Any]], ToolResult]


@dataclass
class NodeJobs:
    """What ``node_jobs`` (and ``job_checkpoint``) said of one node."""

    node: str
    listed: bool  # the scheduler answered; ``jobs`` is then the whole truth ([] = none)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""  # not listed: why
    results: list[ToolResult] = field(default_factory=list)  # what ran


def list_node_jobs(toolkit: Any, node: str, run: Runner | None = None) -> NodeJobs:
    """The jobs on ``node`` and, when some run, the last checkpoint in the job's log. Never raises:
    a bad node name, a scheduler error or a timeout comes back as ``listed=False`` with the reason."""
    runner: Runner = run or toolkit.run
    scheduler = getattr(toolkit, "scheduler", "slurm")
    place = getattr(toolkit, "place", None)
    try:
        if place is not None and scheduler == "slurm":  # on the controller, for the node's Slurm name
            placed = place("node_jobs", node, {})
            host, params = placed.run_on, dict(placed.params)
        else:
            host, params = node, {"node": node}
    except ValidationError as exc:
        return NodeJobs(node, False, reason=str(exc))
    result = runner("node_jobs", host, params)
    if result.status is not Status.OK:
        err = (result.error or "").strip()
        why = err.splitlines()[0][:200] if err else "no answer"
        where = f" on {host}" if host != node else ""
        return NodeJobs(node, False, reason=f"node_jobs{where} {result.status.value}: {why}", results=[result])
    jobs = [dict(j, node=node) for j in result.data.get("jobs") or [] if isinstance(j, dict)]
    found = NodeJobs(node, True, jobs, results=[result])
    if not jobs:
        return found
    ck = runner("job_checkpoint", node, {})
    found.results.append(ck)
    if ck.status is Status.OK:
        point = ck.data.get("checkpoint") or None
        state = "found" if point else "none"
        age, step = ck.data.get("age_s"), (point or {}).get("step")
    else:
        state, age, step = "unknown", None, None
    for j in jobs:  # the log belongs to the job when only one runs there
        if len(jobs) == 1:
            j.update(checkpoint=state, checkpoint_age_s=age, checkpoint_step=step)
        else:
            j.update(checkpoint="unknown", checkpoint_age_s=None, checkpoint_step=None)
    return found


# --------------------------------------------------------------------------- wording


def duration(seconds: float | None) -> str:
    """'3 h 10 min', '14 min', '45 s', '2 d 4 h'."""
    if seconds is None:
        return "unknown"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = s // 3600, s // 60 % 60
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = s // 86400, s // 3600 % 24
    return f"{d} d {h} h" if h else f"{d} d"


def job_words(job: dict[str, Any]) -> str:
    """'job 4412 of alice, 64 GPUs, running 3 h 10 min, last checkpoint 14 min ago'."""
    kind = job.get("kind") or "job"
    who = f"{kind} {job.get('id')}" + (f" of {job['user']}" if kind == "job" and job.get("user") else "")
    parts = [who]
    gpus = job.get("gpus")
    if isinstance(gpus, int):
        here = f" on {job['node']}" if kind == "pod" and job.get("node") else ""
        parts.append(f"{gpus} GPU{'s' if gpus != 1 else ''}{here}" if gpus else "no GPUs")
    if job.get("elapsed_s") is not None:
        parts.append(f"running {duration(job['elapsed_s'])}")
    state = job.get("checkpoint")
    if state == "found" and job.get("checkpoint_age_s") is not None:
        parts.append(f"last checkpoint {duration(job['checkpoint_age_s'])} ago")
    elif state == "found":
        step = job.get("checkpoint_step")
        parts.append("last checkpoint" + (f" at step {step}" if step is not None else "") + " (time not logged)")
    elif state == "none":
        parts.append("no checkpoint in its log")
    else:
        parts.append("checkpoint age unknown")
    return ", ".join(parts)


def _jobs_words(jobs: Sequence[dict[str, Any]]) -> str:
    if len(jobs) == 1:
        return job_words(jobs[0])
    kinds = {j.get("kind") or "job" for j in jobs}
    noun = "pods" if kinds == {"pod"} else "jobs"
    return f"{len(jobs)} {noun}: " + "; ".join(job_words(j) for j in jobs[:5]) + ("; …" if len(jobs) > 5 else "")


# --------------------------------------------------------------------------- proposals


def _effect(proposal: Proposal, node: str, scheduler: str) -> str:
    """What the proposal does to the jobs on ``node``: "" (nothing), "gentle" or why it stops them."""
    tools = [s for s in proposal.steps if s.host == node and s.tool in CAPACITY_TOOLS]
    if not tools:
        return ""
    why = ""
    for s in tools:
        if s.tool == "reset_gpu":
            why = why or "reset_gpu needs the GPU free of processes"
        elif scheduler == "kubernetes":
            why = why or "kubectl drain evicts the pods"
        elif s.params.get("state") == "down":
            why = why or "state=down kills running jobs now"
    return why or "gentle"


def impact_of(proposal: Proposal, found: dict[str, NodeJobs], scheduler: str) -> Impact | None:
    """The proposal's ``Impact`` from what was found per node (None: it takes no capacity)."""
    nodes = [n for n in dict.fromkeys(s.host for s in proposal.steps) if _effect(proposal, n, scheduler)]
    if not nodes:
        return None
    texts: list[str] = []
    jobs: list[dict[str, Any]] = []
    reasons: list[str] = []
    gentle = True
    for node in nodes:
        effect = _effect(proposal, node, scheduler)
        seen = found.get(node)
        if seen is None or not seen.listed:
            reason = seen.reason if seen is not None else "not looked up"
            reasons.append(reason)
            texts.append(f"unknown: could not list the jobs on {node} ({reason})" if len(nodes) > 1
                         else f"unknown: could not list the jobs ({reason})")
            gentle = gentle and effect == "gentle"
            continue
        if not seen.jobs:
            texts.append(f"no jobs running on {node}")
            continue
        stops = effect != "gentle"
        gentle = gentle and not stops
        jobs.extend(dict(j, stops=stops) for j in seen.jobs)
        if stops:
            texts.append(f"stops {_jobs_words(seen.jobs)} ({effect})")
        else:
            texts.append(f"drain after the job ends: {_jobs_words(seen.jobs)}; it finishes first, no new jobs "
                         f"start on {node}")
    status: ImpactStatus = "unknown" if reasons else ("jobs" if jobs else "none")
    return Impact(status=status, text=" | ".join(texts), nodes=tuple(nodes), jobs=tuple(jobs),
                  gentle=gentle, reason="; ".join(reasons))


def add_impact(proposals: Sequence[Proposal], toolkit: Any, lookup: Callable[[str], NodeJobs], *,
               gpu_model: str | None = None, notes: list[str] | None = None) -> list[Proposal]:
    """Each proposal that drains, downs or resets a node with its ``Impact`` (``lookup`` runs
    ``node_jobs`` once per node). Where jobs run on a node, a gentle Slurm drain of it ("drain after
    the job ends") is listed before the first proposal that stops them — moved there, or added."""
    notes = notes if notes is not None else []
    scheduler = str(getattr(toolkit, "scheduler", "slurm"))
    nodes = list(dict.fromkeys(s.host for p in proposals for s in p.steps
                               if s.tool in CAPACITY_TOOLS))
    found = {n: lookup(n) for n in nodes}
    out = list(proposals)
    for node in nodes:
        if not (found[node].listed and found[node].jobs):
            continue
        effects = [_effect(p, node, scheduler) for p in out]
        stopping = [i for i, e in enumerate(effects) if e not in ("", "gentle")]
        if not stopping:
            continue
        gentle = [i for i, e in enumerate(effects) if e == "gentle"]
        if gentle and gentle[0] < stopping[0]:
            continue
        if gentle:  # move the gentle drain ahead of what would stop the job
            out.insert(stopping[0], out.pop(gentle[0]))
            continue
        cause = out[stopping[0]].cause
        local = Cause(cause.fault, node, cause.gpu if cause.node == node else None, cause.category, cause.scope,
                      cause.description)
        extra = gentle_drain(local, node, toolkit, gpu_model=gpu_model, notes=notes)
        if extra is not None:
            out.insert(stopping[0], extra)
    if out and proposals and out[0] is not proposals[0]:  # a gentle drain now leads: the rest are alternatives
        out = [replace(p, title=p.title.removeprefix("alternative: ")) if i == 0 else
               p if p.title.startswith(("alternative: ", "drain after the job ends")) else
               replace(p, title=f"alternative: {p.title}") for i, p in enumerate(out)]
    return [replace(p, impact=impact_of(p, found, scheduler)) for p in out]

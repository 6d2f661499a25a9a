"""Verified cause -> proposals of registry actions: exact commands, a risk level, a content hash.

The agent never executes a mutating action; it only proposes. Each command is rendered by the
Registry (validated params, shell-quoted values) and passed through the deny rules once more, so a
bad action declaration can never reach chat as an approvable command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from diagnostics.types import ValidationError
from pipelines.api import Cause, Proposal, ProposalStep
from pipelines.faults import REMEDIATIONS
from pipelines.safety import check_commands, check_script

_RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


def _reason(cause: Cause) -> str:
    text = f"clusterdoc {cause.fault}" + (f" gpu{cause.gpu}" if cause.gpu is not None else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:60]


def _params(action_spec: Any, wanted: Sequence[str], cause: Cause) -> dict[str, Any] | None:
    declared = {p.name: p for p in getattr(action_spec, "params", ())}
    params: dict[str, Any] = {}
    for w in wanted:
        if w == "gpu":
            if cause.gpu is not None and "gpu" in declared:
                params["gpu"] = cause.gpu
        elif "=" in w:
            k, v = w.split("=", 1)
            if k in declared:
                params[k] = v
    if "reason" in declared and "reason" not in params:
        params["reason"] = _reason(cause)
    for name, p in declared.items():  # a required param we cannot fill: this plan does not apply
        if p.required and p.default is None and name not in params and name == "gpu":
            return None
    return params


def build_proposals(
    cause: Cause,
    toolkit: Any,
    *,
    gpu_model: str | None = None,
    rationale: str = "",
    notes: list[str] | None = None,
) -> list[Proposal]:
    """Proposals for a verified cause (first: the preferred fix; then alternatives)."""
    notes = notes if notes is not None else []
    if cause.fault is None or cause.node is None:
        return []
    plans = REMEDIATIONS.get(cause.fault, ())
    out: list[Proposal] = []
    for n, plan in enumerate(plans):
        steps: list[ProposalStep] = []
        risk = "low"
        ok = True
        for action, wanted in plan:
            try:
                spec = toolkit.registry.get(action)
            except ValidationError as exc:
                notes.append(f"remediation {action} unavailable: {exc}")
                ok = False
                break
            params = _params(spec, wanted, cause)
            if params is None:
                notes.append(f"remediation {action} needs a GPU index the cause does not name")
                ok = False
                break
            try:
                step = _step(toolkit, action, cause.node, params)
            except ValidationError as exc:
                notes.append(f"remediation {action} could not be rendered: {exc}")
                ok = False
                break
            violations = check_commands(list(step.commands), declared_action=action, gpu_model=gpu_model)
            if violations:
                notes.append(f"remediation {action} refused by the deny rules: {violations[0].message}")
                ok = False
                break
            risk = max(risk, getattr(spec, "risk", "medium"), key=lambda r: _RISK_ORDER.get(r, 1))
            steps.append(step)
        if not ok or not steps:
            continue
        title = " then ".join(s.tool for s in steps) + f" on {cause.node}" + (f" GPU {cause.gpu}" if cause.gpu is not None else "")
        if n > 0:
            title = f"alternative: {title}"
        if any(s.run_on for s in steps):
            title += " (via the Slurm controller)"
        draft = Proposal(id="", title=title, risk=risk, steps=tuple(steps), cause=cause, rationale=rationale)  # type: ignore[arg-type]
        out.append(
            Proposal(
                id=f"prop-{draft.hash[:10]}",
                title=title,
                risk=draft.risk,
                steps=draft.steps,
                cause=cause,
                rationale=rationale,
            )
        )
    return out + _harsher_drains(out, toolkit, notes)


def _step(toolkit: Any, action: str, node: str, params: dict[str, Any]) -> ProposalStep:
    """One step with its exact commands and where they run (``Toolkit.place``: a Slurm action runs
    on the inventory's controller for the node's Slurm name); toolkits without ``place`` render."""
    declared = {p.name for p in getattr(toolkit.registry.get(action), "params", ())}
    if action == "drain_node" and "state" in declared:
        params = {**params, "state": params.get("state", "drain")}  # the gentle drain unless asked
    place = getattr(toolkit, "place", None)
    if place is None:
        return ProposalStep(action, node, params, tuple(toolkit.render(action, params)))
    placed = place(action, node, params)
    return ProposalStep(action, node, dict(placed.params), tuple(placed.commands),
                        run_on=placed.run_on if placed.run_on != node else "", note=placed.note)


def _harsher_drains(proposals: Sequence[Proposal], toolkit: Any, notes: list[str]) -> list[Proposal]:
    """For each Slurm drain proposed (``state=drain``: running jobs finish first), the harsher
    alternative ``state=down`` (running jobs killed now), offered last so the gentle one stays first."""
    if getattr(toolkit, "scheduler", None) != "slurm":
        return []
    out: list[Proposal] = []
    for p in proposals:
        if not any(s.tool == "drain_node" and s.params.get("state") == "drain" for s in p.steps):
            continue
        try:
            steps = tuple(_step(toolkit, s.tool, s.host, {**s.params, "state": "down"}) if s.tool == "drain_node" else s
                          for s in p.steps)
        except ValidationError as exc:
            notes.append(f"drain_node state=down could not be rendered: {exc}")
            continue
        title = p.title.removeprefix("alternative: ").replace("drain_node", "drain_node (state=down: kills running jobs)", 1)
        draft = Proposal(id="", title=f"alternative: {title}", risk="high", steps=steps, cause=p.cause,
                         rationale=p.rationale)
        out.append(Proposal(id=f"prop-{draft.hash[:10]}", title=draft.title, risk="high", steps=steps, cause=p.cause,
                            rationale=p.rationale))
    return out


def gentle_drain(cause: Cause, node: str, toolkit: Any, *, gpu_model: str | None = None,
                 notes: list[str] | None = None) -> Proposal | None:
    """"Drain after the job ends": ``drain_node`` alone with Slurm ``state=drain`` (running jobs
    finish, no new ones start), for a node whose proposals would otherwise stop its jobs
    (pipelines.impact); the GPU reset or repair follows once the node is idle. None where it cannot
    be rendered or the scheduler has no gentle drain (Kubernetes' drain evicts pods)."""
    notes = notes if notes is not None else []
    if getattr(toolkit, "scheduler", None) != "slurm":
        return None
    try:
        step = _step(toolkit, "drain_node", node, {"reason": _reason(cause), "state": "drain"})
    except ValidationError as exc:
        notes.append(f"drain after the job ends could not be rendered: {exc}")
        return None
    violations = check_commands(list(step.commands), declared_action="drain_node", gpu_model=gpu_model)
    if violations:
        notes.append(f"drain after the job ends refused by the deny rules: {violations[0].message}")
        return None
    title = f"drain after the job ends: drain_node on {node} (state=drain)" + (" (via the Slurm controller)" if step.run_on else "")
    draft = Proposal(id="", title=title, risk="medium", steps=(step,), cause=cause)
    return Proposal(id=f"prop-{draft.hash[:10]}", title=title, risk="medium", steps=(step,), cause=cause)


def attach_script(proposal: Proposal, script: str, *, gpu_model: str | None = None) -> tuple[Proposal, list[str]]:
    """A model-written script joins a proposal only if it passes the deny rules; returns the
    (possibly unchanged) proposal and the reasons a script was refused."""
    violations = check_script(script, gpu_model=gpu_model)
    if violations:
        return proposal, [f"model script refused: {v.rule}: {v.message} ({v.command})" for v in violations]
    draft = Proposal(
        id="", title=proposal.title, risk="high", steps=proposal.steps, cause=proposal.cause, script=script,
        rationale=proposal.rationale,
    )
    return (
        Proposal(id=f"prop-{draft.hash[:10]}", title=proposal.title, risk="high", steps=proposal.steps,
                 cause=proposal.cause, script=script, rationale=proposal.rationale, impact=proposal.impact),
        [],
    )


# Actions that take capacity away: never proposed for a cause every node shares.
CAPACITY_ACTIONS = frozenset({"drain_node", "reset_gpu"})
MAX_FLEET_STEPS = 64  # one proposal repairing a setting on many nodes/GPUs stays reviewable


def build_fleet_proposals(
    cause: Cause,
    affected: Sequence[tuple[str, int | None]],
    toolkit: Any,
    *,
    gpu_model: str | None = None,
    rationale: str = "",
    notes: list[str] | None = None,
) -> list[Proposal]:
    """One proposal that repairs a cluster- or job-wide cause where it shows (``affected``: (node,
    gpu) pairs), using only the cause's plans that restore a setting; draining or resetting every
    node is never the fix for a setting every node shares."""
    notes = notes if notes is not None else []
    for plan in REMEDIATIONS.get(cause.fault or "", ()):
        if any(action in CAPACITY_ACTIONS for action, _ in plan):
            continue
        steps: list[ProposalStep] = []
        risk = "low"
        for node, gpu in list(affected)[:MAX_FLEET_STEPS]:
            local = Cause(cause.fault, node, gpu, cause.category, cause.scope, cause.description)
            for p in build_proposals(local, toolkit, gpu_model=gpu_model, notes=notes)[:1]:
                if any(s.tool in CAPACITY_ACTIONS for s in p.steps):
                    continue
                steps.extend(p.steps)
                risk = max(risk, p.risk, key=lambda r: _RISK_ORDER.get(r, 1))
        if not steps:
            continue
        # steps carry a params dict (unhashable): one per (tool, host, params)
        unique = tuple({(s.tool, s.host, repr(sorted(dict(s.params).items()))): s for s in steps}.values())
        title = f"{' + '.join(dict.fromkeys(s.tool for s in unique))} on {len({s.host for s in unique})} node(s)"
        draft = Proposal(id="", title=title, risk=risk, steps=unique, cause=cause, rationale=rationale)  # type: ignore[arg-type]
        if len(affected) > MAX_FLEET_STEPS:
            notes.append(f"fleet proposal covers the first {MAX_FLEET_STEPS} of {len(affected)} affected places")
        return [Proposal(id=f"prop-{draft.hash[:10]}", title=title, risk=draft.risk, steps=unique, cause=cause,
                         rationale=rationale)]
    notes.append(f"no setting-level fix in the registry for {cause.fault}: fix it where it is configured "
                 "(job launch script, environment module, node image) and restart the job")
    return []


def cap_drains(proposals: Sequence[Proposal], cluster_size: int, max_fraction: float,
               notes: list[str] | None = None) -> list[Proposal]:
    """Keep proposals, in order, while the nodes they would drain stay within ``max_fraction`` of the
    cluster (at least one node may always be drained); the rest are dropped with a note."""
    notes = notes if notes is not None else []
    allowed = max(1, int(max_fraction * max(cluster_size, 1)))
    drained: set[str] = set()
    kept: list[Proposal] = []
    for p in proposals:
        hosts = {s.host for s in p.steps if s.tool == "drain_node"}
        if hosts and len(drained | hosts) > allowed:
            notes.append(f"not proposed: {p.title} (would drain more than {allowed} of {cluster_size} nodes; "
                         f"max_drain_fraction {max_fraction:g})")
            continue
        drained |= hosts
        kept.append(p)
    return kept

"""Choosing checks: which registry tool, on which hosts, with which params.

A check fanned out over every relevant host is ONE tool invocation (what the method counts). The
plan starts with the decisive check of the most likely fault; the evidence it returns decides what
runs next (refinement on the localized GPU, the next hypothesis, or a broad quick sweep).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ValidationError
from pipelines.faults import FAULT_CHECKS


@dataclass
class ToolPlan:
    tool: str
    hosts: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    per_host_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. ping targets
    why: str = ""

    def key(self) -> tuple[str, tuple[str, ...], str]:
        return (self.tool, tuple(sorted(self.hosts)), repr(sorted(self.params.items())))


@dataclass
class ClusterInfo:
    """What the agent knows about the cluster besides host names (from inventory or scenario)."""

    hosts: list[str] = field(default_factory=list)
    gpus_per_node: int | None = None
    gpu_model: str | None = None
    scheduler: str = "slurm"
    workload: dict[str, Any] | None = None  # the training job (model_params, tokens_per_step, ...), when known


def fill_params(spec: Any, cluster: ClusterInfo, hosts: Sequence[str], gpu: int | None = None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """Params for a check, or None when a required one cannot be filled (the check is skipped)."""
    params: dict[str, Any] = {}
    per_host: dict[str, dict[str, Any]] = {}
    for p in getattr(spec, "params", ()):
        if p.name == "gpu":
            if gpu is not None:
                params["gpu"] = gpu
            continue
        if p.name == "expected" and cluster.gpus_per_node:
            params["expected"] = cluster.gpus_per_node
            continue
        if p.name == "target":
            peers = cluster.hosts or list(hosts)
            if len(peers) < 2 and p.required and p.default is None:
                return None
            # A ring (each host pings the next one) puts a slow node in exactly two slow pairs and
            # every other node in at most one, so the ranking can tell which end is slow.
            for h in hosts:
                at = peers.index(h) if h in peers else -1
                others = peers[at + 1:] + peers[:max(at, 0)] if at >= 0 else [x for x in peers if x != h]
                if others:
                    per_host[h] = {"target": others[0]}
            continue
        if not p.required or p.default is not None:
            continue
        if p.type == "choice" and p.choices:
            params[p.name] = p.choices[0]
            continue
        return None
    return params, per_host


def plan_for_fault(fault: str, registry: Any, cluster: ClusterInfo, hosts: Sequence[str], gpu: int | None = None) -> list[ToolPlan]:
    """Checks that establish ``fault`` on ``hosts`` (only the ones the registry has)."""
    plans: list[ToolPlan] = []
    for tool in FAULT_CHECKS.get(fault, ()):
        try:
            spec = registry.get(tool)
        except ValidationError:
            continue
        if not spec.read_only:
            continue
        filled = fill_params(spec, cluster, hosts, gpu)
        if filled is None:
            continue
        params, per_host = filled
        plans.append(ToolPlan(tool, list(hosts), params, per_host, f"establishes {fault}"))
    return plans


def ordered_hypotheses(priors: Mapping[str, float], *, limit: int = 6) -> list[str]:
    return [f for f, w in sorted(priors.items(), key=lambda kv: -kv[1]) if w > 0][:limit]

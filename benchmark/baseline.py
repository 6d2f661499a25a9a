"""The traditional baseline on the S cases: a pre-written detection script that runs every check
on every node, one after another, and reports every finding. Its tool invocations and wall time
sit next to the agent's, which picks checks from the alert and the evidence."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.cases import SCase
from benchmark.metrics import scenario as s_metric
from benchmark.results import RunContext


@dataclass
class BaselineRow:
    id: str
    sweep_invocations: int  # host-level check runs (every check x every node)
    sweep_checks: int  # distinct checks in the sweep
    sweep_seconds: float
    sweep_found: bool  # a finding of the expected kind on the expected node
    sweep_findings: int  # every finding it raised (what an operator would have to read)
    agent_invocations: int | None = None
    agent_host_checks: int | None = None
    agent_seconds: float | None = None
    agent_right: bool | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sweep_params(scenario: Any) -> dict[str, dict[str, Any]]:
    """Values for checks whose parameters a generic script would fill in from the inventory."""
    hosts = list(scenario.hosts)
    params: dict[str, dict[str, Any]] = {"gpu_count": {"expected": scenario.cluster.gpus_per_node}}
    if len(hosts) > 1:
        params["net_latency"] = {"target": hosts[0]}
    return params


def full_sweep(case: SCase, level: str = "long", *, ssh: bool = False) -> BaselineRow:
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from simulator import SimCluster

    scenario = s_metric.load(case)
    sim = SimCluster(scenario)
    with s_metric.node_executor(sim, ssh) as executor:
        toolkit = Toolkit(default_registry(), executor, scheduler=scenario.cluster.scheduler)
        started = time.perf_counter()
        report = toolkit.sweep(scenario.hosts, level=level, concurrency=1,  # type: ignore[arg-type]
                               tool_params=sweep_params(scenario))
        seconds = time.perf_counter() - started
    findings = list(report.findings()) + list(getattr(report, "fleet", []) or [])
    expect = scenario.expect
    found = False
    if expect is not None and expect.fault is not None:
        found = any(f.kind == expect.fault and (expect.node is None or f.host == expect.node) for f in findings)
    elif expect is not None:
        found = not findings
    invocations = sum(len(rs) for rs in report.results.values())
    return BaselineRow(case.id, invocations, len(report.tools), round(seconds, 3), found, len(findings))


def run_baseline(cases: Sequence[SCase], ctx: RunContext | None, *, level: str = "long",
                 ssh: bool = False) -> list[BaselineRow]:
    rows = []
    for case in cases:
        try:
            row = full_sweep(case, level, ssh=ssh)
        except Exception as exc:  # a broken scenario fails its row only
            rows.append(BaselineRow(case.id, 0, 0, 0.0, False, 0, error=f"{type(exc).__name__}: {exc}"))
            continue
        if ctx is not None:
            agent = s_metric.score(case, ctx, ssh=ssh)
            row.agent_invocations = agent.sub_scores.get("tool_invocations")
            row.agent_host_checks = agent.sub_scores.get("host_checks")
            row.agent_seconds = agent.sub_scores.get("agent_seconds", round(agent.seconds, 3))
            row.agent_right = agent.score == 1.0
            row.error = agent.error
        rows.append(row)
    return rows

"""Scheduler checks: the node's state in Slurm or Kubernetes, and the jobs running on it."""

from __future__ import annotations

import re

from diagnostics.checks._common import _check, _guard, _result
from diagnostics.parsers import jobs as jobs_parser
from diagnostics.parsers import scheduler
from diagnostics.parsers.common import ParseError
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.scheduling import SLURM_NAME_PATTERN
from diagnostics.types import Finding, Severity, Status


@_guard
def parse_node_state(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    text = out.stdout.strip()
    if text.startswith("scheduler: none"):
        return ParseOutput(Status.NO_DATA, error="no scheduler configured")
    if out.exit_code not in (0, None):
        raise ParseError("scheduler", (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    tool = out.command.split()[0] if out.command.split() else ""
    kubectl = tool == "kubectl" or (tool != "sinfo" and scheduler.looks_like_kubectl(text))
    nodes = scheduler.parse_kubectl_nodes(text) if kubectl else scheduler.parse_sinfo_nodes(text)
    n = nodes[0]
    data = {"node": n.name, "state": n.state, "raw_state": n.raw_state, "reason": n.reason}
    # a drain reason (passed on from drain_node) means the node must now be drained
    expect = inp.params.get("expect") or ("drained" if inp.params.get("reason") else "schedulable")
    ok = n.state in ("drained", "draining") if expect == "drained" else n.state == "schedulable"
    if ok:
        return ParseOutput(Status.OK, data=data)
    data["category"] = "scheduler"
    severity: Severity = "info"
    if n.state in ("drained", "draining"):
        kind, text2 = "node_drained", f"{n.name} is {n.raw_state} ({n.reason or 'no reason'})"
        # Slurm drains a node itself when something failed on it; an operator's drain is routine
        if _FAILURE_REASON.search(n.reason or ""):
            severity = "warning"
    elif n.state == "down":
        kind, text2 = "node_down", f"{n.name} is {n.raw_state} in the scheduler ({n.reason or 'no reason'})"
        severity = "warning"
    else:
        kind, text2 = "node_schedulable", f"{n.name} is {n.raw_state}, expected {expect}"
    return _result([Finding(kind, inp.host, text2, severity=severity, data=data)], data)


# Drain reasons Slurm (or its health checks) set when something failed on the node.
_FAILURE_REASON = re.compile(
    r"kill task failed|not responding|prolog|epilog|batch job complete failure|gres/\w+ count|low (?:real)?memory|"
    r"node unexpectedly rebooted|nhc|health ?check|configuration differs|duplicate jobid|job credential|"
    r"launch failed|socket timed out|\berror\b|\bfail",
    re.IGNORECASE,
)


@_guard
def parse_node_jobs(inp: ParseInput) -> ParseOutput:
    """The jobs (Slurm) or workload pods (Kubernetes) on the node; informational, never a finding.
    An empty list means the scheduler answered and listed none."""
    out = inp.outputs[0]
    text = out.stdout.strip()
    if text.startswith("scheduler: none"):
        return ParseOutput(Status.NO_DATA, error="no scheduler configured")
    if out.exit_code not in (0, None):
        raise ParseError(out.command.split()[0] if out.command.split() else "scheduler",
                         (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    tool = out.command.split()[0] if out.command.split() else ""
    if tool == "kubectl" or (tool != "squeue" and text.startswith("{")):
        now = jobs_parser.parse_stamp(inp.outputs[1].stdout) if len(inp.outputs) > 1 else None
        found = jobs_parser.parse_pods(out.stdout, now)
        sched = "kubernetes"
    else:
        found = jobs_parser.parse_squeue(out.stdout)
        sched = "slurm"
    return ParseOutput(Status.OK, data={"node": inp.params.get("node"), "scheduler": sched,
                                        "jobs": [j.to_dict() for j in found]})


# squeue -o letters: see diagnostics.parsers.jobs (%i id, %u user, %T state, %M time used, %D nodes,
# %b GPUs (tres) per node, %j name last: it may contain the separator).
SQUEUE_ON_NODE = f"squeue -w {{node}} -h -o '{jobs_parser.SQUEUE_FORMAT}'"

SCHEDULER_CHECKS: tuple[ToolSpec, ...] = (
    _check("node_state", "The node's state in the scheduler (Slurm sinfo / Kubernetes node); finds node_drained "
           "when it should be schedulable, or node_schedulable when it should be drained (expect=drained or a "
           "reason given)", "job", "quick",
           (Param("expect", "choice", "the state the node should be in (default: schedulable, or drained when "
                  "a drain reason is given)", required=False, choices=("schedulable", "drained")),
            Param("reason", "str", "the drain reason drain_node recorded; implies expect=drained", required=False,
                  pattern=r"[A-Za-z0-9 _.,:/@#()+=-]{1,120}")),
           ("echo 'scheduler: none'",), parse_node_state,
           commands_by_scheduler={
               "slurm": ('sinfo -h -N -n "$(hostname -s)" -o "%N %T %E"',),
               "kubernetes": ('kubectl get node "$(hostname -s)" --no-headers',),
               "none": ("echo 'scheduler: none'",),
           }),
    # Read-only, but a scheduler query like drain_node's: under Slurm Toolkit.place runs it on the
    # inventory's controller with the node's Slurm name (ToolSpec.scheduler_action).
    _check("node_jobs", "The jobs on a node (Slurm squeue -w, on the controller) or the workload pods on it "
           "(Kubernetes, by spec.nodeName): id, user (namespace), state, run time, nodes, GPUs; what a drain "
           "or a GPU reset would stop", "job", "medium",
           (Param("node", "str", "the node's scheduler name (Slurm NodeName, Kubernetes node name)",
                  pattern=SLURM_NAME_PATTERN),),
           ("echo 'scheduler: none'",), parse_node_jobs, scheduler_action=True,
           commands_by_scheduler={
               "slurm": (SQUEUE_ON_NODE,),
               "kubernetes": ("kubectl get pods -A --field-selector spec.nodeName={node} -o json",
                              "date -u +%Y-%m-%dT%H:%M:%SZ"),
               "none": ("echo 'scheduler: none'",),
           }),
)

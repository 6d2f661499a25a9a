"""The mutating actions of the registry (the whitelist's "fix" half), under the remediation
names of formats/scenario.md. They run only through an approved proposal
(``Toolkit.execute_action``); each names the read-only check that proves it worked
(``verify_with``; the action's params are passed on to it by name: ``drain_node``'s ``reason``
tells ``node_state`` that the node must now be drained, ``resume_node`` passes nothing, so
``node_state`` expects it schedulable).

Slurm's ``drain_node`` / ``resume_node`` are scheduler actions: ``Toolkit.place`` runs them on the
inventory's Slurm controller (or, without one, on the node itself) with the node's Slurm name in
``node`` (diagnostics.scheduling).
"""

from __future__ import annotations

from diagnostics.parsers.common import ParseError
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.scheduling import SLURM_NAME_PATTERN
from diagnostics.types import Status

GPU = Param("gpu", "int", "GPU index (nvidia-smi numbering)", min=0, max=63)
REASON_PATTERN = r"[A-Za-z0-9 _.,:/@#()+=-]{1,120}"
# The node's Slurm NodeName; Toolkit.place fills it from the inventory (slurm_name, else the node name).
SLURM_NODE = Param("node", "str", "Slurm NodeName of the node (filled from the inventory)", required=False,
                   pattern=SLURM_NAME_PATTERN)
SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "dcgm", "nv-hostengine", "chronyd",
            "chrony", "slurmd", "kubelet", "containerd", "docker", "openibd")


def parse_action(inp: ParseInput) -> ParseOutput:
    """An action succeeded when every command exited 0; otherwise the first failure is the error."""
    lines = []
    for out in inp.outputs:
        text = (out.stdout + out.stderr).strip()
        lines.append(f"$ {out.command}\n{text}" if text else f"$ {out.command}")
        if out.exit_code != 0:
            why = text.splitlines()[0] if text else f"exit code {out.exit_code}"
            return ParseOutput(Status.ERROR, data={"log": "\n".join(lines)}, error=f"{out.command.split()[0]}: {why}")
    if not inp.outputs:
        raise ParseError("action", "no command ran")
    return ParseOutput(Status.OK, data={"log": "\n".join(lines)})


def _safe_parse_action(inp: ParseInput) -> ParseOutput:
    try:
        return parse_action(inp)
    except ParseError as exc:
        return ParseOutput(Status.ERROR, error=str(exc))


ACTIONS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="reset_gpu_clocks",
        description="Restore a GPU's default locked and applications clocks (nvidia-smi -rgc, -rac)",
        category="compute", level="quick", kind="mutating", params=(GPU,),
        commands=("nvidia-smi -i {gpu} -rgc", "nvidia-smi -i {gpu} -rac"),
        parse=_safe_parse_action, risk="low", verify_with="gpu_clocks",
    ),
    ToolSpec(
        name="restore_power_limit",
        description="Set a GPU's power limit back to its board default (read from nvidia-smi itself)",
        category="compute", level="quick", kind="mutating", params=(GPU,),
        commands=('nvidia-smi -i {gpu} -pl "$(nvidia-smi -i {gpu} --query-gpu=power.default_limit '
                  '--format=csv,noheader,nounits)"',),
        parse=_safe_parse_action, risk="low", verify_with="gpu_power",
    ),
    ToolSpec(
        name="enable_persistence_mode",
        description="Turn persistence mode on for a GPU (nvidia-smi -pm 1)",
        category="compute", level="quick", kind="mutating", params=(GPU,),
        commands=("nvidia-smi -i {gpu} -pm 1",),
        parse=_safe_parse_action, risk="low", verify_with="gpu_persistence",
    ),
    ToolSpec(
        name="reset_gpu",
        description="Reset one GPU (nvidia-smi -r); clears volatile ECC counts, activates pending row remaps, "
        "retrains links. Fails while processes use the GPU: drain the node first",
        category="compute", level="medium", kind="mutating", params=(GPU,),
        commands=("nvidia-smi -i {gpu} -r",),
        parse=_safe_parse_action, risk="high", verify_with="gpu_ecc", timeout_s=120.0,
    ),
    ToolSpec(
        name="drain_node",
        description="Take the node out of scheduling: Slurm drain (state=drain lets running jobs finish; "
        "state=down kills them), or Kubernetes cordon + drain",
        category="job", level="quick", kind="mutating",
        params=(
            Param("reason", "str", "why (recorded by the scheduler)", required=False,
                  default="clusterdoc: drained pending repair", pattern=REASON_PATTERN),
            SLURM_NODE,
            Param("state", "choice", "Slurm: drain (running jobs finish, no new ones start) or down "
                  "(running jobs are killed now)", required=False, default="drain", choices=("drain", "down")),
        ),
        commands=(),
        commands_by_scheduler={
            # run on the Slurm controller (Toolkit.place) for the node's Slurm name; no $(...) anywhere
            "slurm": ("scontrol update nodename={node} state={state} reason={reason}",),
            "kubernetes": ('kubectl cordon "$(hostname -s)"',
                           'kubectl drain "$(hostname -s)" --ignore-daemonsets --delete-emptydir-data --timeout=300s'),
        },
        parse=_safe_parse_action, risk="medium", verify_with="node_state", timeout_s=330.0,
        scheduler_action=True,
    ),
    ToolSpec(
        name="resume_node",
        description="Put the node back into scheduling: Slurm resume, or Kubernetes uncordon",
        category="job", level="quick", kind="mutating",
        params=(SLURM_NODE,),
        commands=(),
        commands_by_scheduler={
            "slurm": ("scontrol update nodename={node} state=resume",),
            "kubernetes": ('kubectl uncordon "$(hostname -s)"',),
        },
        parse=_safe_parse_action, risk="low", verify_with="node_state", scheduler_action=True,
    ),
    ToolSpec(
        name="clean_shm",
        description="Remove files older than an hour from /dev/shm (stale segments of crashed jobs)",
        category="storage", level="quick", kind="mutating", params=(),
        commands=("find /dev/shm -mindepth 1 -maxdepth 1 -type f -mmin +60 -print -delete",),
        parse=_safe_parse_action, risk="medium", verify_with="shm_size",
    ),
    ToolSpec(
        name="restart_service",
        description="Restart a named systemd service (only the GPU-node services listed)",
        category="system", level="quick", kind="mutating",
        params=(Param("service", "choice", "the systemd unit", choices=SERVICES),),
        commands=("systemctl restart {service}",),
        parse=_safe_parse_action, risk="medium", verify_with="service_status",
    ),
)

ACTIONS_BY_NAME: dict[str, ToolSpec] = {a.name: a for a in ACTIONS}

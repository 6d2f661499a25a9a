"""Jobs on a node and the job's last checkpoint: Slurm ``squeue -w NODE -h -o '%i|%u|%T|%M|%D|%b|%j'``,
Kubernetes ``kubectl get pods -A --field-selector spec.nodeName=NODE -o json``, and checkpoint
lines of a training log.

squeue format letters (squeue(1), ``src/squeue/opts.c``): ``%i`` job id (``123_4`` for an array
element, ``123+1`` for a heterogeneous component), ``%u`` user name, ``%T`` state in extended form
(RUNNING, COMPLETING …), ``%M`` time used as ``[days-]hours:minutes:seconds`` (days and hours only
when needed, ``INVALID`` when obviously wrong), ``%D`` node count, ``%b`` trackable resources per
node (the vestigial gres letter: ``gres/gpu:8`` since Slurm 22.05, ``gres:gpu:8`` in 21.08,
``gpu:a100:8`` before; ``N/A`` when the job asked for none or asked per job with ``--gpus``) and
``%j`` the job name, last because it may hold anything, ``|`` included.

Checkpoint lines (``last_checkpoint``): a log line that says a checkpoint was saved, in the forms
the common trainers print —

* Megatron-LM: ``saving checkpoint at iteration     500 to /ckpt`` /
  ``successfully saved checkpoint at iteration     500 to /ckpt`` (often without a timestamp);
* DeepSpeed: ``[2024-05-01 10:00:00,123] [INFO] [engine.py:3515:_save_checkpoint] Saving model
  checkpoint: /ckpt/global_step500/mp_rank_00_model_states.pt`` and ``[Torch] Checkpoint
  global_step500 is ready now!``;
* HF Transformers Trainer: ``[INFO|trainer.py:2889] 2024-05-01 10:00:00,123 >> Saving model
  checkpoint to ./out/checkpoint-500``;
* PyTorch Lightning ModelCheckpoint: ``Epoch 3, global step 500: 'val_loss' reached 0.123 (best
  0.123), saving model to '/ckpt/epoch=3-step=500.ckpt' as top 1``;
* torchtitan: ``… - INFO - Finished saving the checkpoint (or staging if async is enabled)in 12.34
  seconds.``;
* the simulator's job: ``2026-11-28 09:26:00,000 INFO [checkpoint.py:61] rank=32 saved checkpoint
  to /checkpoints/llama-7b-pretrain/global_step1034 at step 1034 (3.1 s)``.

A line that says saving failed, or that loads a checkpoint, is not a save. The time is the line's
own timestamp (``YYYY-MM-DD HH:MM:SS`` with ``T`` or a space, optional fraction and zone); a line
without one still gives the step, and its age is unknown. Nothing but numbers and the time is
kept from a line (a node's log is untrusted text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from diagnostics.parsers.common import ParseError, clean, skip_line

# --------------------------------------------------------------------------- Slurm squeue

SQUEUE_FORMAT = "%i|%u|%T|%M|%D|%b|%j"
# States of a job that holds the node (squeue(1) JOB STATE CODES); PENDING jobs hold nothing yet.
ON_NODE_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STAGE_OUT", "RESIZING",
                            "SIGNALING", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
_JOB_ID = re.compile(r"^\d+(?:_\d+|_\[[\d,\-%]+\])?(?:\+\d+)?$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
_STATE = re.compile(r"^[A-Z_]{2,24}$")
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)$")
# gres/gpu:8, gres:gpu:8, gpu:8, gpu:a100:8, gres/gpu:h100:4(IDX:0-3), gres/gpu (no count: one)
_GPU_TRES = re.compile(r"(?:^|,)(?:gres[/:])?gpu(?::(?P<type>[A-Za-z0-9_.-]+?))?(?::(?P<n>\d+))?(?=$|,|\()")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9 _.+=:@/-]")


@dataclass(frozen=True)
class NodeJob:
    """One job (Slurm) or pod (Kubernetes) on a node."""

    id: str
    user: str  # Slurm user; Kubernetes: the pod's namespace
    state: str
    elapsed_s: int | None  # run time so far; None when the tool could not say
    nodes: int | None  # nodes the job spans (Slurm); None for a pod
    gpus_per_node: int | None  # GPUs it holds on each node (0: none; None: not said per node)
    name: str  # job name (Slurm) or the pod's owner (Kubernetes: "Job/llama-7b"), sanitised
    kind: str = "job"  # job | pod

    @property
    def gpus(self) -> int | None:
        """GPUs the whole job holds (a pod: on this node)."""
        if self.gpus_per_node is None:
            return None
        return self.gpus_per_node * (self.nodes or 1)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "state": self.state, "elapsed_s": self.elapsed_s,
                "nodes": self.nodes, "gpus_per_node": self.gpus_per_node, "gpus": self.gpus, "name": self.name,
                "kind": self.kind}


def safe_name(text: str, limit: int = 48) -> str:
    """A job or owner name as it may appear in a message: printable name characters only."""
    return _SAFE_NAME.sub("?", text.strip())[:limit]


def parse_elapsed(text: str) -> int | None:
    """squeue %M / sacct Elapsed: '3:10:05' -> 11405, '14:05' -> 845, '1-02:03:04' -> 93784,
    'INVALID' / 'N/A' -> None."""
    m = _TIME.match(text.strip())
    if m is None:
        return None
    d, h = int(m.group("d") or 0), int(m.group("h") or 0)
    return ((d * 24 + h) * 60 + int(m.group("m"))) * 60 + int(m.group("s"))


def gpus_in_tres(text: str) -> int | None:
    """GPUs per node in a squeue %b value; 0 when it names no GPU, None when unknown (N/A)."""
    t = text.strip()
    if t in ("", "N/A", "(null)"):
        return None
    total, seen = 0, False
    for m in _GPU_TRES.finditer(t):
        seen = True
        n = m.group("n")
        if n is None and m.group("type") and m.group("type").isdigit():
            n = m.group("type")  # gpu:8 matched as type=8
        total += int(n) if n is not None else 1
    return total if seen else 0


def parse_squeue(text: str) -> list[NodeJob]:
    """``squeue -h -o '%i|%u|%T|%M|%D|%b|%j'`` lines -> jobs holding the node (PENDING ones are
    left out). A header line or a line not in the format is skipped and noted; a line that looks
    like a record but has a bad field is an error."""
    jobs: list[NodeJob] = []
    for no, line in enumerate(clean(text).split("\n"), 1):
        if not line.strip():
            continue
        parts = line.strip().split("|", 6)
        if len(parts) < 7 or not _JOB_ID.match(parts[0].strip()):
            skip_line("squeue", no)  # a header (JOBID|USER|…), a warning, a stray line
            continue
        job_id, user, state, elapsed, nodes, tres, name = (p.strip() for p in parts)
        state = state.upper()
        if not _STATE.match(state):
            raise ParseError("squeue", f"job {job_id}: state {state[:24]!r} is not a Slurm job state", no)
        if state == "PENDING":
            continue
        try:
            n_nodes: int | None = int(nodes)
        except ValueError:
            raise ParseError("squeue", f"job {job_id}: node count {nodes[:12]!r} is not a number", no) from None
        jobs.append(NodeJob(
            id=job_id, user=user if _USER.match(user) else "?", state=state, elapsed_s=parse_elapsed(elapsed),
            nodes=n_nodes, gpus_per_node=gpus_in_tres(tres), name=safe_name(name),
        ))
    return jobs


# --------------------------------------------------------------------------- Kubernetes pods

_GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
_DONE_PHASES = ("Succeeded", "Failed")


def parse_k8s_time(text: str | None) -> datetime | None:
    """RFC 3339 as the API server writes it ('2026-11-28T06:30:00Z') -> aware datetime."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _pod_gpus(spec: dict[str, Any]) -> int:
    total = 0
    for c in spec.get("containers") or []:
        res = (c or {}).get("resources") or {}
        for where in ("limits", "requests"):
            values = res.get(where) or {}
            found = [values[r] for r in _GPU_RESOURCES if r in values]
            if found:
                total += sum(int(str(v)) for v in found if str(v).isdigit())
                break  # limits win (GPUs must have limits == requests)
    return total


def parse_pods(text: str, now: datetime | None = None) -> list[NodeJob]:
    """``kubectl get pods -A --field-selector spec.nodeName=N -o json`` -> the workload pods on
    the node: DaemonSet pods (device plugin, exporters: they stay through a drain) and finished
    pods are left out. ``now`` (aware) gives the run time from ``status.startTime``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ParseError("kubectl", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ParseError("kubectl", "no 'items' list (expected a List of Pods)")
    jobs: list[NodeJob] = []
    for item in doc["items"]:
        if not isinstance(item, dict):
            continue
        meta = item.get("metadata") or {}
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)]
        owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
        if owner is not None and owner.get("kind") == "DaemonSet":
            continue
        phase = str(status.get("phase") or "Unknown")
        if phase in _DONE_PHASES:
            continue
        started = parse_k8s_time(status.get("startTime"))
        elapsed = int((now - started).total_seconds()) if now is not None and started is not None else None
        namespace = safe_name(str(meta.get("namespace") or "default"), 63)
        name = safe_name(str(meta.get("name") or "?"), 63)
        owned_by = f"{safe_name(str(owner.get('kind') or ''), 24)}/{safe_name(str(owner.get('name') or ''))}" if owner else ""
        jobs.append(NodeJob(id=f"{namespace}/{name}", user=namespace, state=phase.upper(),
                            elapsed_s=elapsed if elapsed is None or elapsed >= 0 else None, nodes=None,
                            gpus_per_node=_pod_gpus(spec), name=owned_by, kind="pod"))
    return jobs


# --------------------------------------------------------------------------- checkpoints

# What a trainer prints when a checkpoint was written (see the module doc for the sources).
_SAVED = re.compile(
    r"(?:\bsav(?:ed|ing)\b[^\n]{0,40}?\bcheckpoint|\bcheckpoint\b[^\n]{0,80}?\b(?:saved|is ready|written)\b"
    r"|\bsaving model to\b|\bsaving the checkpoint\b)",
    re.IGNORECASE,
)
_NOT_A_SAVE = re.compile(r"\b(?:fail(?:ed|ure)?|error|unable|could not|cannot|exception|load(?:ing|ed)?|resum(?:e|ing))\b",
                         re.IGNORECASE)
_STEP = re.compile(r"(?:\b(?:at |global )?(?:step|iteration|iter)[\s=:_-]*|global_step|checkpoint-|step=)(\d+)",
                   re.IGNORECASE)
_STAMP = re.compile(r"(?P<d>\d{4}-\d\d-\d\d)[ T](?P<t>\d\d:\d\d:\d\d)(?:[.,](?P<f>\d{1,9}))?"
                    r"(?P<z>Z|[+-]\d\d:?\d\d)?")


@dataclass(frozen=True)
class Checkpoint:
    step: int | None
    at: datetime | None  # naive local time, or aware when the line gave a zone

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "at": self.at.isoformat() if self.at else None}


def parse_stamp(text: str) -> datetime | None:
    """The first timestamp in ``text`` ('2026-11-28 09:26:00,000', '2024-05-01T10:00:00.5+02:00')."""
    m = _STAMP.search(text)
    if m is None:
        return None
    zone = m.group("z")
    if zone and zone != "Z" and ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    iso = f"{m.group('d')}T{m.group('t')}" + (f".{(m.group('f') or '')[:6].ljust(6, '0')}" if m.group("f") else "")
    iso += "+00:00" if zone == "Z" else (zone or "")
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def checkpoint_lines(text: str) -> list[Checkpoint]:
    """Every checkpoint save in a log excerpt, in order."""
    out: list[Checkpoint] = []
    for line in clean(text).split("\n"):
        if not _SAVED.search(line) or _NOT_A_SAVE.search(line):
            continue
        m = _STEP.search(line)
        out.append(Checkpoint(int(m.group(1)) if m else None, parse_stamp(line)))
    return out


def last_checkpoint(text: str) -> Checkpoint | None:
    """The latest save: the last one in the log's order. A line without a timestamp (Megatron's
    'successfully saved …') takes the time of an earlier stamped line of the same step; without
    one its age is unknown."""
    found = checkpoint_lines(text)
    if not found:
        return None
    last = found[-1]
    if last.at is None and last.step is not None:
        same = [c.at for c in found[:-1] if c.step == last.step and c.at is not None]
        if same:
            return Checkpoint(last.step, same[-1])
    return last


def age_s(at: datetime | None, now: datetime | None) -> int | None:
    """Seconds from ``at`` to ``now``: both naive (the node's local time) or both aware; a naive
    stamp is compared with ``now``'s local wall-clock reading. None when either is missing, or
    the stamp lies more than a minute in the future (clock skew, another time zone)."""
    if at is None or now is None:
        return None
    if (at.tzinfo is None) != (now.tzinfo is None):
        at, now = at.replace(tzinfo=None), now.replace(tzinfo=None)
    seconds = (now - at).total_seconds()
    if seconds < -60:
        return None
    return max(0, int(seconds))

"""A summary a non-expert can act on: three sentences, no jargon.

What is broken, what it costs, what will be done. Written from a template over the diagnosis's
facts; a capable model may rewrite it, and its text is used only when it passes ``check_plain``
(length, two to four sentences, no commands, no shell or chat-markup characters, no tool names, no
host the cluster does not have, the node at fault named). Anything else falls back to the template.
The summary goes to people (the thread, the CLI), never to a shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.api import Cause, Proposal
from pipelines.llm.base import Message
from pipelines.safety import DATA_RULE, DISK_TOOLS, DOWNLOADERS, POWER_COMMANDS, SHELLS, tag_data

# The built-in fault kinds in plain words (a noun phrase); operator kinds fall back to their category.
FAULT_WORDS: dict[str, str] = {
    "gpu_clock_throttle": "a GPU running far below its normal speed",
    "gpu_power_cap": "a GPU whose power limit is set too low",
    "gpu_thermal": "a GPU that is overheating",
    "gpu_ecc_uncorrectable": "a GPU with damaged memory",
    "gpu_row_remap_pending": "a GPU whose memory repair waits for a restart of that GPU",
    "gpu_xid": "a GPU reporting hardware or driver errors",
    "gpu_fallen_off_bus": "a GPU that stopped responding",
    "nvlink_down": "a broken high-speed link between GPUs",
    "pcie_downgrade": "a GPU connected at a lower speed than it should be",
    "ib_port_down": "a network connection that is down",
    "ib_link_degraded": "a network connection running slower than the others",
    "nccl_env_misconfig": "a job setting that forces slow or broken communication between machines",
    "disk_full": "a disk that is almost full",
    "shm_too_small": "too little shared memory for the training job",
    "host_oom": "a machine running out of memory",
    "cpu_overload": "overloaded processors",
    "cpu_governor_powersave": "processors held in a slow power-saving mode",
    "driver_mismatch": "GPU driver software that differs from the other machines",
    "clock_skew": "a wrong system clock",
    "network_latency": "a slow network connection",
    "node_unreachable": "a machine that does not answer at all",
    "persistence_mode_off": "a GPU setting that makes jobs start slowly",
}
CATEGORY_WORDS: dict[str, str] = {
    "network": "a network problem",
    "gpu-hardware": "a GPU hardware problem",
    "storage": "a storage problem",
    "memory": "a memory problem",
    "scheduler": "a job scheduler problem",
    "configuration": "a wrong setting",
    "software-version": "mismatched software versions",
    "thermal-power": "a heat or power problem",
    "other": "a problem",
}
# Registry actions in plain words (what the fix does).
ACTION_WORDS: dict[str, str] = {
    "reset_gpu_clocks": "reset that GPU's speed settings",
    "restore_power_limit": "set that GPU's power limit back to normal",
    "reset_gpu": "restart that GPU",
    "drain_node": "stop sending new jobs to that machine",
    "clean_shm": "clear old temporary files out of shared memory",
    "enable_persistence_mode": "turn on the GPU setting that keeps it ready between jobs",
    "restart_service": "restart a system service",
    "resume_node": "put the machine back into service",
}
# Fractions of the expected speed said in words.
_FRACTIONS = ((0.75, "three quarters"), (2 / 3, "two thirds"), (0.5, "half"), (1 / 3, "a third"),
              (0.25, "a quarter"), (0.2, "a fifth"))

MIN_CHARS, MAX_CHARS = 40, 600
# Characters no plain sentence needs: shell syntax, chat markup (mentions, links), code.
_FORBIDDEN_CHARS = set("`$;|&<>\\{}[]#*_~@^=")
_COMMAND_WORDS = (SHELLS | DOWNLOADERS | POWER_COMMANDS | DISK_TOOLS
                  | {"sudo", "rm", "kill", "pkill", "killall", "chmod", "chown", "dd", "ssh", "scp", "echo",
                     "nvidia-smi", "dcgmi", "scontrol", "sinfo", "srun", "sbatch", "systemctl", "journalctl",
                     "kubectl", "ibstat", "ibv_devinfo", "modprobe", "rmmod", "insmod", "umount",
                     "iptables", "eval", "exec", "crontab"}) - {"node", "fetch", "halt"}
# ("node", "fetch" and "halt" are ordinary words here: "the node", "jobs halt")
_HOSTLIKE = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)*-\d+\b")  # node-05, hgx-h200-101
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


@dataclass
class Facts:
    """What the summary is written from (the diagnosis's outcome)."""

    verdict: str
    cause: Cause
    proposals: Sequence[Proposal] = ()
    anomalies: Sequence[Mapping[str, Any]] = ()
    confirm_with: Sequence[str] = ()
    checks_passed: Sequence[str] = ()
    expectation: Any = None  # pipelines.expectation.Expectation (when a slowdown was reported)
    hosts_total: int = 0
    hosts_affected: int = 0  # nodes showing a cluster- or job-wide cause
    checked: bool = True  # False: nothing could be checked (empty request, no hosts)
    reason: str = ""  # the technical summary, for the case nothing was checked
    known_hosts: Sequence[str] = field(default_factory=list)


def fault_words(fault: str | None, category: str | None) -> str:
    if fault and fault in FAULT_WORDS:
        return FAULT_WORDS[fault]
    return CATEGORY_WORDS.get(category or "other", "a problem")


def share_words(share: float) -> str:
    """0.42 -> 'less than half', 0.34 -> 'about a third', 0.95 -> 'nearly all'."""
    if share >= 0.9:
        return "nearly all"
    for value, words in _FRACTIONS:
        if abs(share - value) <= 0.04:
            return f"about {words}"
    above = [words for value, words in _FRACTIONS if value > share]
    return f"less than {above[-1]}" if above else "nearly all"


def _where(cause: Cause) -> str:
    if cause.node and cause.gpu is not None:
        return f"GPU {cause.gpu} of machine {cause.node}"
    if cause.node:
        return f"machine {cause.node}"
    return ""


def _broken(f: Facts) -> str:
    c = f.cause
    what = fault_words(c.fault, c.category)
    if not f.checked:
        return f"Nothing could be checked: {f.reason.rstrip('.')}."
    if f.verdict == "clean":
        return f"No problem was found: {len(f.checks_passed)} checks ran and all of them passed."
    if f.verdict == "verified":
        if c.node and c.gpu is not None:
            return f"The problem is {what}: {_where(c)}."
        if c.node:
            return f"The problem is {what} on {_where(c)}."
        spread = (f"{f.hosts_affected} of the {f.hosts_total} machines" if f.hosts_affected and f.hosts_total
                  else "the machines")
        if c.scope == "job":
            return f"The problem is {what}, which comes from the training job itself (seen on {spread})."
        return f"The problem is {what}, the same on {spread}, so it is not one broken machine."
    if f.verdict == "suspected":
        where = f" on machine {c.node}" if c.node else ""
        return f"The logs point to {what}{where}, but no check on the cluster has confirmed it yet."
    exp = f.expectation
    on_hosts = [a for a in f.anomalies if str(a.get("host") or "-") != "-"]
    if not on_hosts:  # nothing seen on a node: the job's speed, the report itself, or checks that did not run
        if exp is not None and exp.slow:
            return "The training job is slower than its hardware should make it, and no single machine is to blame."
        if any(a.get("check") == "request" for a in f.anomalies) or not f.anomalies:
            return "A problem was reported, but none of the checks found its cause."
        return "No fault was found, but some checks that could show one did not run or did not pass."
    where = f"machine {c.node}" if c.node else "the cluster"
    return f"Something is wrong on {where} ({what}), but the checks have not yet proven what causes it."


def _cost(f: Facts) -> str:
    exp = f.expectation
    c = f.cause
    if exp is not None and f.checked and f.verdict != "clean":
        n_gpus = (getattr(exp, "inputs", {}) or {}).get("n_gpus")
        job = f"the {n_gpus}-GPU training job" if n_gpus else "the training job"
        if exp.slow:
            explains = f.verdict == "verified" and exp.category is not None and exp.category == c.category
            lead = "Because of it, " if explains else ""
            job = job if lead else job[0].upper() + job[1:]
            return (f"{lead}{job} runs at {share_words(exp.share)} of its expected speed "
                    f"(each step takes {exp.observed_s:.0f} seconds instead of about {exp.expected_s:.0f}).")
        return f"{job[0].upper() + job[1:]} still runs at its expected speed."
    if not f.checked:
        return "How much it costs is not known."
    if f.verdict == "clean":
        return "No job is affected."
    if f.verdict == "verified":
        if c.node:
            return f"Jobs that use machine {c.node} run slower or fail because of it; how much was not measured."
        return "Every job on those machines can run slower or fail because of it; how much was not measured."
    if f.verdict == "suspected":
        return "If it is confirmed, jobs on " + (f"machine {c.node}" if c.node else "the affected machines") + \
            " can run slower or fail."
    return "How much it costs is not known yet."


def _action(f: Facts) -> str:
    if not f.checked:
        return "Ask again with the name of a machine or the text of the alert."
    if f.verdict == "clean":
        return "Nothing needs to be done."
    if f.proposals:
        p = f.proposals[0]
        tools = [s.tool for s in p.steps]
        hosts = {s.host for s in p.steps}
        words = ACTION_WORDS.get(tools[0], "apply the fix shown below") if tools else "apply the fix shown below"
        if len(hosts) > 1:
            words = words.replace("that GPU", "those GPUs").replace("that machine", "those machines")
            words += f" on {len(hosts)} machines"
        return f"Proposed fix: {words}; nothing runs until an engineer approves it."
    if f.verdict == "verified":
        return "There is no automatic fix for this; an engineer needs to handle it."
    if f.verdict == "suspected":
        return "An engineer should run the confirming checks listed below."
    return "An engineer needs to look at it; the details below list what was seen and what to check next."


def template_summary(facts: Facts) -> str:
    """Three plain sentences from the facts: what is broken, what it costs, what will be done."""
    return " ".join(s.strip() for s in (_broken(facts), _cost(facts), _action(facts)) if s.strip())


def check_plain(text: str, facts: Facts, tool_names: Sequence[str] = ()) -> str:
    """Why a model-written summary is refused ("" when it may be used)."""
    t = " ".join((text or "").split())
    if not (MIN_CHARS <= len(t) <= MAX_CHARS):
        return f"length {len(t)} outside {MIN_CHARS}..{MAX_CHARS} characters"
    bad = sorted({ch for ch in t if ch in _FORBIDDEN_CHARS})
    if bad:
        return f"contains {''.join(bad)!r} (commands, markup or code)"
    if not t.isprintable():
        return "contains control characters"
    if "://" in t or re.search(r"(?:^|\s)--?[A-Za-z]", t):
        return "contains a link or a command-line option"
    words = {w.strip(".,:()'\"!?").lower() for w in t.split()}
    commands = sorted(words & _COMMAND_WORDS)
    if commands:
        return f"names commands ({', '.join(commands[:3])})"
    tools = [n for n in tool_names if n.lower() in words]
    if tools:
        return f"names tools ({', '.join(tools[:3])})"
    sentences = len(_SENTENCE_END.findall(t if t[-1] in ".!?" else t + "."))
    if not 2 <= sentences <= 4:
        return f"{sentences} sentence(s), not three"
    known = {h.lower() for h in facts.known_hosts}
    strangers = [h for h in _HOSTLIKE.findall(t) if h.lower() not in known]
    if known and strangers:
        return f"names a host the cluster does not have ({strangers[0]})"
    if facts.cause.node and facts.cause.node.lower() not in t.lower():
        return f"does not name the machine at fault ({facts.cause.node})"
    return ""


def plain_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"summary": {"type": "string", "maxLength": MAX_CHARS}},
            "required": ["summary"]}


def plain_messages(facts: Facts, template: str, technical: str) -> list[Message]:
    """Ask a capable model to rewrite the template for a manager: same facts, plainer words."""
    user = (
        "Write exactly three short sentences for a manager who is not an engineer: what is broken, what it "
        "costs, what will be done. Use only the facts below; keep machine names and numbers as they are; no "
        "commands, no code, no tool names, no abbreviations.\n"
        f"{tag_data('facts', template, cap=800)}\n{tag_data('details', technical, cap=800)}\n"
        'Answer JSON {"summary": "..."}.'
    )
    return [{"role": "system", "content": "You explain GPU cluster incidents in plain words. " + DATA_RULE},
            {"role": "user", "content": user}]


__all__ = ["ACTION_WORDS", "CATEGORY_WORDS", "FAULT_WORDS", "Facts", "check_plain", "fault_words",
           "plain_messages", "plain_schema", "share_words", "template_summary"]

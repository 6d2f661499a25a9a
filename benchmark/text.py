"""Small text helpers shared by the scorers and the case builder: tokens, overlap, log lines."""

from __future__ import annotations

import re

_LOG_TOKEN = re.compile(
    r"\b(?:ERROR|WARN(?:ING)?|FATAL|CRITICAL|INFO|Error|error:|Exception|Traceback|NCCL|NVRM|Xid|"
    r"RuntimeError|OSError|ValueError|AssertionError|torch\.|File \"|\[rank\d*\]|CUDA error|"
    r"failed|Failed|FAILED|Killed|killed process|segfault|Segmentation fault|watchdog|Watchdog|"
    r"timed out|Timeout|timeout|No space left|Bus error|Out of memory|out of memory|OOM|oom-kill|"
    r"errno|Errno|ibv_|mlx5|srun:|slurmstepd|sbatch|kubectl|nvidia-smi|dmesg|core dumped|"
    r"SIGABRT|SIGKILL|SIGSEGV|signal|exit code|exitcode|ChildFailedError|rendezvous|c10d)\b"
)
_PROSE_LEAD = re.compile(
    r"^(?:what\s+(?:was\s+tried|worked|fixed)|the\s+(?:maintainer|reporter|user|fix|cause)|"
    r"a\s+maintainer|maintainers?|reporter|fix:|resolution|root\s+cause|cause:|established|the\s|"
    r"after\s|running\s|with\s|when\s|environment:|setup:|this\s|it\s|they\s|a\s|an\s)",
    re.IGNORECASE,
)
_PROSE_TEXT = (
    "the was were and that which when after because reporter maintainer maintainers explained "
    "suggested turned out fixed resolved cause caused worked tried their they"
)
_PROSE_WORDS = frozenset(_PROSE_TEXT.split())


def log_lines(rawtext: str, limit: int = 12) -> list[str]:
    """Lines of a record's text that read like pasted logs or error output, not narrative prose."""
    out: list[str] = []
    for raw in rawtext.splitlines():
        line = raw.strip().strip("`").strip()
        if len(line) < 8 or _PROSE_LEAD.match(line) or (line.endswith(":") and len(line.split()) >= 5):
            continue
        if not _LOG_TOKEN.search(line):
            continue
        words = re.findall(r"[a-z]+", line.lower())
        prose = sum(1 for w in words if w in _PROSE_WORDS)
        if prose >= 3 or (words and prose / len(words) > 0.18):
            continue
        out.append(line)
        if len(out) >= limit:
            break
    return out


def symptom_text(rawtext: str, limit: int = 400) -> str:
    """The report's opening (the symptom as the user described it), before any fix is discussed."""
    head = re.split(r"\n\s*(?:What was tried|What worked|The maintainer|A maintainer|Fix|Resolution)",
                    rawtext, maxsplit=1, flags=re.IGNORECASE)[0]
    head = " ".join(head.split())
    if len(head) <= limit:
        return head
    cut = head[:limit]
    return cut[: cut.rfind(" ")] + " …" if " " in cut else cut

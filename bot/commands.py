"""Parsing what people type: ``/diagnose <node|job> [words]``, ``!diagnose``, free-text mentions.

What a command is about (its subject) is resolved against the inventory's node names: an exact name is a node; ``job 4412``,
``job-4412`` or a bare number is a job; anything else that is close to a node name (difflib)
is an unknown node, answered with the closest known names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

COMMANDS = ("diagnose", "status", "help", "history", "wrong")
USAGE = (
    "usage: /diagnose <node|job> [what you see]   e.g. `/diagnose node-05` or `/diagnose job 4412 slow`\n"
    "       /history <node>   (the node's last incidents)\n"
    "       /wrong <what it was>   (in an incident's thread: correct the diagnosis; stored as a past incident)\n"
    "       /status   (open incidents)     /help\n"
    "       add cluster=<name> to act on one cluster when the bot serves several"
)
_JOB_RE = re.compile(r"^(?:job[-_:#]?)?(\d+|[A-Za-z0-9][\w.-]*)$", re.IGNORECASE)
_JOB_WORD_RE = re.compile(r"\bjob[\s:#-]*([A-Za-z0-9][\w.-]*)", re.IGNORECASE)
_TARGET_OK = re.compile(r"^[A-Za-z0-9][\w.:-]{0,127}$")


@dataclass(frozen=True)
class Subject:
    kind: Literal["node", "job", "none"]
    name: str | None


@dataclass(frozen=True)
class Parsed:
    name: str  # one of COMMANDS
    target: Subject
    text: str  # the free text after the target


class CommandError(ValueError):
    """What the user typed cannot be run; the message says why and how to fix it."""


def split_command(text: str, prefixes: Sequence[str] = ("/", "!")) -> tuple[str, str] | None:
    """``"!diagnose node-05 hot"`` -> ``("diagnose", "node-05 hot")``; None if not a command."""
    stripped = text.strip()
    for prefix in prefixes:
        if stripped.startswith(prefix):
            head, _, rest = stripped[len(prefix):].partition(" ")
            if head:
                return head.lower(), rest.strip()
    return None


def parse_command(name: str, text: str, known_nodes: Sequence[str]) -> Parsed:
    name = name.strip().lstrip("/!").lower()
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise CommandError(f"unknown command `{name}`{hint}\n{USAGE}")
    if name != "diagnose":
        return Parsed(name, Subject("none", None), text.strip())
    words = text.split()
    if not words:
        raise CommandError(f"`diagnose` needs a node or a job\n{USAGE}")
    first = words[0]
    rest = words[1:]
    if first.lower() in ("job", "node") and rest:  # "job 4412 …" / "node node-05 …"
        kind, first, rest = first.lower(), rest[0], rest[1:]
        target = resolve_target(first, known_nodes, forced=kind)  # type: ignore[arg-type]
    else:
        target = resolve_target(first, known_nodes)
    return Parsed("diagnose", target, " ".join(rest))


def resolve_target(
    word: str, known_nodes: Sequence[str], forced: Literal["node", "job"] | None = None
) -> Subject:
    word = word.strip().rstrip(",.;:?")
    if len(word) > 2 and word[0] == word[-1] and word[0] in "`'\"":  # `node-05` or "node-05"
        word = word[1:-1]
    if not _TARGET_OK.match(word):
        raise CommandError(f"`{word[:40]}` is not a node name or job id\n{USAGE}")
    known = list(known_nodes)
    if forced != "job" and (word in known or (not known and forced == "node")):
        return Subject("node", word)
    if forced == "job":
        return Subject("job", _strip_job(word))
    lowered = {n.lower(): n for n in known}
    if word.lower() in lowered:
        return Subject("node", lowered[word.lower()])
    if word.isdigit() or word.lower().startswith("job"):
        return Subject("job", _strip_job(word))
    if not known:
        return Subject("node", word)  # no inventory to check against: let the agent find out
    several = prefix_matches(word, known) if len(word) >= 3 else []
    if len(several) > 1:  # "node-1" with node-10 … node-16: say which, run nothing
        raise CommandError(ambiguous_text(word, several))
    suggestions = closest_nodes(word, known)
    looks_like_node = (forced == "node" or bool(suggestions) or _same_shape(word, known)
                       or word.lower().startswith("node"))
    if looks_like_node:
        hint = ", ".join(f"`{s}`" for s in suggestions) if suggestions else ", ".join(f"`{n}`" for n in known[:5])
        raise CommandError(f"unknown node `{word}`; closest known: {hint}. Nothing was started.")
    return Subject("job", word)  # a job name such as llama-7b-pretrain


def closest_nodes(word: str, known: Sequence[str], n: int = 3) -> list[str]:
    matches = difflib.get_close_matches(word, list(known), n=n, cutoff=0.6)
    if matches:
        return matches
    # "node5" vs "node-05": same letters, same number once separators and zero padding go
    letters, digits = re.sub(r"[^a-z]", "", word.lower()), re.sub(r"\D", "", word).lstrip("0")
    if digits:
        same = [k for k in known if re.sub(r"[^a-z]", "", k.lower()) == letters
                and re.sub(r"\D", "", k).lstrip("0") == digits]
        return same[:n]
    return []


def prefix_matches(word: str, known: Sequence[str]) -> list[str]:
    """Known names that ``word`` is a proper prefix of (case-insensitive)."""
    low = word.lower()
    return [k for k in known if k.lower().startswith(low) and k.lower() != low]


def ambiguous_text(word: str, matches: Sequence[str], shown: int = 8) -> str:
    names = ", ".join(f"`{m}`" for m in matches[:shown]) + (f" … ({len(matches)} in all)" if len(matches) > shown else "")
    return f"ambiguous node `{word}`: it matches {names}; name one exactly. Nothing was started."


def _same_shape(word: str, known: Sequence[str]) -> bool:
    shape = re.sub(r"\d+", "#", word.lower())
    return any(re.sub(r"\d+", "#", k.lower()) == shape for k in known)


def _strip_job(word: str) -> str:
    m = _JOB_RE.match(word)
    return m.group(1) if m else word


def target_from_text(text: str, known_nodes: Sequence[str]) -> Subject:
    """Pick the node or job a free-text mention is about (first known node name, else ``job N``)."""
    known = {n.lower(): n for n in known_nodes}
    for token in re.findall(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]", text):
        if token.lower() in known:
            return Subject("node", known[token.lower()])
    m = _JOB_WORD_RE.search(text)
    if m:
        return Subject("job", m.group(1))
    return Subject("none", None)

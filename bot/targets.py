"""Targets that exist: what a request or an approval names is checked against the inventory
(and, when the composition root provides one, the scheduler's job list) before anything runs.

* ``/diagnose node-99`` / ``/history node-99``: an unknown node gets the closest names (difflib,
  ``bot.commands``), a prefix of several nodes gets them listed; nothing is started.
* A mention that names a node-shaped word the inventory does not have gets the same answer,
  instead of a diagnosis of the whole cluster.
* ``/diagnose job 4412``: with a ``JobLookup`` the scheduler is asked first; a job it does not know
  is refused. Without one (the default: the registry has no job lookup) the id goes to the agent.
* An approval is refused when a node of the proposal left the inventory since it was proposed, or
  when a host name is not a plain node name (shell metacharacters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from bot.commands import (
    CommandError,
    Subject,
    _same_shape,
    ambiguous_text,
    closest_nodes,
    prefix_matches,
    target_from_text,
)
from pipelines.api import Proposal

SAFE_NODE = re.compile(r"^[A-Za-z0-9][\w.:-]{0,127}$")  # what a node name may look like; no shell syntax
_TOKEN = re.compile(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]")

Inventory = Callable[[], Sequence[str]]


@runtime_checkable
class JobLookup(Protocol):
    """Asks the scheduler whether it knows a job (raise when it cannot be asked)."""

    def job_exists(self, job_id: str) -> bool: ...


def resolve_mention(text: str, known: Sequence[str]) -> Subject:
    """The subject of a free-text mention; a node-shaped word that is not in the inventory (and no
    known node named) is refused with the closest names rather than diagnosing everything."""
    subject = target_from_text(text, known)
    if subject.kind == "node" or not known:
        return subject
    known_lower = {k.lower() for k in known}
    for token in _TOKEN.findall(text):
        if token.lower() in known_lower or not any(c.isdigit() for c in token):
            continue
        if _same_shape(token, known):
            close = closest_nodes(token, known)
            hint = ", ".join(f"`{c}`" for c in close) if close else ", ".join(f"`{k}`" for k in known[:5])
            raise CommandError(f"unknown node `{token}`; closest known: {hint}. Nothing was started.")
    return subject


def resolve_node(word: str, known: Sequence[str], extra: Sequence[str] = ()) -> str:
    """One node name for ``/history``: exact (case-insensitive) in the inventory or in ``extra``
    (nodes with history that have since left the inventory); else a clear ``CommandError``."""
    word = word.strip().strip("`'\"").rstrip(",.;:?")
    if not word:
        raise CommandError("`history` needs a node, e.g. `/history node-17`")
    if not SAFE_NODE.match(word):
        raise CommandError(f"`{word[:40]}` is not a node name (letters, digits, `.`, `_`, `:`, `-` only)")
    for pool in (known, extra):
        lowered = {n.lower(): n for n in pool}
        if word.lower() in lowered:
            return lowered[word.lower()]
    pool = list(dict.fromkeys([*known, *extra]))
    if not pool:
        return word  # no inventory and no history: nothing to compare with
    several = prefix_matches(word, pool)
    if len(several) > 1:
        raise CommandError(ambiguous_text(word, several))
    close = closest_nodes(word, pool)
    hint = ", ".join(f"`{c}`" for c in close) if close else ", ".join(f"`{n}`" for n in pool[:5])
    raise CommandError(f"unknown node `{word}`; closest known: {hint}")


def proposal_hosts(proposal: Proposal) -> list[str]:
    return list(dict.fromkeys(s.host for s in proposal.steps))


def host_problem(proposal: Proposal, inventory: Sequence[str]) -> str | None:
    """Why a proposal may not run on its hosts now, or None. An empty inventory means none is
    known (simulated or ad-hoc use) and only the name check applies."""
    hosts = proposal_hosts(proposal)
    run_on = [str(getattr(s, "run_on", "") or "") for s in proposal.steps]  # a Slurm controller, when set
    bad = [h for h in [*hosts, *run_on] if h and not SAFE_NODE.match(h)]
    if bad:
        return f"host name {bad[0][:60]!r} is not a plain node name (shell metacharacters); refused"
    if inventory:
        present = set(inventory)
        gone = [h for h in hosts if h not in present]
        if gone:
            names = ", ".join(f"`{h}`" for h in gone)
            return (f"{names} {'is' if len(gone) == 1 else 'are'} no longer in the inventory (left since this "
                    "was proposed); not run — run /diagnose again")
    return None

"""Several clusters behind one bot: which cluster a command, a mention or an alert is about.

Each cluster (``BotCluster``) brings its own agent (built over its own toolkit by the composition
root), remediator, node list and job lookup; the bot keys its node history, circuit breaker and
health report by the cluster's name. A bot built the old way (one agent, one node list) has one
cluster named ``""``: nothing is prefixed and nothing changes.

Picking the cluster (``ClusterMap.pick``):

* ``cluster=<name>`` in a command or mention names it; in a channel that belongs to another cluster
  that is refused, and an unknown name gets the closest names;
* else the channel's cluster (``channels`` in the config; a channel belongs to one cluster at most);
* else the default cluster (``default = true``; the only cluster when there is one);
* else the command is refused, listing the clusters to pick from.

An alert's cluster (``ClusterMap.for_alert``): the channel's cluster, else its ``cluster`` label
when that names a cluster, else the default; with none of them it opens no incident.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bot.commands import CommandError
from bot.services import AgentService, Remediator
from bot.targets import Inventory, JobLookup

log = logging.getLogger("clusterdoc.bot")

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLUSTER_WORD = re.compile(r"(?:^|\s)cluster=(\S*)", re.IGNORECASE)


@dataclass
class BotCluster:
    """One cluster the bot serves: its agent (over its own toolkit), executor and nodes."""

    name: str
    agent: AgentService
    remediator: Remediator | None = None
    known_nodes: list[str] = field(default_factory=list)
    inventory: Inventory | None = None  # the live node list (a node may leave); default: known_nodes
    jobs: JobLookup | None = None
    channels: tuple[str, ...] = ()  # channels / rooms that belong to it
    default: bool = False

    def nodes_now(self) -> list[str]:
        """The inventory as it is now (the root's live view), else the nodes known at start."""
        if self.inventory is not None:
            try:
                return list(self.inventory())
            except Exception:  # an unreadable inventory must not open every name: keep the last known
                log.exception("inventory of cluster %r unavailable; using the nodes known at start", self.name)
        return list(self.known_nodes)

    def tag(self, text: str) -> str:
        """``[lab2] text`` for a named cluster (once); the text unchanged for the unnamed one."""
        if not self.name:
            return text
        prefix = f"[{self.name}] "
        return text if text.startswith(prefix) else prefix + text


def split_cluster(text: str) -> tuple[str | None, str]:
    """``"cluster=lab2 node-05 hot"`` -> ``("lab2", "node-05 hot")``; ``(None, text)`` without one."""
    m = _CLUSTER_WORD.search(text)
    if m is None:
        return None, text
    before, after = text[: m.start()].rstrip(), text[m.end():].lstrip()
    rest = f"{before} {after}" if before and after else (before or after)
    return m.group(1).strip("`'\",;"), rest


class ClusterMap:
    """The clusters by name and by channel; checks the mapping once (``ValueError`` naming both
    clusters when one channel is given to two, two defaults, a name used twice or malformed)."""

    def __init__(self, clusters: Sequence[BotCluster]) -> None:
        if not clusters:
            raise ValueError("no cluster to serve")
        self.clusters: dict[str, BotCluster] = {}
        self._by_channel: dict[str, BotCluster] = {}
        for c in clusters:
            if c.name and not CLUSTER_NAME.match(c.name):
                raise ValueError(f"cluster name {c.name!r}: letters, digits, '.', '_', '-' only (at most 64)")
            if c.name in self.clusters:
                raise ValueError(f"cluster name {c.name!r} is used twice")
            if not c.name and len(clusters) > 1:
                raise ValueError("every cluster needs a name when there are several")
            self.clusters[c.name] = c
            for channel in c.channels:
                other = self._by_channel.get(channel)
                if other is not None and other is not c:
                    raise ValueError(f"channel {channel!r} is mapped to two clusters: {other.name!r} and {c.name!r}")
                self._by_channel[channel] = c
        defaults = [c for c in clusters if c.default]
        if len(defaults) > 1:
            raise ValueError(f"two default clusters: {defaults[0].name!r} and {defaults[1].name!r}")
        self.default: BotCluster | None = defaults[0] if defaults else (clusters[0] if len(clusters) == 1 else None)
        self.primary: BotCluster = self.default or clusters[0]  # what Bot.agent / Bot.jobs … refer to

    # -- lookups -------------------------------------------------------------------------------
    @property
    def named(self) -> bool:
        """Whether messages are prefixed with a cluster name (any cluster has one)."""
        return any(self.clusters)

    def __iter__(self) -> Iterator[BotCluster]:
        return iter(self.clusters.values())

    def __len__(self) -> int:
        return len(self.clusters)

    def get(self, name: str) -> BotCluster | None:
        return self.clusters.get(name)

    def of_channel(self, channel: str) -> BotCluster | None:
        return self._by_channel.get(channel)

    def all_nodes(self) -> list[str]:
        return list(dict.fromkeys(n for c in self.clusters.values() for n in c.known_nodes))

    def names_text(self) -> str:
        return ", ".join(f"`{n}`" for n in self.clusters if n) or "(one unnamed cluster)"

    # -- picking -------------------------------------------------------------------------------
    def resolve_name(self, asked: str) -> BotCluster:
        """The cluster called ``asked`` (case-insensitive), else a ``CommandError`` with the closest names."""
        if not asked:
            raise CommandError(f"`cluster=` needs a name: one of {self.names_text()}. Nothing was started.")
        if not CLUSTER_NAME.match(asked):
            raise CommandError(f"`{asked[:40]}` is not a cluster name; known: {self.names_text()}. Nothing was started.")
        lowered = {n.lower(): c for n, c in self.clusters.items() if n}
        if asked.lower() in lowered:
            return lowered[asked.lower()]
        close = difflib.get_close_matches(asked.lower(), list(lowered), n=3, cutoff=0.5)
        hint = (f"closest: {', '.join(f'`{lowered[c].name}`' for c in close)}" if close
                else f"known: {self.names_text()}")
        raise CommandError(f"unknown cluster `{asked}`; {hint}. Nothing was started.")

    def pick(self, channel: str, asked: str | None) -> BotCluster:
        """The cluster a command in ``channel`` acts on (``asked``: its ``cluster=`` word, if any)."""
        bound = self.of_channel(channel)
        if asked is not None:
            cluster = self.resolve_name(asked)
            if bound is not None and bound is not cluster:
                raise CommandError(f"this channel belongs to cluster `{bound.name}`; it may not act on cluster "
                                   f"`{cluster.name}` (ask in one of {cluster.name}'s channels). Nothing was started.")
            return cluster
        if bound is not None:
            return bound
        if self.default is not None:
            return self.default
        raise CommandError(f"which cluster? this channel belongs to none and there is no default cluster: add "
                           f"`cluster=<name>`, one of {self.names_text()}. Nothing was started.")

    def for_alert(self, channel: str, labels: Mapping[str, str]) -> BotCluster | None:
        """The cluster an alert is about: its channel's, else its ``cluster`` label's, else the default."""
        bound = self.of_channel(channel)
        if bound is not None:
            return bound
        label = str(labels.get("cluster") or "")
        if label:
            lowered = {n.lower(): c for n, c in self.clusters.items() if n}
            if label.lower() in lowered:
                return lowered[label.lower()]
        return self.default

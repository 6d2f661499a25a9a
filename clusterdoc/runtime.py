"""Wiring the layers below into what the bot serves: cluster executor, toolkit, KB, model, agent.

``build_runtime`` takes the assembled config (``clusterdoc.config.Config``) and either a real
inventory (SSH via paramiko) or a scenario (the simulated cluster, served over real SSH on
127.0.0.1 when possible). A model that cannot be loaded falls back to ``llm=none`` with a note
saying why, so the bot still answers from evidence alone.

``build_runtimes`` does the same for every cluster of the config (``[[clusters]]``, else the one
``[cluster]``): one target, toolkit, agent, remediator and inventory watch per cluster; the
knowledge base and the model are loaded once and shared. ``bot_clusters`` turns them into the
bot's ``BotCluster`` list (names, channels, default) and ``watched`` into the scheduler's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.clusters import BotCluster
from bot.services import KBLearner, ToolkitRemediator

log = logging.getLogger("clusterdoc.bot")


@dataclass
class Runtime:
    agent: Any
    toolkit: Any
    kb: Any
    remediator: ToolkitRemediator
    learner: KBLearner | None
    known_nodes: list[str]
    llm_name: str
    sim: Any = None  # the SimCluster when running a scenario
    over_ssh: bool = False
    notes: list[str] = field(default_factory=list)
    telemetry: Any = None  # a diagnostics.telemetry source when [telemetry] names a Prometheus
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    inventory: Callable[[], list[str]] | None = None  # the live node list (a real inventory file)
    name: str = ""  # the cluster's name ([[clusters]]); "" for the one [cluster]
    filter_samples: bool = False  # several clusters share one Prometheus: keep this cluster's nodes only

    def close(self) -> None:
        self.stack.close()

    def gpu_samples(self) -> list[Any]:
        """Current GPU telemetry of every node: Prometheus when configured, else the simulated
        cluster, else []. An unreachable Prometheus is logged and gives [] (the tick is skipped)."""
        if self.telemetry is not None:
            try:
                samples = list(self.telemetry.samples())
            except Exception as exc:
                log.warning("telemetry unavailable: %s", exc)
                return []
            if self.filter_samples:
                known = set(self.known_nodes)
                samples = [s for s in samples if getattr(s, "host", None) in known]
            return samples
        if self.sim is None:
            return []
        return [s for host in self.known_nodes for s in self.sim.gpu_samples(host)]


def build_runtime(
    cfg: Any,
    *,
    scenario: str | None = None,
    over_ssh: bool | None = None,
    llm_backend: str | None = None,
    workdir: str | Path | None = None,
    say: Callable[[str], None] = log.info,
) -> Runtime:
    """The one cluster of ``[cluster]`` (or ``scenario``, which overrides it)."""
    cluster = cfg.cluster
    if scenario:
        cluster = dataclasses.replace(cluster, scenario=str(scenario), inventory="")
    return _build(cfg, [cluster], over_ssh=over_ssh, llm_backend=llm_backend, workdir=workdir, say=say)[0]


def build_runtimes(
    cfg: Any,
    *,
    over_ssh: bool | None = None,
    llm_backend: str | None = None,
    workdir: str | Path | None = None,
    say: Callable[[str], None] = log.info,
) -> list[Runtime]:
    """Every cluster of the config (``cfg.cluster_list()``), in order; the KB and the model shared."""
    return _build(cfg, list(cfg.cluster_list()), over_ssh=over_ssh, llm_backend=llm_backend, workdir=workdir,
                  say=say)


def _build(cfg: Any, clusters: list[Any], *, over_ssh: bool | None, llm_backend: str | None,
           workdir: str | Path | None, say: Callable[[str], None]) -> list[Runtime]:
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig

    notes: list[str] = install_fault_knowledge(cfg)
    several = len(clusters) > 1
    opened: list[tuple[Any, Any, contextlib.ExitStack, bool, list[str]]] = []
    runtimes: list[Runtime] = []
    try:
        for c in clusters:
            stack = contextlib.ExitStack()
            opened.append((c, None, stack, False, []))
            name = str(getattr(c, "name", "") or "")
            where = Path(workdir) / name if workdir is not None and several and name else workdir  # one per cluster
            target, ssh_used, target_notes = _open_cluster(cfg, c, over_ssh, where, several)
            stack.callback(target.close)
            opened[-1] = (c, target, stack, ssh_used, target_notes)
        kb = _knowledge_base(cfg, notes)  # one knowledge base and one model for every cluster
        llm, llm_name = _llm(cfg, llm_backend, notes, say)
        agent_cfg = cfg.agent if isinstance(cfg.agent, AgentConfig) else AgentConfig()
        learner = KBLearner(kb) if kb is not None else None
        telemetry = _telemetry(cfg)
        for i, (c, target, stack, ssh_used, target_notes) in enumerate(opened):
            toolkit = target.toolkit
            known = list(target.cluster.hosts)
            # GPU count and model let the agent check for missing GPUs and cap power limits at the default.
            agent = Agent(agent_cfg, toolkit, kb, llm, hosts=known, cluster=target.cluster)
            agent.warm_up()
            name = str(getattr(c, "name", "") or "")
            runtimes.append(Runtime(
                agent=agent, toolkit=toolkit, kb=kb, remediator=ToolkitRemediator(toolkit), learner=learner,
                known_nodes=known, llm_name=llm_name, sim=target.sim, over_ssh=ssh_used,
                notes=(notes if i == 0 else []) + [f"{name}: {n}" if name else n for n in target_notes],
                stack=stack, telemetry=telemetry, name=name, filter_samples=several,
                inventory=InventoryWatch(c.inventory, known) if not c.scenario else None))
    except BaseException:
        for _, _, stack, _, _ in opened:
            stack.close()
        raise
    return runtimes


def _open_cluster(cfg: Any, c: Any, over_ssh: bool | None, workdir: str | Path | None,
                  several: bool) -> tuple[Any, bool, list[str]]:
    """One cluster's target: its scenario (simulated) or its inventory (real nodes over SSH)."""
    from pipelines.runtime import open_target

    name = getattr(c, "name", "")
    if c.scenario:
        want_ssh = c.simulate_over_ssh if over_ssh is None else over_ssh
        target = open_target("scenario", str(c.scenario), over_ssh=bool(want_ssh), workdir=workdir)
        return target, bool(want_ssh) and not target.notes, list(target.notes)
    if c.inventory:
        target = open_target("inventory", c.inventory, ssh_config=cfg.ssh, default_scheduler=c.scheduler)
        return target, False, []
    what = f"clusters ({name})" if several or name else "cluster"
    raise ValueError(f"config: set {what}.inventory (real nodes) or {what}.scenario (simulated cluster)")


def bot_clusters(cfg: Any, runtimes: list[Runtime]) -> list[BotCluster] | None:
    """The bot's clusters (names, channels, default) for ``[[clusters]]``; None for the one ``[cluster]``
    (the bot then serves one unnamed cluster and names none in its messages)."""
    if not cfg.clusters:
        return None
    by_name = {r.name: r for r in runtimes}
    return [BotCluster(c.name, by_name[c.name].agent, by_name[c.name].remediator, list(by_name[c.name].known_nodes),
                       by_name[c.name].inventory, channels=tuple(c.channels), default=c.default)
            for c in cfg.clusters]


def report_channel(cfg: Any, name: str) -> str:
    """Where a cluster's health report and early warnings go: its ``report_channel``, else its first
    channel, else the bot's (``bot.slack.channel`` / ``bot.matrix.report_room``)."""
    c = next((c for c in cfg.clusters if c.name == name), None)
    if c is not None and (c.report_channel or c.channels):
        return str(c.report_channel or c.channels[0])
    return str(cfg.bot.slack.channel if cfg.bot.slack.enabled and cfg.bot.slack.channel else cfg.bot.matrix.report_room)


class InventoryWatch:
    """The inventory's nodes now: the file is re-read when it changes, and a node removed from it
    is gone (the bot refuses to approve actions on it). Nodes added to the file are not reachable
    until a restart (the SSH executor was built from the file at start), so they are not added.
    An unreadable or invalid file keeps the last good list (logged)."""

    def __init__(self, path: str | Path, started_with: list[str]) -> None:
        self.path = Path(path)
        self.started_with = list(started_with)
        self._nodes = list(started_with)
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def __call__(self) -> list[str]:
        mtime = self._stat()
        if mtime is not None and mtime != self._mtime:
            from diagnostics.inventory import load_inventory

            try:
                present = set(load_inventory(self.path).names)
            except Exception as exc:
                log.warning("inventory %s unreadable (%s); keeping the last good node list", self.path, exc)
            else:
                self._nodes = [n for n in self.started_with if n in present]
                self._mtime = mtime
        return list(self._nodes)


def install_fault_knowledge(cfg: Any) -> list[str]:
    """Operator fault kinds and signatures from [faults]: valid entries are used, each bad one is
    reported as ``file:line: ...`` and skipped; the built-in catalogs always keep working."""
    from diagnostics.faults import load_catalog, use_catalog
    from diagnostics.registry import default_registry

    faults = getattr(cfg, "faults", None)
    notes: list[str] = []
    if faults is None:
        return notes
    if faults.catalog_files:
        fault_catalog = load_catalog(faults.catalog_files, known_checks=default_registry().names())
        use_catalog(fault_catalog)
        notes += [f"fault catalog: {e}" for e in fault_catalog.errors]
    if faults.signature_files:
        from pipelines.hypotheses import signature_catalog

        sigs = signature_catalog(faults.signature_files)
        notes += [f"signature catalog: {e}" for e in getattr(sigs, "errors", ())]
        from pipelines.config import AgentConfig

        agent_cfg = cfg.agent if isinstance(cfg.agent, AgentConfig) else AgentConfig()
        cfg.agent = dataclasses.replace(agent_cfg, signature_files=tuple(faults.signature_files))
    for note in notes:
        log.warning(note)
    return notes


def _telemetry(cfg: Any) -> Any:
    from diagnostics.telemetry.config import TelemetryConfig, make_source

    tcfg = getattr(cfg, "telemetry", None)
    return make_source(tcfg) if isinstance(tcfg, TelemetryConfig) else None


def _knowledge_base(cfg: Any, notes: list[str]) -> Any:
    try:
        from kb.config import KBConfig
        from kb.knowledge import KnowledgeBase
    except ImportError as exc:
        notes.append(f"no knowledge base ({exc})")
        return None
    kb_cfg = cfg.kb if isinstance(cfg.kb, KBConfig) else KBConfig(data_dir=None)
    kb = KnowledgeBase(kb_cfg)
    kb.warm_up()
    return kb


def _llm(cfg: Any, backend: str | None, notes: list[str], say: Callable[[str], None]) -> tuple[Any, str]:
    from pipelines.config import LLMConfig
    from pipelines.llm import make_llm

    llm_cfg = cfg.llm if isinstance(cfg.llm, LLMConfig) else LLMConfig()
    if backend:
        llm_cfg = dataclasses.replace(llm_cfg, backend=backend)
    if llm_cfg.backend == "none":
        return make_llm(llm_cfg), "none"
    llm = make_llm(llm_cfg)
    try:
        llm.warm_up()
    except Exception as exc:
        line = f"model backend {llm_cfg.backend} unavailable ({str(exc)[:200]}); continuing with llm=none (evidence only)"
        notes.append(line)
        say(line)
        return make_llm(LLMConfig(backend="none")), "none"
    return llm, f"{llm_cfg.backend}:{llm_cfg.model_name}"

"""Wiring the layers below into what the bot serves: cluster executor, toolkit, KB, model, agent.

``build_runtime`` takes the assembled config (``clusterdoc.config.Config``) and either a real
inventory (SSH via paramiko) or a scenario (the simulated cluster, served over real SSH on
127.0.0.1 when possible). A model that cannot be loaded falls back to ``llm=none`` with a note
saying why, so the bot still answers from evidence alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def close(self) -> None:
        self.stack.close()

    def gpu_samples(self) -> list[Any]:
        """Current GPU telemetry of every node: Prometheus when configured, else the simulated
        cluster, else []. An unreachable Prometheus is logged and gives [] (the tick is skipped)."""
        if self.telemetry is not None:
            try:
                return list(self.telemetry.samples())
            except Exception as exc:
                log.warning("telemetry unavailable: %s", exc)
                return []
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
    from pipelines.runtime import open_target

    stack = contextlib.ExitStack()
    notes: list[str] = install_fault_knowledge(cfg)
    sim = None
    scenario = scenario or cfg.cluster.scenario or None
    ssh_used = False
    try:
        if scenario:
            want_ssh = cfg.cluster.simulate_over_ssh if over_ssh is None else over_ssh
            target = open_target("scenario", str(scenario), over_ssh=bool(want_ssh), workdir=workdir)
            stack.callback(target.close)
            sim = target.sim
            ssh_used = bool(want_ssh) and not target.notes
            notes += target.notes
        elif cfg.cluster.inventory:
            target = open_target("inventory", cfg.cluster.inventory, ssh_config=cfg.ssh,
                                 default_scheduler=cfg.cluster.scheduler)
            stack.callback(target.close)
        else:
            raise ValueError("config: set cluster.inventory (real nodes) or cluster.scenario (simulated cluster)")
        toolkit = target.toolkit
        known = list(target.cluster.hosts)

        kb = _knowledge_base(cfg, notes)
        llm, llm_name = _llm(cfg, llm_backend, notes, say)
        from pipelines.agent import Agent
        from pipelines.config import AgentConfig

        agent_cfg = cfg.agent if isinstance(cfg.agent, AgentConfig) else AgentConfig()
        # GPU count and model let the agent check for missing GPUs and cap power limits at the default.
        agent = Agent(agent_cfg, toolkit, kb, llm, hosts=known, cluster=target.cluster)
        agent.warm_up()
    except BaseException:
        stack.close()
        raise
    return Runtime(agent=agent, toolkit=toolkit, kb=kb, remediator=ToolkitRemediator(toolkit),
                   learner=KBLearner(kb) if kb is not None else None, known_nodes=known, llm_name=llm_name,
                   sim=sim, over_ssh=ssh_used, notes=notes, stack=stack, telemetry=_telemetry(cfg),
                   inventory=InventoryWatch(cfg.cluster.inventory, known) if not scenario else None)


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

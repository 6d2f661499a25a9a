"""A tiny in-process cluster for the agent's unit tests: real Registry and Toolkit, a fake
executor whose state faults are set directly. The scenario tests use the real simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from diagnostics.registry import Param, ParseInput, ParseOutput, Registry, ToolSpec
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, Finding, Status

GPU = Param("gpu", "int", "GPU index", required=False, min=0, max=15)

# check name -> fault kind its finding carries
CHECK_FAULTS = {
    "gpu_clocks": "gpu_clock_throttle",
    "gpu_power": "gpu_power_cap",
    "gpu_temperature": "gpu_thermal",
    "gpu_ecc": "gpu_ecc_uncorrectable",
    "ib_ports": "ib_port_down",
    "shm_size": "shm_too_small",
    "disk_usage": "disk_full",
}


@dataclass
class FakeState:
    faults: dict[tuple[str, str], int | None] = field(default_factory=dict)  # (host, fault) -> gpu
    executed: list[tuple[str, str]] = field(default_factory=list)


class FakeExecutor:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        words = command.split()
        if words[0] == "fakecheck":
            fault = CHECK_FAULTS[words[1]]
            gpu = self.state.faults.get((host, fault), -1)
            out = json.dumps({"bad": (host, fault) in self.state.faults, "gpu": gpu})
            return CommandResult(host, command, 0, out)
        if words[0] == "fakeaction":
            self.state.executed.append((host, command))
            for key in list(self.state.faults):
                if key[0] == host and key[1] in words[2:]:
                    del self.state.faults[key]
            return CommandResult(host, command, 0, "ok")
        return CommandResult(host, command, 127, "", f"bash: {words[0]}: command not found")

    def close(self) -> None:
        return None


def _parser(check: str):
    fault = CHECK_FAULTS[check]

    def parse(inp: ParseInput) -> ParseOutput:
        data = json.loads(inp.outputs[0].stdout)
        if not data["bad"]:
            return ParseOutput(Status.OK, data=data)
        gpu = data["gpu"] if isinstance(data["gpu"], int) and data["gpu"] >= 0 else None
        return ParseOutput(Status.PROBLEM, [Finding(fault, inp.host, f"{fault} seen on {inp.host} gpu {gpu}", gpu=gpu, severity="critical")], data)

    return parse


def _ok(inp: ParseInput) -> ParseOutput:
    return ParseOutput(Status.OK)


def make_registry() -> Registry:
    specs = []
    for check in CHECK_FAULTS:
        specs.append(ToolSpec(check, f"fake {check}", "compute", "quick", "read_only", (GPU,),
                              (f"fakecheck {check}{{gpu? --gpu }}",), _parser(check)))
    actions = {
        "reset_gpu_clocks": "gpu_clock_throttle",
        "restore_power_limit": "gpu_power_cap",
        "reset_gpu": "gpu_ecc_uncorrectable",
        "drain_node": "gpu_thermal gpu_ecc_uncorrectable ib_port_down disk_full gpu_clock_throttle",
        "clean_shm": "shm_too_small",
    }
    verify = {"reset_gpu_clocks": "gpu_clocks", "restore_power_limit": "gpu_power", "clean_shm": "shm_size"}
    for name, fixes in actions.items():
        params: tuple[Param, ...] = (GPU,) if name not in ("drain_node", "clean_shm") else ()
        if name == "drain_node":
            params = (Param("reason", "str", "why", required=False, default="clusterdoc", pattern=r"[A-Za-z0-9_.-]{1,64}"),)
        specs.append(ToolSpec(name, f"fake {name}", "compute", "quick", "mutating", params,
                              (f"fakeaction {name} {fixes}",), _ok, risk="medium", verify_with=verify.get(name)))
    return Registry(specs)


def make_toolkit(faults: dict[tuple[str, str], int | None]) -> tuple[Toolkit, FakeState]:
    state = FakeState(dict(faults))
    return Toolkit(make_registry(), FakeExecutor(state)), state


HOSTS = [f"node-{i:02d}" for i in range(1, 9)]


def make_agent(faults: dict[tuple[str, str], int | None], *, mode: str = "rag-dot-selfplay", llm: Any = None, kb: Any = None,
               tier: str = "narrow"):
    """An agent on the fake cluster. A test model's tier is pinned (``narrow`` by default) so its
    call counts are the diagnosis's own; test_capability covers the warm-up self-test."""
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig, LLMConfig
    from pipelines.planner import ClusterInfo

    toolkit, state = make_toolkit(faults)
    agent = Agent(AgentConfig(mode=mode, llm=LLMConfig(tier=tier)), toolkit, kb, llm, cluster=ClusterInfo(hosts=list(HOSTS), gpus_per_node=8, gpu_model="A800-SXM4-80GB"))
    return agent, toolkit, state

"""Configuration of the agent layer: which model backend, which reasoning mode, what budgets.

``clusterdoc/config.py`` builds these from TOML + env and passes them down; nothing in
``pipelines`` reads files or the environment on its own except the documented host/key env names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["none", "llamacpp", "ollama", "openai"]
Mode = Literal["plain", "rag", "rag-dot-selfplay", "preplan"]

BACKENDS: tuple[str, ...] = ("none", "llamacpp", "ollama", "openai")
MODES: tuple[str, ...] = ("plain", "rag", "rag-dot-selfplay", "preplan")
# How far a model may steer (pipelines.llm.capability): "auto" runs the self-test at warm-up.
TIERS: tuple[str, ...] = ("auto", "narrow", "capable")

# Defaults per backend: the model name, and the env variable that overrides host/base URL.
DEFAULT_MODELS: dict[str, str] = {
    "none": "",
    "llamacpp": "gemma-3-270m-q4_k_m.gguf",
    "ollama": "llama3.1:8b",
    "openai": "gpt-4o-mini",
}
HOST_ENV: dict[str, str] = {"ollama": "OLLAMA_HOST", "openai": "OPENAI_BASE_URL"}
DEFAULT_HOSTS: dict[str, str] = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8000/v1"}


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "none"  # one of BACKENDS
    model: str = ""  # empty: the backend's default (DEFAULT_MODELS)
    host: str = ""  # empty: from env (HOST_ENV) or DEFAULT_HOSTS; ollama host / openai base_url
    timeout_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 160
    seed: int = 7
    n_ctx: int = 4096  # llama.cpp context window
    n_threads: int = 2  # llama.cpp CPU threads
    model_path: str = ""  # llama.cpp: a GGUF file to use instead of the packaged gemma3 270M
    api_key_env: str = "OPENAI_API_KEY"  # openai: the env variable holding the key (never logged)
    tier: str = "auto"  # auto (self-test at warm-up) | narrow | capable: how far the model may steer
    stream: bool = False  # openai: stream answers (timeout_s bounds the whole answer)
    fold_system: bool = False  # openai: put the system text into the first user turn (servers whose chat
    #                            template drops system messages, e.g. llama.cpp's server with --chat_format gemma)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"llm.backend: unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.timeout_s <= 0:
            raise ValueError(f"llm.timeout_s must be > 0, got {self.timeout_s}")
        if self.max_tokens <= 0:
            raise ValueError(f"llm.max_tokens must be > 0, got {self.max_tokens}")
        if self.tier not in TIERS:
            raise ValueError(f"llm.tier: {self.tier!r} is not one of {', '.join(TIERS)} "
                             "(no model at all: llm.backend = \"none\")")

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.backend]

    @property
    def resolved_host(self) -> str:
        if self.host:
            return self.host
        env = HOST_ENV.get(self.backend)
        return (os.environ.get(env, "") if env else "") or DEFAULT_HOSTS.get(self.backend, "")


@dataclass(frozen=True)
class AgentConfig:
    mode: str = "rag-dot-selfplay"  # one of MODES
    max_rounds: int = 3  # capable tier: rounds 2..max_rounds are model-led (docs/agent.md); narrow: the fixed three
    max_extra_rounds: int = 5  # escalation rounds while unverified: next hypotheses, past incidents, sweep, every host
    max_tool_calls: int = 60  # tool invocations per diagnosis (a fanned-out check counts once)
    kb_top_k: int = 5
    kb_splits: tuple[str, ...] = ("perceivable", "benchmark")  # every record; a fair benchmark run passes ("perceivable",)
    input_cap_chars: int = 64 * 1024  # alert/log text kept (head + tail) before anything else
    prompt_data_cap_chars: int = 2400  # per tagged data block inside a prompt
    broaden_level: str = "quick"  # sweep level when targeted checks find nothing
    llm_failures_before_degraded: int = 2  # garbage/no answers before the evidence-only path
    max_drain_fraction: float = 0.1  # no incident proposes draining more of the cluster than this
    signature_files: tuple[str, ...] = ()  # operator signature catalogs (YAML), on top of the built-in one
    model_scripts: bool = False  # ask the model for a fix script (shown for review only, deny rules applied)
    llm: LLMConfig = field(default_factory=LLMConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"agent.mode: unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.max_rounds < 1:
            raise ValueError("agent.max_rounds must be >= 1")
        if self.max_tool_calls < 1:
            raise ValueError("agent.max_tool_calls must be >= 1")
        if "benchmark" in self.kb_splits and "perceivable" not in self.kb_splits:
            raise ValueError("agent.kb_splits: 'benchmark' alone makes no sense; add 'perceivable'")

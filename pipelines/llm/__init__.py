"""Model backends behind one interface, chosen by config: ``make_llm(LLMConfig) -> LLM``.

Each third-party client is imported only inside its own module (llama_cpp in ``llamacpp``,
ollama-haystack in ``ollama``, openai in ``openai_compat``), and only when that backend is chosen.
"""

from __future__ import annotations

from pipelines.config import LLMConfig
from pipelines.llm.base import LLM, LLMError, LLMReply, Message, NoLLM, check_schema, extract_json_object

__all__ = ["LLM", "LLMError", "LLMReply", "Message", "NoLLM", "check_schema", "extract_json_object", "make_llm"]


def make_llm(config: LLMConfig) -> LLM:
    """The backend ``config.backend`` names. Construction is cheap; ``warm_up()`` loads/connects."""
    if config.backend == "none":
        return NoLLM()
    if config.backend == "llamacpp":
        from pipelines.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(config)
    if config.backend == "ollama":
        from pipelines.llm.ollama import OllamaLLM

        return OllamaLLM(config)
    if config.backend == "openai":
        from pipelines.llm.openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(config)
    raise LLMError(f"unknown llm backend {config.backend!r}")

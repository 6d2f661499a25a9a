"""Per-case results and the shared run context every scorer receives."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark.llm import BenchLLM

MODES = ("plain", "rag", "rag-dot-selfplay", "preplan")


@dataclass
class CaseResult:
    id: str
    metric: str
    score: float  # 0..1 (1 = right)
    answer: Any = None  # the model's (or the baseline's) raw answer, JSON-able
    expected: Any = None
    sub_scores: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    seconds: float = 0.0
    error: str = ""
    source: str = ""
    category: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunContext:
    """What a scorer may use: the model, the mode, the seed, and (lazily) the knowledge base."""

    llm: BenchLLM
    mode: str = "rag-dot-selfplay"
    seed: int = 0
    kb_data_dir: str | None = None  # None: an ephemeral KB (seed only), never the user's KB
    # The method's "whole dataset" rows: the benchmark split retrievable too. Unfair by design
    # (a ceiling, reported as such); never the default.
    whole_dataset: bool = False
    _kb: Any = None
    _kb_error: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown --mode {self.mode!r}; choose one of {', '.join(MODES)}")

    @property
    def uses_kb(self) -> bool:
        return self.mode != "plain"

    def kb(self) -> Any:
        """The knowledge base in its fair configuration (perceivable split only), or None when it
        cannot be loaded (the reason is kept in ``kb_error``)."""
        if self._kb is None and not self._kb_error:
            try:
                self._kb = make_fair_kb(self.kb_data_dir, include_benchmark=self.whole_dataset)
            except Exception as exc:  # the KB is an aid: without it the scorers still run
                self._kb_error = f"{type(exc).__name__}: {exc}"
        return self._kb

    @property
    def kb_error(self) -> str:
        return self._kb_error


def make_fair_kb(data_dir: str | None = None, *, include_benchmark: bool = False) -> Any:
    """A KnowledgeBase that retrieves only the perceivable split (the benchmark's fairness rule).
    Without a data dir it is ephemeral: the seed records only, nothing written to disk."""
    from pathlib import Path

    from kb.config import KBConfig

    try:
        from kb import KnowledgeBase
    except ImportError:
        from kb.knowledge import KnowledgeBase

    config = KBConfig(data_dir=Path(data_dir) if data_dir else None, include_benchmark_split=include_benchmark)
    kb = KnowledgeBase(config)
    kb.warm_up()
    return kb

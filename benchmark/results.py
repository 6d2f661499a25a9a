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


KB_SCOPES = ("all", "split")


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
    # What the knowledge base holds for a case: "all" (every record, as in production, minus the
    # records written from the case's own thread) or "split" (the paper's rule: the perceivable
    # 20% only). Both are fair: a case never retrieves the thread it was written from.
    kb_scope: str = "all"
    _kb: Any = None
    _kb_error: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown --mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.kb_scope not in KB_SCOPES:
            raise ValueError(f"unknown --kb {self.kb_scope!r}; choose one of {', '.join(KB_SCOPES)}")

    @property
    def uses_kb(self) -> bool:
        return self.mode != "plain"

    def kb(self) -> Any:
        """The knowledge base for ``kb_scope`` (cases then exclude their own thread with
        ``excluded``), or None when it cannot be loaded (the reason is kept in ``kb_error``)."""
        if self._kb is None and not self._kb_error:
            try:
                self._kb = make_fair_kb(self.kb_data_dir,
                                        include_benchmark=self.whole_dataset or self.kb_scope == "all")
            except Exception as exc:  # the KB is an aid: without it the scorers still run
                self._kb_error = f"{type(exc).__name__}: {exc}"
        return self._kb

    def excluded(self, case: Any) -> list[str]:
        """The threads a case may not retrieve: its own (``source``), unless the unfair ceiling
        row (``whole_dataset``) was asked for."""
        source = str(getattr(case, "source", "") or "")
        return [source] if source and not self.whole_dataset else []

    def kb_splits(self) -> tuple[str, ...]:
        return ("perceivable", "benchmark") if self.whole_dataset or self.kb_scope == "all" else ("perceivable",)

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

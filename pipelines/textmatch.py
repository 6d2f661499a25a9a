"""Term matching shared by attribution (the agent's) and the benchmark's case builder: tokens with
a light stemmer, IDF weights over a handful of documents, weighted overlap."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

STOPWORDS = frozenset(
    """a an the and or but if then than that this these those is are was were be been being of in
    on at to for from by with without as into onto over under not no nor so too very can could
    should would will may might must do does did done has have had having it its it's they them
    their there here which who whom whose what when where why how all any both each few more most
    other some such only own same just also after before during while because until again further
    once one two out up down off above below between through about against per via vs using used
    use your you we our he she his her i me my after got get gets getting see seen saw set""".split()  # noqa: SIM905
)

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]+|\d+[A-Za-z_][A-Za-z0-9_]*|\d{2,}")


def stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def tokens(text: str) -> list[str]:
    return [stem(t) for t in _TOKEN.findall(text) if t.lower() not in STOPWORDS]


def idf_weights(documents: Sequence[Iterable[str]]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for doc in documents:
        df.update(set(doc))
    n = max(1, len(documents))
    return {t: math.log(1 + n / c) for t, c in df.items()}


def overlap(query: Iterable[str], doc: Iterable[str], idf: dict[str, float] | None = None) -> float:
    """Weighted share of the document's distinct terms that the query also contains."""
    q, d = set(query), set(doc)
    if not q or not d:
        return 0.0
    weight = (lambda t: idf.get(t, 1.0)) if idf else (lambda t: 1.0)
    total = sum(weight(t) for t in d)
    return sum(weight(t) for t in d & q) / total if total else 0.0

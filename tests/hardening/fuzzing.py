"""Hypothesis strategies for the fuzz tests: random text, and real tool output / real input files
mutated line by line (deleted, duplicated, truncated, numbers swapped for junk, junk inserted)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hypothesis import strategies as st

EXAMPLES: Counter[str] = Counter()  # examples run per fuzz target (read by the figures hook)

JUNK = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "[N/A]", "N/A", "-", "nan", "inf", "-1", "0x", "0xZZ", "1e999", "99999999999999999999",
                     "Enabled", "garbage", ":", "=", "|", ",", "\t", "\x00", "\u202e", "🔥", "None", "null",
                     "[GPU is lost]", "ERR!", "    ", "MHz", "W", "%", "GiB"]),
)
_NUMBER = re.compile(r"\d+(\.\d+)?")


@st.composite
def mutated(draw: st.DrawFn, sample: str) -> str:
    lines = sample.splitlines()
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["delete", "dup", "truncate", "number", "insert", "replace_line", "cut"]))
        if not lines and op != "insert":
            op = "insert"
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]))))]
        elif op == "number":
            junk: str = draw(JUNK)
            lines[i] = _NUMBER.sub(junk.replace("\\", "\\\\"), lines[i], count=draw(st.integers(0, 3)))
        elif op == "insert":
            lines.insert(i, draw(JUNK))
        elif op == "replace_line":
            lines[i] = draw(JUNK)
        elif op == "cut":
            lines = lines[: i + 1]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


def text_from(samples: list[str]) -> st.SearchStrategy[str]:
    """Mostly mutated real samples, some plain random text."""
    real = st.sampled_from(samples).flatmap(mutated) if samples else st.text()
    return st.one_of(real, real, real, st.text(max_size=300))


JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                        st.text(max_size=20))
JSON = st.recursive(JSON_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                    max_leaves=12)


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any) -> Any:
    """A copy of a JSON/YAML tree with a few values replaced, keys dropped or junk keys added."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            action = draw(st.sampled_from(["keep", "keep", "keep", "mutate", "drop", "replace"]))
            if action == "keep":
                out[k] = v
            elif action == "mutate":
                out[k] = draw(mutated_tree(v))
            elif action == "replace":
                out[k] = draw(JSON)
        if draw(st.booleans()) and draw(st.booleans()):
            out[draw(st.text(max_size=10))] = draw(JSON)
        return out
    if isinstance(tree, list):
        items: list[Any] = []
        for v in tree:
            flip: bool = draw(st.booleans())
            items.append(draw(mutated_tree(v)) if flip else v)
        drop: bool = draw(st.booleans())
        if items and drop:
            del items[draw(st.integers(0, len(items) - 1))]
        return items
    return draw(st.one_of(st.just(tree), JSON_SCALAR))

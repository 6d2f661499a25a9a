"""What a model backend can be trusted with: a short self-test at warm-up puts it in a tier.

* ``capable``: answered all three fixed prompts with schema-valid, correct JSON at a usable speed;
  it may steer (its attribution choice stands, its hypotheses weigh like evidence-backed priors).
* ``narrow``: anything less (the packaged 270M model typically): it breaks near-ties only.
* ``none``: no model.
Users can pin the tier in config (``llm.tier``); the tier is shown in the thread and in ``--json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.llm.base import LLM, NoLLM

TIERS = ("auto", "none", "narrow", "capable")
MIN_TOKENS_PER_S = 3.0  # slower than this and a three-round diagnosis takes minutes

# (messages, schema, a check of the answer): fixed, small, unambiguous.
_PROBES: tuple[tuple[str, dict[str, Any], Any], ...] = (
    ("Which of these is a GPU? A. ConnectX-7 NIC  B. H100 SXM  C. EPYC 9654 CPU  D. a 400G switch. "
     "Answer JSON {\"answer\": letter}.",
     {"type": "object", "properties": {"answer": {"type": "string", "enum": ["A", "B", "C", "D"]}},
      "required": ["answer"]},
     lambda d: d.get("answer") == "B"),
    ("List the host names in: 'please check node-07 and node-09, not node-01'. Answer JSON {\"hosts\": [...]}.",
     {"type": "object", "properties": {"hosts": {"type": "array", "items": {"type": "string"}}}, "required": ["hosts"]},
     lambda d: {str(h).lower() for h in d.get("hosts", [])} == {"node-07", "node-09"}),
    ("A GPU reports 'SM clock 210 MHz of 1980 MHz, HW Thermal Slowdown: Active'. Is it throttled? "
     "Answer JSON {\"throttled\": true|false}.",
     {"type": "object", "properties": {"throttled": {"type": "boolean"}}, "required": ["throttled"]},
     lambda d: d.get("throttled") is True),
)


@dataclass
class Capability:
    tier: str
    passed: int = 0
    probes: int = 0
    tokens_per_s: float = 0.0
    pinned: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def steers(self) -> bool:
        return self.tier == "capable"


def probe(llm: LLM, *, pinned: str = "auto", max_tokens: int = 48) -> Capability:
    """Run the self-test (or honour a pinned tier) and return the backend's capability."""
    if isinstance(llm, NoLLM):
        return Capability("none", note="no model configured")
    if pinned not in TIERS:
        raise ValueError(f"llm.tier: {pinned!r} is not one of {', '.join(TIERS)}")
    if pinned != "auto":
        return Capability(pinned, pinned=True, note="tier pinned in config")
    passed = 0
    tokens = 0
    seconds = 0.0
    errors: list[str] = []
    for prompt, schema, check in _PROBES:
        started = time.monotonic()
        reply = llm.generate_json([{"role": "user", "content": prompt}], schema, max_tokens=max_tokens)
        seconds += max(reply.seconds, time.monotonic() - started)
        tokens += reply.completion_tokens
        if reply.error or reply.data is None:
            errors.append(reply.error or "no JSON")
            continue
        try:
            passed += bool(check(reply.data))
        except Exception as exc:  # a malformed answer is a failed probe, never a crash
            errors.append(str(exc))
    rate = tokens / seconds if seconds > 0 else 0.0
    capable = passed == len(_PROBES) and rate >= MIN_TOKENS_PER_S
    note = f"{passed}/{len(_PROBES)} probes right, {rate:.1f} tokens/s" + (f"; {errors[0][:120]}" if errors else "")
    return Capability("capable" if capable else "narrow", passed, len(_PROBES), round(rate, 2), False, note)

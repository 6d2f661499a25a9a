"""Figures the hardening tests measure, collected for ``python -m benchmark.speed.hardening``.

A test calls ``record(name, value, unit=..., target=...)`` next to the assertion on the same
number. When ``CLUSTERDOC_HARDENING_FIGURES`` names a file, each figure is appended to it as one
JSON line (the report script runs this suite with it set); otherwise ``record`` does nothing.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

ENV = "CLUSTERDOC_HARDENING_FIGURES"
_lock = threading.Lock()


def record(name: str, value: Any, *, unit: str = "", target: str = "", group: str = "") -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"group": group, "name": name, "value": value, "unit": unit, "target": target}, default=str)
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")

"""Hardening report: runs the reliability and security suite (tests/hardening) and prints every
figure it measured — faults, races and restarts, injections, secrets, fuzzing, authentication —
as a table with its target, then one summary line.

    python -m benchmark.speed.hardening [--fuzz-examples 200] [--llm-sample 0] [-k EXPR]

The figures come from the tests themselves (each test asserts on the number it reports), so the
report and the suite can never disagree. Wall times are the exception: they depend on the
machine's load, so the tests only record them and this report judges them against their targets
(a figure off target makes the exit status 1; the suite itself still passes). ``--llm-sample N`` also runs N injection attempts with
the embedded llama.cpp model (minutes per attempt on a small CPU); 0 skips it. The suite runs in
a child process, so this script imports nothing from the bot.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIGURES_ENV = "CLUSTERDOC_HARDENING_FIGURES"
GROUP_ORDER = ["faults", "races and restarts", "injections", "secrets", "fuzzing", "authentication"]


def on_target(value: Any, target: str) -> bool | None:
    """True/False when the target can be judged from the value, None when it is informative."""
    text = str(value)
    target = target.strip()
    if not target or target == "(any)":
        return None
    fraction = re.fullmatch(r"(\d+)/(\d+)", text)
    if target == "0":
        return text in ("0", "0.0")
    if target in ("all", "100%") or re.fullmatch(r"\d+/\d+", target):
        return bool(fraction) and fraction.group(1) == fraction.group(2)  # type: ignore[union-attr]
    bound = re.fullmatch(r"<=\s*([\d.]+)", target)
    if bound:
        try:
            return float(text) <= float(bound.group(1))
        except ValueError:
            return False
    if target == "yes":
        return text == "yes"
    if "undocumented" in target:  # fuzzing: the test fails on any undocumented error
        return None
    return None


def run_suite(fuzz_examples: int, llm_sample: int, keyword: str | None) -> tuple[list[dict[str, Any]], str, int, float]:
    with tempfile.TemporaryDirectory(prefix="clusterdoc-hardening-") as tmp:
        figures = Path(tmp) / "figures.jsonl"
        env = dict(os.environ)
        env[FIGURES_ENV] = str(figures)
        env["HARDENING_FUZZ_EXAMPLES"] = str(fuzz_examples)
        env["HARDENING_LLM_SAMPLE"] = str(max(1, llm_sample))
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/hardening"]
        if llm_sample <= 0:
            cmd += ["-m", "not llm"]
        if keyword:
            cmd += ["-k", keyword]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    return rows, tail, proc.returncode, wall


def print_table(rows: list[dict[str, Any]]) -> tuple[int, int]:
    judged = met = 0
    groups = sorted({r["group"] for r in rows}, key=lambda g: GROUP_ORDER.index(g) if g in GROUP_ORDER else 99)
    width = max([len(r["name"]) for r in rows] + [20])
    print(f"{'figure':<{width}}  {'value':>18}  {'target':<22} ok")
    for group in groups:
        print(f"-- {group} " + "-" * max(0, width + 45 - len(group)))
        for r in (r for r in rows if r["group"] == group):
            value = f"{r['value']}{' ' + r['unit'] if r['unit'] else ''}"
            verdict = on_target(r["value"], r["target"])
            mark = "" if verdict is None else ("yes" if verdict else "NO")
            judged += verdict is not None
            met += bool(verdict)
            print(f"{r['name']:<{width}}  {value:>18}  {r['target']:<22} {mark}")
    return judged, met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.hardening", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-examples", type=int, default=200, help="hypothesis examples per fuzz target")
    parser.add_argument("--llm-sample", type=int, default=0,
                        help="injection attempts to run with the embedded model (0 = skip; slow on CPU)")
    parser.add_argument("-k", dest="keyword", help="only the tests matching this pytest -k expression")
    args = parser.parse_args(argv)
    rows, tail, code, wall = run_suite(args.fuzz_examples, args.llm_sample, args.keyword)
    if not rows:
        print(f"no figures recorded (pytest: {tail or 'no output'}; exit {code})")
        return 1
    judged, met = print_table(rows)
    print(f"\npytest: {tail}  ({wall:.0f}s)")
    print(f"SUMMARY hardening: {met}/{judged} figures on target; suite {'passed' if code == 0 else 'FAILED'} "
          f"({tail}); fuzz examples/target {args.fuzz_examples}; embedded-model injection sample {args.llm_sample}")
    return 0 if code == 0 and met == judged else 1


if __name__ == "__main__":
    raise SystemExit(main())

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter
from bot.config import BotConfig
from bot.core import Bot
from bot.store import Store
from tests.bot.e2e import make_services

REPO = Path(__file__).resolve().parents[2]


def test_console_flow_with_typed_approval(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    cfg = BotConfig()
    cfg.approvals.approvers = ["operator"]
    bot = Bot(cfg, Store(tmp_path / "s.sqlite"), services.agent, services.remediator, known_nodes=services.nodes)
    out = io.StringIO()
    console = ConsoleAdapter(bot, out=out, images_dir=tmp_path)
    try:
        console.run(io.StringIO("/diagnose node-5\n/diagnose node-05\napprove\napprove\nquit\n"))
    finally:
        bot.close()
        services.close()
    text = out.getvalue()
    assert "unknown node `node-5`; closest known: `node-05`" in text
    assert "gpu_clock_throttle* on node-05 GPU 3" in text
    assert text.count("verified ✅") == 1  # the second "approve" does not run it again
    assert "reset_gpu_clocks on node-05: ok" in text  # a bare "approve" takes the primary (first) proposal
    assert "no such proposal pending" in text  # approving one fix supersedes the alternative
    assert console.images and console.images[0].read_bytes().startswith(b"\x89PNG")
    assert services.fixed()


@pytest.mark.slow
@pytest.mark.ssh
def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clusterdoc", "demo", "--yes", "--llm", "none", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "served over SSH on 127.0.0.1" in out
    assert "diagnosis: gpu_clock_throttle on node-05 GPU 3" in out
    assert "expected:  gpu_clock_throttle on node-05 GPU 3" in out
    assert "fix executed: yes; verified: yes" in out
    assert (tmp_path / "incident-1-graph.png").is_file()
    before, after = (float(x) for x in out.split("training step time: ")[1].split(" s\n")[0].split(" s → "))
    assert after < before / 2


def test_demo_without_approval_changes_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clusterdoc", "demo", "--llm", "none", "--in-process", "--out", str(tmp_path)],
        input="n\n", capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 1
    assert "rejected by operator" in proc.stdout and "fix executed: no" in proc.stdout


def test_demo_missing_scenario_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "clusterdoc", "demo", "--scenario", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "scenario file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_model_that_cannot_load_falls_back_to_evidence_only(tmp_path: Path) -> None:
    from clusterdoc.config import Config
    from clusterdoc.runtime import _llm
    from pipelines.config import LLMConfig

    cfg = Config(llm=LLMConfig(backend="llamacpp", model_path=str(tmp_path / "missing.gguf")))
    said: list[str] = []
    notes: list[str] = []
    llm, name = _llm(cfg, None, notes, said.append)
    assert name == "none" and type(llm).__name__ == "NoLLM"
    assert said and "model backend llamacpp unavailable" in said[0] and "llm=none" in said[0]

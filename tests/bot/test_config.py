from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clusterdoc.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "config.example.toml"
ENV = {"SLACK_BOT_TOKEN": "xoxb-111-secret", "SLACK_APP_TOKEN": "xapp-1-secret", "SLACK_SIGNING_SECRET": "sig-secret-1"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_example_config_loads_and_documents_every_key() -> None:
    cfg = load_config(EXAMPLE, env=ENV)
    assert cfg.bot.schedule.health_report_cron == "0 8 * * *"
    assert cfg.llm.backend == "llamacpp" and cfg.agent.llm is cfg.llm
    text = EXAMPLE.read_text()
    sections = {"bot": cfg.bot, "bot.slack": cfg.bot.slack, "bot.matrix": cfg.bot.matrix,
                "bot.approvals": cfg.bot.approvals, "bot.rate_limit": cfg.bot.rate_limit,
                "bot.schedule": cfg.bot.schedule, "bot.alertmanager": cfg.bot.alertmanager, "cluster": cfg.cluster, "ssh": cfg.ssh, "telemetry": cfg.telemetry, "llm": cfg.llm,
                "agent": cfg.agent, "kb": cfg.kb}
    secrets = {"bot_token", "signing_secret", "app_token", "access_token", "password", "token"}
    for section, obj in sections.items():
        for f in dataclasses.fields(obj):
            if f.name in secrets or dataclasses.is_dataclass(getattr(obj, f.name)) or f.name == "llm":
                continue
            assert re.search(rf"^#?\s*{f.name}\s*=.*#", text, re.MULTILINE), f"{section}.{f.name} undocumented"


def test_secrets_come_from_env_and_are_hidden(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[bot.slack]\nenabled = true\n"), env=ENV)
    assert cfg.bot.slack.bot_token == "xoxb-111-secret"
    assert "xoxb-111-secret" not in repr(cfg.bot.slack) and "***" in repr(cfg.bot.slack)
    with pytest.raises(ConfigError, match=r"bot\.slack\.bot_token: secrets are read from the environment only \(set \$SLACK_BOT_TOKEN\)"):
        load_config(write(tmp_path, '[bot.slack]\nbot_token = "xoxb-1"\n'), env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[bot]\nworkerz = 3\n", r"unknown key bot\.workerz; known: .*workers"),
        ("[bot]\nworkers = \"four\"\n", r"bot\.workers: expected an integer, got 'four'"),
        ("[bot]\nworkers = 0\n", r"bot\.workers must be >= 1"),
        ("[bot.slack]\nmode = \"carrier-pigeon\"\n", r"bot\.slack\.mode: 'carrier-pigeon' is not one of 'socket', 'http'"),
        ("[bot.slack]\nenabled = true\n", r"needs \$SLACK_BOT_TOKEN"),
        ("[bot.matrix]\nenabled = true\nhomeserver = \"http://x\"\nuser_id = \"@b:x\"\n", r"bot\.matrix\.rooms"),
        ("[bot.approvals]\napprovers = \"U1\"\n", r"bot\.approvals\.approvers: expected a list"),
        ("[bot.approvals]\nno_self_approval = [\"huge\"]\n", r"no_self_approval\[0\]: 'huge' is not one of"),
        ("[bot.schedule]\nhealth_report_cron = \"99 8 * * *\"\n", r"bot\.schedule\.health_report_cron"),
        ("[llm]\nbackend = \"gpt5\"\n", r"\[llm\]: llm\.backend: unknown backend 'gpt5'"),
        ("[kb]\nstore = \"postgres\"\n", r"kb\.store"),
        ("[robots]\nx = 1\n", r"unknown section \[robots\]"),
        ("[bot\nworkers = 1\n", r"not valid TOML: .*line 1"),
        ("[cluster]\nscheduler = \"pbs\"\n", r"cluster\.scheduler: 'pbs'"),
        ("[ssh]\nconnect_timeout_s = true\n", r"ssh\.connect_timeout_s: expected a number"),
    ],
)
def test_bad_config_names_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path, env={})
    assert str(path) in str(err.value) or "not found" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[bot]\nworkers = -1\n")
    proc = subprocess.run([sys.executable, "-m", "clusterdoc", "bot", "--config", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert "bot.workers must be >= 1" in proc.stderr and "Traceback" not in proc.stderr
    ok = write(tmp_path, '[bot.slack]\nenabled = true\nmode = "http"\n[cluster]\nscenario = "scenarios/a800-throttle.yaml"\n')
    proc = subprocess.run([sys.executable, "-m", "clusterdoc", "bot", "--config", str(ok), "--check"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "SLACK_BOT_TOKEN": "xoxb-1-2", "SLACK_SIGNING_SECRET": "s3cr3t-x"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(": ok")

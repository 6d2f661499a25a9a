from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterdoc.cli import main
from clusterdoc.cli import main as cli_main
from kb.config import RECORDS_DIR, SEED_PATH
from kb.ingest import read_jsonl

from .test_knowledge import sample_rows, write_jsonl


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLUSTERDOC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "kb"


def test_default_config_loads_the_seed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SEED_PATH.exists():
        pytest.skip("no seed file yet")
    assert main(["kb", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    batches = sorted(RECORDS_DIR.glob("*.jsonl")) if RECORDS_DIR.is_dir() else []
    expected = len({r.id for path in [SEED_PATH, *batches] for r in read_jsonl(path)[0]})
    assert stats["total"] == expected and stats["data_dir"] == str(data_dir)
    assert stats["retrievable"] == stats["total"]  # production searches every record
    assert main(["kb", "stats", "--json", "--fair"]) == 0
    fair = json.loads(capsys.readouterr().out)
    assert 0 < fair["retrievable"] < fair["total"]


def test_ingest_search_stats(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_seed = tmp_path / "no-seed.toml"
    no_seed.write_text(f'[kb]\nseed_path = ""\ndata_dir = "{data_dir}"\n', encoding="utf-8")

    def main(argv: list[str]) -> int:
        return cli_main([*argv, "--config", str(no_seed)])

    path = write_jsonl(tmp_path / "s.jsonl", sample_rows())
    assert main(["kb", "ingest", str(path)]) == 0
    assert "5 added" in capsys.readouterr().out
    assert main(["kb", "ingest", str(path)]) == 0
    assert "0 added" in capsys.readouterr().out and (data_dir / "kb-store.json").exists()

    assert main(["kb", "search", "GPU has fallen off the bus", "--json", "--top-k", "2", "--fair"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["record"]["id"] == "gpu-xid79" and len(hits) <= 2
    assert all(h["record"]["split"] == "perceivable" for h in hits)

    assert main(["kb", "search", "shared memory bus error shm", "--json", "--fair"]) == 0
    assert "shm-small" not in capsys.readouterr().out  # benchmark split, fair mode
    assert main(["kb", "search", "shared memory bus error shm", "--json"]) == 0  # production: every record
    assert json.loads(capsys.readouterr().out)[0]["record"]["id"] == "shm-small"

    assert main(["kb", "search", "nccl timeout", "--category", "storage", "--json"]) == 0
    assert all(h["record"]["category"] == "storage" for h in json.loads(capsys.readouterr().out))

    assert main(["kb", "search", "No space left on device"]) == 0
    out = capsys.readouterr().out
    assert "1. [storage] disk-full" in out and "cause:" in out

    assert main(["kb", "stats", "--json", "--fair"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 5 and stats["retrievable"] == 3


def test_user_mistakes_are_one_line_errors(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["kb", "search", "  "]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clusterdoc kb: error: empty query") and "Traceback" not in err

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problemkey": ["x"]}\nnot json\n', encoding="utf-8")
    assert main(["kb", "ingest", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "rawtext" in err and "Traceback" not in err

    monkeypatch.setenv("CLUSTERDOC_ES_URL", "http://127.0.0.1:9")
    assert main(["kb", "stats", "--store", "elasticsearch"]) == 1
    err = capsys.readouterr().err.strip()
    assert "Elasticsearch at http://127.0.0.1:9 is unavailable" in err and "\n" not in err


def test_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "clusterdoc.toml"
    config.write_text(
        f'[kb]\nstore = "index"\ndata_dir = "{tmp_path / "d"}"\nseed_path = ""\n', encoding="utf-8"
    )
    assert main(["kb", "stats", "--json", "--config", str(config)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["store"] == "index" and stats["total"] == 0
    config.write_text('[kb]\nstroe = "index"\n', encoding="utf-8")
    assert main(["kb", "stats", "--config", str(config)]) == 1
    assert "unknown key kb.stroe" in capsys.readouterr().err

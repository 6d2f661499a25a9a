from __future__ import annotations

from pathlib import Path

import pytest

from kb.config import KBConfig
from kb.errors import KBConfigError


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"store": "mongodb"}, "kb.store"),
        ({"stroe": "index"}, "unknown key kb.stroe"),
        ({"rawtext_cap": "9"}, "kb.rawtext_cap must be an integer"),
        ({"rawtext_cap": 10}, "kb.rawtext_cap"),
        ({"embeddings": 1}, "kb.embeddings must be true or false"),
        ({"include_benchmark_split": "yes"}, "kb.include_benchmark_split"),
        ({"es_timeout_s": 0}, "kb.es_timeout_s"),
        ({"data_dir": 5}, "kb.data_dir must be a path"),
    ],
)
def test_bad_values_name_the_file_and_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(KBConfigError) as err:
        KBConfig.from_mapping(table, "clusterdoc.toml")
    assert str(err.value).startswith("clusterdoc.toml: ") and message in str(err.value)


def test_mapping_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERDOC_DATA_DIR", str(tmp_path))
    assert KBConfig.from_env().data_dir == tmp_path / "kb"
    config = KBConfig.from_mapping({"store": "index", "data_dir": str(tmp_path / "x"), "seed_path": ""})
    assert (config.store, config.data_dir, config.seed_path) == ("index", tmp_path / "x", None)
    assert KBConfig.from_mapping({}).data_dir == tmp_path / "kb"


def test_es_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERDOC_ES_URL", raising=False)
    with pytest.raises(KBConfigError, match="CLUSTERDOC_ES_URL"):
        KBConfig(store="elasticsearch").es_url()
    monkeypatch.setenv("CLUSTERDOC_ES_URL", " http://127.0.0.1:9200 ")
    assert KBConfig(store="elasticsearch").es_url() == "http://127.0.0.1:9200"

"""The fault catalog: one data file, validated; operator files add kinds; bad entries are named
by file:line and skipped while the built-in catalog keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.faults import (
    CATEGORIES,
    FaultCatalogError,
    FaultKind,
    add_kind,
    builtin_catalog,
    catalog,
    load_catalog,
    use_catalog,
)
from diagnostics.registry import default_registry


def test_builtin_catalog_is_complete_and_points_at_real_checks() -> None:
    cat = builtin_catalog()
    names = default_registry().names()
    assert len(cat.kinds) >= 21 and len(set(cat.names)) == len(cat.names)
    for kind in cat.kinds:
        assert kind.category in CATEGORIES, kind.name
        assert kind.scope in ("gpu", "node", "job", "cluster"), kind.name
        assert kind.description and kind.checks, kind.name
        assert set(kind.checks) <= set(names), kind.name
    # what explains what is data: thermal explains a clock throttle
    assert "gpu_clock_throttle" in cat.explained_by("gpu_thermal")
    assert cat.get("nccl_env_misconfig") is not None and cat.get("nccl_env_misconfig").scope == "job"  # type: ignore[union-attr]


def test_operator_file_adds_a_kind_and_reports_bad_entries(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        "kinds:\n"
        "  - name: lustre_client_hang\n"
        "    description: the Lustre client stops answering\n"
        "    category: storage\n"
        "    checks: [disk_usage]\n"
        "  - name: gpu_thermal\n"  # duplicate of a built-in kind
        "    description: dup\n"
        "    category: thermal-power\n"
        "  - name: weird\n"
        "    description: unknown category\n"
        "    category: plumbing\n"
        "  - name: nocheck\n"
        "    description: a check the registry lacks\n"
        "    category: other\n"
        "    checks: [no_such_check]\n",
        encoding="utf-8",
    )
    cat = load_catalog([f], known_checks=default_registry().names())
    assert cat.get("lustre_client_hang") is not None and cat.get("lustre_client_hang").category == "storage"  # type: ignore[union-attr]
    assert len(cat.errors) == 3
    assert any(f"{f}:6:" in e and "duplicate" in e for e in cat.errors)
    assert any(f"{f}:9:" in e and "category" in e for e in cat.errors)
    assert any(f"{f}:12:" in e and "no_such_check" in e for e in cat.errors)
    assert set(builtin_catalog().names) <= set(cat.names)


def test_yaml_error_names_file_and_line_and_builtin_still_works(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("kinds:\n  - name: x\n    description: [unclosed\n", encoding="utf-8")
    cat = load_catalog([f])
    assert len(cat.errors) == 1 and str(f) in cat.errors[0] and "YAML error" in cat.errors[0]
    assert cat.names == builtin_catalog().names


def test_a_kind_added_at_run_time_is_seen_by_the_agent_tables() -> None:
    from pipelines.faults import FAULT_CHECKS, FAULT_KINDS

    try:
        add_kind(FaultKind("nfs_stale_handle", "stale NFS file handles on the data mount", "storage", "node",
                           "warning", checks=("disk_usage",)))
        assert "nfs_stale_handle" in FAULT_KINDS and FAULT_CHECKS["nfs_stale_handle"] == ("disk_usage",)
        with pytest.raises(FaultCatalogError):
            add_kind(catalog().by_name["nfs_stale_handle"])
    finally:
        use_catalog(None)
    assert "nfs_stale_handle" not in FAULT_KINDS

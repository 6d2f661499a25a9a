"""The definitions the kb benchmark reports rest on ("log lines", "same cause")."""

from __future__ import annotations

import random
from collections.abc import Callable

from benchmark.speed.kb_search import log_lines, percentile, same_cause, speed, variants
from kb.records import Record


def test_log_lines_keep_machine_output_and_drop_the_answer() -> None:
    raw = "\n".join(
        [
            "Training on 16 nodes with PyTorch 2.1.",
            "[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9) ran for 1800000 ms",
            "RuntimeError: NCCL communicator was aborted on rank 3.",
            "The maintainer confirmed the fix was to replace the cable.",
            "Fixed by reseating the HCA; NCCL WARN no longer appears.",
        ]
    )
    lines = log_lines(raw)
    assert lines == [
        "[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9) ran for 1800000 ms",
        "RuntimeError: NCCL communicator was aborted on rank 3.",
    ]


def test_same_cause(record_factory: Callable[..., Record]) -> None:
    a = record_factory(fault="ib_port_down", result="InfiniBand port down")
    assert same_cause(a, record_factory(fault="ib_port_down", result="cable unplugged", category="network"))
    assert not same_cause(a, record_factory(fault="disk_full", result="InfiniBand port down"))
    b = record_factory(
        result="Driver and CUDA runtime versions mismatched after upgrade", category="software_version"
    )
    c = record_factory(
        result="A driver upgrade left CUDA runtime versions mismatched", category="software_version"
    )
    d = record_factory(
        result="A driver upgrade left CUDA runtime versions mismatched", category="configuration"
    )
    e = record_factory(result="Checkpoint directory filled the disk", category="software_version")
    assert same_cause(b, c) and not same_cause(b, d) and not same_cause(b, e)


def test_variants_and_speed_run(record_factory: Callable[..., Record]) -> None:
    seed = [record_factory(id=f"r{i}", rawtext=f"NCCL WARN line {i}\nXid 79 on node {i}") for i in range(5)]
    records = variants(seed, 300, random.Random(1))
    assert len(records) == 300 and len({r.id for r in records}) == 300
    assert {r.split for r in records} == {"perceivable", "benchmark"}
    row = speed("index", records, ["NCCL WARN Xid 79"], 20)
    assert row.records == 300 and row.queries == 20 and 0 < row.p50_ms <= row.p95_ms
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0 and percentile([5.0], 95) == 5.0

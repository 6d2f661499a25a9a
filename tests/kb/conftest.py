"""Fixtures for the knowledge-base tests: small hand-made records and a store per backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kb.config import KBConfig
from kb.records import Record

BACKENDS = ["memory", "index", "elasticsearch"]


def make_record(**overrides: Any) -> Record:
    data: dict[str, Any] = {
        "problemkey": ["nccl timeout"],
        "rawtext": "Watchdog caught collective operation timeout after 1800000 ms",
        "function": ["nccl_env"],
        "result": "NCCL could not reach a peer",
        "source": "https://github.com/example/repo/issues/1",
        "category": "network",
        "components": ["nccl"],
    }
    data.update(overrides)
    return Record.from_dict(data)


SAMPLE = [
    dict(
        id="net-ib-down",
        problemkey=["nccl timeout", "ib port down"],
        category="network",
        rawtext="[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(OpType=ALLREDUCE) ran for "
        "1800000 milliseconds. ibstat: mlx5_0 State: Down Physical state: Disabled",
        result="InfiniBand port mlx5_0 down on one node",
        components=["nccl", "infiniband"],
        function=["ib_ports", "drain_node"],
        fault="ib_port_down",
    ),
    dict(
        id="gpu-xid79",
        problemkey=["xid 79", "fallen off the bus"],
        category="gpu_hardware",
        rawtext="NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.",
        result="GPU fell off the PCIe bus (bad riser)",
        components=["gpu", "pcie"],
        function=["gpu_xid", "gpu_count"],
        fault="gpu_fallen_off_bus",
    ),
    dict(
        id="thermal-throttle",
        problemkey=["clock throttle", "hw thermal slowdown"],
        category="thermal_power",
        rawtext="nvidia-smi -q shows HW Thermal Slowdown Active, SM clock 210 MHz, step time 3x",
        result="failed HVAC made one GPU throttle",
        components=["gpu", "cooling"],
        function=["gpu_clocks", "gpu_temperature"],
        fault="gpu_clock_throttle",
        split="benchmark",
    ),
    dict(
        id="disk-full",
        problemkey=["checkpoint write failed", "no space left"],
        category="storage",
        rawtext="OSError: [Errno 28] No space left on device while saving checkpoint to /mnt/ckpt",
        result="checkpoint filesystem full",
        components=["filesystem", "checkpointing"],
        function=["disk_usage"],
        fault="disk_full",
        origin="incident",
    ),
    dict(
        id="shm-small",
        problemkey=["bus error", "shared memory"],
        category="memory",
        rawtext="ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient "
        "shared memory (shm). NCCL WARN Error while creating shared memory segment",
        result="/dev/shm only 64 MB in the container",
        components=["shm", "dataloader", "nccl"],
        function=["shm_size", "clean_shm"],
        fault="shm_too_small",
        split="benchmark",
    ),
]


@pytest.fixture
def sample_records() -> list[Record]:
    return [
        make_record(**{**d, "source": f"https://github.com/example/repo/issues/{i}"})
        for i, d in enumerate(SAMPLE, 1)
    ]


@pytest.fixture
def record_factory() -> Callable[..., Record]:
    return make_record


@pytest.fixture(params=BACKENDS)
def backend_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KBConfig]:
    """A KBConfig per store backend, with no seed (tests control the content)."""
    store = request.param
    if store == "elasticsearch":
        if not os.environ.get("CLUSTERDOC_ES_URL"):
            pytest.skip("Elasticsearch backend: set CLUSTERDOC_ES_URL to run the shared store suite on it")
        config = KBConfig(
            store=store,
            data_dir=tmp_path / "kb",
            seed_path=None,
            es_index=f"clusterdoc-test-{uuid.uuid4().hex[:8]}",
        )
        yield config
        _drop_es_index(config)
        return
    yield KBConfig(store=store, data_dir=tmp_path / "kb", seed_path=None)


def _drop_es_index(config: KBConfig) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(config.es_url(), request_timeout=5)
    client.indices.delete(index=config.es_index, ignore_unavailable=True)

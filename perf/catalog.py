"""Hardware catalog: what each GPU and NIC can deliver on paper.

STUB written to unblock the simulator; the perf work extends it (every entry cites its datasheet).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class UnknownHardwareError(ValueError):
    """A GPU or NIC name that is not in the catalog (the message lists the known names)."""


@dataclass(frozen=True)
class GPUSpec:
    name: str
    vendor: str
    peak_tflops: dict[str, float]  # dense, per precision: fp32, tf32, bf16, fp16, fp8
    hbm_gb: float
    hbm_bw_gbs: float
    max_sm_clock_mhz: int
    base_sm_clock_mhz: int
    max_mem_clock_mhz: int
    default_power_w: int
    nvlink_bw_gbs: float  # total bidirectional per GPU; 0 where none
    nvlink_links: int
    pcie_gen: int
    pcie_width: int
    slowdown_temp_c: int = 87
    source: str = ""
    aliases: tuple[str, ...] = field(default=())


_GPUS: dict[str, GPUSpec] = {
    "A800-SXM4-80GB": GPUSpec(
        name="A800-SXM4-80GB",
        vendor="nvidia",
        peak_tflops={"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
        hbm_gb=80,
        hbm_bw_gbs=2039,
        max_sm_clock_mhz=1410,
        base_sm_clock_mhz=1275,
        max_mem_clock_mhz=1593,
        default_power_w=400,
        nvlink_bw_gbs=400,
        nvlink_links=8,
        pcie_gen=4,
        pcie_width=16,
        source="NVIDIA A800 Tensor Core GPU datasheet",
    ),
}


def gpu_names() -> list[str]:
    return sorted(_GPUS)


def get_gpu(name: str) -> GPUSpec:
    spec = _GPUS.get(name)
    if spec is None:
        for candidate in _GPUS.values():
            if name in candidate.aliases:
                return candidate
        raise UnknownHardwareError(f"unknown GPU model {name!r}; known: {', '.join(gpu_names())}")
    return spec

"""Hardware catalog: what each GPU and NIC can deliver on paper.

Figures are dense (no structured-sparsity doubling) peak rates from the vendors' datasheets; each
entry's ``source`` names the datasheet and its URL. Clock and temperature figures the datasheets
do not print (base clock, memory clock, slowdown temperature) are the values ``nvidia-smi -q`` /
``rocm-smi`` report on that part and are marked as such in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perf.errors import PerfError, UnknownPrecisionError

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8")


class UnknownHardwareError(PerfError, ValueError):
    """A GPU or NIC name that is not in the catalog (the message lists the known names).

    ``argument`` names the input that was wrong: ``gpu``, ``nic`` or ``interconnect``."""

    def __init__(self, message: str, argument: str = "") -> None:
        self.argument = argument
        super().__init__(message)


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
    nvlink_bw_gbs: float  # total bidirectional per GPU; 0 where none (Infinity Fabric for AMD)
    nvlink_links: int
    pcie_gen: int
    pcie_width: int
    slowdown_temp_c: int = 87
    source: str = ""
    aliases: tuple[str, ...] = field(default=())
    notes: str = ""

    def peak_flops(self, precision: str) -> float:
        """Dense peak in FLOP/s for ``precision`` (raises UnknownPrecisionError)."""
        key = precision.lower()
        if key not in PRECISIONS:
            raise UnknownPrecisionError(
                "precision", f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}"
            )
        if key not in self.peak_tflops:
            raise UnknownPrecisionError(
                "precision",
                f"{self.name} has no {key} peak; it supports {', '.join(sorted(self.peak_tflops))}",
            )
        return self.peak_tflops[key] * 1e12

    @property
    def pcie_bw_gbs(self) -> float:
        """One-direction PCIe bandwidth in GB/s (after 128b/130b encoding)."""
        per_lane = {3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}.get(self.pcie_gen, 0.985)
        return per_lane * self.pcie_width


# payload fraction of the line rate that NCCL reaches over one RDMA NIC (InfiniBand, RoCE, EFA,
# Omni-Path): about 92%, what nccl-tests' busbw shows per rail on healthy fabrics
RDMA_PAYLOAD_EFFICIENCY = 0.92


@dataclass(frozen=True)
class NICSpec:
    name: str
    kind: str  # infiniband | roce | ethernet
    rate_gbps: float  # line rate, Gbit/s
    effective_gbs: float  # payload GB/s NCCL reaches per NIC (one direction)
    latency_us: float  # one-hop small-message latency
    source: str = ""
    aliases: tuple[str, ...] = field(default=())

    @staticmethod
    def rdma(name: str, rate_gbps: float, *, kind: str = "infiniband", latency_us: float = 2.0,
             source: str = "") -> NICSpec:
        """An RDMA NIC that is not in the catalog, from its line rate (payload at RDMA_PAYLOAD_EFFICIENCY)."""
        return NICSpec(name, kind, rate_gbps, rate_gbps / 8 * RDMA_PAYLOAD_EFFICIENCY, latency_us, source)


_NV_CLOCK_NOTE = "base/memory clocks and slowdown temperature as reported by nvidia-smi -q on this part"

_GPUS: dict[str, GPUSpec] = {
    spec.name: spec
    for spec in (
        GPUSpec(
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
            slowdown_temp_c=89,
            source="NVIDIA A800 Tensor Core GPU datasheet, https://www.nvidia.cn/data-center/a800/",
            aliases=("NVIDIA A800-SXM4-80GB", "NVIDIA A800 80GB", "A800"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="A100-SXM4-40GB",
            vendor="nvidia",
            peak_tflops={"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
            hbm_gb=40,
            hbm_bw_gbs=1555,
            max_sm_clock_mhz=1410,
            base_sm_clock_mhz=1095,
            max_mem_clock_mhz=1215,
            default_power_w=400,
            nvlink_bw_gbs=600,
            nvlink_links=12,
            pcie_gen=4,
            pcie_width=16,
            slowdown_temp_c=89,
            source="NVIDIA A100 Tensor Core GPU datasheet, "
            "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
            aliases=("NVIDIA A100-SXM4-40GB", "A100-40GB"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="A100-SXM4-80GB",
            vendor="nvidia",
            peak_tflops={"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
            hbm_gb=80,
            hbm_bw_gbs=2039,
            max_sm_clock_mhz=1410,
            base_sm_clock_mhz=1275,
            max_mem_clock_mhz=1593,
            default_power_w=400,
            nvlink_bw_gbs=600,
            nvlink_links=12,
            pcie_gen=4,
            pcie_width=16,
            slowdown_temp_c=89,
            source="NVIDIA A100 Tensor Core GPU datasheet, "
            "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
            aliases=("NVIDIA A100-SXM4-80GB", "A100-80GB", "A100"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="H100-SXM5-80GB",
            vendor="nvidia",
            peak_tflops={"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "fp8": 1979.0},
            hbm_gb=80,
            hbm_bw_gbs=3350,
            max_sm_clock_mhz=1980,
            base_sm_clock_mhz=1590,
            max_mem_clock_mhz=2619,
            default_power_w=700,
            nvlink_bw_gbs=900,
            nvlink_links=18,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=90,
            source="NVIDIA H100 Tensor Core GPU datasheet, https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet",
            aliases=("NVIDIA H100 80GB HBM3", "NVIDIA H100-SXM5-80GB", "H100-SXM", "H100"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="H100-PCIe",
            vendor="nvidia",
            peak_tflops={"fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0},
            hbm_gb=80,
            hbm_bw_gbs=2000,
            max_sm_clock_mhz=1755,
            base_sm_clock_mhz=1125,
            max_mem_clock_mhz=1593,
            default_power_w=350,
            nvlink_bw_gbs=600,  # with the optional NVLink bridge
            nvlink_links=12,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=90,
            source="NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe column), https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet",
            aliases=("NVIDIA H100 PCIe", "H100-PCIe-80GB", "NVIDIA H100-PCIe"),
            notes=_NV_CLOCK_NOTE + "; NVLink figure assumes the optional bridge",
        ),
        GPUSpec(
            name="H800-SXM5-80GB",
            vendor="nvidia",
            peak_tflops={"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "fp8": 1979.0},
            hbm_gb=80,
            hbm_bw_gbs=3350,
            max_sm_clock_mhz=1980,
            base_sm_clock_mhz=1590,
            max_mem_clock_mhz=2619,
            default_power_w=700,
            nvlink_bw_gbs=400,
            nvlink_links=8,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=90,
            source="NVIDIA H800 Tensor Core GPU datasheet, https://www.nvidia.cn/data-center/h800/",
            aliases=("H800", "NVIDIA H800", "NVIDIA H800 80GB HBM3", "H800-SXM5"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="H200-SXM-141GB",
            vendor="nvidia",
            peak_tflops={"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "fp8": 1979.0},
            hbm_gb=141,
            hbm_bw_gbs=4800,
            max_sm_clock_mhz=1980,
            base_sm_clock_mhz=1590,
            max_mem_clock_mhz=3201,
            default_power_w=700,
            nvlink_bw_gbs=900,
            nvlink_links=18,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=90,
            source="NVIDIA H200 Tensor Core GPU datasheet, https://nvdam.widen.net/s/nb5zzzsjdf/hpc-datasheet-sc23-h200-datasheet-3002446",
            aliases=("NVIDIA H200", "NVIDIA H200-SXM-141GB", "H200"),
            notes=_NV_CLOCK_NOTE,
        ),
        GPUSpec(
            name="B200",
            vendor="nvidia",
            peak_tflops={"fp32": 75.0, "tf32": 1100.0, "bf16": 2250.0, "fp16": 2250.0, "fp8": 4500.0},
            hbm_gb=180,
            hbm_bw_gbs=7700,
            max_sm_clock_mhz=1965,
            base_sm_clock_mhz=1140,
            max_mem_clock_mhz=3996,
            default_power_w=1000,
            nvlink_bw_gbs=1800,
            nvlink_links=18,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=90,
            source="NVIDIA DGX B200 / HGX B200 datasheet (per-GPU = system / 8), https://www.nvidia.com/en-us/data-center/hgx/",
            aliases=("NVIDIA B200", "B200-SXM-180GB"),
            notes=_NV_CLOCK_NOTE + " (approximate: early driver reports)",
        ),
        GPUSpec(
            name="L40S",
            vendor="nvidia",
            peak_tflops={"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05, "fp8": 733.0},
            hbm_gb=48,  # GDDR6 with ECC, not HBM
            hbm_bw_gbs=864,
            max_sm_clock_mhz=2520,
            base_sm_clock_mhz=1110,
            max_mem_clock_mhz=9001,
            default_power_w=350,
            nvlink_bw_gbs=0,
            nvlink_links=0,
            pcie_gen=4,
            pcie_width=16,
            slowdown_temp_c=88,
            source="NVIDIA L40S GPU datasheet, https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413",
            aliases=("NVIDIA L40S",),
            notes=_NV_CLOCK_NOTE + "; memory is GDDR6",
        ),
        GPUSpec(
            name="MI300X",
            vendor="amd",
            peak_tflops={"fp32": 163.4, "tf32": 653.7, "bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9},
            hbm_gb=192,
            hbm_bw_gbs=5300,
            max_sm_clock_mhz=2100,
            base_sm_clock_mhz=1000,
            max_mem_clock_mhz=1300,
            default_power_w=750,
            nvlink_bw_gbs=896,  # AMD Infinity Fabric: 7 links x 128 GB/s
            nvlink_links=7,
            pcie_gen=5,
            pcie_width=16,
            slowdown_temp_c=100,
            source="AMD Instinct MI300X accelerator data sheet, https://www.amd.com/content/dam/amd/en/documents/instinct-tech-docs/data-sheets/amd-instinct-mi300x-data-sheet.pdf",
            aliases=("AMD Instinct MI300X", "MI300X-OAM"),
            notes="fp32 is the matrix figure; base clock and slowdown (junction) temperature from rocm-smi",
        ),
    )
}

_IB_SPEC = "NVIDIA ConnectX-6/7 and Quantum InfiniBand product briefs, https://www.nvidia.com/en-us/networking/infiniband-adapters/"
_ROCE_SPEC = "NVIDIA ConnectX-6 Dx / ConnectX-7 Ethernet product briefs, https://www.nvidia.com/en-us/networking/ethernet-adapters/"

# effective_gbs: payload NCCL reaches per NIC, RDMA_PAYLOAD_EFFICIENCY (92%) of line rate; NCCL over TCP
# sockets is limited by the host network stack, not the link (a few GB/s per node in practice).
_NICS: dict[str, NICSpec] = {
    spec.name: spec
    for spec in (
        NICSpec("IB-HDR", "infiniband", 200, 23.0, 2.0, _IB_SPEC, ("HDR", "infiniband-hdr")),
        NICSpec("IB-NDR", "infiniband", 400, 46.0, 2.0, _IB_SPEC, ("NDR", "infiniband-ndr")),
        NICSpec("IB-NDR200", "infiniband", 200, 23.0, 2.0, _IB_SPEC, ("NDR200",)),
        NICSpec("RoCE-100", "roce", 100, 11.5, 4.0, _ROCE_SPEC, ("roce-100g",)),
        NICSpec("RoCE-200", "roce", 200, 23.0, 4.0, _ROCE_SPEC, ("roce-200g",)),
        NICSpec("RoCE-400", "roce", 400, 46.0, 4.0, _ROCE_SPEC, ("roce-400g",)),
        NICSpec(
            "Ethernet-TCP",
            "ethernet",
            100,
            3.0,
            30.0,
            "NCCL socket transport (NCCL_IB_DISABLE=1) measured figures, https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html",
            ("ethernet", "tcp", "sockets"),
        ),
    )
}

# interconnect kind (formats/scenario.md) -> NIC for PCIe gen4 parts, NIC for gen5+ parts
_DEFAULT_NIC: dict[str, tuple[str, str]] = {
    "infiniband": ("IB-HDR", "IB-NDR"),
    "roce": ("RoCE-200", "RoCE-400"),
    "ethernet": ("Ethernet-TCP", "Ethernet-TCP"),
}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def gpu_names() -> list[str]:
    return sorted(_GPUS)


def nic_names() -> list[str]:
    return sorted(_NICS)


def interconnect_kinds() -> list[str]:
    return sorted(_DEFAULT_NIC)


def _strip_vendor(name: str) -> str:
    for prefix in ("NVIDIA ", "AMD Instinct ", "AMD "):
        if name.upper().startswith(prefix.upper()):
            return name[len(prefix):]
    return name


def get_gpu(name: str | GPUSpec) -> GPUSpec:
    """Look up a GPU by catalog name or any alias (case-insensitive, e.g. nvidia-smi's name)."""
    if isinstance(name, GPUSpec):
        return name
    spec = _GPUS.get(name)
    if spec is not None:
        return spec
    # nvidia-smi / rocm-smi prefix the vendor ("NVIDIA H800-SXM5-80GB"): accept it on any entry.
    wanted = {_norm(str(name)), _norm(_strip_vendor(str(name)))}
    for candidate in _GPUS.values():
        names = {_norm(candidate.name)} | {_norm(a) for a in candidate.aliases}
        if wanted & names:
            return candidate
    raise UnknownHardwareError(f"unknown GPU model {name!r}; known: {', '.join(gpu_names())}", "gpu")


def get_nic(name: str) -> NICSpec:
    """Look up a NIC by name or alias (case-insensitive)."""
    wanted = _norm(name)
    for candidate in _NICS.values():
        if wanted == _norm(candidate.name) or wanted in {_norm(a) for a in candidate.aliases}:
            return candidate
    raise UnknownHardwareError(f"unknown NIC {name!r}; known: {', '.join(nic_names())}", "nic")


def nic_for(gpu: str | GPUSpec, interconnect: str | NICSpec) -> NICSpec:
    """The NIC a node of this GPU generation typically has for an interconnect kind, or a NIC name
    (a ``NICSpec`` is returned as it is)."""
    if isinstance(interconnect, NICSpec):
        return interconnect
    key = _norm(interconnect)
    if key in _DEFAULT_NIC:
        older, newer = _DEFAULT_NIC[key]
        return get_nic(older if get_gpu(gpu).pcie_gen <= 4 else newer)
    try:
        return get_nic(interconnect)
    except UnknownHardwareError:
        raise UnknownHardwareError(
            f"unknown interconnect {interconnect!r}; known kinds: {', '.join(interconnect_kinds())}; "
            f"NICs: {', '.join(nic_names())}",
            "interconnect",
        ) from None

from __future__ import annotations

import pytest

from perf.catalog import (
    PRECISIONS,
    GPUSpec,
    UnknownHardwareError,
    get_gpu,
    get_nic,
    gpu_names,
    nic_for,
    nic_names,
)
from perf.errors import PerfError, UnknownPrecisionError

REQUIRED_GPUS = ["A800-SXM4-80GB", "A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM5-80GB", "H100-PCIe",
                 "H800-SXM5-80GB", "H200-SXM-141GB", "B200", "L40S", "MI300X"]


def test_every_required_gpu_is_present_and_cites_a_datasheet() -> None:
    for name in REQUIRED_GPUS:
        spec = get_gpu(name)
        assert spec.name == name
        assert "http" in spec.source, name
        assert spec.max_sm_clock_mhz > spec.base_sm_clock_mhz > 0, name
        assert spec.hbm_gb > 0 and spec.hbm_bw_gbs > 0 and spec.default_power_w > 0, name
        # dense peaks must grow as precision shrinks
        t = spec.peak_tflops
        assert t["fp32"] < t["tf32"] < t["bf16"] == t["fp16"], name
        if "fp8" in t:
            assert t["fp8"] == pytest.approx(2 * t["bf16"], rel=0.02), name
    assert set(REQUIRED_GPUS) <= set(gpu_names())


def test_a800_matches_a100_compute_but_has_cut_nvlink() -> None:
    a800, a100 = get_gpu("A800-SXM4-80GB"), get_gpu("A100-SXM4-80GB")
    assert a800.peak_tflops == a100.peak_tflops
    assert a800.nvlink_bw_gbs < a100.nvlink_bw_gbs
    assert a800.max_sm_clock_mhz == 1410


@pytest.mark.parametrize("alias", ["NVIDIA A800-SXM4-80GB", "nvidia a800-sxm4-80gb", "A800"])
def test_nvidia_smi_names_resolve(alias: str) -> None:
    assert get_gpu(alias).name == "A800-SXM4-80GB"


def test_h100_smi_name_and_spec_passthrough() -> None:
    spec = get_gpu("NVIDIA H100 80GB HBM3")
    assert spec.name == "H100-SXM5-80GB"
    assert isinstance(spec, GPUSpec) and get_gpu(spec) is spec


def test_unknown_gpu_lists_known_names() -> None:
    with pytest.raises(UnknownHardwareError) as err:
        get_gpu("RTX-9090")
    assert "RTX-9090" in str(err.value) and "H100-SXM5-80GB" in str(err.value)
    assert isinstance(err.value, PerfError) and isinstance(err.value, ValueError)


def test_unknown_nic_lists_known_names() -> None:
    with pytest.raises(UnknownHardwareError) as err:
        get_nic("omnipath")
    assert "IB-NDR" in str(err.value)


def test_nics_and_interconnect_defaults() -> None:
    assert {"IB-HDR", "IB-NDR", "IB-NDR200", "RoCE-100", "RoCE-200", "RoCE-400", "Ethernet-TCP"} <= set(nic_names())
    assert get_nic("IB-NDR").rate_gbps == 2 * get_nic("IB-HDR").rate_gbps
    assert nic_for("A800-SXM4-80GB", "infiniband").name == "IB-HDR"
    assert nic_for("H100-SXM5-80GB", "infiniband").name == "IB-NDR"
    assert nic_for("H100-SXM5-80GB", "ethernet").effective_gbs < nic_for("H100-SXM5-80GB", "roce").effective_gbs
    with pytest.raises(UnknownHardwareError, match="known kinds"):
        nic_for("A100", "carrier-pigeon")


def test_peak_flops_and_precision_errors() -> None:
    h100 = get_gpu("H100-SXM5-80GB")
    assert h100.peak_flops("BF16") == pytest.approx(989.5e12)
    with pytest.raises(UnknownPrecisionError, match="precision"):
        h100.peak_flops("int3")
    with pytest.raises(UnknownPrecisionError, match="fp8"):
        get_gpu("A100").peak_flops("fp8")
    assert "fp8" in PRECISIONS


def test_vendor_prefixed_names_from_smi_tools_resolve() -> None:
    from perf.catalog import get_gpu

    # nvidia-smi prints "NVIDIA <model>"; every catalog entry must accept that spelling.
    assert get_gpu("NVIDIA H800-SXM5-80GB").name == "H800-SXM5-80GB"
    assert get_gpu("NVIDIA L40S").name == "L40S"
    with pytest.raises(UnknownHardwareError):
        get_gpu("NVIDIA Z9000")

"""Time-varying GPU readings derived from node state plus reproducible, seeded noise."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.state import REASON_BITS, GpuState, NodeState, stable_uniform

IDLE_SM_MHZ = 210.0  # what an idle NVIDIA datacenter GPU drops to (P8 state)
CLOCK_STEP_MHZ = 15.0  # NVIDIA SM clocks move in 15 MHz bins
IDLE_POWER_FRACTION = 0.16
BUSY_POWER_FRACTION = 0.82  # a training job draws ~80% of TDP on average


@dataclass(frozen=True)
class GpuReading:
    sm_mhz: float
    mem_mhz: float
    power_w: float
    temp_c: float
    mem_temp_c: float
    util_pct: float
    mem_util_pct: float
    fb_used_mib: float
    reasons: frozenset[str]

    @property
    def reason_mask(self) -> int:
        mask = 0
        for r in self.reasons:
            mask |= REASON_BITS.get(r, 0)
        return mask


def gpu_reading(
    seed: int,
    node: NodeState,
    gpu: GpuState,
    tick: int,
    *,
    busy: bool,
    busy_fraction: float = 1.0,
) -> GpuReading:
    """One consistent snapshot of one GPU at a whole simulated second ``tick``."""
    spec = node.gpu_spec
    max_sm = float(spec.max_sm_clock_mhz)

    def noise(metric: str) -> float:  # in [-1, 1)
        return 2.0 * stable_uniform(seed, node.name, gpu.index, metric, tick) - 1.0

    personal = stable_uniform(seed, node.name, gpu.index, "personality")  # fixed per GPU
    reasons: set[str] = set()
    if not busy:
        sm = IDLE_SM_MHZ
        reasons.add("gpu_idle")
    else:
        sm = min(max_sm, gpu.app_sm_mhz)
        if gpu.app_sm_mhz < max_sm:
            reasons.add("applications_clocks_setting")
        if noise("boost") > 0.6:
            sm -= CLOCK_STEP_MHZ
    # power cap: clock ~ power^0.4 near the top of the voltage/frequency curve
    busy_power = spec.default_power_w * (BUSY_POWER_FRACTION + 0.06 * personal)
    if busy and gpu.power_limit_w < busy_power:
        sm = min(sm, max_sm * (gpu.power_limit_w / busy_power) ** 0.4)
        reasons.add("sw_power_cap")
    # temperature
    temp = 56.0 + 10.0 * personal + (1.0 if busy else -22.0) + noise("temp")
    if gpu.locked_sm_mhz is not None and gpu.cap_reasons & {"hw_thermal_slowdown", "sw_thermal_slowdown"}:
        # The fault's heat, mostly shed by the throttle: warm, but below the thermal-fault range, so the
        # scenario stays a clock-throttle case (a gpu_thermal fault forces its own temperature).
        temp = spec.slowdown_temp_c - 8.0 + noise("temp")
    if gpu.forced_temp_c is not None:
        temp = gpu.forced_temp_c + 0.5 * noise("temp")
    if temp >= spec.slowdown_temp_c:
        reasons.add("sw_thermal_slowdown")
        sm = min(sm, max_sm * 0.7)
        if temp >= spec.slowdown_temp_c + 5:
            reasons |= {"hw_thermal_slowdown", "hw_slowdown"}
            sm = min(sm, max_sm * 0.45)
    if gpu.locked_sm_mhz is not None:
        sm = min(sm, gpu.locked_sm_mhz)
        reasons |= gpu.cap_reasons
    if sm < max_sm:
        sm = sm if gpu.locked_sm_mhz is not None and sm == gpu.locked_sm_mhz else round(sm / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ
    ratio = sm / max_sm
    if busy:
        util = max(1.0, min(100.0, 100.0 * busy_fraction - abs(noise("util")) * 2.0))
        power = spec.default_power_w * IDLE_POWER_FRACTION + (busy_power - spec.default_power_w * IDLE_POWER_FRACTION) * (
            ratio**1.5
        ) * max(util, 30.0) / 100.0
        power = min(power, gpu.power_limit_w * 0.995) + 3.0 * noise("power")
        fb_used = spec.hbm_gb * 1024 * (0.78 + 0.05 * personal)
    else:
        util = 0.0
        power = spec.default_power_w * IDLE_POWER_FRACTION * (0.9 + 0.2 * personal) + noise("power")
        fb_used = 4.0
    mem_mhz = float(spec.max_mem_clock_mhz)
    return GpuReading(
        sm_mhz=float(sm),
        mem_mhz=mem_mhz,
        power_w=round(max(power, 20.0), 2),
        temp_c=float(round(temp)),
        mem_temp_c=float(round(temp + 4 + 2 * personal)),
        util_pct=float(round(util)),
        mem_util_pct=float(round(util * 0.45)),
        fb_used_mib=float(round(fb_used)),
        reasons=frozenset(reasons),
    )

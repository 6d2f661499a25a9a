from __future__ import annotations

import json
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.registry import (
    InvalidParamsError,
    Param,
    ParseInput,
    ParseOutput,
    Registry,
    ToolSpec,
    UnknownToolError,
    default_registry,
)
from diagnostics.types import Status


def _ok(_: ParseInput) -> ParseOutput:
    return ParseOutput(Status.OK)


GPU = Param("gpu", "int", "GPU index", required=False, min=0, max=15)


def spec(name: str, commands: tuple[str, ...], params: tuple[Param, ...] = (), **kw: object) -> ToolSpec:
    base: dict[str, object] = {"category": "compute", "level": "quick", "kind": "read_only"}
    base.update(kw)
    return ToolSpec(name=name, description=f"{name} tool", params=params, commands=commands, parse=_ok, **base)  # type: ignore[arg-type]


@pytest.fixture
def reg() -> Registry:
    return Registry([
        spec("gpu_clocks", ("nvidia-smi -q -d CLOCK{gpu? -i }",), (GPU,)),
        spec("gpu_power", ("nvidia-smi -q -d POWER -i {gpu}",), (GPU,), category="compute", level="medium"),
        spec("disk_usage", ("df -P {mount} | awk '{print $5}'",),
             (Param("mount", "str", "mount point", required=False, default="/", pattern=r"/[A-Za-z0-9_./-]*"),),
             category="storage"),
        spec("drain_node", (), (Param("reason", "str", "why"),), kind="mutating", category="job", risk="medium",
             verify_with="node_state",
             commands_by_scheduler={"slurm": ("scontrol update nodename=$(hostname -s) state=drain reason={reason}",),
                                    "kubernetes": ("kubectl cordon {node}",)}),
        spec("node_state", ("sinfo -N",), category="job"),
        spec("flags", ("tool --mode {mode} --fast {fast} --ratio {ratio}",),
             (Param("mode", "choice", "mode", choices=("a", "b")), Param("fast", "bool", "fast", required=False),
              Param("ratio", "float", "ratio", required=False, min=0, max=1))),
        spec("restart_service", ("systemctl restart {service}",), (Param("service", "str", "unit"),),
             kind="mutating", category="system"),
    ])


def test_get_unknown_lists_close_names(reg: Registry) -> None:
    assert reg.get("gpu_clocks").name == "gpu_clocks"
    with pytest.raises(UnknownToolError) as err:
        reg.get("gpu_clock")
    assert "gpu_clocks" in str(err.value) and "gpu_clock'" in str(err.value)
    with pytest.raises(UnknownToolError, match="known tools"):
        reg.get("zzzzzz")


def test_specs_filters(reg: Registry) -> None:
    assert [s.name for s in reg.specs(kind="mutating")] == ["drain_node", "restart_service"]
    assert [s.name for s in reg.specs(level="medium")] == ["gpu_power"]
    assert [s.name for s in reg.specs(category="storage")] == ["disk_usage"]
    quick = {s.name for s in reg.up_to_level("quick")}
    medium = {s.name for s in reg.up_to_level("medium")}
    assert "gpu_power" not in quick and "gpu_power" in medium and quick < medium
    assert all(s.read_only for s in reg.up_to_level("long"))
    with pytest.raises(InvalidParamsError, match="level"):
        reg.up_to_level("forever")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0; rm -rf /", "3 && reboot", "$(reboot)", "1.5", True, [1], "", "ten"])
def test_int_param_refuses_injection_and_wrong_types(reg: Registry, value: object) -> None:
    with pytest.raises(InvalidParamsError, match="'gpu'"):
        reg.validate("gpu_clocks", {"gpu": value})


def test_int_param_coerces_digit_strings_and_checks_range(reg: Registry) -> None:
    assert reg.validate("gpu_clocks", {"gpu": "3"}) == {"gpu": 3}
    assert reg.validate("gpu_clocks", {"gpu": 3.0}) == {"gpu": 3}
    with pytest.raises(InvalidParamsError, match=r"<= 15"):
        reg.validate("gpu_clocks", {"gpu": 16})
    with pytest.raises(InvalidParamsError, match=r">= 0"):
        reg.validate("gpu_clocks", {"gpu": -1})


def test_unknown_and_missing_params_are_named(reg: Registry) -> None:
    with pytest.raises(InvalidParamsError, match=r"unknown param\(s\) 'gpus'.*takes: gpu"):
        reg.validate("gpu_clocks", {"gpus": 1})
    with pytest.raises(InvalidParamsError, match=r"missing required param\(s\) 'reason'"):
        reg.validate("drain_node", {})
    with pytest.raises(InvalidParamsError, match="mapping"):
        reg.validate("gpu_clocks", ["gpu", 1])  # type: ignore[arg-type]


def test_choice_bool_float(reg: Registry) -> None:
    out = reg.validate("flags", {"mode": "b", "fast": "yes", "ratio": "0.5"})
    assert out == {"mode": "b", "fast": True, "ratio": 0.5}
    for bad in ({"mode": "c"}, {"mode": "a", "fast": "maybe"}, {"mode": "a", "ratio": 2},
                {"mode": "a", "ratio": float("nan")}, {"mode": "a", "ratio": "x"}):
        with pytest.raises(InvalidParamsError):
            reg.validate("flags", bad)
    assert reg.render("flags", {"mode": "a", "fast": False, "ratio": 1}) == ["tool --mode a --fast false --ratio 1"]


@pytest.mark.parametrize("value", ["$(reboot)", "nginx; reboot", "a`id`", "x|y", "a\nb", "-rf", "../x>y"])
def test_str_param_refuses_shell_metacharacters(reg: Registry, value: str) -> None:
    with pytest.raises(InvalidParamsError, match="'service'"):
        reg.validate("restart_service", {"service": value})


def test_str_pattern_replaces_default_deny(reg: Registry) -> None:
    assert reg.validate("disk_usage", {"mount": "/dev/shm"}) == {"mount": "/dev/shm"}
    assert reg.validate("disk_usage", None) == {"mount": "/"}
    with pytest.raises(InvalidParamsError, match="pattern"):
        reg.validate("disk_usage", {"mount": "/tmp; reboot"})


def test_render_quotes_values_and_keeps_other_braces(reg: Registry) -> None:
    assert reg.render("gpu_clocks", {}) == ["nvidia-smi -q -d CLOCK"]
    assert reg.render("gpu_clocks", {"gpu": 3}) == ["nvidia-smi -q -d CLOCK -i 3"]
    assert reg.render("disk_usage", {"mount": "/data"}) == ["df -P /data | awk '{print $5}'"]
    line = reg.render("drain_node", {"reason": "GPU 3 throttled to 200 MHz"})[0]
    assert line.endswith("reason='GPU 3 throttled to 200 MHz'")
    assert shlex.split(line)[-1] == "reason=GPU 3 throttled to 200 MHz"


def test_render_by_scheduler(reg: Registry) -> None:
    assert reg.render("drain_node", {"reason": "x"}, scheduler="slurm")[0].startswith("scontrol update")
    assert reg.render("drain_node", {"reason": "x"}, scheduler="kubernetes") == ["kubectl cordon {node}"]
    with pytest.raises(InvalidParamsError, match="scheduler 'none'"):
        reg.render("drain_node", {"reason": "x"}, scheduler="none")


def test_verify_call_passes_shared_params(reg: Registry) -> None:
    assert reg.verify_call("drain_node", {"reason": "x"}) == ("node_state", {})
    assert reg.verify_call("gpu_clocks", {}) is None


def test_describe_is_json_and_complete(reg: Registry) -> None:
    desc = reg.describe()
    json.dumps(desc)
    by_name = {d["name"]: d for d in desc}
    assert set(by_name) == set(reg.names())
    assert by_name["drain_node"]["kind"] == "mutating" and by_name["drain_node"]["verify_with"] == "node_state"
    assert by_name["gpu_clocks"]["params"][0] == {
        "name": "gpu", "type": "int", "description": "GPU index", "required": False, "min": 0, "max": 15}


def test_duplicate_names_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Registry([spec("a", ("true",)), spec("a", ("true",))])


def test_default_registry_loads_declared_tools() -> None:
    reg = default_registry()
    assert isinstance(reg, Registry)
    try:
        import diagnostics.checks as checks
    except ModuleNotFoundError:
        assert len(reg) == 0 or reg.specs(kind="mutating")
        return
    assert {s.name for s in checks.CHECKS} <= set(reg.names())
    assert all(s.read_only for s in checks.CHECKS)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_accepted_string_reaches_the_shell_as_one_literal_word(value: str) -> None:
    reg = Registry([spec("svc", ("systemctl status {service} --no-pager",), (Param("service", "str", "unit"),))])
    try:
        line = reg.render("svc", {"service": value})[0]
    except InvalidParamsError:
        return
    assert shlex.split(line) == ["systemctl", "status", value, "--no-pager"]

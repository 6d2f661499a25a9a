"""Helpers shared by the check modules: the parse guard (ParseError -> status error, absent tool
-> no_data), nvidia-smi CSV row selection, result building and the ToolSpec constructor.

``diagnostics.health_checks`` may import from here (this module imports nothing from the check
modules or from ``diagnostics.health_checks``, so there is no import cycle)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from diagnostics.parsers import nvidia_smi
from diagnostics.parsers.common import ParseError, collect_skipped, skipped_summary, to_int
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import CommandResult, Finding, Status

GPU_QUERY = "nvidia-smi --query-gpu={fields} --format=csv"
LSPCI_GPUS = "lspci -d 10de::0302"

# Patterns of free-text params (they reach a shell as one quoted word; the pattern keeps them sane).
_PROCESS_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}"
_HOST_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}"
_MOUNT_PATTERN = r"/[A-Za-z0-9_./-]{0,200}"


def _gpu_param() -> Param:
    return Param("gpu", "int", "GPU index (nvidia-smi numbering); all GPUs when omitted", required=False,
                 min=0, max=63)


_ABSENT_SIGNS = ("command not found", "couldn't communicate with the nvidia driver", "failed to initialize nvml",
                 "no devices were found")


def _only_message(out: CommandResult) -> bool:
    """Whether the tool failed (non-zero exit) or printed nothing but messages of absence: a
    stray line that merely says 'command not found' among real output must not hide the output."""
    if out.exit_code not in (0, None):
        return True
    lines = [ln.lower() for ln in (out.stdout + "\n" + out.stderr).splitlines() if ln.strip()]
    return all(any(sign in ln for sign in _ABSENT_SIGNS) for ln in lines)


def _no_tool(out: CommandResult) -> str | None:
    """Reason the tool or device is absent (-> no_data), or None."""
    text = (out.stdout + out.stderr).lower()
    if out.exit_code == 127:
        return f"{out.command.split()[0] if out.command else 'tool'} not installed on this node"
    if not _only_message(out):
        return None
    if "command not found" in text:
        return f"{out.command.split()[0] if out.command else 'tool'} not installed on this node"
    if "driver/library version mismatch" in text:
        return None  # a real fault, not an absent driver: the parser turns it into status error
    if "couldn't communicate with the nvidia driver" in text or "failed to initialize nvml" in text:
        return "no NVIDIA driver/GPU on this node"
    if "no devices were found" in text:
        return "no NVIDIA GPU on this node"
    return None


def _guard(fn: Callable[[ParseInput], ParseOutput]) -> Callable[[ParseInput], ParseOutput]:
    """Map ParseError to status error and absent tools to no_data; never raise. Lines the parsers
    skipped as not in their tool's format are counted in data (``ignored_lines``, ``ignored_note``)."""

    def parse(inp: ParseInput) -> ParseOutput:
        for out in inp.outputs:
            why = _no_tool(out)
            if why is not None:
                return ParseOutput(Status.NO_DATA, error=why)
        with collect_skipped() as skipped:
            try:
                result = fn(inp)
            except ParseError as exc:
                result = ParseOutput(Status.ERROR, error=str(exc))
        if skipped:
            result.data = {**result.data, **skipped_summary(skipped)}
        return result

    parse.__name__ = getattr(fn, "__name__", "parse")
    parse.__doc__ = fn.__doc__
    return parse


def _result(findings: list[Finding], data: dict[str, Any]) -> ParseOutput:
    return ParseOutput(Status.PROBLEM if findings else Status.OK, findings, data)


def _csv_rows(out: CommandResult) -> nvidia_smi.SmiCsv:
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("nvidia-smi", (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    csv = nvidia_smi.parse_query_csv(out.stdout + ("\n" + out.stderr if "device handle" in out.stderr else ""))
    if not csv.rows and not csv.lost:
        # a header and nothing under it: nothing was read, which must not read as "all GPUs fine"
        raise ParseError("nvidia-smi", "a CSV header but no GPU row (no GPU answered, or the output was cut)")
    return csv


def _wanted(inp: ParseInput, index: int) -> bool:
    gpu = inp.params.get("gpu")
    return gpu is None or int(gpu) == index


def _index(row: dict[str, str]) -> int:
    value = to_int(row.get("index"), tool="nvidia-smi", field="index")
    if value is None:
        raise ParseError("nvidia-smi", "row without a GPU index")
    return value


def _selected_rows(inp: ParseInput, csv: nvidia_smi.SmiCsv) -> list[tuple[int, dict[str, str]]]:
    """(GPU index, row) for every row of the GPU the check asked about, or of all GPUs."""
    return [(idx, row) for row in csv.rows if _wanted(inp, idx := _index(row))]


def _lost_findings(host: str, csv: nvidia_smi.SmiCsv) -> list[Finding]:
    return [
        Finding("gpu_fallen_off_bus", host, f"nvidia-smi cannot reach the GPU at PCI {bus} (lost from the bus)",
                severity="critical", data={"pci_bus_id": bus})
        for bus in csv.lost
    ]


def _gpu_data(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"gpus": list(rows)}



def _check(name: str, description: str, category: Any, level: Any, params: tuple[Param, ...],
           commands: tuple[str, ...], parse: Callable[[ParseInput], ParseOutput], **kw: Any) -> ToolSpec:
    return ToolSpec(name=name, description=description, category=category, level=level, kind="read_only",
                    params=params, commands=commands, parse=parse, **kw)


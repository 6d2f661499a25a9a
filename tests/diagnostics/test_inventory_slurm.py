"""The inventory's Slurm facts: ``scheduler: {kind: slurm, controller: …}`` and per-node
``slurm_name``; old inventories (``scheduler: slurm``) read as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.inventory import InventoryError, load_inventory, parse_inventory
from diagnostics.scheduling import SlurmPlacement

WITH_CONTROLLER = """\
cluster: lab
scheduler:
  kind: slurm
  controller: {name: slurm-ctl, host: 10.0.0.2, port: 2200, user: slurmadm}
ssh: {user: ops, port: 22}
nodes:
  - {name: node-01, host: 10.0.0.11, slurm_name: gpu001}
  - node-02
"""


def test_controller_and_slurm_names_are_read_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(WITH_CONTROLLER)
    inv = load_inventory(path)
    assert inv.scheduler == "slurm"
    assert inv.address("slurm-ctl") == ("10.0.0.2", 2200, "slurmadm")  # the SSH executor reaches it
    assert inv.address("node-01") == ("10.0.0.11", 22, "ops")
    assert inv.slurm_placement() == SlurmPlacement("slurm-ctl", {"node-01": "gpu001", "node-02": "node-02"})
    back = load_inventory(inv.save(tmp_path / "again.yaml"))
    assert back.controller == inv.controller and back.nodes == inv.nodes


def test_old_inventories_have_no_controller_and_a_bare_controller_is_a_host() -> None:
    old = parse_inventory("cluster: x\nscheduler: slurm\nnodes: [a, b]\n")
    assert old.controller is None and old.slurm_placement() == SlurmPlacement(None, {"a": "a", "b": "b"})
    assert old.to_dict()["scheduler"] == "slurm"  # written back as the plain string
    bare = parse_inventory("cluster: x\nscheduler: {kind: slurm, controller: head-01}\nnodes: [a]\n")
    assert bare.slurm_placement().controller == "head-01"
    assert bare.address("head-01") == ("head-01", 22, None)
    on_node = parse_inventory("cluster: x\nscheduler: {controller: a}\nnodes: [{name: a, host: 10.1.1.1}]\n")
    assert on_node.address("a") == ("10.1.1.1", 22, None)  # a node that is also the controller


@pytest.mark.parametrize(("text", "expected"), [
    ("scheduler: {kind: kubernetes, controller: c}\nnodes: [a]\n", r"inv.yaml:2: field scheduler.controller: only Slurm"),
    ("scheduler: {kind: slurm, ctl: c}\nnodes: [a]\n", r"field scheduler.ctl: unknown key"),
    ("scheduler: {kind: pbs}\nnodes: [a]\n", r"field scheduler.kind: must be one of"),
    ("scheduler: {controller: {port: 22}}\nnodes: [a]\n", r"field scheduler.controller.host: is required"),
    ("scheduler: {controller: {host: h, port: 0}}\nnodes: [a]\n", r"field scheduler.controller.port: must be a TCP port"),
    ("nodes:\n  - {name: a, slurm_name: 'a b'}\n", r"inv.yaml:3: field nodes\[0\]\.slurm_name: 'a b' is not a Slurm node name"),
    ("nodes:\n  - {name: a, slurm_name: 'a;reboot'}\n", r"field nodes\[0\]\.slurm_name: 'a;reboot' is not a Slurm"),
    ("nodes:\n  - {name: a, slurm_name: -x}\n", r"field nodes\[0\]\.slurm_name: '-x' is not a Slurm"),
])
def test_bad_slurm_fields_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("cluster: x\n" + text)
    with pytest.raises(InventoryError, match=expected):
        load_inventory(path)

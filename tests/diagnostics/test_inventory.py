from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.inventory import Inventory, InventoryError, NodeEntry, SSHDefaults, load_inventory

GOOD = """\
cluster: lab
scheduler: kubernetes
gpu: A800-SXM4-80GB
gpus_per_node: 8
ssh:
  user: ops
  key_file: keys/id_ed25519
  known_hosts: /etc/clusterdoc/known_hosts
  port: 2222
nodes:
  - {name: node-01, host: 10.0.0.1}
  - name: node-02
    host: 10.0.0.2
    port: 22
    user: root
  - node-03
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inv.yaml"
    p.write_text(text)
    return p


def test_load_applies_defaults_and_resolves_paths(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    assert inv.names == ["node-01", "node-02", "node-03"]
    assert (inv.cluster, inv.scheduler, inv.gpu, inv.gpus_per_node) == ("lab", "kubernetes", "A800-SXM4-80GB", 8)
    assert inv.ssh.key_file == tmp_path / "keys/id_ed25519"
    assert inv.ssh.known_hosts == Path("/etc/clusterdoc/known_hosts")
    assert inv.address("node-01") == ("10.0.0.1", 2222, "ops")
    assert inv.address("node-02") == ("10.0.0.2", 22, "root")
    assert inv.address("node-03") == ("node-03", 2222, "ops")
    assert inv.select(["node-02"]) == ["node-02"] and inv.select(None) == inv.names


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    inv = Inventory("sim", [NodeEntry("a", "127.0.0.1", 40001), NodeEntry("b", "127.0.0.1", 40002, "u")],
                    gpu="H100-SXM5-80GB", gpus_per_node=8,
                    ssh=SSHDefaults(user="me", key_file=tmp_path / "run" / "key", known_hosts=tmp_path / "run" / "kh"))
    path = inv.save(tmp_path / "run" / "inventory.yaml")
    assert "key_file: key" in path.read_text()  # stored relative to the file
    back = load_inventory(path)
    assert back.nodes == inv.nodes and back.ssh.key_file == tmp_path / "run" / "key"
    assert back.to_dict() == load_inventory(back.save(path)).to_dict()


@pytest.mark.parametrize(("text", "expected"), [
    ("cluster: x\nnodes: [a, b]\nscheduler: pbs\n", r"inv.yaml:3: field scheduler: must be one of"),
    ("cluster: x\nnodes:\n  - {name: a, host: h, port: 70000}\n", r"inv.yaml:3: field nodes\[0\]\.port: must be a TCP port"),
    ("cluster: x\nnodes:\n  - {name: a}\n  - {name: a}\n", r"inv.yaml:4: field nodes\[1\]\.name: node 'a' listed twice"),
    ("cluster: x\nnodes: []\n", r"field nodes: must be a non-empty list"),
    ("cluster: x\nssh: {port: ssh}\nnodes: [a]\n", r"inv.yaml:2: field ssh\.port"),
    ("cluster: x\ngpus_per_node: -1\nnodes: [a]\n", r"field gpus_per_node"),
    ("cluster: x\nnodes: [a\n", r"inv.yaml:3: malformed YAML"),
    ("- just\n- a list\n", r"an inventory is a YAML mapping"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InventoryError, match=expected):
        load_inventory(write(tmp_path, text))


def test_missing_file_and_unknown_node(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope.yaml: cannot read inventory"):
        load_inventory(tmp_path / "nope.yaml")
    inv = load_inventory(write(tmp_path, GOOD))
    with pytest.raises(InventoryError, match=r"unknown node 'node-09'.*known: node-01"):
        inv.select(["node-09"])

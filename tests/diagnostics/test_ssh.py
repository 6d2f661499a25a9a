"""Paramiko end to end against the asyncssh-served simulator on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest

from diagnostics.executors.ssh import SSHConfig, SSHExecutor
from diagnostics.inventory import load_inventory
from diagnostics.registry import Param, ParseInput, ParseOutput, Registry, ToolSpec
from diagnostics.toolkit import Toolkit
from diagnostics.types import Status
from tests.diagnostics.conftest import FakeSim

pytestmark = pytest.mark.ssh


def echo_parse(data: ParseInput) -> ParseOutput:
    out = data.outputs[0]
    if out.exit_code != 0:
        return ParseOutput(Status.ERROR, error=out.stderr.strip())
    return ParseOutput(Status.OK, data={"text": out.stdout})


def echo_registry(timeout_s: float = 30.0) -> Registry:
    return Registry([
        ToolSpec("hello", "echo", "system", "quick", "read_only", (), ("hello",), echo_parse, timeout_s=timeout_s),
        ToolSpec("where", "echo", "system", "quick", "read_only",
                 (Param("mount", "str", "path", required=False, default="/"),), ("df {mount}",), echo_parse,
                 timeout_s=timeout_s),
    ])


def test_commands_run_over_ssh_and_reuse_one_connection(sim_ssh: Any) -> None:
    sim = FakeSim(3)
    server = sim_ssh(sim)
    ex = server.executor()
    for _ in range(5):
        for host in sim.hosts:
            r = ex.run(host, "nvidia-smi -q")
            assert r.ok and r.stdout == f"{host} ran: nvidia-smi -q\n"
    assert ex.stats.connects == 3 and ex.stats.commands == 15
    assert not server.errors
    r = ex.run("node-01", "fail now")
    assert (r.exit_code, r.stderr, r.transport) == (3, "failed on purpose\n", "ok")
    assert load_inventory(server.inventory_path).names == sim.hosts


def test_new_connection_per_command_when_reuse_disabled(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(2))
    ex = server.executor(reuse_connections=False)
    for _ in range(3):
        assert ex.run("node-02", "x").ok
    assert ex.stats.connects == 3


def test_reconnects_once_when_the_transport_died(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(1))
    ex = server.executor()
    assert ex.run("node-01", "a").ok
    ex._conns["node-01"].transport.close()  # the connection dies between two commands
    assert ex.run("node-01", "b").ok
    assert ex.stats.connects == 2 and ex.stats.reconnects == 1


def test_output_cap_over_ssh(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(1))
    r = server.executor(output_cap=4096).run("node-01", "big 200000")
    assert r.ok and r.truncated and len(r.stdout) < 4200 and "bytes cut" in r.stdout


def test_unknown_host_key_refused_by_default(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(1))
    server.known_hosts_path.write_text("")
    r = server.executor().run("node-01", "x")
    assert r.transport == "unreachable"
    assert "not in known_hosts" in r.error and "node-01" in r.error and "ssh-keyscan -p" in r.error
    assert "accept_new_host_keys" in r.error


def test_unknown_host_key_accepted_when_configured(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(1))
    server.known_hosts_path.write_text("")
    r = server.executor(accept_new_host_keys=True).run("node-01", "x")
    assert r.ok
    port = server.port("node-01")
    assert f"[127.0.0.1]:{port} ssh-ed25519 " in server.known_hosts_path.read_text()
    # The key is now known: a strict executor accepts it.
    assert server.executor().run("node-01", "x").ok


def test_changed_host_key_always_refused(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(2))
    port = server.port("node-01")
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    lines = [ln for ln in server.known_hosts_path.read_text().splitlines() if not ln.startswith(f"[127.0.0.1]:{port} ")]
    lines.append(f"[127.0.0.1]:{port} {impostor[0]} {impostor[1]}")
    server.known_hosts_path.write_text("\n".join(lines) + "\n")
    for accept_new in (False, True):
        ex = server.executor(accept_new_host_keys=accept_new)
        r = ex.run("node-01", "x")
        assert r.transport == "unreachable" and r.exit_code is None
        assert "HOST KEY MISMATCH for node-01" in r.error and "ssh-keygen -R" in r.error
        assert ex.run("node-02", "x").ok  # other nodes unaffected
    result = Toolkit(echo_registry(), server.executor()).run("hello", "node-01")
    assert result.status is Status.UNREACHABLE and result.findings[0].kind == "ssh_host_key_refused"


def test_hashed_known_hosts_still_checked(sim_ssh: Any) -> None:
    import paramiko

    server = sim_ssh(FakeSim(2))
    lines = []
    for line in server.known_hosts_path.read_text().splitlines():  # as `ssh-keygen -H` writes them
        name, rest = line.split(" ", 1)
        lines.append(f"{paramiko.HostKeys.hash_host(name)} {rest}")
    port = server.port("node-02")
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    lines = [ln for ln in lines if paramiko.HostKeys.hash_host(f"[127.0.0.1]:{port}", ln.split()[0]) != ln.split()[0]]
    lines.append(f"{paramiko.HostKeys.hash_host(f'[127.0.0.1]:{port}')} {impostor[0]} {impostor[1]}")
    server.known_hosts_path.write_text("\n".join(lines) + "\n")
    ex = server.executor()
    assert ex.run("node-01", "x").ok
    assert "HOST KEY MISMATCH for node-02" in ex.run("node-02", "x").error


def test_wrong_client_key_is_a_clear_auth_failure(sim_ssh: Any, tmp_path: Path) -> None:
    server = sim_ssh(FakeSim(1))
    other = tmp_path / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other), format_name="openssh")
    r = server.executor(key_file=other).run("node-01", "x")
    assert r.transport == "unreachable" and "rejected every key" in r.error


@pytest.mark.filterwarnings("ignore:.*bcrypt.kdf:UserWarning")  # few KDF rounds keep the test fast
def test_encrypted_key_needs_passphrase_from_env(sim_ssh: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = sim_ssh(FakeSim(1))
    key = asyncssh.read_private_key(str(server.client_key_path))
    locked = tmp_path / "locked_key"
    key.write_private_key(str(locked), format_name="openssh", passphrase="s3cret-pass", rounds=4)
    monkeypatch.delenv("CLUSTERDOC_SSH_KEY_PASSPHRASE", raising=False)
    r = server.executor(key_file=locked).run("node-01", "x")
    assert r.transport == "unreachable" and "CLUSTERDOC_SSH_KEY_PASSPHRASE" in r.error
    monkeypatch.setenv("CLUSTERDOC_SSH_KEY_PASSPHRASE", "wrong")
    r = server.executor(key_file=locked).run("node-01", "x")
    assert r.transport == "unreachable" and "wrong" not in r.error
    monkeypatch.setenv("CLUSTERDOC_SSH_KEY_PASSPHRASE", "s3cret-pass")
    assert server.executor(key_file=locked).run("node-01", "x").ok


def test_node_behaviours_become_transport_results(sim_ssh: Any) -> None:
    sim = FakeSim(4)
    server = sim_ssh(sim, behaviours={"node-01": "stall", "node-02": "hang", "node-03": "drop", "node-04": "refuse"})
    ex = server.executor(connect_timeout_s=2.0)
    stalled = ex.run("node-01", "x")
    assert stalled.transport == "unreachable" and "handshake" in stalled.error
    hung = ex.run("node-02", "x", timeout_s=0.5)
    assert hung.transport == "timeout" and "timed out after 0.5s" in hung.error
    dropped = ex.run("node-03", "x")
    assert dropped.transport == "error" and "before the command finished" in dropped.error
    refused = ex.run("node-04", "x")
    assert refused.transport == "unreachable" and "refused" in refused.error.lower()
    # Behaviours change at run time: the node comes back.
    server.set_behaviour("node-04", "ok")
    server.set_behaviour("node-03", "ok")
    assert ex.run("node-04", "x").ok and ex.run("node-03", "x").ok


def test_sweep_over_ssh_finishes_despite_dead_nodes(sim_ssh: Any) -> None:
    sim = FakeSim(24)
    server = sim_ssh(sim, behaviours={"node-03": "stall", "node-07": "hang", "node-11": "refuse"})
    tk = Toolkit(echo_registry(timeout_s=1.5), server.executor(connect_timeout_s=3.0))
    report = tk.sweep(sim.hosts, concurrency=24)  # stall: 3 s connect timeout; hang: 2 x 1.5 s, then given up
    statuses = {h: {r.status for r in rs} for h, rs in report.results.items()}
    assert statuses["node-03"] == {Status.UNREACHABLE}
    assert statuses["node-07"] == {Status.TIMEOUT}
    assert statuses["node-11"] == {Status.UNREACHABLE}
    unhealthy = {h: [(r.status.value, r.error) for r in report.results[h]] for h in sim.hosts
                 if h not in ("node-03", "node-07", "node-11") and any(r.status is not Status.OK for r in report.results[h])}
    assert unhealthy == {}
    assert {f.host for f in report.findings() if f.kind == "node_unreachable"} == {"node-03", "node-07", "node-11"}


def test_many_nodes_start_fast(sim_ssh: Any) -> None:
    sim = FakeSim(128)
    server = sim_ssh(sim)  # how fast: python -m benchmark.speed.scale / sweep (load-dependent)
    assert len({server.port(h) for h in sim.hosts}) == 128
    report = Toolkit(echo_registry(), server.executor()).sweep(sim.hosts, tools=["hello"], concurrency=64)
    assert report.counts() == {"ok": 128}


def test_ssh_config_defaults_are_strict() -> None:
    cfg = SSHConfig()
    assert cfg.accept_new_host_keys is False and cfg.reuse_connections is True and cfg.connect_timeout_s > 0


def test_executor_closed_refuses(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(1))
    ex = SSHExecutor(server.inventory, server.ssh_config())
    assert ex.run("node-01", "x").ok
    ex.close()
    r = ex.run("node-01", "x")
    assert r.transport == "unreachable" and "closed" in r.error


@pytest.mark.slow
def test_512_nodes_with_every_failure_behaviour(sim_ssh: Any) -> None:
    from simulator.sshserver import EchoCluster

    sim = EchoCluster(512)
    bad = {"node-007": "hang", "node-100": "stall", "node-200": "drop", "node-300": "refuse"}
    server = sim_ssh(sim, behaviours=bad)
    tk = Toolkit(echo_registry(timeout_s=3), server.executor(connect_timeout_s=10))
    report = tk.sweep(sim.hosts, tools=["hello"], concurrency=64)
    by_host = {h: rs[0].status for h, rs in report.results.items()}
    assert list(by_host) == sim.hosts
    # Nodes clusterdoc could not listen to in time (this process was overloaded) say so; none else.
    assert set(report.not_checked) == {h for h, s in by_host.items() if s is Status.NOT_CHECKED}
    assert by_host["node-200"] is Status.ERROR and by_host["node-300"] is Status.UNREACHABLE
    for host, status in (("node-007", Status.TIMEOUT), ("node-100", Status.UNREACHABLE)):
        assert by_host[host] is status or host in report.not_checked, (host, by_host[host])
    others = {h: (rs[0].status.value, rs[0].error) for h, rs in report.results.items()
              if h not in bad and rs[0].status not in (Status.OK, Status.NOT_CHECKED)}
    assert others == {}
    if not report.not_checked:
        assert {h for h, s in by_host.items() if s is Status.OK} == set(sim.hosts) - set(bad)


def test_simulated_unreachable_node_times_out_over_ssh(sim_ssh: Any) -> None:
    sim_module = pytest.importorskip("simulator")
    pytest.importorskip("diagnostics.checks")
    from diagnostics.registry import default_registry
    from simulator.scenario import parse_scenario_text

    scenario = parse_scenario_text(
        "id: t\ncluster: {nodes: 3, gpus_per_node: 2, gpu: A800-SXM4-80GB}\n"
        "faults:\n  - {kind: node_unreachable, node: node-02}\n", "t.yaml")
    sim = sim_module.SimCluster(scenario)
    server = sim_ssh(sim)
    tk = Toolkit(default_registry(), server.executor(connect_timeout_s=3.0))
    report = tk.sweep(sim.hosts, tools=["gpu_clocks", "cpu_load"])
    assert {r.status for r in report.results["node-02"]} == {Status.UNREACHABLE}
    assert [f.kind for f in report.findings() if f.host == "node-02"] == ["node_unreachable"]
    assert all(r.status is Status.OK for h in ("node-01", "node-03") for r in report.results[h])


def test_idle_connections_are_closed_and_reopened(sim_ssh: Any) -> None:
    server = sim_ssh(FakeSim(2))
    ex = server.executor()
    assert ex.run("node-01", "a").ok and ex.run("node-02", "a").ok
    assert ex.close_idle(max_idle_s=3600) == 0
    assert ex.close_idle(max_idle_s=0) == 2
    assert ex.run("node-01", "b").ok and ex.stats.connects == 3


def test_concurrent_commands_share_one_connection_and_one_reconnect(sim_ssh: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = sim_ssh(FakeSim(1))
    ex = server.executor()
    with ThreadPoolExecutor(8) as pool:
        assert all(r.ok for r in pool.map(lambda i: ex.run("node-01", f"c{i}"), range(16)))
    assert ex.stats.connects == 1
    ex._conns["node-01"].transport.close()
    with ThreadPoolExecutor(8) as pool:
        assert all(r.ok for r in pool.map(lambda i: ex.run("node-01", f"d{i}"), range(16)))
    assert ex.stats.connects == 2 and ex.stats.commands == 32


class _DropFirst:
    """A TCP front for one node on 127.0.0.1: it closes its first connection at once (as sshd's
    MaxStartups does to excess logins) and relays every later one to the node's real port."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.target = port
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted == 1:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()


def test_a_login_the_node_dropped_early_is_tried_once_more(sim_ssh: Any) -> None:
    import dataclasses

    server = sim_ssh(FakeSim(1))
    inventory = load_inventory(server.inventory_path)
    node = inventory.node("node-01")
    front = _DropFirst(inventory.address("node-01")[1])
    inventory = dataclasses.replace(inventory, nodes=[dataclasses.replace(node, port=front.port)])
    ex = SSHExecutor(inventory, server.ssh_config(accept_new_host_keys=True))
    try:
        r = ex.run("node-01", "a")
        assert r.ok, r.error
        assert front.accepted == 2 and ex.stats.connects == 1 and ex.stats.reconnects == 1
    finally:
        ex.close()
        front.sock.close()

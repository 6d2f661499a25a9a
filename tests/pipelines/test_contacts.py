"""The extractor's phrasings of who is broken, who is only a comparison, and which port is SSH's
(each example written here, in the style of real chat messages, not copied from a benchmark case)."""

from __future__ import annotations

import pytest

from pipelines.contacts import regex_extract


@pytest.mark.parametrize(("text", "hosts"), [
    # the unnamed others are fine: "them" is not the host named before
    ("training dies only with gpu-b17 in the job. please check gpu-b17, the other nodes are fine, "
     "no need to look at them", {"gpu-b17"}),
    # "fine everywhere except X" names X as the broken one
    ("the benchmark runs fine on all racks except rk3-n12, where it segfaults", {"rk3-n12"}),
    # steering a job around a bad node does not make it a node to ignore
    ("jobs on nid004411 keep dying at start; can you check nid004411? we exclude it from our runs for now",
     {"nid004411"}),
    # a host that came back fine is the healthy comparison
    ("after the reboot hpc-a07 lost its GPUs; hpc-a08 got the same reboot and came back fine. look at hpc-a07",
     {"hpc-a07"}),
    # a disputed health claim does not clear the host
    ("the health agent says trn-gpu-31 is healthy but dcgmi diag fails there. please drain trn-gpu-31",
     {"trn-gpu-31"}),
    # "it" after a thing that is not a machine refers to that thing
    ("can someone check ib on mlx-host-04? the grafana endpoint on :3000 is just a dashboard, ignore it",
     {"mlx-host-04"}),
    # a machine as the subject of what machines do
    ("cmpq-17 keeps rebooting under load since yesterday", {"cmpq-17"}),
    # a Kubernetes label key is not a host
    ("the node ip-10-1-2-3.ec2.internal lacks feature.node.kubernetes.io/pci-10de.present, please check",
     {"ip-10-1-2-3.ec2.internal"}),
    # a count compound is not a cue: "2-machine" does not make the framework name a host
    ("a 2-machine fairseq2 launch hangs on 10.3.0.8, check it", {"10.3.0.8"}),
])
def test_who_is_the_broken_host(text: str, hosts: set[str]) -> None:
    assert set(regex_extract(text).hosts) == hosts


@pytest.mark.parametrize(("text", "ports"), [
    ("please look at gpu-7 (ssh is the normal 22 there)", {22}),
    ("sshd on the compute nodes is on 2022; check gpu-7", {2022}),
    ("ssh to gpu-7 is on 1022 btw", {1022}),
    ("check gpu-7 and gpu-8. 22 is blocked from the office network, use 2222", {2222}),
    ("ssh to gpu-7 as core (port 22 is closed on workers, use 2200)", {2200}),
])
def test_which_port_is_ssh(text: str, ports: set[int]) -> None:
    assert set(regex_extract(text).ssh_ports) == ports


@pytest.mark.parametrize(("text", "needs"), [
    # a refusal about one place is not a refusal of the request
    ("please restart slurmd on node017 through the login host, don't change anything there", True),
    ("rdzv on 2222 has nothing to do with ssh; check what listens on 2222 on gpu-1", True),
    ("fyi, gpu-1 was fixed yesterday, nothing to do", False),
])
def test_whether_anything_must_run(text: str, needs: bool) -> None:
    assert regex_extract(text).needs_execution is needs


def test_dotted_ranges_are_host_lists() -> None:
    from pipelines.contacts import expand_host_lists

    assert expand_host_lists("fails across node-01..06") == "fails across node-01 node-02 node-03 node-04 node-05 node-06"
    assert expand_host_lists("gpu[1..3], cn7..cn9") == "gpu1 gpu2 gpu3, cn7 cn8 cn9"
    assert expand_host_lists("versions 2.18..2.21") == "versions 2.18..2.21"  # not a name
    assert regex_extract("please check trn-3..5 for ECC errors").hosts == {"trn-3", "trn-4", "trn-5"}

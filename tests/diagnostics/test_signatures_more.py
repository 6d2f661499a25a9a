"""The second batch of log signatures (``extra2.yaml``, ``extra3.yaml``): every entry is valid, has
at least one real example line that it reads, and the whole catalog still loads and scans the
examples without a crash."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from diagnostics import signatures
from diagnostics.signatures import DATA_DIR, SignatureCatalog, load_catalog, parse_file

FIX = Path(__file__).parent / "fixtures" / "signature_examples_2.txt"
NEW_FILES = (DATA_DIR / "extra2.yaml", DATA_DIR / "extra3.yaml")
PREFIXES = ("x2-", "x3-")


def _examples() -> list[tuple[str, str]]:
    """``(signature id, line)`` pairs from the fixture (one ``id<TAB>line`` per line)."""
    pairs = []
    for raw in FIX.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        sig_id, line = raw.split("\t", 1)
        pairs.append((sig_id, line))
    return pairs


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def catalog() -> SignatureCatalog:
    return load_catalog()


def test_catalog_loads_with_all_files(catalog: SignatureCatalog) -> None:
    assert catalog.errors == ()
    names = {p.name for p in signatures.builtin_files()}
    assert {"extra.yaml", "extra2.yaml", "extra3.yaml", "kernel.yaml", "xid.yaml"} <= names
    files_seen = {Path(s.where.rsplit(":", 1)[0]).name for s in catalog.signatures}
    assert names <= files_seen  # every shipped file contributed signatures
    assert len({s.id for s in catalog.signatures}) == len(catalog)


def test_new_files_check_clean() -> None:
    seen: set[str] = set()
    total = 0
    for path in NEW_FILES:
        sigs, errors = parse_file(path, seen)
        assert errors == [], errors
        prefix = "x2-" if path.name == "extra2.yaml" else "x3-"
        assert sigs and all(s.id.startswith(prefix) for s in sigs)
        total += len(sigs)
    assert total >= 200
    assert signatures.main(["--check", *map(str, NEW_FILES)]) == 0


def test_new_entries_are_complete(catalog: SignatureCatalog) -> None:
    new = [s for s in catalog.signatures if s.id.startswith(PREFIXES)]
    for s in new:
        assert s.source.startswith("https://"), s.id
        assert s.checks and s.keywords and s.cause and s.fix, s.id
        assert not s.fallback, s.id


def test_every_new_signature_has_an_example(catalog: SignatureCatalog) -> None:
    new_ids = {s.id for s in catalog.signatures if s.id.startswith(PREFIXES)}
    example_ids = {sig_id for sig_id, _ in EXAMPLES}
    assert new_ids - example_ids == set()
    assert example_ids - new_ids == set()  # no example names an unknown signature


@pytest.mark.parametrize(("sig_id", "line"), EXAMPLES, ids=[f"{i}:{s}" for i, (s, _) in enumerate(EXAMPLES)])
def test_example_line_matches_its_signature(catalog: SignatureCatalog, sig_id: str, line: str) -> None:
    got = {s.id for s, _ in catalog.line_matches(signatures.clean_line(line))}
    assert sig_id in got, f"{sig_id} does not read: {line!r} (got {sorted(got)})"


def test_scan_of_the_whole_fixture(catalog: SignatureCatalog, capsys: pytest.CaptureFixture[str]) -> None:
    scan = catalog.scan("\n".join(line for _, line in EXAMPLES))
    found = {m.signature.id for m in scan.matches}
    assert {sig_id for sig_id, _ in EXAMPLES} <= found
    assert not scan.truncated and scan.lines == len(EXAMPLES)
    # the CLI reads the raw fixture file (ids, tabs and all) without crashing
    assert signatures.main(["--match", str(FIX)]) == 0
    out = capsys.readouterr().out
    assert "x2-" in out and "x3-" in out


def test_examples_are_not_all_read_by_one_generic_pattern(catalog: SignatureCatalog) -> None:
    """A new pattern must not be so broad that it reads most of the other examples."""
    hits: dict[str, int] = defaultdict(int)
    for _, line in EXAMPLES:
        for s, _ in catalog.line_matches(signatures.clean_line(line)):
            hits[s.id] += 1
    by_id = {sig_id for sig_id, _ in EXAMPLES}
    own = defaultdict(int)
    for sig_id, _ in EXAMPLES:
        own[sig_id] += 1
    too_broad = {i: n for i, n in hits.items() if i in by_id and n - own[i] > 3}
    assert too_broad == {}, too_broad

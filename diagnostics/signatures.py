"""Log signatures as data: what a line in a kernel log, a job log, an alert or a paste means.

The catalog lives in ``data/signatures/*.yaml`` (one file per domain: Xid, NVSwitch and fabric
manager, NCCL, CUDA and PyTorch, kernel, RDMA, storage, scheduler); operators add their own files
(config ``[faults] signature_files``). Each entry has an RE2 pattern matched against one line at a
time, a category, a cause and a fix in plain words, the read-only checks that would confirm it,
the fault kind where the fault catalog has one, and its source URL.

Matching reads hostile text safely: patterns run on RE2 (``google-re2``: linear time, no
backtracking), every line is cut to ``MAX_LINE`` characters, at most ``MAX_TEXT`` bytes are read
(the result says when it truncated), ANSI escapes, CR and NUL bytes are dropped. Without RE2 the
standard ``re`` runs on the same bounded lines and patterns are refused if they nest quantifiers.

    python -m diagnostics.signatures --check FILE...   # validate signature files (file:line errors)
    python -m diagnostics.signatures --match LOG       # what the catalog reads in a log
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.faults import CATEGORIES, SCOPES, normalize_category
from diagnostics.yamlfile import YamlFileError, choice, read_yaml, str_list

try:  # google-re2: linear-time matching; the dependency is declared, the fallback is for odd installs
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised by a test that hides the module
    _re2 = None

log = logging.getLogger("clusterdoc.diagnostics")

DATA_DIR = Path(__file__).parent / "data" / "signatures"
SEVERITIES: tuple[str, ...] = ("critical", "error", "warning", "info")
SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # info 0 .. critical 3
ACTIONS: tuple[str, ...] = ("none", "restart-app", "fix-app", "reset-gpu", "reboot", "drain", "rma", "fix-config",
                            "upgrade", "investigate")
MAX_TEXT = 10 * 1024 * 1024  # bytes of text read per call; the rest is reported as truncated
MAX_LINE = 2000  # characters of one line matched (a real log line is far shorter)
MAX_PATTERN = 500
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,80}$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Nested quantifiers such as (a+)+ or (.*)*: exponential in a backtracking engine.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


class SignatureError(ValueError):
    """A signature file or entry that cannot be used; the message starts with ``file:line``."""


@dataclass(frozen=True)
class Signature:
    id: str
    title: str
    pattern: str
    category: str
    severity: str
    scope: str
    cause: str
    fix: str
    action: str
    source: str
    checks: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    fault_kind: str | None = None
    fallback: bool = False  # only reported for a line no other signature matched (e.g. "any Xid")
    where: str = ""  # file:line it came from

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "category": self.category, "severity": self.severity,
                "scope": self.scope, "cause": self.cause, "fix": self.fix, "action": self.action,
                "checks": list(self.checks), "keywords": list(self.keywords), "fault_kind": self.fault_kind,
                "source": self.source}


@dataclass
class Match:
    """Every line one signature matched in a text: the first, its number, how many, its groups."""

    signature: Signature
    first_line: str
    line_no: int
    count: int = 1
    groups: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"signature": self.signature.id, "title": self.signature.title, "line_no": self.line_no,
                "count": self.count, "first_line": self.first_line, "groups": dict(self.groups)}


@dataclass
class Scan:
    matches: list[Match]
    lines: int
    truncated: bool  # the text was longer than MAX_TEXT; only its head was read

    @property
    def note(self) -> str:
        return f"only the first {MAX_TEXT // (1024 * 1024)} MB were read" if self.truncated else ""


def _compile(pattern: str) -> Any:
    if _re2 is not None:
        options = _re2.Options()
        options.max_mem = 8 << 20
        return _re2.compile(pattern, options)
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError("nested quantifiers could backtrack catastrophically")
    return re.compile(pattern)


SET_CHUNK = 600  # patterns per RE2 set: one call per line, one DFA within SET_MEM
SET_MEM = 128 << 20


def _signature_sets(patterns: Sequence[str]) -> list[tuple[int, Any]] | None:
    """RE2 sets over the patterns: one call per line says which signatures match it."""
    if _re2 is None or not patterns:
        return None
    sets: list[tuple[int, Any]] = []
    for base in range(0, len(patterns), SET_CHUNK):
        options = _re2.Options()
        options.max_mem = SET_MEM
        rset = _re2.Set.SearchSet(options)
        for p in patterns[base:base + SET_CHUNK]:
            rset.Add(p)
        rset.Compile()
        sets.append((base, rset))
    return sets


def _grouped(pattern: str) -> str:
    """``pattern`` as one alternative of the combined pre-filter: a leading (?i) scoped to it,
    named groups made plain (names repeat across signatures)."""
    body = _NAMED_GROUP.sub("(?:", pattern)
    if body.startswith("(?i)"):
        return f"(?i:{body[4:]})"
    return f"(?:{body})"


def clean_line(line: str) -> str:
    if line.isprintable():  # the common case: no escape or control character to remove
        return line[:MAX_LINE]
    line = _ANSI.sub("", line)
    line = _CONTROL.sub("", line).rstrip("\r")
    return line[:MAX_LINE]


class SignatureCatalog:
    """The signatures in force (built-in plus operator files); ``errors`` lists what was skipped."""

    def __init__(self, signatures: Sequence[Signature], errors: Sequence[str] = ()) -> None:
        self.signatures: tuple[Signature, ...] = tuple(signatures)
        self.errors: tuple[str, ...] = tuple(errors)
        self._compiled = [_compile(s.pattern) for s in self.signatures]
        self._sets = _signature_sets([s.pattern for s in self.signatures])
        # Without RE2: one pass of a combined pattern finds the few lines worth testing one by one.
        self._any = (_compile("|".join(_grouped(s.pattern) for s in self.signatures))
                     if self.signatures and self._sets is None else None)
        self._by_id = {s.id: s for s in self.signatures}

    def __len__(self) -> int:
        return len(self.signatures)

    def get(self, sig_id: str) -> Signature | None:
        return self._by_id.get(sig_id)

    def line_matches(self, line: str) -> list[tuple[Signature, dict[str, str]]]:
        """Every signature that matches one (already cleaned) line; fallbacks only when none else does."""
        if self._sets is not None:
            candidates = [base + i for base, rset in self._sets for i in (rset.Match(line) or ())]
        elif self._any is not None and self._any.search(line):
            candidates = list(range(len(self.signatures)))
        else:
            return []
        hits: list[tuple[Signature, dict[str, str]]] = []
        fallbacks: list[tuple[Signature, dict[str, str]]] = []
        for i in sorted(candidates):
            sig, rx = self.signatures[i], self._compiled[i]
            m = rx.search(line)
            if m is None:
                continue
            groups = {str(k): str(v)[:200] for k, v in (m.groupdict() or {}).items() if v is not None}
            (fallbacks if sig.fallback else hits).append((sig, groups))
        return hits or fallbacks

    def scan(self, text: str | bytes) -> Scan:
        """All signatures found in ``text``, one Match per signature, most severe first."""
        if isinstance(text, bytes):
            raw = text[:MAX_TEXT]
            truncated = len(text) > MAX_TEXT
            text = raw.decode("utf-8", errors="replace")
        else:
            truncated = len(text) > MAX_TEXT  # characters >= bytes/4; bound by characters, cheap
            if truncated:
                text = text[:MAX_TEXT]
        found: dict[str, Match] = {}
        lines = text.splitlines()
        for no, raw_line in enumerate(lines, 1):
            line = clean_line(raw_line)
            if not line:
                continue
            for sig, groups in self.line_matches(line):
                m = found.get(sig.id)
                if m is None:
                    found[sig.id] = Match(sig, line, no, 1, groups)
                else:
                    m.count += 1
        matches = sorted(found.values(), key=lambda m: (-SEVERITY_RANK[m.signature.severity], m.line_no))
        return Scan(matches, len(lines), truncated)

    def match(self, text: str | bytes) -> list[Match]:
        return self.scan(text).matches


# --------------------------------------------------------------------------- loading


def _required(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field '{name}': required text is missing")
    return " ".join(value.split())


def _signature(raw: Mapping[str, Any], where: str, known_checks: frozenset[str] | None,
               known_kinds: frozenset[str] | None) -> Signature:
    sig_id = raw.get("id")
    if not isinstance(sig_id, str) or not _ID.match(sig_id):
        raise ValueError(f"field 'id': {sig_id!r} must be lower-case letters, digits and '-'")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("field 'pattern': required")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"field 'pattern': longer than {MAX_PATTERN} characters")
    try:
        rx = _compile(pattern)
    except Exception as exc:  # re2.error / re.error / ValueError: all say the pattern is unusable
        raise ValueError(f"field 'pattern': {exc}") from None
    if rx.search(""):
        raise ValueError("field 'pattern': matches the empty line (it would match everything)")
    category = normalize_category(str(raw.get("category", "")))
    if category not in CATEGORIES:
        raise ValueError(f"field 'category': {raw.get('category')!r} is not one of {', '.join(CATEGORIES)}")
    severity = choice(raw, "severity", SEVERITIES)
    scope = choice(raw, "scope", SCOPES, "node")
    action = choice(raw, "action", ACTIONS, "investigate")
    source = _required(raw, "source")
    if not source.startswith(("https://", "http://")):
        raise ValueError("field 'source': must be the URL the signature was written from")
    checks = str_list(raw.get("checks"), "checks", non_empty=True)
    if known_checks is not None:
        unknown = [c for c in checks if c not in known_checks]
        if unknown:
            raise ValueError(f"field 'checks': unknown check name(s) {', '.join(unknown)}")
    fault_kind = raw.get("fault_kind")
    if fault_kind is not None and (not isinstance(fault_kind, str)
                                   or (known_kinds is not None and fault_kind not in known_kinds)):
        raise ValueError(f"field 'fault_kind': {fault_kind!r} is not a kind of the fault catalog")
    return Signature(id=sig_id, title=_required(raw, "title"), pattern=pattern, category=category,
                     severity=str(severity), scope=str(scope), cause=_required(raw, "cause"),
                     fix=_required(raw, "fix"), action=str(action), source=source, checks=checks,
                     keywords=str_list(raw.get("keywords"), "keywords", non_empty=True), fault_kind=fault_kind,
                     fallback=bool(raw.get("fallback", False)), where=where)


def _known() -> tuple[frozenset[str], frozenset[str]]:
    """The registry's check names and the fault catalog's kinds (what a signature may name)."""
    from diagnostics.faults import catalog
    from diagnostics.registry import default_registry

    return frozenset(default_registry().names()), frozenset(catalog().names)


def parse_file(path: Path, seen: set[str], known_checks: frozenset[str] | None = None,
               known_kinds: frozenset[str] | None = None) -> tuple[list[Signature], list[str]]:
    """The valid signatures of one file and a ``file:line: ...`` error for each bad entry."""
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        return [], [str(exc)]
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc.strerror or exc}"]
    if not isinstance(data, Mapping) or not isinstance(data.get("signatures"), list):
        return [], [f"{path}: a signature file is a mapping with a 'signatures' list"]
    out: list[Signature] = []
    errors: list[str] = []
    for raw in data["signatures"]:
        where = f"{path}:{raw.get('__line__', '?') if isinstance(raw, Mapping) else '?'}"
        try:
            if not isinstance(raw, Mapping):
                raise ValueError("each signature must be a mapping")
            sig = _signature(raw, where, known_checks, known_kinds)
            if sig.id in seen:
                raise ValueError(f"field 'id': duplicate signature {sig.id!r}")
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        seen.add(sig.id)
        out.append(sig)
    return out, errors


def builtin_files() -> list[Path]:
    return sorted(DATA_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=8)
def _load(files: tuple[str, ...]) -> SignatureCatalog:
    known_checks, known_kinds = _known()
    seen: set[str] = set()
    sigs: list[Signature] = []
    errors: list[str] = []
    for name in (*map(str, builtin_files()), *files):
        more, errs = parse_file(Path(name), seen, known_checks, known_kinds)
        sigs += more
        errors += errs
    for e in errors:
        log.warning("signature catalog: %s", e)
    return SignatureCatalog(sigs, errors)


_LOAD_LOCK = threading.Lock()


def load_catalog(extra_files: Iterable[str | Path] = ()) -> SignatureCatalog:
    """The built-in signatures plus operator files. A bad entry is skipped and reported in
    ``errors`` as ``file:line: ...``; everything else loads. Loaded once per process: threads
    that ask at the same moment wait for the first instead of each compiling it (~1 s)."""
    with _LOAD_LOCK:
        return _load(tuple(str(f) for f in extra_files))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m diagnostics.signatures", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", nargs="+", metavar="FILE", help="validate signature files")
    ap.add_argument("--match", metavar="LOG", help="print the signatures found in a log file ('-' for stdin)")
    args = ap.parse_args(argv)
    if args.check:
        known_checks, known_kinds = _known()
        checked = {Path(name).resolve() for name in args.check}
        seen = {s.id for s in load_catalog().signatures if Path(s.where.rsplit(":", 1)[0]).resolve() not in checked}
        bad = 0
        for name in args.check:
            sigs, errors = parse_file(Path(name), seen, known_checks, known_kinds)
            for e in errors:
                print(e)
            bad += len(errors)
            print(f"{name}: {len(sigs)} signatures, {len(errors)} errors")
        return 1 if bad else 0
    if args.match:
        data = sys.stdin.buffer.read() if args.match == "-" else Path(args.match).read_bytes()
        scan = load_catalog().scan(data)
        for m in scan.matches:
            s = m.signature
            print(f"{s.severity:8} {s.id:40} x{m.count:<4} line {m.line_no}: {m.first_line[:120]}")
        if scan.note:
            print(scan.note)
        return 0
    catalog = load_catalog()
    print(f"{len(catalog)} signatures from {len(builtin_files())} files, {len(catalog.errors)} errors")
    for e in catalog.errors:
        print(e)
    return 1 if catalog.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

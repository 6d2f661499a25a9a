"""Knowledge-base benchmark: retrieval quality on the seed split, then speed and size at scale.

    python -m benchmark.speed.kb_search [--quick] [--embeddings] [--stores memory,index]

Quality: every benchmark-split seed record becomes a query made of its log lines only; a hit
counts when it has the *same established cause* (see ``same_cause``). Recall@5 is reported over
the perceivable pool (the fair setting) and over all records (the query record itself excluded).
Speed: query latency p50/p95 at 1k, 10k, 100k records (real seed records plus generated
variants), ingest rate, and memory per 10k records. Prints a table and one summary line.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kb.config import SEED_PATH, KBConfig
from kb.ingest import read_jsonl
from kb.knowledge import KnowledgeBase
from kb.records import Record

TOP_K = 5
TARGET_P95_MS_AT_10K = 50.0

# A line is log-like when it carries machine output: error classes, NCCL/driver markers, source
# locations, hex, errno, tool fields. Lines that state the fix or cause are dropped so the query
# cannot leak the answer.
_LOG_RE = re.compile(
    r"(\b\w*(Error|Exception|Warning)\b|Traceback|\bWARN\b|\bERROR\b|\bFATAL\b|NCCL|NVRM|\bXid\b|"
    r"\w+\.(py|cc|cpp|cu|c|h):\d+|0x[0-9a-fA-F]{4,}|[Ee]rrno|Killed process|Segmentation fault|"
    r"core dumped|\[[Rr]ank ?\d+\]|\bState: |timed? ?out|\bfailed\b|\bFailed\b|->|\$ )"
)
_ANSWER_RE = re.compile(
    r"\b(fix|fixed|fixes|resolved|solution|solved|workaround|root cause|caused by|because|confirmed|"
    r"turned out|the cause|maintainer)\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z][a-z0-9_]{2,}")
_STOP_TEXT = (
    "the and was were that with from for not but its into then than this which when while had has have "
    "one two all any are too out off via per after before over under only also just more less so"
)
_STOP = frozenset(_STOP_TEXT.split())


def log_lines(rawtext: str) -> list[str]:
    return [
        line.strip()
        for line in rawtext.splitlines()
        if line.strip() and _LOG_RE.search(line) and not _ANSWER_RE.search(line)
    ]


def cause_words(record: Record) -> set[str]:
    return {w.rstrip("s") for w in _WORD_RE.findall(record.result.lower()) if w not in _STOP}


def same_cause(a: Record, b: Record) -> bool:
    """Same established cause: the same scenario fault kind when both name one; otherwise the same
    category and results sharing at least two content words with Jaccard similarity >= 0.15."""
    if a.fault and b.fault:
        return a.fault == b.fault
    if a.category != b.category:
        return False
    wa, wb = cause_words(a), cause_words(b)
    shared = len(wa & wb)
    return shared >= 2 and shared / max(len(wa | wb), 1) >= 0.15


@dataclass
class QualityRow:
    store: str
    pool: str
    queries: int
    answerable: int
    hits: int

    @property
    def recall(self) -> float:
        return self.hits / self.answerable if self.answerable else 0.0


def quality(records: list[Record], store: str, embeddings: bool) -> list[QualityRow]:
    queries = [(r, "\n".join(log_lines(r.rawtext))) for r in records if r.split == "benchmark"]
    queries = [(r, q) for r, q in queries if q]
    rows = []
    for pool, include in (("perceivable", False), ("all", True)):
        kb = KnowledgeBase(
            KBConfig(
                store=store,
                data_dir=None,
                seed_path=None,
                include_benchmark_split=include,
                embeddings=embeddings,
            )
        )
        kb.add_records(records)
        candidates = [r for r in records if include or r.split == "perceivable"]
        row = QualityRow(store + ("+emb" if embeddings else ""), pool, len(queries), 0, 0)
        for record, query in queries:
            if not any(same_cause(record, c) for c in candidates if c.id != record.id):
                continue
            row.answerable += 1
            hits = [h.record for h in kb.search(query, top_k=TOP_K + 1) if h.record.id != record.id][:TOP_K]
            row.hits += any(same_cause(record, h) for h in hits)
        rows.append(row)
        kb.close()
    return rows


def variants(seed: list[Record], n: int, rng: random.Random) -> list[Record]:
    """n records: the real ones, then variants with shuffled lines, changed numbers and hosts and a
    few words borrowed from other records, so the vocabulary and lengths stay realistic."""
    vocab = [w for r in seed for w in r.rawtext.split()]
    out = list(seed[:n])
    i = 0
    while len(out) < n:
        base = seed[i % len(seed)]
        i += 1
        lines = base.rawtext.splitlines()
        rng.shuffle(lines)
        text = re.sub(r"\d+", lambda m: str(rng.randint(0, 99999)), "\n".join(lines))
        text += "\n" + " ".join(rng.choices(vocab, k=30)) + f"\nhost gpu-node-{rng.randint(1, 4000):04d}"
        split = "perceivable" if rng.random() < 0.2 else "benchmark"
        out.append(replace(base, id=f"gen-{len(out):07d}", rawtext=text, split=split))
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


@dataclass
class SpeedRow:
    store: str
    records: int
    ingest_per_s: float
    p50_ms: float
    p95_ms: float
    queries: int


def speed(store: str, records: list[Record], queries: list[str], n_queries: int) -> SpeedRow:
    kb = KnowledgeBase(KBConfig(store=store, data_dir=None, seed_path=None))
    gc.collect()
    start = time.perf_counter()
    for i in range(0, len(records), 1000):
        kb.add_records(records[i : i + 1000])
    ingest = len(records) / (time.perf_counter() - start)
    times = []
    for q in (queries * (n_queries // max(len(queries), 1) + 1))[:n_queries]:
        t = time.perf_counter()
        kb.search(q, top_k=TOP_K)
        times.append((time.perf_counter() - t) * 1000)
    kb.close()
    return SpeedRow(store, len(records), ingest, statistics.median(times), percentile(times, 95), len(times))


def memory_per_10k(store: str, records: list[Record]) -> float:
    """MB that 10k records cost in the store (records, index, Haystack documents), by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    kb = KnowledgeBase(KBConfig(store=store, data_dir=None, seed_path=None))
    before = tracemalloc.get_traced_memory()[0]
    kb.add_records(records)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    kb.close()
    return (after - before) / 1e6 * 10_000 / len(records)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, fewer queries")
    parser.add_argument("--embeddings", action="store_true", help="also measure BM25+MiniLM fusion quality")
    parser.add_argument(
        "--stores", default="index,memory", help="comma-separated stores (default index,memory)"
    )
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    seed, _ = read_jsonl(SEED_PATH)
    rng = random.Random(7)

    n_bench = sum(r.split == "benchmark" for r in seed)
    with_logs = sum(1 for r in seed if r.split == "benchmark" and log_lines(r.rawtext))
    print(
        f"seed: {len(seed)} records ({len(seed) - n_bench} perceivable, {n_bench} benchmark; "
        f"{with_logs} benchmark records have log lines to query with)"
    )
    print(f"\n{'store':<12} {'pool':<12} {'queries':>8} {'answerable':>11} {'recall@5':>9}")
    q_rows: list[QualityRow] = []
    for store in stores:
        q_rows += quality(seed, store, embeddings=False)
    if args.embeddings:
        q_rows += quality(seed, stores[0], embeddings=True)
    for row in q_rows:
        print(f"{row.store:<12} {row.pool:<12} {row.queries:>8} {row.answerable:>11} {row.recall:>9.3f}")

    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    queries = [q for q in ("\n".join(log_lines(r.rawtext)) for r in seed if r.split == "benchmark") if q]
    all_records = variants(seed, sizes[-1], rng)
    print(f"\n{'store':<12} {'records':>8} {'ingest rec/s':>13} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    s_rows: list[SpeedRow] = []
    for store in stores:
        for n in sizes:
            # Haystack's in-memory BM25 scores every document per query: fewer queries at 100k.
            n_queries = (20 if n >= 100_000 and store == "memory" else 200) // (4 if args.quick else 1)
            srow = speed(store, all_records[:n], queries, n_queries)
            s_rows.append(srow)
            print(
                f"{srow.store:<12} {srow.records:>8} {srow.ingest_per_s:>13.0f} {srow.p50_ms:>8.2f} "
                f"{srow.p95_ms:>8.2f} {srow.queries:>8}",
                flush=True,
            )

    print(f"\n{'store':<12} {'MB per 10k records (tracemalloc)':>34}")
    mem: dict[str, float] = {}
    for store in stores:
        mem[store] = memory_per_10k(store, all_records[:10_000])
        print(f"{store:<12} {mem[store]:>34.1f}")

    def recall(store: str, pool: str) -> str:
        found = [r.recall for r in q_rows if r.store == store and r.pool == pool]
        return f"{found[0]:.3f}" if found else "-"

    parts = []
    for store in stores:
        at10k = next(r for r in s_rows if r.store == store and r.records == 10_000)
        verdict = "PASS" if at10k.p95_ms < TARGET_P95_MS_AT_10K else "FAIL"
        parts.append(
            f"{store}: recall@5 perceivable={recall(store, 'perceivable')} all={recall(store, 'all')}, "
            f"p95@10k={at10k.p95_ms:.1f}ms ({verdict} <{TARGET_P95_MS_AT_10K:.0f}ms), "
            f"{mem[store]:.0f}MB/10k"
        )
    print("\nSUMMARY: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark: metrics A (extraction), B (diagnostic code), C (attribution) and S (end-to-end
scenarios) over JSONL cases in the format of formats/benchmark.md; see docs/benchmark.md."""

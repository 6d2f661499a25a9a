"""The benchmark: metrics A (extraction), B (diagnostic code), C (attribution) and S (end-to-end
scenarios) over JSONL cases in the format of formats/benchmark.md; see docs/benchmark.md."""

import simulator

# The benchmark measures the agent against the simulated cluster: it plugs the simulator in as an
# executor backend (diagnostics.backends) exactly as the command line does.
simulator.plug()

"""Performance models: hardware catalog, task and workload models, detectors, DoT rendering.

The bottom leaf: it imports nothing of ours (perf check, which opens clusters, lives in
pipelines.perfcheck). See docs/perf.md.
"""

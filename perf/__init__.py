"""Performance models: hardware catalog, task and workload models, detectors, DoT rendering.

A leaf package: it imports only ``diagnostics.types`` (and, lazily inside ``perf.check``, the
diagnostics toolkit and simulator). See docs/perf.md.
"""

"""The diagnosis agent: model backends, Diagram-of-Thought graph, self-play loop, safety policy."""

import os

# Haystack's usage telemetry would try to reach the internet; clusterdoc runs offline (127.0.0.1 only).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

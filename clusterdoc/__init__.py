"""clusterdoc: a ChatOps agent that diagnoses and repairs GPU training clusters."""

__version__ = "0.1.0"

"""The simulated GPU cluster: per-node state, fault injection, real-format tool output.

``SimCluster(scenario)`` answers shell commands in-process (``.handle`` / ``.executor()``);
``simulator.sshserver`` serves the same object as real SSH endpoints on 127.0.0.1.
"""

from simulator.backend import open_scenario, plug
from simulator.cluster import JobState, SimCluster, SimExecutor
from simulator.state import GpuState, HcaState, NodeState

__all__ = ["GpuState", "HcaState", "JobState", "NodeState", "SimCluster", "SimExecutor", "open_scenario", "plug"]

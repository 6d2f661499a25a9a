"""The simulated Slurm controller: a host that is not a GPU node and answers Slurm's client
commands (``scontrol``, ``sinfo``, ``squeue``) for every node of the cluster, as ``slurmctld``'s head node does.

Used when a test or benchmark gives ``SimCluster(..., slurm_controller="slurm-ctl")`` and the
toolkit's inventory names that controller: ``drain_node`` / ``resume_node`` then run there, naming
the node (``scontrol update nodename=node-05 state=drain reason=…``). Only single commands are
understood (no pipes, sequences or substitutions): what clusterdoc sends there is one line.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from simulator import hosttools

if TYPE_CHECKING:
    from simulator.cluster import SimCluster

Out = tuple[int, str, str]
_SHELL_OPERATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", "<", ">"})


def controller_command(sim: SimCluster, host: str, command: str) -> Out:
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv = list(lexer)
    except ValueError as exc:
        return 2, "", f"bash: syntax error: {exc}\n"
    if not argv:
        return 0, "", ""
    if any(a in _SHELL_OPERATORS for a in argv) or "$(" in command or "`" in command:
        return 2, "", "simulated controller: one plain command per line (no pipes, sequences or substitutions)\n"
    program, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if program == "hostname":
        return 0, f"{host.split('.')[0] if '-s' in args else host}\n", ""
    if program == "scontrol":
        if len(args) == 2 and [a.lower() for a in args] == ["show", "node"]:
            return 0, "".join(hosttools._scontrol_node(sim, n) for n in sim.nodes.values()), ""
        # the node argument only names the default target of `show node`, handled above
        return hosttools.scontrol(sim, next(iter(sim.nodes.values())), args)
    if program == "sinfo":
        return hosttools.sinfo(sim, next(iter(sim.nodes.values())), args)
    if program == "squeue":
        return hosttools.squeue(sim, next(iter(sim.nodes.values())), args)
    return 127, "", f"bash: {program}: command not found\n"

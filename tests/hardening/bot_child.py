"""The bot as a separate process over a SQLite file, driven line by line on stdin (restart tests).

``python -m tests.hardening.bot_child --state FILE --log FILE`` runs the real bot core, the real
agent (no model) and the real remediator over the simulated case study. Every command the
remediator sends to a node is appended (and fsynced) to ``--log`` as ``proposal-id<TAB>command``
before it runs, so the parent can count executions across kills. Input lines:

- ``alert NAME`` — an alert opens an incident; prints the proposals posted;
- ``pause before|during|none`` — the next execution blocks before its first command / after it;
- ``react MESSAGE_ID USER`` — a ✅ reaction;
- ``state`` — prints proposals and executions.

Output: one JSON object per line (``{"reply": …}``, ``{"event": …}``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

_out_lock = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()


class LoggingExecutor:
    def __init__(self, inner: Any, log_path: Path, pause: dict[str, str], current: threading.local) -> None:
        self.inner, self.log_path, self.pause, self.current = inner, log_path, pause, current

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> Any:
        pid = getattr(self.current, "pid", "")
        if pid:
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(f"{pid}\t{command}\n")
                fh.flush()
                os.fsync(fh.fileno())
        result = self.inner.run(host, command, timeout_s)
        if pid and self.pause.get("mode") == "during":
            emit({"event": "ran_first_command", "proposal": pid})
            threading.Event().wait()  # blocked mid-execution until the process is killed
        return result

    def close(self) -> None:
        self.inner.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)

    from bot.config import BotConfig
    from bot.core import Bot
    from bot.events import Alert, Reaction, Reply
    from bot.services import ToolkitRemediator
    from bot.store import Store
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from kb.config import KBConfig
    from kb.knowledge import KnowledgeBase
    from pipelines.agent import Agent
    from pipelines.api import ExecutionResult, Proposal
    from pipelines.config import AgentConfig
    from simulator import SimCluster

    repo = Path(__file__).resolve().parents[2]
    sim = SimCluster(str(repo / "scenarios" / "a800-throttle.yaml"))
    pause: dict[str, str] = {"mode": "none"}
    current = threading.local()
    executor = LoggingExecutor(sim.executor(), Path(args.log), pause, current)
    toolkit = Toolkit(default_registry(), executor, scheduler="slurm")
    kb = KnowledgeBase(KBConfig(data_dir=None))
    kb.warm_up()
    agent = Agent(AgentConfig(), toolkit, kb, None, hosts=sim.hosts)
    agent.warm_up()

    class Remediator:
        inner = ToolkitRemediator(toolkit)

        def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult:
            mode = pause["mode"]  # read before telling the parent, which may change it next
            emit({"event": "executing", "proposal": proposal.id})
            if mode == "before":
                threading.Event().wait()  # approved, claimed, nothing run yet: killed here
            current.pid = proposal.id
            try:
                return self.inner.execute(proposal, approver, approved_at)
            finally:
                current.pid = ""

    counter = [0]

    def outbox(reply: Reply) -> str:
        counter[0] += 1
        message_id = f"{os.getpid()}-{counter[0]}"
        data = asdict(reply)
        data.pop("image_png", None)
        emit({"reply": data, "message_id": message_id})
        return message_id

    cfg = BotConfig(state_path=args.state, workers=4)
    cfg.approvals.approvers = ["U_ANN", "U_BOB"]
    bot = Bot(cfg, Store(args.state), agent, Remediator(), known_nodes=sim.hosts, outbox=outbox, send_backoff_s=0.0)
    bot.start()
    emit({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "alert":
            bot.dispatch(Alert("test", "C_OPS", "firing", words[1], "TrainingSlowdown",
                               "training job slow; node-05 GPU 3 suspected", {"node": "node-05", "run": words[1]}))
            bot.wait_idle(120)
            emit({"event": "alerted", "name": words[1]})
        elif words[0] == "pause":
            pause["mode"] = words[1]
            emit({"event": "paused", "mode": words[1]})
        elif words[0] == "react":
            acks = bot.dispatch(Reaction("test", "C_OPS", words[2], "white_check_mark", words[1]))
            emit({"event": "reacted", "acks": [asdict(a) for a in acks]})
        elif words[0] == "state":
            bot.wait_idle(60)
            emit({"event": "state",
                  "proposals": [{"id": p.id, "state": p.state, "message_id": p.message_id}
                                for p in bot.store.proposals()],
                  "executions": bot.store.executions(),
                  "audit": [a["action"] + " " + a["subject"] for a in bot.store.audit_log()]})
    bot.wait_idle(60)
    bot.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

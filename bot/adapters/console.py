"""The console adapter: the same incident flow on a terminal, approvals typed instead of reacted.

Type ``/diagnose node-05`` (or ``diagnose node-05``, or any question), then ``approve`` / ``reject``
(optionally followed by a proposal id) when a proposal appears. Graph images are written as PNG
files and their paths printed. Used by ``clusterdoc chat`` and ``clusterdoc demo``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO

from bot.core import Bot
from bot.events import Mention, Message, Reaction, Reply

CHANNEL = "console"


class ConsoleAdapter:
    def __init__(
        self,
        bot: Bot,
        *,
        user: str = "operator",
        out: TextIO | None = None,
        images_dir: str | Path = ".",
    ) -> None:
        self.bot = bot
        self.user = user
        self.out = out or sys.stdout
        self.images_dir = Path(images_dir)
        self._n = 0
        self._lock = threading.Lock()
        self.proposals: dict[str, str] = {}  # proposal id -> message id, in posting order
        self.images: list[Path] = []
        bot.set_outbox(self.send)
        bot.identity.add("clusterdoc")

    # -- outbox --------------------------------------------------------------------------------
    def send(self, reply: Reply) -> str:
        with self._lock:
            self._n += 1
            message_id = f"c{self._n}"
            prefix = {"error": "!", "proposal": "?", "result": "=", "status": "…"}.get(reply.kind, "»")
            self.out.write(f"{prefix} {reply.text}\n")
            if reply.code:
                self.out.write("  ```\n" + "".join(f"  {line}\n" for line in reply.code.splitlines()) + "  ```\n")
            if reply.image_png:
                self.images_dir.mkdir(parents=True, exist_ok=True)
                path = self.images_dir / (reply.filename or f"image-{message_id}.png")
                path.write_bytes(reply.image_png)
                self.images.append(path)
                self.out.write(f"  [graph image: {path}]\n")
            if reply.kind == "proposal" and reply.proposal_id:
                self.proposals[reply.proposal_id] = message_id
            self.out.flush()
            return message_id

    # -- input ---------------------------------------------------------------------------------
    def handle_line(self, line: str) -> bool:
        """One typed line; returns False when the user asked to quit."""
        text = line.strip()
        if not text:
            return True
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("quit", "exit", ":q"):
            return False
        if word in ("approve", "yes", "y", "reject", "no", "n"):
            self.react("✅" if word in ("approve", "yes", "y") else "❌", rest.strip() or None)
            return True
        if text.startswith(("/", "!")):
            replies = self.bot.dispatch(Message("console", CHANNEL, self.user, text, message_id=self._next_id()))
        else:
            replies = self.bot.dispatch(Mention("console", CHANNEL, self.user, text, message_id=self._next_id()))
        for reply in replies:
            self.send(reply)
        return True

    def react(self, emoji: str, proposal_id: str | None = None) -> list[Reply]:
        # no id typed: the first proposal still pending (the agent lists its primary fix first)
        pending = [pid for pid in self.proposals if (row := self.bot.store.proposal(pid)) and row.state == "pending"]
        target = proposal_id or (pending[0] if pending else None)
        if target is None or target not in self.proposals:
            self.out.write("! no such proposal" + (f" `{proposal_id}`" if proposal_id else " pending") + "\n")
            return []
        replies = self.bot.dispatch(Reaction("console", CHANNEL, self.user, emoji, self.proposals[target]))
        for reply in replies:
            self.send(reply)
        return replies

    def run(self, inp: TextIO | None = None, prompt: str = "> ") -> None:
        inp = inp or sys.stdin
        self.out.write("clusterdoc console: /diagnose <node|job>, a question, approve/reject [id], quit\n")
        while True:
            self.bot.wait_idle(600)
            self.out.write(prompt)
            self.out.flush()
            line = inp.readline()
            if not line or not self.handle_line(line):
                break
        self.bot.wait_idle(600)

    def _next_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"c{self._n}"

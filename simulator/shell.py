"""The simulated node's shell: ``$(…)`` substitutions, ``;``/``&&``/``||`` sequences, pipes into a
few filters (grep, head, tail, wc, sort, uniq, tr, cut) and ``2>``/``>&`` redirections; each program
is dispatched by name (nvidia-smi in ``nvsmi.py``, the generic health checks' commands in
``health_tools.py``, the rest in ``hosttools.py``), after a ``custom`` fault's command overrides."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any, cast

from simulator import health_tools, hosttools, nvsmi
from simulator.state import NodeState

if TYPE_CHECKING:
    from datetime import datetime

    from simulator.cluster import SimCluster

_SUBST = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_FILTERS = ("grep", "egrep", "head", "tail", "wc", "sort", "uniq", "tr", "cut")


class ShellMixin:
    """SimCluster's command interpreter (a mixin: the cluster holds the state)."""

    if TYPE_CHECKING:
        time_s: float

        def wallclock(self, t: float) -> datetime: ...
        def reading(self, node: NodeState, g: Any) -> Any: ...
        def _changed(self) -> None: ...


    def _run_line(self, node: NodeState, line: str) -> tuple[int, str, str]:
        line = self._substitute(node, line)
        try:
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lex.whitespace_split = True
            lex.commenters = ""
            tokens = list(lex)
        except ValueError as exc:
            return 2, "", f"bash: syntax error: {exc}\n"
        # sequences: split on ; && ||
        rc, out_all, err_all = 0, [], []
        seq: list[str] = []
        op = ";"
        for tok in [*tokens, ";"]:
            if tok in (";", "&&", "||", "&", ";;"):
                if seq:
                    run = op == ";" or (op == "&&" and rc == 0) or (op == "||" and rc != 0)
                    if run:
                        rc, out, err = self._run_pipeline(node, seq)
                        out_all.append(out)
                        err_all.append(err)
                seq = []
                op = tok if tok in ("&&", "||") else ";"
            else:
                seq.append(tok)
        return rc, "".join(out_all), "".join(err_all)

    def _substitute(self, node: NodeState, line: str) -> str:
        line = line.replace("${HOSTNAME}", node.name).replace("$HOSTNAME", node.name)
        for _ in range(8):
            m = _SUBST.search(line)
            if m is None:
                break
            inner = m.group(1) if m.group(1) is not None else m.group(2)
            _rc, out, _err = self._run_line(node, inner)
            line = line[: m.start()] + out.strip() + line[m.end():]
        return line

    def _run_pipeline(self, node: NodeState, tokens: list[str]) -> tuple[int, str, str]:
        stages: list[list[str]] = [[]]
        for tok in tokens:
            if tok == "|":
                stages.append([])
            else:
                stages[-1].append(tok)
        rc, out, err = 0, "", ""
        for i, stage in enumerate(stages):
            argv, drop_err, merge_err = self._redirections(stage)
            if not argv:
                return 2, out, err + "bash: syntax error near unexpected token `|'\n"
            if i == 0:
                rc, o, e = self._exec(node, argv)
            else:
                rc, o, e = _filter(argv, out)
            if merge_err:
                o, e = o + e, ""
            if drop_err:
                e = ""
            out, err = o, err + e
        return rc, out, err

    @staticmethod
    def _redirections(stage: list[str]) -> tuple[list[str], bool, bool]:
        argv: list[str] = []
        drop_err = merge_err = False
        i = 0
        while i < len(stage):
            tok = stage[i]
            if tok in (">", ">>", ">&", "<"):
                fd = argv.pop() if argv and argv[-1] in ("1", "2") else "1"
                target = stage[i + 1] if i + 1 < len(stage) else ""
                if tok == ">&" or (tok == ">" and target.startswith("&")):
                    merge_err = fd == "2"
                elif target == "/dev/null" and fd == "2":
                    drop_err = True
                i += 2
                continue
            argv.append(tok)
            i += 1
        return argv, drop_err, merge_err

    def _exec(self, node: NodeState, argv: list[str]) -> tuple[int, str, str]:
        while argv and (argv[0] in ("sudo", "env", "nice", "command", "exec") or ("=" in argv[0] and not argv[0].startswith("-"))):
            argv = argv[1:]
            while argv and argv[0].startswith("-") and argv[0] != "-":
                argv = argv[1:]
        if argv and argv[0] == "timeout" and len(argv) > 2:
            argv = argv[2:]
        if not argv:
            return 0, "", ""
        override = node.override_for(" ".join(argv)) if node.overrides else None
        if override is not None:
            if override.hang:
                raise _Hang(" ".join(argv)[:80])
            return override.exit, override.stdout, override.stderr
        prog = argv[0].rsplit("/", 1)[-1]
        args = argv[1:]
        if prog in ("bash", "sh") and len(args) >= 2 and args[0] == "-c":
            return self._run_line(node, args[1])
        if prog == "nvidia-smi":
            ctx = nvsmi.SmiContext(node, lambda g: self.reading(node, g), self.wallclock(self.time_s), self._changed)
            return nvsmi.run(ctx, args)
        healthy = health_tools.health_output(self, node, argv, " ".join(argv))
        if healthy is not None:  # the generic health checks' commands on a node the faults left alone
            text, code = healthy
            return code, text, ""
        handler = hosttools.HANDLERS.get(prog)
        if handler is None:
            if prog in ("grep", "egrep") and len([a for a in args if not a.startswith("-")]) > 1:
                return _grep_files(self, node, prog, args)  # grep PATTERN FILE… (a job's log)
            if prog in _FILTERS:
                return _filter([prog, *args], "")
            return hosttools.not_found(argv[0])
        return handler(cast("SimCluster", self), node, args)  # the mixin is always a SimCluster


class _Hang(Exception):
    """A command a custom fault makes hang: the caller gets a timeout, as from a stuck tool."""


def _grep_files(sim: Any, node: NodeState, prog: str, args: list[str]) -> tuple[int, str, str]:
    """grep over simulated files (``hosttools.read_file``); a missing file is grep's exit 2."""
    flags = [a for a in args if a.startswith("-")]
    pattern, *paths = [a for a in args if not a.startswith("-")]
    texts, errors = [], []
    for path in paths:
        text, problem = hosttools.read_file(sim, node, path)
        if text is None:
            errors.append(f"{prog}: {path}: {problem}\n")
        else:
            texts.append(text)
    rc, out, err = _filter([prog, *flags, pattern], "".join(texts))
    return (2 if errors else rc), out, err + "".join(errors)


def _filter(argv: list[str], text: str) -> tuple[int, str, str]:
    """The few text filters a pipeline may end in."""
    prog, args = argv[0], argv[1:]
    lines = text.splitlines()
    if prog in ("grep", "egrep"):
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        patterns = [a for a in args if not a.startswith("-")]
        if not patterns:
            return 2, "", "Usage: grep [OPTION]... PATTERNS [FILE]...\n"
        pat = patterns[0]
        try:
            rx = re.compile(pat if ("E" in flags or prog == "egrep") else _basic_re(pat), re.I if "i" in flags else 0)
        except re.error:
            return 2, "", "grep: Invalid regular expression\n"
        hits = [ln for ln in lines if bool(rx.search(ln)) != ("v" in flags)]
        if "c" in flags:
            return (0 if hits else 1), f"{len(hits)}\n", ""
        return (0 if hits else 1), "".join(h + "\n" for h in hits), ""
    if prog in ("head", "tail"):
        n = 10
        for i, a in enumerate(args):
            if a == "-n" and i + 1 < len(args):
                n = int(args[i + 1].lstrip("+-") or 10)
            elif a.startswith("-n"):
                n = int(a[2:])
            elif a.startswith("-") and a[1:].isdigit():
                n = int(a[1:])
        chosen = lines[:n] if prog == "head" else (lines[-n:] if n else [])
        return 0, "".join(c + "\n" for c in chosen), ""
    if prog == "wc":
        if "-l" in args:
            return 0, f"{len(lines)}\n", ""
        return 0, f"{len(lines):>7} {len(text.split()):>7} {len(text):>7}\n", ""
    if prog == "sort":
        out = sorted(lines, reverse="-r" in args)
        if "-u" in args:
            out = list(dict.fromkeys(out))
        return 0, "".join(o + "\n" for o in out), ""
    if prog == "uniq":
        out = [ln for i, ln in enumerate(lines) if i == 0 or ln != lines[i - 1]]
        return 0, "".join(o + "\n" for o in out), ""
    if prog == "tr":
        sets = [a for a in args if not a.startswith("-")]
        if len(sets) == 2:
            src = sets[0].replace("\\0", "\0").replace("\\n", "\n")
            dst = sets[1].replace("\\0", "\0").replace("\\n", "\n")
            if len(src) == len(dst):
                return 0, text.translate(str.maketrans(src, dst)), ""
        return 1, "", "tr: unsupported arguments\n"
    if prog == "cut":
        delim = "\t"
        fields: list[int] = []
        for i, a in enumerate(args):
            if a == "-d" and i + 1 < len(args):
                delim = args[i + 1]
            elif a.startswith("-d") and len(a) > 2:
                delim = a[2:]
            elif a == "-f" and i + 1 < len(args):
                fields = [int(x) for x in args[i + 1].split(",") if x.isdigit()]
            elif a.startswith("-f") and len(a) > 2:
                fields = [int(x) for x in a[2:].split(",") if x.isdigit()]
        out = [delim.join(p for k, p in enumerate(ln.split(delim), 1) if k in fields) for ln in lines]
        return 0, "".join(o + "\n" for o in out), ""
    return 127, "", f"bash: {prog}: command not found\n"


def _basic_re(pat: str) -> str:
    """grep's basic regular expressions: \\| \\( \\) are the operators, bare ones are literals."""
    out = []
    i = 0
    while i < len(pat):
        ch = pat[i]
        if ch == "\\" and i + 1 < len(pat) and pat[i + 1] in "|()+?{}":
            out.append(pat[i + 1])
            i += 2
            continue
        out.append(re.escape(ch) if ch in "|()+?{}" else ch)
        i += 1
    return "".join(out)

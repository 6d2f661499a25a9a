"""A small shell tokenizer for the safety policy (no bashlex, no shlex.split on the whole text).

It splits a script into simple commands on ``;``, ``&&``, ``||``, ``|``, ``&``, newlines and
subshell parentheses; pulls out ``$( … )``, backtick and ``<( … )`` substitutions as commands of
their own; records redirections; and re-parses the string given to ``bash -c`` / ``sh -c`` /
``su -c`` / ``ssh host CMD`` so a command cannot hide inside another. Unbalanced quotes never make
it fail: the rest of the line becomes one word (and the caller treats that as suspicious).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_OPERATORS = ("&&", "||", "|&", ";;", "|", ";", "&", "\n", "(", ")")
_REDIR_PREFIXES = ("&>>", "&>", "2>>", "2>", "1>>", "1>", ">>", ">|", ">", "<<<", "<<", "<")
MAX_DEPTH = 8  # nested -c strings / substitutions followed this deep


@dataclass
class SimpleCommand:
    words: list[str]  # quotes removed, the program first (wrappers like sudo kept: see program())
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (operator, target)
    piped_in: bool = False  # stdin comes from the previous command through |
    piped_out: bool = False  # stdout goes to the next command through |
    source: str = ""  # the raw text this came from (for messages)
    depth: int = 0  # nesting level (0: top level)
    unbalanced: bool = False  # a quote or substitution was never closed


@dataclass
class _Lexed:
    tokens: list[tuple[str, str]]  # (kind, value): kind in word|op|redir
    subs: list[str]
    unbalanced: bool


def _read_paren(text: str, i: int) -> tuple[str, int, bool]:
    """``text[i]`` is just after ``$(`` / ``<(``: read to the matching ``)`` (quotes respected)."""
    depth, j, quote = 1, i, ""
    while j < len(text):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                j += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            j += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[i:j], j + 1, False
        j += 1
    return text[i:], len(text), True


def _lex(text: str) -> _Lexed:
    tokens: list[tuple[str, str]] = []
    subs: list[str] = []
    unbalanced = False
    word: list[str] = []
    has_word = False
    i = 0
    pending_redir: str | None = None

    def flush() -> None:
        nonlocal word, has_word, pending_redir
        if has_word:
            value = "".join(word)
            if pending_redir is not None:
                tokens.append(("redir", f"{pending_redir}\x00{value}"))
                pending_redir = None
            else:
                tokens.append(("word", value))
        word, has_word = [], False

    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            if text[i + 1] == "\n":  # line continuation
                i += 2
                continue
            word.append(text[i + 1])
            has_word = True
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end == -1:
                unbalanced = True
                end = len(text)
            word.append(text[i + 1 : end])
            has_word = True
            i = end + 1
            continue
        if c == '"':
            j = i + 1
            buf: list[str] = []
            closed = False
            while j < len(text):
                d = text[j]
                if d == "\\" and j + 1 < len(text):
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if d == '"':
                    closed = True
                    break
                if d == "$" and text.startswith("$(", j):
                    inner, j2, unb = _read_paren(text, j + 2)
                    subs.append(inner)
                    unbalanced |= unb
                    buf.append(f"$({inner})")
                    j = j2
                    continue
                if d == "`":
                    end = text.find("`", j + 1)
                    end = len(text) if end == -1 else end
                    subs.append(text[j + 1 : end])
                    buf.append(text[j : end + 1])
                    j = end + 1
                    continue
                buf.append(d)
                j += 1
            if not closed:
                unbalanced = True
            word.append("".join(buf))
            has_word = True
            i = j + 1
            continue
        if c == "$" and text.startswith("$(", i):
            inner, i2, unb = _read_paren(text, i + 2)
            subs.append(inner)
            unbalanced |= unb
            word.append(f"$({inner})")
            has_word = True
            i = i2
            continue
        if c in "<>" and text.startswith("(", i + 1):  # process substitution <( … ) / >( … )
            inner, i2, unb = _read_paren(text, i + 2)
            subs.append(inner)
            unbalanced |= unb
            flush()
            tokens.append(("word", f"{c}({inner})"))
            i = i2
            continue
        if c == "`":
            end = text.find("`", i + 1)
            if end == -1:
                unbalanced = True
                end = len(text)
            subs.append(text[i + 1 : end])
            word.append(text[i : end + 1])
            has_word = True
            i = end + 1
            continue
        if c in " \t\r":
            flush()
            i += 1
            continue
        if c == "#" and not has_word:  # comment to end of line
            end = text.find("\n", i)
            i = len(text) if end == -1 else end
            continue
        redir = next((r for r in _REDIR_PREFIXES if text.startswith(r, i)), None)
        if redir is not None and (not has_word or "".join(word).isdigit()):
            if has_word:  # fd number like 2>
                word, has_word = [], False
            flush()
            i += len(redir)
            # `2>&1` style duplications are not file writes
            if text.startswith("&", i) and redir in (">", "2>", "1>"):
                j = i + 1
                while j < len(text) and (text[j].isdigit() or text[j] == "-"):
                    j += 1
                i = j
                continue
            pending_redir = redir
            while i < len(text) and text[i] in " \t":
                i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            flush()
            tokens.append(("op", op))
            i += len(op)
            continue
        if c in "{}" and not has_word and (i + 1 == len(text) or text[i + 1] in " \t\n;"):
            flush()
            tokens.append(("op", ";"))
            i += 1
            continue
        word.append(c)
        has_word = True
        i += 1
    flush()
    return _Lexed(tokens, subs, unbalanced)


_WRAPPERS = {"sudo", "doas", "nohup", "time", "nice", "ionice", "stdbuf", "timeout", "command", "builtin", "exec", "env", "xargs", "chroot", "setsid", "strace", "watch", "unbuffer"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case", "esac", "!", "function", "select"}


def program_words(words: list[str]) -> list[str]:
    """The words starting at the real program: leading keywords, ``VAR=x`` and wrappers skipped."""
    i = 0
    while i < len(words):
        w = words[i]
        base = w.rsplit("/", 1)[-1]
        if w in _KEYWORDS or ("=" in w and not w.startswith("-") and w.split("=", 1)[0].isidentifier()):
            i += 1
            continue
        if base in _WRAPPERS:
            i += 1
            # skip the wrapper's options and their values (sudo -u root, timeout 10, nice -n 5)
            while i < len(words) and (words[i].startswith("-") or words[i].replace(".", "").isdigit()
                                      or (base in ("sudo", "doas") and i > 0 and words[i - 1] in ("-u", "-g", "-C"))
                                      or (base == "chroot" and not words[i].startswith("-") and "/" in words[i])):
                i += 1
            continue
        break
    return words[i:]


def split_commands(text: str, depth: int = 0) -> list[SimpleCommand]:
    """Every simple command in ``text``, nested ones included (substitutions, -c strings)."""
    if depth > MAX_DEPTH:
        return [SimpleCommand(["<nesting too deep>"], source=text[:200], depth=depth, unbalanced=True)]
    lexed = _lex(text)
    commands: list[SimpleCommand] = []
    current = SimpleCommand([], depth=depth, unbalanced=lexed.unbalanced)
    piped = False

    def finish(next_piped: bool) -> None:
        nonlocal current, piped
        if current.words or current.redirects:
            current.piped_in = piped
            current.piped_out = next_piped
            current.source = " ".join(current.words)[:300]
            commands.append(current)
        piped = next_piped and bool(current.words or current.redirects)
        current = SimpleCommand([], depth=depth, unbalanced=lexed.unbalanced)

    for kind, value in lexed.tokens:
        if kind == "word":
            current.words.append(value)
        elif kind == "redir":
            op, target = value.split("\x00", 1)
            current.redirects.append((op, target))
        else:
            finish(value in ("|", "|&"))
    finish(False)
    nested: list[SimpleCommand] = []
    for sub in lexed.subs:
        nested.extend(split_commands(sub, depth + 1))
    for cmd in commands:
        words = program_words(cmd.words)
        if not words:
            continue
        prog = words[0].rsplit("/", 1)[-1]
        if prog in ("bash", "sh", "zsh", "dash", "ksh", "su", "busybox", "runuser") and "-c" in words:
            idx = words.index("-c")
            if idx + 1 < len(words):
                nested.extend(split_commands(words[idx + 1], depth + 1))
        elif prog == "ssh":
            # ssh [opts] host CMD…: the remote command is the words after the host
            rest = [w for w in words[1:]]
            j = 0
            while j < len(rest) and rest[j].startswith("-"):
                j += 2 if rest[j] in ("-p", "-i", "-l", "-o", "-J", "-F") else 1
            if j + 1 < len(rest):
                nested.extend(split_commands(" ".join(rest[j + 1 :]), depth + 1))
        elif prog == "eval" and len(words) > 1:
            nested.extend(split_commands(" ".join(words[1:]), depth + 1))
    return commands + nested

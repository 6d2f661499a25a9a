"""Child side of the metric-B sandbox: runs one candidate program against its hidden tests.

Started by ``benchmark.sandbox.run_candidate`` as ``python -I -B .../_sandbox_child.py JOB.json
RESULT_FD`` in a fresh temporary directory, with resource limits already set. It builds the
simulated cluster from the case's scenario (in-process executor), then installs an audit hook that
refuses writes outside the sandbox directory, new processes, signals to other processes, sockets
and native-library loading, and only then runs the candidate and ``check``. The verdict goes to
the result pipe tagged with a token read from stdin, so a candidate that merely exits 0 never
passes.

This is containment for buggy or careless code (loops, crashes, floods, stray writes), not a
security boundary against code written to escape it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_DENIED_EVENTS = {
    "os.system": "running a shell",
    "subprocess.Popen": "starting a process",
    "os.exec": "replacing the process",
    "os.posix_spawn": "starting a process",
    "os.spawn": "starting a process",
    "os.fork": "forking",
    "os.forkpty": "forking",
    "os.kill": "sending a signal",
    "os.killpg": "sending a signal",
    "socket.connect": "opening a network connection",
    "socket.bind": "opening a network socket",
    "ctypes.dlopen": "loading a native library",
    "os.chroot": "changing the root directory",
}
_PATH_EVENTS = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.symlink": (0, 1),
    "os.link": (0, 1),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
    "shutil.move": (0, 1),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
}


def _inside(path: Any, root: str) -> bool:
    if isinstance(path, int):
        return True  # an already-open descriptor: its open() was checked
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str | os.PathLike):
        return True
    real = os.path.realpath(os.fspath(path))
    return real == root or real.startswith(root + os.sep)


def _install_guard(root: str) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = [*list(args), None, None, None][:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and not _inside(path, root):
                raise PermissionError(f"sandbox: writing outside the sandbox directory is refused: {path}")
        elif event in _DENIED_EVENTS:
            raise PermissionError(f"sandbox: {_DENIED_EVENTS[event]} is refused ({event})")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and not _inside(args[i], root):
                    raise PermissionError(f"sandbox: {event} outside the sandbox directory is refused: {args[i]}")

    sys.addaudithook(hook)


def _build_cluster(job: dict[str, Any]) -> tuple[Any, list[str]]:
    from simulator import SimCluster
    from simulator.scenario import load_scenario, parse_scenario

    if job.get("scenario_path"):
        scenario = load_scenario(job["scenario_path"])
    else:
        scenario = parse_scenario(job["scenario"], job.get("scenario_source", "<case>"))
    sim = SimCluster(scenario)
    return sim.executor(), list(sim.hosts)


def _report(fd: int, token: str, passed: bool, error: str = "") -> None:
    payload = json.dumps({"token": token, "passed": passed, "error": error[-4000:]}).encode()
    os.write(fd, payload)
    os.close(fd)


def main(argv: list[str]) -> int:
    job_path, result_fd = argv[1], int(argv[2])
    # Isolated mode (-I) ignores PYTHONPATH: make the project importable even when not installed.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if repo not in sys.path:
        sys.path.append(repo)
    token = sys.stdin.readline().strip()
    sys.stdin.close()
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    root = os.path.realpath(os.getcwd())
    try:
        executor, hosts = _build_cluster(job)
    except Exception as exc:  # the case's own scenario is broken: not the candidate's fault
        _report(result_fd, token, False, f"harness: cannot build the simulated cluster: {exc}")
        return 3
    # Modules a candidate commonly imports, loaded before the guard so their imports need no writes.
    import collections  # noqa: F401
    import csv  # noqa: F401
    import itertools  # noqa: F401
    import re  # noqa: F401
    import statistics  # noqa: F401

    try:
        import diagnostics.registry
        import diagnostics.toolkit  # noqa: F401
    except Exception:
        pass
    sys.dont_write_bytecode = True
    _install_guard(root)
    try:
        namespace: dict[str, Any] = {"__name__": "candidate"}
        exec(compile(job["code"], "candidate.py", "exec"), namespace)
        candidate = namespace.get(job["entry_point"])
        if not callable(candidate):
            _report(result_fd, token, False, f"the program does not define {job['entry_point']}()")
            return 1
        checks: dict[str, Any] = {"__name__": "hidden_tests"}
        exec(compile(job["tests"], "hidden_tests.py", "exec"), checks)
        checks["check"](candidate, executor, hosts)
    except BaseException as exc:  # the candidate failed: report why, whatever it raised
        if isinstance(exc, SystemExit):
            detail = f"the program called exit({exc.code})"
        else:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            tb = traceback.extract_tb(exc.__traceback__)
            where = [f"{f.filename}:{f.lineno}" for f in tb if f.filename in ("candidate.py", "hidden_tests.py")]
            if where:
                detail += f" (at {where[-1]})"
        _report(result_fd, token, False, detail)
        return 1
    _report(result_fd, token, True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    os._exit(code)  # leave at once: stray candidate threads must not keep the process alive

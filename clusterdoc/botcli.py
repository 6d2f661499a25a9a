"""``clusterdoc bot`` (Slack/Matrix), ``clusterdoc chat`` (console) and ``clusterdoc demo``."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = REPO / "scenarios" / "a800-throttle.yaml"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bot", help="run the chat bot on the adapters the config enables (Slack, Matrix)")
    p.add_argument("--config", required=True, help="TOML config file (secrets come from the environment)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(handler=run_bot)

    p = subparsers.add_parser("chat", help="talk to the bot on this terminal (approvals typed)")
    p.add_argument("--config", help="TOML config file (default: built-in defaults)")
    p.add_argument("--scenario", help="run against this simulated scenario instead of the config's cluster")
    p.add_argument("--llm", choices=["none", "llamacpp", "ollama", "openai"], help="model backend override")
    p.add_argument("--user", default="operator", help="your user name (it is an approver here)")
    p.set_defaults(handler=run_chat)

    p = subparsers.add_parser("demo", help="the case study end to end, offline: alert, diagnosis, approval, fix")
    p.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (default: the A800 case study)")
    p.add_argument("--yes", action="store_true", help="approve the proposal without asking (CI)")
    p.add_argument("--llm", default="llamacpp", choices=["none", "llamacpp", "ollama", "openai"],
                   help="model backend (default: the embedded llama.cpp model; falls back to none)")
    p.add_argument("--in-process", action="store_true", help="do not serve the simulated nodes over SSH")
    p.add_argument("--out", help="folder for the state file and graph images (default: a new temp folder)")
    p.set_defaults(handler=run_demo)


def _config(path: str | None) -> Any:
    from clusterdoc.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"clusterdoc: config error: {exc}", file=sys.stderr)
        return None


def run_bot(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    if cfg is None:
        return 2
    if not (cfg.bot.slack.enabled or cfg.bot.matrix.enabled):
        print(f"clusterdoc: config error: {cfg.source}: no adapter enabled; set bot.slack.enabled or "
              "bot.matrix.enabled (or use `clusterdoc chat`)", file=sys.stderr)
        return 2
    if not cfg.clusters and not (cfg.cluster.inventory or cfg.cluster.scenario):
        print(f"clusterdoc: config error: {cfg.source}: set cluster.inventory or cluster.scenario "
              "(or list [[clusters]])", file=sys.stderr)
        return 2
    if cfg.bot.alertmanager.enabled:  # the webhook refuses to run without its token: say so now
        from bot.alertmanager import AlertmanagerReceiver

        try:
            AlertmanagerReceiver(cfg.bot.alertmanager, lambda event: [])
        except ValueError as exc:
            print(f"clusterdoc: config error: {cfg.source}: {exc}", file=sys.stderr)
            return 2
    if args.check:
        print(f"{cfg.source}: ok")
        return 0
    runtimes = _runtimes(cfg, say=lambda line: print(line, file=sys.stderr))
    for note in (n for r in runtimes for n in r.notes):
        print(f"note: {note}", file=sys.stderr)
    bot = _bot(cfg, cfg.bot.state_path, runtimes)
    _silences(cfg, bot)
    senders: dict[str, Any] = {}
    closers: list[Any] = []
    try:
        if cfg.bot.slack.enabled:
            from bot.adapters.slack import SlackAdapter

            slack = SlackAdapter(bot, cfg.bot.slack)
            senders["slack"] = slack.send
            closers.append(slack.close)
        if cfg.bot.matrix.enabled:
            from bot.adapters.matrix import MatrixAdapter

            matrix = MatrixAdapter(bot, cfg.bot.matrix)
            senders["matrix"] = matrix.send
            closers.append(matrix.close)

        def route(reply: Any) -> str | None:
            platform = bot.platform_of(reply.channel) or next(iter(senders))
            return senders.get(platform, next(iter(senders.values())))(reply)

        bot.set_outbox(route)
        if cfg.bot.matrix.enabled:
            matrix.start()
        if cfg.bot.slack.enabled:
            slack.start(block=False)
        else:
            bot.start()
        schedules = _schedules(cfg, bot, runtimes)
        if schedules is not None:
            closers.append(schedules.shutdown)
        if cfg.bot.alertmanager.enabled:
            webhook = AlertmanagerReceiver(cfg.bot.alertmanager, bot.dispatch).start()
            closers.append(webhook.close)
            print(f"Alertmanager webhook listening on {webhook.url}", file=sys.stderr)
        print(f"clusterdoc bot running ({', '.join(senders)}); Ctrl-C stops it", file=sys.stderr)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemd/k8s stop: shut down cleanly
        stop.wait()
    finally:
        for close in reversed(closers):
            close()
        bot.close(wait=False)
        for runtime in runtimes:
            runtime.close()
    return 0


def _runtimes(cfg: Any, **options: Any) -> list[Any]:
    """One runtime per cluster (``[[clusters]]``, else ``[cluster]``)."""
    from clusterdoc.runtime import build_runtimes

    return build_runtimes(cfg, **options)


def _bot(cfg: Any, state_path: str, runtimes: list[Any]) -> Any:
    """The bot over these runtimes: one unnamed cluster for ``[cluster]``, named ones for ``[[clusters]]``."""
    from bot.core import Bot
    from bot.store import Store
    from clusterdoc.runtime import bot_clusters

    first = runtimes[0]
    clusters = bot_clusters(cfg, runtimes)
    if clusters is not None:
        return Bot(cfg.bot, Store(state_path), learner=first.learner, clusters=clusters)
    return Bot(cfg.bot, Store(state_path), first.agent, first.remediator, learner=first.learner,
               known_nodes=first.known_nodes, inventory=first.inventory)


def _silences(cfg: Any, bot: Any) -> None:
    """/silence, /silences, /unsilence and silence-aware alert intake, when [bot.silences] api_url is set."""
    if cfg.bot.silences.api_url:
        from bot.silences import install_silences

        install_silences(bot, cfg.bot.silences)


def _schedules(cfg: Any, bot: Any, runtimes: list[Any]) -> Any:
    sched = cfg.bot.schedule
    if not (sched.health_report_cron or sched.early_warning_interval_s > 0):
        return None
    from bot.scheduler import Schedules, Watched
    from clusterdoc.runtime import report_channel

    watched = []
    for runtime in runtimes:  # one report per cluster, to that cluster's channel
        channel = report_channel(cfg, runtime.name)
        if not channel:
            where = f"cluster {runtime.name}: no report_channel or channels, and " if runtime.name else ""
            print(f"clusterdoc: schedules configured but {where}no bot.slack.channel / bot.matrix.report_room to "
                  f"post to; schedules {'of ' + runtime.name + ' ' if runtime.name else ''}disabled", file=sys.stderr)
            continue
        watched.append(Watched(runtime.name, runtime.toolkit, list(runtime.known_nodes), channel,
                               runtime.gpu_samples))
    if not watched:
        return None
    schedules = Schedules(bot, clusters=watched)
    schedules.start()
    return schedules


def run_chat(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    if cfg is None:
        return 2
    configured = bool(cfg.clusters or cfg.cluster.inventory or cfg.cluster.scenario)
    scenario = args.scenario or (None if configured else str(DEFAULT_SCENARIO))
    from bot.adapters.console import ConsoleAdapter

    if scenario:  # --scenario (or nothing configured): that one simulated cluster
        from clusterdoc.runtime import build_runtime

        cfg.clusters = []
        runtimes = [build_runtime(cfg, scenario=scenario, llm_backend=args.llm, say=print)]
    else:
        runtimes = _runtimes(cfg, llm_backend=args.llm, say=print)
    if args.user not in cfg.bot.approvals.approvers:
        cfg.bot.approvals.approvers.append(args.user)
    state = cfg.bot.state_path if args.config else str(Path(tempfile.mkdtemp(prefix="clusterdoc-chat-")) / "state.sqlite")
    bot = _bot(cfg, state, runtimes)
    _silences(cfg, bot)
    console = ConsoleAdapter(bot, user=args.user, images_dir=Path(state).parent)
    bot.start()
    for runtime in runtimes:
        where = f"cluster {runtime.name}: " if runtime.name else ""
        print(f"{where}nodes: {', '.join(runtime.known_nodes[:8])}{' …' if len(runtime.known_nodes) > 8 else ''}; "
              f"model: {runtime.llm_name}")
    if len(runtimes) > 1:
        default = bot.clusters.default
        print(f"several clusters: name one with cluster=<name>, e.g. `/diagnose cluster={runtimes[-1].name} node-01`"
              + (f"; the default is {default.name}" if default is not None else ""))
    try:
        console.run()
    finally:
        bot.close()
        for runtime in runtimes:
            runtime.close()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from bot.adapters.console import ConsoleAdapter
    from bot.config import BotConfig
    from bot.core import Bot
    from bot.events import Alert
    from bot.store import Store
    from clusterdoc.config import Config
    from clusterdoc.runtime import build_runtime

    scenario_path = Path(args.scenario)
    if not scenario_path.is_file():
        print(f"clusterdoc demo: scenario file not found: {scenario_path}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="clusterdoc-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config(bot=BotConfig(state_path=str(out_dir / "state.sqlite")))
    cfg.bot.approvals.approvers = ["operator"]
    cfg.cluster.simulate_over_ssh = not args.in_process

    started = time.monotonic()
    try:
        runtime = build_runtime(cfg, scenario=str(scenario_path), llm_backend=args.llm, workdir=out_dir / "ssh",
                                say=lambda line: print(f"note: {line}"))
    except Exception as exc:
        from diagnostics.types import ClusterdocError

        if isinstance(exc, ClusterdocError | ValueError | OSError):
            print(f"clusterdoc demo: {exc}", file=sys.stderr)
            return 2
        raise
    sim = runtime.sim
    scenario = sim.scenario
    c = scenario.cluster
    print(f"scenario {scenario.id}: {len(runtime.known_nodes)} nodes × {c.gpus_per_node} {c.gpu}, "
          f"{'served over SSH on 127.0.0.1' if runtime.over_ssh else 'in-process'}; model: {runtime.llm_name}")
    step_before = _step_time(sim)
    if step_before:
        print(f"training step time now {step_before:.2f} s (baseline {sim.baseline_step_time_s():.2f} s)")
    bot = Bot(cfg.bot, Store(cfg.bot.state_path), runtime.agent, runtime.remediator, learner=runtime.learner,
              known_nodes=runtime.known_nodes)
    console = ConsoleAdapter(bot, user="operator", images_dir=out_dir)
    bot.start()
    try:
        text = scenario.alert or scenario.description or f"scenario {scenario.id}"
        print(f"\nalert → {text}\n")
        bot.dispatch(Alert("console", "console", "firing", f"demo:{scenario.id}", "TrainingSlowdown", text,
                           {"alertname": "TrainingSlowdown", "scenario": scenario.id}))
        bot.wait_idle(900)
        pending = [p for p in bot.store.proposals() if p.state == "pending"]
        if not pending:
            print("\nno remediation was proposed.")
        for row in pending[:1]:
            if args.yes:
                print(f"\n(--yes) approving proposal {row.id}")
                approve = True
            else:
                try:
                    answer = input(f"\nApprove proposal {row.id}? [y/N] ")
                except EOFError:
                    answer = ""
                approve = answer.strip().lower() in ("y", "yes")
            console.react("✅" if approve else "❌", row.id)
            bot.wait_idle(600)
        executions = bot.store.executions()
        verified = bool(executions) and bool(executions[-1]["verified"])
        step_after = _step_time(sim)
        print("\n--- demo summary ---")
        diag = bot.store.diagnosis_json(bot.store.incidents()[0].id) if bot.store.incidents() else None
        if diag:
            cause = diag.get("cause") or {}
            print(f"diagnosis: {cause.get('fault')} on {cause.get('node')} GPU {cause.get('gpu')} "
                  f"(confidence {float(diag.get('confidence', 0)):.0%}, model {diag.get('llm')})")
            exp = scenario.expect
            if exp is not None:
                print(f"expected:  {exp.fault} on {exp.node} GPU {exp.gpu}")
        if console.images:
            print(f"graph image: {console.images[-1]}")
        print(f"fix executed: {'yes' if executions else 'no'}; verified: {'yes' if verified else 'no'}")
        if step_before and step_after:
            print(f"training step time: {step_before:.2f} s → {step_after:.2f} s")
        print(f"state and audit log: {cfg.bot.state_path} ({time.monotonic() - started:.1f} s)")
        return 0 if verified else 1
    finally:
        bot.close()
        runtime.close()


def _step_time(sim: Any) -> float | None:
    try:
        return float(sim.step_time_s())
    except Exception:  # a scenario without a workload has no step time
        return None

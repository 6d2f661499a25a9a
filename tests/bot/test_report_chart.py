"""The morning report attaches a PNG chart of fleet health per day from the stored fleet counts."""

from __future__ import annotations

import struct
from pathlib import Path

from bot.chart import fleet_chart_png
from bot.fleet import fleet_days, save_counts
from bot.scheduler import Schedules
from tests.bot.fakes import RecordingOutbox
from tests.bot.test_history import FakeToolkit
from tests.bot.test_safeguards import NODES, Clock, make_bot

DAY = 86400.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_report_attaches_a_png_chart_of_the_last_14_days(tmp_path: Path) -> None:
    out, clock = RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, out=out, clock=clock)
    for d in range(20, 0, -1):  # 20 days of fleet counts, two reports on some days
        save_counts(bot.store, {"healthy": 12 - d % 3, "degraded": 2 + d % 3, "drained": 1, "unreachable": 1},
                    clock.t - d * DAY)
        if d % 4 == 0:
            save_counts(bot.store, {"healthy": 16, "degraded": 0, "drained": 0, "unreachable": 0},
                        clock.t - d * DAY + 3600)
    toolkit = FakeToolkit(NODES)
    toolkit.unreachable, toolkit.degraded = {"node-01"}, {"node-02"}
    text = Schedules(bot, toolkit=toolkit, hosts=NODES, channel="C_REPORT", platform="slack").health_report()
    report = out.replies[-1]
    assert report.kind == "report" and report.channel == "C_REPORT" and report.text == text
    png = report.image_png
    assert png is not None and png.startswith(PNG_MAGIC) and len(png) > 10_000
    assert png_size(png) == (800, 340)
    assert report.filename == "fleet-health-cluster-1970-01-24.png"
    assert text.splitlines()[0].startswith("Fleet health (16 nodes)")
    assert "Fleet chart attached: healthy / degraded / drained / unreachable per day, 1970-01-11 … 1970-01-24" in text
    # the chart's days: the last report of each of the last 14 days, today's (just stored) last
    days = fleet_days(bot.store, clock.t, 14)
    assert len(days) == 14 and days[-1][1] == {"healthy": 14, "degraded": 1, "drained": 0, "unreachable": 1}
    day_8 = next(c for at, c in days if int(at // DAY) == int((clock.t - 8 * DAY) // DAY))
    assert day_8 == {"healthy": 16, "degraded": 0, "drained": 0, "unreachable": 0}  # that day's later report
    # what is drawn comes from the counts: other counts, another picture
    other = fleet_chart_png([(at, {"healthy": 1, "unreachable": 15}) for at, _ in days])
    assert other.startswith(PNG_MAGIC) and other != fleet_chart_png(days)


def test_with_no_history_the_report_still_renders_and_says_so(tmp_path: Path) -> None:
    out, clock = RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, out=out, clock=clock)
    sched = Schedules(bot, toolkit=FakeToolkit(NODES), hosts=NODES, channel="C_REPORT", platform="slack")
    first = sched.health_report()
    assert out.replies[-1].image_png is None and out.replies[-1].filename == ""
    assert first.startswith("Fleet health (16 nodes): 16 healthy")
    assert "Fleet chart: no fleet history yet" in first
    assert any(line.startswith("Cluster health report: 16 nodes") for line in first.splitlines())
    clock.t += 3600  # a second report the same day: still one day on record
    assert "no fleet history yet" in sched.health_report() and out.replies[-1].image_png is None
    clock.t += DAY  # the next day: two days, a chart
    assert "Fleet chart attached" in sched.health_report()
    assert (out.replies[-1].image_png or b"").startswith(PNG_MAGIC)

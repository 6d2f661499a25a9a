"""Alertmanager-style alerts: from a webhook payload or from a post in a watched alert channel.

Identical alerts share a fingerprint (Alertmanager's own when it gives one, else a hash of the
sorted labels) so a flood of them opens one incident.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bot.events import Alert, Platform

_STATUS_RE = re.compile(r"\[(FIRING|RESOLVED)(?::\s*(\d+))?\]\s*([\w:.-]+)?", re.IGNORECASE)
_STATUS_LINE_RE = re.compile(r"^\s*\*?status\*?\s*[:=]\s*\*?(firing|resolved)", re.IGNORECASE | re.MULTILINE)
_QUOTED_LABEL_RE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=\"([^\"]*)\"")
_LINE_LABEL_RE = re.compile(
    r"^[\s>*•-]*\*?`?([A-Za-z_][A-Za-z0-9_]*)`?\*?\s*[=:]\s*\*?\s*`?([^`\s,*]+)`?\s*$", re.MULTILINE
)
_FINGERPRINT_RE = re.compile(r"\bfingerprint\s*[:=]\s*`?([0-9a-fA-F]{6,64})`?")
_SUMMARY_RE = re.compile(
    r"^\s*\*?(?:summary|description|message)\*?\s*[:=]\s*\*?\s*(.+)$", re.IGNORECASE | re.MULTILINE
)
_NOT_LABELS = {"status", "summary", "description", "message", "fingerprint", "alert", "labels", "details",
               "annotations", "source", "startsat", "endsat", "graph", "runbook", "runbook_url"}


def fingerprint_of(labels: dict[str, str]) -> str:
    text = "\n".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_alert_text(text: str, *, platform: Platform, channel: str, message_id: str = "") -> Alert | None:
    """Read an Alertmanager notification rendered as chat text; None if it is not one.

    Understands the default Slack template (``[FIRING:1] Name …`` + ``- key = value`` label
    lines), Prometheus-style ``key="value"`` pairs, and ``status: firing`` lines.
    """
    head = _STATUS_RE.search(text)
    status_line = _STATUS_LINE_RE.search(text)
    if head is None and status_line is None:
        return None
    status = (head.group(1) if head else status_line.group(1)).lower()  # type: ignore[union-attr]
    labels: dict[str, str] = {}
    for key, value in _QUOTED_LABEL_RE.findall(text):
        labels[key] = value
    for key, value in _LINE_LABEL_RE.findall(text):
        if key.lower() not in _NOT_LABELS:
            labels.setdefault(key, value)
    name = labels.get("alertname") or (head.group(3) if head and head.group(3) else "")
    if name:
        labels.setdefault("alertname", name)
    summary_match = _SUMMARY_RE.search(text)
    summary = summary_match.group(1).strip() if summary_match else text.strip().splitlines()[0][:300]
    fp_match = _FINGERPRINT_RE.search(text)
    fingerprint = fp_match.group(1) if fp_match else fingerprint_of(labels or {"text": summary})
    return Alert(
        platform=platform, channel=channel, status="resolved" if status == "resolved" else "firing",
        fingerprint=fingerprint, name=name, summary=summary, labels=labels, message_id=message_id,
    )


def alerts_from_webhook(payload: dict[str, Any], *, channel: str, platform: Platform = "alertmanager") -> list[Alert]:
    """Alertmanager webhook JSON (version 4) -> one Alert per entry in ``alerts``."""
    out: list[Alert] = []
    for entry in payload.get("alerts") or []:
        if not isinstance(entry, dict):
            continue
        labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
        annotations = entry.get("annotations") or {}
        status = str(entry.get("status") or payload.get("status") or "firing").lower()
        out.append(
            Alert(
                platform=platform, channel=channel,
                status="resolved" if status == "resolved" else "firing",
                fingerprint=str(entry.get("fingerprint") or fingerprint_of(labels)),
                name=labels.get("alertname", ""),
                summary=str(annotations.get("summary") or annotations.get("description") or ""),
                labels=labels,
            )
        )
    return out


def alert_request_text(alert: Alert) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return f"Alert {alert.name or '(unnamed)'} {alert.status}: {alert.summary} [{labels}]".strip()

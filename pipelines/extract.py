"""Round 1 of self-play, deterministic half: entities and keywords from an alert or a log paste.

Regexes find hosts (IPv4/IPv6, node-style names, names from the inventory), SSH ports, GPU
indices, Xid codes, job ids, HCAs and symptom keywords. The model's extraction (schema-constrained)
is merged in by ``merge_model_entities``, which keeps only what literally occurs in the text or the
inventory, so a model that invents ``10.10.10.10`` changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from diagnostics.types import cap_text
from pipelines.faults import SYMPTOMS

MAX_SCAN_CHARS = 256 * 1024

_IPV4 = re.compile(r"(?<![\d.])((?:\d{1,3}\.){3}\d{1,3})(?![\d.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])((?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}|::1)(?![\w:])")
_NODE = re.compile(r"\b((?:node|gpu|host|worker|compute|dgx|hgx|gn|cn|trn)[-_]?[a-z]*[-_]?\d{1,5}(?:[-_.][a-z0-9]+)*)\b", re.I)
_PORT_PATTERNS = (
    re.compile(r"ssh\s+(?:-\w+\s+\S+\s+)*-p\s*(\d{1,5})", re.I),
    re.compile(r"\bport\s*[:=]?\s*(\d{2,5})\b", re.I),
    re.compile(r"\bssh\b[^\n.]{0,20}?\bon\s+(\d{2,5})\b", re.I),
    re.compile(r"(?:\d{1,3}\.){3}\d{1,3}:(\d{2,5})\b"),
    re.compile(r"\]:(\d{2,5})\b"),
    re.compile(r"\b[a-z][\w-]*\d:(\d{2,5})\b", re.I),
)
_GPU = re.compile(
    r"\b(?:gpu|cuda|device|dev|gpu index|gpu id)\s*[#:\[]?\s*(\d{1,2})\b|\bcuda:(\d{1,2})\b|\bGPU(\d{1,2})\b|\bgpu(\d{1,2})\b",
    re.I,
)
_XID = re.compile(r"\bxid\b\s*(?:\([^)\n]*\)\s*)?[:=#]?\s*(?:error\s*)?(\d{1,3})\b", re.I)
_JOB = re.compile(r"\b(?:job(?:[ _-]?id)?|slurm_job_id|jobid)\s*[:=#]?\s*([A-Za-z0-9][\w.-]{1,63})", re.I)
_HCA = re.compile(r"\b(mlx\d_\d+|ib[a-z]?\d+|hfi\d_\d+|bnxt_re\d+|irdma\d+)\b", re.I)
_IGNORE = re.compile(
    r"\b(ignore|ignoring|disregard|skip|except|not|never|old|previous|former|decommissioned|don'?t|do not)\b", re.I
)
_JOB_STOPWORDS = {"is", "was", "the", "on", "in", "has", "died", "failed", "slow", "running", "crashed", "step"}


@dataclass
class Entities:
    hosts: list[str] = field(default_factory=list)  # IPs and hostnames, in order of appearance
    ignored_hosts: list[str] = field(default_factory=list)  # named only to be ignored ("ignore the old …")
    nodes: list[str] = field(default_factory=list)  # hosts that are inventory names
    ssh_ports: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    xids: list[int] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    hcas: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)  # symptom phrases found
    hypotheses: dict[str, float] = field(default_factory=dict)  # fault -> prior weight from symptoms
    sources: dict[str, str] = field(default_factory=dict)  # "model" marks what the model added

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _uniq(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ignored(text: str, start: int) -> bool:
    """A host mentioned in the same clause after an 'ignore'/'old …' word is not a target."""
    lo = max(0, start - 200)
    clause_start = max(text.rfind(s, lo, start) for s in (".", ";", "\n", ",", "!", "?", " but ", " and "))
    window = text[clause_start + 1 : start] if clause_start >= 0 else text[max(0, start - 60) : start]
    return bool(_IGNORE.search(window[-60:]))


def normalize_node(name: str, known: Sequence[str]) -> str | None:
    """Map 'node5', 'node 5', 'NODE-05' onto an inventory name like 'node-05' when unambiguous."""
    if name in known:
        return name
    low = name.lower()
    for k in known:
        if k.lower() == low:
            return k
    m = re.match(r"^([a-z]+)[-_ ]?0*(\d+)$", low)
    if not m:
        return None
    hits = [k for k in known if (km := re.match(r"^([a-z]+)[-_]?0*(\d+)$", k.lower())) and km.groups() == m.groups()]
    return hits[0] if len(hits) == 1 else None


def extract_entities(text: str, known_hosts: Sequence[str] = ()) -> Entities:
    """Deterministic extraction; never raises, whatever the text (any language, any size)."""
    ent = Entities()
    # Regexes over megabytes cost seconds: keep head and tail (where logs put the error) only.
    text, _ = cap_text(text or "", MAX_SCAN_CHARS)
    hosts: list[tuple[int, str]] = []
    for m in _IPV4.finditer(text):
        if _valid_ip(m.group(1)):
            hosts.append((m.start(1), m.group(1)))
    for m in _IPV6.finditer(text):
        if _valid_ip(m.group(1)) and m.group(1).count(":") >= 2:
            hosts.append((m.start(1), m.group(1)))
    for m in _NODE.finditer(text):
        name = m.group(1).rstrip(".")
        if re.fullmatch(r"gpu[-_]?\d{1,2}", name, re.I):
            continue  # "GPU3" is a GPU index, not a host
        hosts.append((m.start(1), normalize_node(name, known_hosts) or name))
    for k in known_hosts:  # inventory names of any shape ("a100-rack3-u12")
        for m in re.finditer(rf"(?<![\w-]){re.escape(k)}(?![\w-])", text):
            hosts.append((m.start(), k))
    # "node 5" / "node5" written loosely, mapped through the inventory
    for m in re.finditer(r"\bnode\s+0*(\d{1,4})\b", text, re.I):
        mapped = normalize_node(f"node{m.group(1)}", known_hosts)
        if mapped:
            hosts.append((m.start(), mapped))
    for start, h in sorted(hosts):
        (ent.ignored_hosts if _is_ignored(text, start) else ent.hosts).append(h)
    ent.hosts = _uniq(ent.hosts)
    ent.ignored_hosts = [h for h in _uniq(ent.ignored_hosts) if h not in ent.hosts]
    known = set(known_hosts)
    ent.nodes = [h for h in ent.hosts if h in known]
    ports: list[int] = []
    for pat in _PORT_PATTERNS:
        for m in pat.finditer(text):
            if _is_ignored(text, m.start()):
                continue
            p = int(m.group(1))
            if 1 <= p <= 65535:
                ports.append(p)
    ent.ssh_ports = _uniq(ports)
    gpus = []
    for m in _GPU.finditer(text):
        val = next(g for g in m.groups() if g is not None)
        if int(val) < 64:
            gpus.append(int(val))
    ent.gpus = _uniq(gpus)
    ent.xids = _uniq(int(m.group(1)) for m in _XID.finditer(text) if int(m.group(1)) < 256)
    ent.jobs = _uniq(j for m in _JOB.finditer(text) if (j := m.group(1).rstrip(":.,")).lower() not in _JOB_STOPWORDS)
    ent.hcas = _uniq(m.group(1) for m in _HCA.finditer(text))
    hyp: dict[str, float] = {}
    for pattern, weights in SYMPTOMS:
        found = re.search(pattern, text, re.I)
        if found:
            ent.keywords.append(found.group(0).strip().lower())
            for fault, w in weights.items():
                hyp[fault] = hyp.get(fault, 0.0) + w
    for xid in ent.xids:  # what NVIDIA's Xid catalog says the Xid means (the signature catalog's data)
        kind, weight = _xid_prior(xid)
        if kind:
            hyp[kind] = hyp.get(kind, 0.0) + weight
    ent.keywords = _uniq(ent.keywords)
    ent.hypotheses = dict(sorted(hyp.items(), key=lambda kv: -kv[1]))
    return ent


def _xid_prior(xid: int) -> tuple[str | None, float]:
    """The fault kind an Xid names in the signature catalog (``xid-N``), weighted by severity."""
    try:
        from diagnostics.signatures import load_catalog

        sig = load_catalog().get(f"xid-{xid}")
    except Exception:  # without the catalog the Xid stays a keyword; the checks still find the fault
        return None, 0.0
    if sig is None or not sig.fault_kind or sig.fault_kind == "gpu_xid":
        return None, 0.0
    return sig.fault_kind, 1.5 if sig.severity == "critical" else 0.8


ENTITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "hosts": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
        "gpus": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 63}, "maxItems": 6},
        "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
    },
    "required": ["hosts", "gpus", "keywords"],
}


def merge_model_entities(ent: Entities, model: dict[str, Any] | None, text: str, known_hosts: Sequence[str] = ()) -> list[str]:
    """Add what the model extracted, keeping only items grounded in the text; returns notes on
    what was dropped (the model's inventions never become targets)."""
    notes: list[str] = []
    if not model:
        return notes
    low = (text or "").lower()
    for h in model.get("hosts", []) or []:
        h = str(h).strip()
        if not h:
            continue
        mapped = normalize_node(h, known_hosts) or h
        grounded = h.lower() in low or mapped.lower() in low
        if grounded and mapped not in ent.hosts and mapped not in ent.ignored_hosts:
            ent.hosts.append(mapped)
            ent.sources[mapped] = "model"
            if mapped in set(known_hosts):
                ent.nodes.append(mapped)
        elif not grounded:
            notes.append(f"model host {h!r} does not occur in the text; dropped")
    for g in model.get("gpus", []) or []:
        if isinstance(g, int) and re.search(rf"(gpu|cuda|device)[\s#:\[]*{g}\b", low) and g not in ent.gpus:
            ent.gpus.append(g)
            ent.sources[f"gpu{g}"] = "model"
        elif isinstance(g, int) and g not in ent.gpus:
            notes.append(f"model GPU {g} is not named in the text; dropped")
    for k in model.get("keywords", []) or []:
        k = str(k).strip().lower()
        if k and k in low and k not in ent.keywords and len(k) <= 60:
            ent.keywords.append(k)
    return notes

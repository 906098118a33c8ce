"""One self-contained HTML page of findings for the incident lead.

The page: the findings by severity; for each, its ATT&CK mapping, the evidence timeline, the
process tree the evidence shows and the verify step (the benign profiles and suppressions that
came closest, from ``investigate.verify``); per container, a chart of archive and egress activity
over time (``chart``).

Telemetry is attacker-controlled, so every string from an alert goes through ``html.escape``
(text and attributes alike), links and ids inside the page are built from counters, never from
telemetry, and the page carries a Content-Security-Policy that allows no script, no network
request and only its own stylesheet (by hash): a payload that slipped through would still not run.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from html import escape
from typing import Any

from tidewaiter import __version__
from tidewaiter.alerts import alert_container, evidence_bytes_out, evidence_ref, evidence_time
from tidewaiter.detection.suppress import Suppressor
from tidewaiter.investigate.verify import came_close, near_matches
from tidewaiter.report.chart import clock, svg

CLOSEST = 3  # profiles and suppressions shown per finding

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232a;
background:#f5f6f8}
header{background:#16202c;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b9c4d0}
main{padding:12px 28px 40px;max-width:1200px}
h2{font-size:18px;margin:28px 0 8px}
h3{font-size:15px;margin:18px 0 6px}
section.finding{background:#fff;border:1px solid #d9dee5;border-radius:6px;padding:4px 18px 14px;
margin:16px 0}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border-bottom:1px solid #e4e8ee;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.code,span.code,li code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;
word-break:break-all}
.sev{display:inline-block;border-radius:3px;padding:0 6px;font-weight:600;color:#fff}
.sev5{background:#8b0000}.sev4{background:#c62828}.sev3{background:#e08a00}
.sev2{background:#1e88e5}.sev1,.sev0,.sev6,.sev99{background:#78909c}
.counts span{margin-right:14px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}
dt{color:#5a6673}dd{margin:0;word-break:break-all}
ul.tree{list-style:none;padding-left:18px;margin:4px 0}
ul.tree li{margin:2px 0}
ul.tree li::before{content:"\\2514\\2500 ";color:#98a4b0}
.evidence{background:#fff4d6}
.muted{color:#6b7785}
svg.chart{background:#fbfcfd;border:1px solid #e4e8ee;max-width:100%;height:auto}
svg .axis{stroke:#b0bac5;stroke-width:1}
svg .archive{fill:#6a1b9a}
svg .egress{fill:#d84315}
svg .lane,svg .tick{font-size:11px;fill:#5a6673}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.legend i.archive{background:#6a1b9a}.legend i.egress{background:#d84315}
"""


def csp() -> str:
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; "
        "script-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def e(value: object) -> str:
    """Text from an alert, escaped for element content and attribute values alike."""
    return escape("" if value is None else str(value), quote=True)


def render(
    alerts: list[dict[str, Any]], suppressor: Suppressor, source: str, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    ordered = sorted(
        alerts, key=lambda a: (-_int(a.get("severity_id")), _int(a.get("time")), _uid(a))
    )
    counts: dict[str, int] = defaultdict(int)
    for alert in ordered:
        counts[str(alert.get("severity") or "Unknown")] += 1
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp())}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tidewaiter report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<header><h1>tidewaiter: archive staging and exfiltration findings</h1>",
        f"<p>{len(ordered)} finding(s) from {e(source)}; written "
        f"{now.strftime('%Y-%m-%d %H:%M UTC')} by tidewaiter {e(__version__)}</p></header><main>",
    ]
    if not ordered:
        parts.append("<p>No findings.</p>")
    else:
        parts.append('<p class="counts">')
        parts.extend(f"<span>{e(name)}: <b>{n}</b></span>" for name, n in counts.items())
        parts.append("</p>")
        parts.append(_summary(ordered))
        parts.append(_charts(ordered))
        parts.append('<h2 id="findings">Findings</h2>')
        for number, alert in enumerate(ordered, 1):
            parts.append(_finding(number, alert, suppressor))
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _summary(alerts: list[dict[str, Any]]) -> str:
    rows = []
    for number, alert in enumerate(alerts, 1):
        info = alert.get("finding_info") or {}
        rows.append(
            f"<tr><td>{_severity(alert)}</td><td>{e(clock(alert.get('time'), millis=True))}</td>"
            f'<td><a href="#finding-{number}">{e(info.get("title"))}</a></td>'
            f'<td class="code">{e(_subject(alert))}</td>'
            f'<td class="code">{e(info.get("uid"))}</td></tr>'
        )
    return (
        '<h2 id="summary">Findings by severity</h2><table><thead><tr><th>severity</th>'
        "<th>time (UTC)</th><th>finding</th><th>container or host</th><th>uid</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _charts(alerts: list[dict[str, Any]]) -> str:
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        by_subject[_subject(alert)].append(alert)
    parts = [
        '<h2 id="activity">Archive and egress over time, per container</h2>',
        '<p class="legend muted"><i class="archive"></i>archive, encryption, staging'
        '<i class="egress"></i>transfer (bar height: bytes sent, log scale)</p>',
    ]
    for subject, group in by_subject.items():
        chart = svg(f"archive and egress activity of {subject}", group)
        if chart:
            parts.append(f'<h3 class="code">{e(subject)}</h3>{chart}')
    return "".join(parts)


def _finding(number: int, alert: dict[str, Any], suppressor: Suppressor) -> str:
    info = alert.get("finding_info") or {}
    analytic = info.get("analytic") or {}
    container = alert_container(alert)
    k8s = (alert.get("unmapped") or {}).get("k8s") or {}
    facts = [
        ("uid", info.get("uid")),
        ("analytic", f"{analytic.get('uid', '')}: {analytic.get('name', '')}"),
        ("status", alert.get("status_detail") or alert.get("status")),
        ("risk score", alert.get("risk_score")),
        ("first seen", clock(info.get("first_seen_time"), millis=True)),
        ("last seen", clock(info.get("last_seen_time"), millis=True)),
        ("container", container.get("uid")),
        ("container name", container.get("name")),
        ("image", (container.get("image") or {}).get("name")),
        (
            "namespace / pod",
            " / ".join(str(v) for v in (k8s.get("namespace"), k8s.get("pod")) if v),
        ),
        ("host", (alert.get("device") or {}).get("hostname")),
        ("why", info.get("desc")),
    ]
    facts_html = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts if v)
    return (
        f'<section class="finding" id="finding-{number}">'
        f"<h2>{_severity(alert)} {e(info.get('title'))}</h2><dl>{facts_html}</dl>"
        f"<h3>ATT&amp;CK</h3>{_attack(info)}"
        f"<h3>Evidence timeline</h3>{_timeline(alert)}"
        f"<h3>Process tree</h3>{_tree(alert)}"
        f"<h3>Verify: profiles and suppressions that came closest</h3>"
        f"{_verify(alert, suppressor)}</section>"
    )


def _attack(info: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td class="code">{e((a.get("technique") or {}).get("uid"))}</td>'
        f"<td>{e((a.get('technique') or {}).get('name'))}</td>"
        f'<td class="code">{e((a.get("tactic") or {}).get("uid"))}</td>'
        f"<td>{e((a.get('tactic') or {}).get('name'))}</td></tr>"
        for a in info.get("attacks") or []
    )
    if not rows:
        return '<p class="muted">no technique mapped</p>'
    return (
        "<table><thead><tr><th>technique</th><th>name</th><th>tactic</th><th>name</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _timeline(alert: dict[str, Any]) -> str:
    rows = []
    evidences = sorted(alert.get("evidences") or [], key=lambda ev: evidence_time(ev) or 0)
    for evidence in evidences:
        data = evidence.get("data") or {}
        process = evidence.get("process") or {}
        dst = evidence.get("dst_endpoint") or {}
        where = dst.get("hostname") or dst.get("ip") or ""
        if where and dst.get("port") is not None:
            where = f"{where}:{dst['port']}"
        sent = evidence_bytes_out(evidence)
        ref = evidence_ref(evidence)
        record = ":".join(
            str(v)
            for v in (ref.get("path"), ref.get("line", ref.get("record_id", ref.get("chunk"))))
            if v is not None
        )
        rows.append(
            f"<tr><td>{e(clock(evidence_time(evidence), millis=True))}</td>"
            f"<td>{e(data.get('signal'))}</td>"
            f"<td>{e(data.get('tool'))}</td><td>{e(data.get('explanation'))}</td>"
            f'<td class="code">{e(process.get("cmd_line"))}</td>'
            f'<td class="code">{e((evidence.get("file") or {}).get("path"))}</td>'
            f'<td class="code">{e(where)}</td><td>{e(sent)}</td>'
            f'<td class="code">{e(record)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>time (UTC)</th><th>signal</th><th>tool</th><th>what</th>"
        "<th>command line</th><th>file</th><th>destination</th><th>bytes out</th>"
        f"<th>record</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _tree(alert: dict[str, Any]) -> str:
    """The processes of the evidence under their parents, as far as the alert records them."""
    children: dict[str, dict[str, None]] = defaultdict(dict)
    labels: dict[str, tuple[str, bool]] = {}
    roots: dict[str, None] = {}
    for evidence in alert.get("evidences") or []:
        process = evidence.get("process")
        if not process:
            continue
        chain: list[dict[str, Any]] = []
        while isinstance(process, dict) and len(chain) < 16:
            chain.append(process)
            process = process.get("parent_process")
        child_key = None
        for depth, node in enumerate(chain):
            key = _process_key(node)
            is_evidence = depth == 0
            if key not in labels or is_evidence:
                labels[key] = (_process_label(node), is_evidence or labels.get(key, ("", False))[1])
            if child_key is not None:
                children[key][child_key] = None
                roots.pop(child_key, None)
            if depth == len(chain) - 1 and not any(key in c for c in children.values()):
                roots[key] = None
            child_key = key
    if not labels:
        return '<p class="muted">no process in the evidence</p>'

    def branch(key: str, seen: frozenset[str]) -> str:
        label, is_evidence = labels[key]
        css = ' class="evidence"' if is_evidence else ""
        below = "".join(branch(k, seen | {key}) for k in children.get(key, {}) if k not in seen)
        return (
            f"<li><code{css}>{e(label)}</code>"
            + (f'<ul class="tree">{below}</ul>' if below else "")
            + "</li>"
        )

    return f'<ul class="tree">{"".join(branch(k, frozenset()) for k in roots)}</ul>'


def _process_key(process: dict[str, Any]) -> str:
    return f"{process.get('uid') or ''}|{process.get('pid') or ''}|{process.get('cmd_line') or ''}"


def _process_label(process: dict[str, Any]) -> str:
    pid = process.get("pid")
    name = process.get("cmd_line") or process.get("name") or "?"
    return f"[{pid}] {name}" if pid is not None else str(name)


def _verify(alert: dict[str, Any], suppressor: Suppressor) -> str:
    try:
        matches = near_matches(alert, suppressor)
    except (KeyError, TypeError, ValueError) as exc:  # an alert from a file may be partial
        return f'<p class="muted">cannot verify this alert: {e(exc)}</p>'
    close = sorted((m for m in matches if came_close(m)), key=lambda m: -m.score)[:CLOSEST]
    if not close:
        return f'<p class="muted">none of {len(matches)} profiles and suppressions came close</p>'
    rows = "".join(
        f'<tr><td>{e(m.kind)}</td><td class="code">{e(m.id)}</td>'
        f"<td>{'applies' if m.applies else f'{m.score:.0%} close'}</td>"
        f"<td>{e('; '.join(c.detail for c in m.checks if c.matched))}</td>"
        f"<td>{e('; '.join(c.detail for c in m.checks if not c.matched))}</td></tr>"
        for m in close
    )
    return (
        "<table><thead><tr><th>kind</th><th>id</th><th>verdict</th><th>holds</th>"
        f"<th>does not hold</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _severity(alert: dict[str, Any]) -> str:
    level = _int(alert.get("severity_id"))
    return (
        f'<span class="sev sev{level if 0 <= level <= 6 else 99}">{e(alert.get("severity"))}</span>'
    )


def _subject(alert: dict[str, Any]) -> str:
    container = alert_container(alert)
    if container.get("uid"):
        name = container.get("name")
        short = str(container["uid"])[:12]
        return f"{name} ({short})" if name else short
    return f"host {(alert.get('device') or {}).get('hostname') or '?'}"


def _uid(alert: dict[str, Any]) -> str:
    return str((alert.get("finding_info") or {}).get("uid", ""))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

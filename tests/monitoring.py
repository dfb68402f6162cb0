"""The files an operator wires up to watch syncd (monitoring/): their PromQL expressions, the
metric names those use, and the names a /metrics page exposes. Shared by the unit test of the
files and the integration test that scrapes a real `syncd run`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "monitoring" / "prometheus" / "syncd-alerts.yml"
RULE_TESTS = REPO / "monitoring" / "prometheus" / "syncd-alerts.test.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "syncd-dashboard.json"
OPERATIONS = REPO / "docs" / "operations.md"

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus itself writes for every scrape target."""

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARIABLES = re.compile(r"\$\{?\w+\}?")
_BRACKETED = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKENS = re.compile(r"(?P<number>\d[\w.]*)|(?P<word>[A-Za-z_:][\w:]*)(?P<call>\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "inf", "nan"})
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("_sum", "_count")}


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run promtool in monitoring/prometheus/; fails (never skips) when it is not installed."""
    program = shutil.which("promtool")
    assert program, "promtool is missing: `make install` installs it (Debian package prometheus)"
    return subprocess.run([program, *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False, cwd=RULES.parent)


def rule_expressions() -> dict[str, str]:
    """Alert name -> its PromQL expression."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def dashboard_expressions() -> dict[str, str]:
    """'panel title/refId' -> PromQL expression of every query of the dashboard."""
    return {f"{panel['title']}/{target['refId']}": target["expr"]
            for panel in dashboard_panels() for target in panel.get("targets", [])}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, Grafana
    variables, label matchers, ranges, grouping clauses, numbers, keywords and function calls
    are taken out."""
    text = _GRAFANA_VARIABLES.sub("", _STRINGS.sub("", expr))
    text = _GROUPING.sub(" ", _BRACKETED.sub(" ", text))
    return {m["word"] for m in _TOKENS.finditer(text)
            if m["word"] and not m["call"] and m["word"].lower() not in _KEYWORDS}


def exposed_names(exposition: str) -> set[str]:
    """Every series name a /metrics page in Prometheus text format offers, including those
    of metrics that have no sample yet (only their HELP and TYPE lines)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` on a /metrics page (None if it has none)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def used_names() -> dict[str, set[str]]:
    """Metric name -> where the alert rules and the dashboard use it (Prometheus's own excepted)."""
    uses: dict[str, set[str]] = {}
    expressions = {**{f"alert {k}": v for k, v in rule_expressions().items()},
                   **{f"panel {k}": v for k, v in dashboard_expressions().items()}}
    for where, expr in expressions.items():
        for name in metric_names(expr) - PROMETHEUS_OWN:
            uses.setdefault(name, set()).add(where)
    return uses

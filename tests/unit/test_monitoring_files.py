"""The monitoring files shipped for operators: the Prometheus alert rules pass `promtool check`
and their own `promtool test rules`, every alert has its runbook section, the Grafana dashboard
is importable and every query parses, and both use only metrics syncd has.

promtool comes with Debian's prometheus package (`make install`); without it these tests fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from syncd.service.metrics import Metrics
from tests.monitoring import (
    DASHBOARD,
    OPERATIONS,
    RULE_TESTS,
    RULES,
    dashboard_expressions,
    dashboard_panels,
    exposed_names,
    metric_names,
    promtool,
    rule_expressions,
    used_names,
)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def heading_anchors(markdown: str) -> dict[str, str]:
    """GitHub's anchor of every heading -> the heading's text."""
    anchors = {}
    for heading in re.findall(r"(?m)^#{1,6} (.+)$", markdown):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors[slug] = heading
    return anchors


# -- Prometheus alert rules -----------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test["alert_rule_test"]]
    for name in rule_expressions():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"{name}: no test makes it fire"
        assert [] in expected, f"{name}: no test checks that it stays quiet"


def test_every_alert_has_severity_summary_and_its_runbook_section() -> None:
    anchors = heading_anchors(OPERATIONS.read_text())
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        name = rule["alert"]
        assert re.fullmatch(r"Syncd[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operations.md", name
        assert anchor in anchors, f"{name}: no heading of docs/operations.md has anchor #{anchor}"
        assert anchors[anchor].startswith("8.") and name in anchors[anchor], (name, anchors[anchor])


def test_operations_doc_names_every_alert_in_its_monitoring_table() -> None:
    text = OPERATIONS.read_text()
    monitoring = text[text.index("## 4. Monitoring"):text.index("## 5. ")]
    for name in rule_expressions():
        assert re.search(rf"(?m)^\| `{name}` \|", monitoring), name


def test_documented_prometheus_config_is_valid(tmp_path: Path) -> None:
    """The prometheus.yml lines of operations.md section 4, loading this rules file."""
    text = OPERATIONS.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text[text.index("## 4. Monitoring"):], re.S)
    config = next(block for block in blocks if "rule_files:" in block)
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace("/etc/prometheus/rules/syncd-alerts.yml", str(RULES)))
    result = promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in result.stdout


# -- Grafana dashboard ----------------------------------------------------------------------------


def test_dashboard_is_importable_with_a_datasource_and_a_source_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["source"]["datasource"]["uid"] == "${datasource}"
    assert "source" in variables["source"]["query"]


def test_every_panel_has_a_promql_query_on_the_chosen_datasource() -> None:
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
            assert target["expr"].strip(), title
            assert metric_names(target["expr"]), f"{title}: the query uses no metric"
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, title


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, Grafana's variables filled in."""
    def filled(expr: str) -> str:
        expr = re.sub(r"\$__(rate_)?(interval|range)", "5m", expr)
        return re.sub(r"\$\{?source\}?", ".*", expr)
    records = [{"record": f"syncd_dashboard:query_{i}", "expr": filled(expr)}
               for i, expr in enumerate(dashboard_expressions().values())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the metrics they use -------------------------------------------------------------------------


def test_rules_and_dashboard_use_only_metrics_syncd_has() -> None:
    declared = exposed_names(generate_latest(Metrics().registry).decode())
    unknown = {name: sorted(where) for name, where in used_names().items() if name not in declared}
    assert not unknown


def test_dashboard_and_rules_cover_the_metrics_operators_need() -> None:
    used = used_names()
    for name in ("syncd_replication_lag_seconds", "syncd_source_up", "syncd_source_active",
                 "syncd_binlog_retention_headroom_seconds", "syncd_dead_letters_pending",
                 "syncd_mapping_paused", "syncd_apply_latency_seconds_bucket"):
        assert name in used, name


@pytest.mark.parametrize(("expr", "names"), [
    ('up{job="syncd"} == 0', {"up"}),
    ("absent(syncd_source_up)", {"syncd_source_up"}),
    ('max by (source) (a_seconds{source=~"$source"} and on (instance, source) b == 1) > 300',
     {"a_seconds", "b"}),
    ('histogram_quantile(0.99, sum by (source, le) (rate(h_bucket{x="by (y)"}[$__rate_interval])))',
     {"h_bucket"}),
    ("time() - max without (instance) (s_since_seconds offset 1d)", {"s_since_seconds"}),
    ("sum(rate(c_total[5m:1m])) by (mapping) / ignoring (kind) group_left d", {"c_total", "d"}),
    ('label_replace(m, "dst", "$1", "src", "(.*)") * 1e3 unless bool n', {"m", "n"}),
])
def test_metric_names_of_a_promql_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exposed_names_include_metrics_without_samples() -> None:
    metrics = Metrics()
    metrics.set_source_up("shop", True)
    names = exposed_names(generate_latest(metrics.registry).decode())
    assert {"syncd_source_up", "syncd_mapping_paused", "syncd_changes_read_total",
            "syncd_apply_latency_seconds_bucket", "syncd_apply_latency_seconds_count"} <= names

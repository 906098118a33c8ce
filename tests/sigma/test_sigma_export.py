"""`tidewaiter sigma export`: the catalog as Sigma rules that pySigma loads and a backend
converts, that behave like the catalog on single records, and the recall they keep."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sigma.backends.elasticsearch import EqlBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType

from tests import builders as b
from tidewaiter.cli.main import main
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.catalog import load as load_catalog
from tidewaiter.sigma.export import export
from tidewaiter.sigma.load import Rules, load_documents
from tidewaiter.sigma.recall import measure

ROOT = Path(__file__).resolve().parents[2]
RULES = export()


def collection() -> SigmaCollection:
    return SigmaCollection.from_yaml("---\n".join(r.yaml() for r in RULES), collect_errors=True)


def test_every_exported_rule_loads_in_pysigma_without_error() -> None:
    loaded = collection()
    assert len(loaded.rules) == len(RULES)
    assert [(r.title, r.errors) for r in loaded.rules if r.errors] == []
    platforms = {
        r.logsource.product for r in loaded.rules if not isinstance(r, SigmaCorrelationRule)
    }
    assert platforms == {"linux", "windows", "macos"}
    categories = {
        r.logsource.category for r in loaded.rules if not isinstance(r, SigmaCorrelationRule)
    }
    assert categories == {"process_creation", "file_event", "network_connection"}


def test_the_archive_then_transfer_analytic_is_a_temporal_ordered_correlation() -> None:
    loaded = collection()
    loaded.resolve_rule_references()  # raises when a correlation names a rule not exported
    correlations = [r for r in loaded.rules if isinstance(r, SigmaCorrelationRule)]
    assert correlations
    exfil = load_catalog().analytics["tw-archive-exfil"]
    groups = set()
    for rule in correlations:
        assert rule.type is SigmaCorrelationType.TEMPORAL_ORDERED
        assert rule.timespan.seconds == 900  # the correlation window
        assert str(rule.level) == exfil.priority
        first, then = (ref.rule for ref in rule.rules)
        assert any(str(t).startswith("attack.t1560") for t in first.tags)
        assert any(str(t).startswith(("attack.t1048", "attack.t1041")) for t in then.tags)
        assert first.logsource.product == then.logsource.product
        groups.add((first.logsource.product, tuple(rule.group_by or ())))
    assert ("linux", ("ContainerId",)) in groups
    assert {
        ("linux", ("Computer",)),
        ("windows", ("Computer",)),
        ("macos", ("Computer",)),
    } <= groups


def test_a_backend_converts_every_rule() -> None:
    """The Elasticsearch EQL backend: single-event rules to queries, correlations to sequences."""
    singles = [r for r in RULES if "correlation" not in r.body]
    ordered = collection()
    queries = EqlBackend().convert(ordered)
    sequences = [q for q in queries if q.startswith("sequence by ")]
    assert len(sequences) == len(RULES) - len(singles)
    assert all("with maxspan=15m" in q for q in sequences)
    assert any(q.startswith("sequence by ContainerId") for q in sequences)
    for rule in singles:  # referenced rules are not output alone; convert each on its own
        single = SigmaCollection.from_yaml(rule.yaml())
        [query] = EqlBackend().convert(single)
        assert query.startswith("any where "), rule.name


def test_tags_level_and_false_positives_come_from_the_catalog() -> None:
    catalog = load_catalog()
    by_name = {r.name: r.body for r in RULES}
    archive = by_name["tw_archive_linux"]
    assert archive["level"] == catalog.analytics["tw-archive-created"].priority
    assert archive["falsepositives"] == [catalog.analytics["tw-archive-created"].false_positives]
    assert {"attack.collection", "attack.t1560.001", "attack.t1560.002"} <= set(archive["tags"])
    upload = by_name["tw_upload_linux"]
    assert {"attack.exfiltration", "attack.t1048", "attack.t1567.002"} <= set(upload["tags"])
    assert "tw_archive_windows" in by_name
    assert "makecab" in by_name["tw_archive_windows"]["description"]
    assert "makecab" not in by_name["tw_archive_linux"]["description"]  # a Windows tool only


def exported() -> Rules:
    rules = Rules()
    load_documents([r.body for r in RULES if "correlation" not in r.body], Path("x"), rules)
    assert rules.problems == []
    return rules


@pytest.mark.parametrize(
    ("cmd", "rule"),
    [
        ("tar -czf /tmp/a.tgz /etc", "Archive created"),
        ("tar czf /tmp/a.tgz /etc", "Archive created"),
        ("tar -xzf /tmp/a.tgz", None),  # extraction
        ("gzip -k report.csv", "Archive created"),
        ("gzip -d report.csv.gz", None),
        ("7z a -pX out.7z /srv", "Archive created"),
        ("7z x out.7z", None),
        ("curl -T /tmp/a.tgz https://203.0.113.9/u", "File transfer tool"),
        ("curl --data-binary @/tmp/a.tgz https://203.0.113.9/u", "File transfer tool"),
        ("curl -s https://example.com/", None),  # a download
        ("scp /tmp/a.tgz user@203.0.113.9:/x", "File transfer tool"),
        ("aws s3 cp /tmp/a.tgz s3://bucket/a.tgz", "File transfer tool"),
        ("aws s3 cp s3://bucket/a.tgz /tmp/a.tgz", None),  # a download
        ("nc -l -p 4444", None),  # listening
        ("openssl enc -aes-256-cbc -in a.tgz -out a.enc", "Data encrypted"),
        ("openssl enc -d -aes-256-cbc -in a.enc", None),
        ("docker cp api:/etc ./out", "Container data"),
        ("docker cp ./in api:/tmp", None),  # into a container
    ],
)
def test_exported_rules_read_single_commands_like_the_catalog(cmd: str, rule: str | None) -> None:
    path = "/usr/bin/" + cmd.split(maxsplit=1)[0]
    signals = exported().signals(b.launch(cmd, path=path), AddressPolicy())
    titles = [s.rule.title for s in signals if s.rule]
    if rule is None:
        assert titles == []
    else:
        assert [t for t in titles if t.startswith(rule)], titles


def test_sigma_export_writes_a_folder_pysigma_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sigma", "export", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.rglob("*.yml"))
    assert len(files) == len(RULES)
    assert {f.parent.name for f in files} == {"linux", "windows", "macos", "correlation"}
    loaded = SigmaCollection.load_ruleset([tmp_path], collect_errors=True)
    assert [r.title for r in loaded.rules if r.errors] == []
    capsys.readouterr()
    assert main(["sigma", "export"]) == 0
    assert len(list(yaml.safe_load_all(capsys.readouterr().out))) == len(RULES)


def test_recall_plain_sigma_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    figures = measure(ROOT / "scenarios")
    with capsys.disabled():
        print("\nSigma recall on the scenario set:\n  " + "\n  ".join(figures.lines()))
    assert figures.tidewaiter == figures.expectations  # tidewaiter meets every expectation
    assert 0 < figures.any_match <= figures.tidewaiter
    assert figures.correlated <= figures.any_match
    # the scenarios plain Sigma misses entirely are those seen only through runtime APIs
    for missed in figures.missed:
        scenario = yaml.safe_load(
            (ROOT / "scenarios" / "attack" / missed / "scenario.yaml").read_text()
        )
        assert scenario["source"] in ("docker-events", "k8s-audit"), missed

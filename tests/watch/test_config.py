"""The --config file says what the flags say; --check-config validates it and exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidewaiter.cli.main import build_parser, main
from tidewaiter.cli.watch import resolve
from tidewaiter.watch.config import ConfigError, WatchSettings


def settings(tmp_path: Path, text: str, *flags: str) -> WatchSettings:
    config = tmp_path / "watch.yaml"
    config.write_text(text)
    args = build_parser().parse_args(["watch", "--config", str(config), *flags])
    return resolve(args)[1]


def test_the_file_uses_the_flag_names_and_the_command_line_wins(tmp_path: Path) -> None:
    got = settings(
        tmp_path,
        """
paths: [/var/log/falco/events.json, -]
db: /var/lib/tidewaiter/tw.duckdb
out: /var/log/tidewaiter/alerts.jsonl
webhook: https://siem.example.com/in
webhook-header-env: {Authorization: TW_TOKEN}
webhook_header_file: [X-Api-Key=/run/secrets/key]
listen: 8765
checkpoint-interval: 2
max-record: 1MiB
from-end: true
""",
        "--checkpoint-interval",
        "9",
    )
    assert got.paths == ("/var/log/falco/events.json", "-")
    assert got.db == Path("/var/lib/tidewaiter/tw.duckdb")
    assert got.webhook_headers_env == {"Authorization": "TW_TOKEN"}
    assert got.webhook_headers_file == {"X-Api-Key": "/run/secrets/key"}
    assert got.listen == ("127.0.0.1", 8765)  # loopback unless a host is named
    assert got.checkpoint_interval == 9.0  # the flag, not the file
    assert got.max_record == 1 << 20
    assert got.from_end is True
    assert got.state_dir == Path("/var/lib/tidewaiter/tw.duckdb.watch")


def test_detection_flags_are_settings_too(tmp_path: Path) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text("paths: [a.log]\nwindow: 300\ninternal: [10.0.0.0/8, 192.168.0.0/16]\n")
    args = build_parser().parse_args(["watch", "--config", str(config)])
    merged, _ = resolve(args)
    assert merged.window == 300.0
    assert merged.internal == ["10.0.0.0/8", "192.168.0.0/16"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paths: [a]\nwebhok: https://x\n", "unknown setting 'webhok'; the settings are: "),
        ("paths: [a]\nwindow: -3\n", "window: '-3' is not a duration above 0"),
        ("paths: [a]\nlisten: [1, 2]\n", "listen: expected a single value"),
        ("paths: [a]\nfrom-end: yes please\n", "from-end: expected true or false"),
        ("- a\n- b\n", "expected a mapping of settings"),
        ("checkpoint-interval: 1\n", "nothing to watch"),
    ],
)
def test_a_bad_setting_is_named_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        settings(tmp_path, text)


def test_check_config_validates_and_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text(
        f"paths: [{tmp_path / 'falco.jsonl'}]\ndb: {tmp_path / 'tw.duckdb'}\n"
        "webhook: https://siem.example.com/in\nwebhook-header-env: {Authorization: TW_TOKEN}\n"
    )
    monkeypatch.setenv("TW_TOKEN", "Bearer s3cret")
    assert main(["watch", "--config", str(config), "--check-config"]) == 0
    err = capsys.readouterr().err
    assert "configuration OK" in err
    assert "s3cret" not in err
    assert not (tmp_path / "tw.duckdb").exists()  # checking creates nothing

    monkeypatch.delenv("TW_TOKEN")
    rules = tmp_path / "suppress.yaml"
    rules.write_text("suppressions:\n  - id: x\n")
    with config.open("a") as more:
        more.write(f"suppressions: [{rules}]\n")
    assert main(["watch", "--config", str(config), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert "the environment variable TW_TOKEN is not set" in err
    assert str(rules) in err


def test_credentials_in_the_webhook_url_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["watch", "x.log", "--db", str(tmp_path / "tw.duckdb"), "--webhook", "https://u:t@h/"]
    )
    assert code == 2
    assert "give them as a header from the environment or a file" in capsys.readouterr().err


def test_the_environment_sits_between_the_flags_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text("paths: [in.log]\ncheckpoint-interval: 7\nwindow: 300\nidle-flush: 9\n")
    monkeypatch.setenv("TIDEWAITER_CHECKPOINT_INTERVAL", "3")
    monkeypatch.setenv("TIDEWAITER_WINDOW", "600")
    monkeypatch.setenv("TIDEWAITER_INTERNAL", "10.0.0.0/8, 192.168.0.0/16")
    monkeypatch.setenv("TIDEWAITER_WEBHOOK_HEADER_ENV", "Authorization=TW_TOKEN")
    monkeypatch.setenv("TIDEWAITER_FROM_END", "yes")
    monkeypatch.setenv("TIDEWAITER_METRICS", "[::]:9090")
    monkeypatch.setenv("TIDEWAITER_CONFIG", str(config))  # the file itself, as a container says
    args = build_parser().parse_args(["watch", "--window", "120"])
    merged, got = resolve(args)
    assert got.paths == ("in.log",)  # file over default
    assert got.idle_flush == 9.0
    assert got.checkpoint_interval == 3.0  # environment over file
    assert merged.internal == ["10.0.0.0/8", "192.168.0.0/16"]
    assert got.webhook_headers_env == {"Authorization": "TW_TOKEN"}
    assert got.from_end is True
    assert got.metrics == ("::", 9090)
    assert merged.window == 120.0  # flag over environment


def test_a_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEWAITER_PATHS", "a.log")
    monkeypatch.setenv("TIDEWAITER_CHECKPOINT_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="environment: checkpoint-interval: 'soon' is not"):
        resolve(build_parser().parse_args(["watch"]))
    monkeypatch.setenv("TIDEWAITER_CHECKPOINT_INTERVAL", "2")
    monkeypatch.setenv("TIDEWAITER_SENSOR", "maybe")
    with pytest.raises(ConfigError, match="TIDEWAITER_SENSOR: 'maybe' is not true or false"):
        resolve(build_parser().parse_args(["watch"]))


def test_check_config_shows_the_effective_settings_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text(f"paths: [{tmp_path / 'a.log'}]\nwindow: 300\n")
    monkeypatch.setenv("TW_TOKEN", "Bearer s3cret")
    monkeypatch.setenv("TIDEWAITER_WEBHOOK", "https://hooks.example.com/services/T0/B0/xyzSECRET")
    monkeypatch.setenv("TIDEWAITER_WEBHOOK_HEADER_ENV", "Authorization=TW_TOKEN")
    monkeypatch.setenv("TIDEWAITER_DB", str(tmp_path / "tw.duckdb"))
    monkeypatch.setenv("TIDEWAITER_WINDOWS", "1")  # a typo
    code = main(["watch", "--config", str(config), "--idle-flush", "5", "--check-config"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "s3cret" not in err
    assert "xyzSECRET" not in err
    lines = {line.split()[0]: line for line in err.splitlines() if line.startswith("  ")}
    assert lines["webhook"].split()[1:] == ["https://hooks.example.com/****", "(environment)"]
    assert "Authorization from $TW_TOKEN (set)" in lines["webhook-header-env"]
    assert lines["window"].split()[1:] == ["300.0", f"({config})"]
    assert lines["idle-flush"].split()[1:] == ["5.0", "(flag)"]
    assert lines["db"].split()[1:] == [str(tmp_path / "tw.duckdb"), "(environment)"]
    assert lines["container-ttl"].split()[1:] == ["3600.0", "(default)"]
    assert "TIDEWAITER_WINDOWS is set but names no setting" in err

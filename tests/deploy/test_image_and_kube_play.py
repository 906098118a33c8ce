"""The image builds here from a locally made base, and the DaemonSet's pod runs under
`podman kube play`: a Tetragon-format attack appended to the export file on the host path comes
out as an alert in the pod's sink, /metrics and /readyz answer inside the pod with the counts
fed, and investigate and suppress add work against the store the pod's watch holds.

Podman 4.3 refuses DaemonSet documents, so the DaemonSet's own pod template is played as a
Deployment; the host paths are moved to this test's folders and the image is the one built here.
The tests hold their own lock on Podman's storage under the cache, so concurrent runs wait
rather than collide; no network is used (`--network none`).
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy import podman as pmod
from tests.watch.harness import poll
from tests.watch.scenario import START, chain, container_id, noise, tetragon_attack

DEPLOY = pmod.ROOT / "deploy"
HOST_PATHS = {
    "/var/run/cilium/tetragon": "tetragon",
    "/var/lib/tidewaiter": "store",
    "/var/log/tidewaiter": "alerts",
}
FETCH = (
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    r = urllib.request.urlopen('http://127.0.0.1:9090' + sys.argv[1], timeout=10)\n"
    "    print(r.status); sys.stdout.write(r.read().decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code); sys.stdout.write(e.read().decode())\n"
)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pmod.Podman, str]]:
    pmod.require()
    with pmod.exclusive():  # two runs never share the storage, the image tag or the pod name
        pm = pmod.podman()
        started = time.monotonic()
        tag = pmod.build(pm, tmp_path_factory.mktemp("image"))
        print(f"image built in {time.monotonic() - started:.0f} s")
        yield pm, tag


def test_the_image_runs_as_non_root_with_only_the_runtime_dependencies(
    image: tuple[pmod.Podman, str],
) -> None:
    pm, tag = image
    assert pm("run", "--rm", "--network", "none", tag, "--version").stdout.startswith("tidewaiter")
    probe = (
        "import os, importlib.util as u; print(os.getuid()); "
        "print(sorted(m for m in ('duckdb', 'prometheus_client', 'msgspec', 'hatchling', 'pip',"
        " 'pytest', 'kubernetes') if u.find_spec(m)))"
    )
    out = pm(
        "run", "--rm", "--network", "none", "--entrypoint", "/opt/tidewaiter/bin/python", tag,
        "-c", probe,
    ).stdout.split("\n")  # fmt: skip
    assert out[0] == "65532"
    assert out[1] == "['duckdb', 'msgspec', 'prometheus_client']"
    config = json.loads(pm("image", "inspect", tag).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["tidewaiter"]
    assert config["User"] == "65532:65532"


def _pod_template_as_deployment(workdir: Path, tag: str) -> Path:
    daemonset = yaml.safe_load((DEPLOY / "tetragon" / "daemonset.yaml").read_text())
    template = copy.deepcopy(daemonset["spec"]["template"])
    spec = template["spec"]
    for volume in spec["volumes"]:
        host = volume.get("hostPath")
        if host is not None:
            host["path"] = str(workdir / HOST_PATHS[host["path"]])
            host["type"] = "Directory"
    for container in spec["containers"]:
        _for_podman(container, tag)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**daemonset["metadata"], "name": "tw-kube-play"},
        "spec": {"replicas": 1, "selector": daemonset["spec"]["selector"], "template": template},
    }
    path = workdir / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment))
    return path


def _for_podman(container: dict[str, Any], tag: str) -> None:
    container["image"] = tag
    # Waiting findings are decided after this long without input (120 s by default): an
    # environment variable overrides the ConfigMap's file, as in a real overlay.
    container["env"].append({"name": "TIDEWAITER_IDLE_FLUSH", "value": "2"})
    # Podman turns a containerPort into a published port, which needs a network; the test has
    # none (`--network none`) and reaches the port from inside the pod instead.
    numbers = {port["name"]: port["containerPort"] for port in container.pop("ports")}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        get["port"] = numbers.get(get["port"], get["port"])


def _container(pm: pmod.Podman, deployment: str) -> str:
    """The name Podman gave the pod's one container (<deployment>-pod-0-<container>)."""
    [name] = [
        c["Names"][0]
        for c in json.loads(pm("ps", "--format", "json").stdout)
        if c["Names"][0].startswith(f"{deployment}-pod-")
    ]
    return str(name)


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_the_daemonset_pod_detects_an_attack_appended_on_the_host_path(
    image: tuple[pmod.Podman, str], tmp_path: Path
) -> None:
    pm, tag = image
    for folder in HOST_PATHS.values():
        (tmp_path / folder).mkdir()
    export = tmp_path / "tetragon" / "tetragon.log"
    export.touch()
    manifest = _pod_template_as_deployment(tmp_path, tag)
    configmap = DEPLOY / "tetragon" / "configmap.yaml"
    played = False
    # Podman resolves a pod's secret volume from its own secrets, which hold the Secret document
    pm("secret", "rm", "tidewaiter-webhook", check=False)
    pm("secret", "create", "tidewaiter-webhook", str(DEPLOY / "secret.yaml"))
    try:
        pm("kube", "play", "--network", "none", "--configmap", str(configmap), str(manifest))
        played = True
        name = _container(pm, "tw-kube-play")

        def inside(*args: str) -> str:
            return pm("exec", name, *args).stdout

        def fetch(path: str) -> tuple[int, str]:
            status, _, body = inside("/opt/tidewaiter/bin/python", "-c", FETCH, path).partition(
                "\n"
            )
            return int(status), body

        poll(lambda: _ready(inside), 60, "the pod's watch to serve its metrics")
        with export.open("ab") as out:
            out.write(tetragon_attack(1))
        alerts_file = tmp_path / "alerts" / "alerts.jsonl"

        def alerts() -> list[dict[str, Any]]:
            if not alerts_file.exists():
                return []
            return [json.loads(line) for line in alerts_file.read_text().splitlines() if line]

        try:
            [alert] = poll(alerts, 90, "the alert in the pod's sink on the host path")
        except AssertionError:
            raise AssertionError(pm("logs", name, check=False).stderr[-3000:]) from None
        assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
        containers = {e["container"]["uid"][:8] for e in alert["evidences"]}
        assert containers == {"00000001"}  # the chain appended, in its own container

        def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            status, body = fetch("/metrics")
            samples = _metrics(body) if status == 200 else {}
            sent = samples.get(("tidewaiter_alerts_delivered_total", (("sink", "out"),)))
            saved = ("tidewaiter_checkpoint_age_seconds", ()) in samples
            return samples if sent == 1 and saved else None

        samples = poll(counted, 60, "the delivered alert and a checkpoint in /metrics")
        where = (("format", "tetragon"), ("input", "/var/run/cilium/tetragon/tetragon.log"))
        assert samples[("tidewaiter_records_read_total", where)] == 9
        assert samples[("tidewaiter_events_read_total", where)] == 9
        found = (("analytic", "tw-archive-exfil"), ("severity", alert["severity"].lower()))
        assert samples[("tidewaiter_findings_total", found)] == 1
        assert fetch("/readyz") == (200, "ready\n")
        assert fetch("/healthz") == (200, "ok\n")

        uid = alert["finding_info"]["uid"]
        investigated = json.loads(inside("tidewaiter", "investigate", uid[:12], "--json"))
        assert investigated["alert"]["finding_info"]["uid"] == uid
        pm(
            "exec", name, "tidewaiter", "suppress", "add", "api-export",
            "--image", "registry.example.com/payments/*", "--reason", "partner export",
            "--author", "sec@example.com",
        )  # fmt: skip
        with export.open("ab") as out:
            out.write(tetragon_attack(2))

        def held_back() -> list[str]:
            out = inside("tidewaiter", "alerts", "--suppressed", "--json")
            return [json.loads(line)["finding_info"]["uid"] for line in out.splitlines()]

        [second] = poll(held_back, 90, "the next finding, held back by the new suppression")
        assert second != uid
        assert len(alerts()) == 1
    finally:
        if played:
            pm("kube", "down", str(manifest), check=False)
        pm("secret", "rm", "tidewaiter-webhook", check=False)


def _ready(inside: Any) -> bool:
    try:
        out = inside("/opt/tidewaiter/bin/python", "-c", FETCH, "/healthz")
    except AssertionError:  # the container is not up yet
        return False
    return bool(out.startswith("200"))


POST = (
    "import sys, urllib.request\n"
    "for line in sys.stdin.buffer.read().splitlines():\n"
    "    request = urllib.request.Request('http://127.0.0.1:8765/', data=line,\n"
    "                                     headers={'Content-Type': 'application/json'})\n"
    "    print(urllib.request.urlopen(request, timeout=10).status)\n"
)


def test_the_falco_webhook_deployment_turns_posted_events_into_an_alert(
    image: tuple[pmod.Podman, str], tmp_path: Path
) -> None:
    """Falco's http_output POSTs each event as one JSON body; the Deployment's pod receives
    them on its port, journals them on the claimed volume and alerts (stdout and the file)."""
    pm, tag = image
    docs = list(yaml.safe_load_all((DEPLOY / "falco-webhook" / "deployment.yaml").read_text()))
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [claim] = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    volume = claim["metadata"]["name"]
    deployment["metadata"]["name"] = "tw-kube-play-falco"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    _for_podman(container, tag)
    manifest = tmp_path / "falco.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    configmap = DEPLOY / "falco-webhook" / "configmap.yaml"
    # Kubernetes makes the claim writable for fsGroup 65532; Podman 4.3 ignores fsGroup, so the
    # claim's volume is made here and given to the pod's user as a cluster would.
    pm("volume", "rm", "--force", volume, check=False)
    pm("volume", "create", volume)
    mountpoint = json.loads(pm("volume", "inspect", volume).stdout)[0]["Mountpoint"]
    os.chown(mountpoint, 65532, 65532)
    pm("secret", "rm", "tidewaiter-webhook", check=False)
    pm("secret", "create", "tidewaiter-webhook", str(DEPLOY / "secret.yaml"))
    played = False
    try:
        pm("kube", "play", "--network", "none", "--configmap", str(configmap), str(manifest))
        played = True
        name = _container(pm, "tw-kube-play-falco")
        poll(lambda: _ready(lambda *a: pm("exec", name, *a).stdout), 60, "the receiver")
        falco = b"".join([*chain(7, START), noise(random.Random(0), START + 2000)])
        posted = pm("exec", "-i", name, "/opt/tidewaiter/bin/python", "-c", POST, stdin=falco)
        assert posted.stdout.split() == ["200"] * len(falco.splitlines())

        def alerts() -> list[dict[str, Any]]:
            out = pm("exec", name, "tidewaiter", "alerts", "--json").stdout  # via the socket
            return [json.loads(line) for line in out.splitlines()]

        [alert] = poll(alerts, 90, "the alert from the posted Falco events")
        assert {e["container"]["uid"] for e in alert["evidences"]} == {container_id(7)}
        assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
        logged = pm("logs", name).stdout  # json: true puts alerts on stdout as well
        assert alert["finding_info"]["uid"] in logged
        assert json.loads(pm("exec", name, "id", "-u").stdout) == 65532
    finally:
        if played:
            pm("kube", "down", str(manifest), check=False)
        pm("secret", "rm", "tidewaiter-webhook", check=False)
        pm("volume", "rm", "--force", volume, check=False)

"""Docker engine events: ``docker events --format '{{json .}}'`` lines, or the Engine API's
``GET /events`` stream (the same object; the SDKs' ``events(decode=True)`` yield it too).

Each record is one thing the daemon did to a container or an image. Only the calls that matter
for staging and moving data out become events: exec (the command follows the colon in
``Action``), copying out of a container (``archive-path``, and ``copy`` on the old endpoint),
export, commit, image push, save and tag, and the lifecycle calls that bound them. Docker sends
no host, no user and no mounts. Engines before API 1.22 wrote ``status``/``id``/``from`` instead
of ``Action``/``Actor``; both spellings are read.
"""

from __future__ import annotations

import math
import shlex
from typing import NamedTuple

import msgspec

from tidewaiter.events import Activity, Api, Container, Event, Image, Kind, RawRef
from tidewaiter.identity import normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, RecordError, Source
from tidewaiter.sources.fields import BOM, decode_json_line, parse_time, to_str

Fields = dict[str, object]


class _Call(NamedTuple):
    activity: Activity
    operation: str  # Api.operation: the producer's verb, lower case


# Container actions tidewaiter uses; anything else (attach, pause, rename, resize, top,
# exec_die, health_status: ...) carries nothing for it.
_CONTAINER = {
    "create": _Call(Activity.OTHER, "create"),
    "start": _Call(Activity.START, "start"),
    "die": _Call(Activity.STOP, "die"),
    "stop": _Call(Activity.STOP, "stop"),
    "kill": _Call(Activity.STOP, "kill"),
    "destroy": _Call(Activity.STOP, "destroy"),
    "exec_create": _Call(Activity.EXEC, "exec_create"),
    "exec_start": _Call(Activity.EXEC, "exec_start"),
    # docker cp CONTAINER:PATH ... (GET /containers/{id}/archive): data leaves the container.
    "archive-path": _Call(Activity.COPY, "copy"),
    "copy": _Call(Activity.COPY, "copy"),  # the removed POST /containers/{id}/copy endpoint
    # docker cp ... CONTAINER:PATH (PUT /containers/{id}/archive): data goes in, not out.
    "extract-to-dir": _Call(Activity.OTHER, "copy-in"),
    "export": _Call(Activity.EXPORT, "export"),
    "commit": _Call(Activity.COMMIT, "commit"),
}
_IMAGE = {
    "push": _Call(Activity.PUSH, "push"),
    "save": _Call(Activity.OTHER, "save"),
    "tag": _Call(Activity.OTHER, "tag"),
}
_EXEC = frozenset({"exec_create", "exec_start"})
# Labels the kubelet's Docker integration (dockershim, cri-dockerd) puts on pod containers.
_POD_NAME = "io.kubernetes.pod.name"
_POD_NAMESPACE = "io.kubernetes.pod.namespace"

_ANY = msgspec.json.Decoder()


@register
class DockerEventsSource(Source):
    name = "docker-events"
    title = "Docker engine events JSON"

    def sniff(self, head: bytes) -> bool:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if not line.startswith(b"{") or (b'"Action"' not in line and b'"status"' not in line):
            return False
        try:
            record = _decode(line)
        except RecordError:
            return False
        if "Action" in record and "Actor" in record:
            return True
        # Before API 1.22 a container event was only these keys.
        return {"status", "id", "from", "time"} <= record.keys()

    def decoder(self, path: str) -> Decoder:
        return DockerEventsDecoder()


class DockerEventsDecoder(Decoder):
    """Docker event lines are independent records: no state between them."""

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        message = _decode(line)
        verb, _, detail = _action(message).partition(":")
        verb = verb.strip()
        object_type = _object_type(message)
        actor_id, attributes = _actor(message)
        if object_type == "container":
            call = _CONTAINER.get(verb)
            if call is None:
                return []
            api = _container_api(call, verb, detail, attributes)
            container = _container(actor_id, attributes, message)
        elif object_type == "image":
            call = _IMAGE.get(verb)
            if call is None:
                return []
            api = _image_api(call, actor_id, attributes)
            container = None
        else:
            return []  # network, volume, daemon, plugin, swarm objects
        return [
            Event(
                time=_time(message),
                kind=Kind.CONTAINER,
                activity=call.activity,
                raw=ref,
                container=container,
                api=api,
            )
        ]


def _decode(line: bytes) -> Fields:
    message = decode_json_line(line, _ANY)
    if not isinstance(message, dict):
        raise RecordError("JSON is not an object")
    return message


def _action(message: Fields) -> str:
    action = message.get("Action")
    if action is None:
        action = message.get("status")
    if action is None:
        raise RecordError("event has no Action")
    if not isinstance(action, str):
        raise RecordError("Action is not a string")
    return action


def _object_type(message: Fields) -> str:
    kind = message.get("Type")
    if kind is None:
        # Before API 1.22 there was no Type: only container events carried "from" (the image).
        return "container" if message.get("from") is not None else "image"
    if not isinstance(kind, str):
        raise RecordError("Type is not a string")
    return kind


def _actor(message: Fields) -> tuple[str | None, Fields]:
    actor = message.get("Actor")
    if actor is None:
        return _plain(message, "id"), {}
    if not isinstance(actor, dict):
        raise RecordError("Actor is not an object")
    attributes = actor.get("Attributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict):
        raise RecordError("Actor.Attributes is not an object")
    return _plain(actor, "ID") or _plain(message, "id"), attributes


def _plain(fields: Fields, key: str) -> str | None:
    """A string field; another JSON type there means the record is not what it claims."""
    value = fields.get(key)
    if value is None or isinstance(value, str):
        return to_str(value)
    raise RecordError(f"{key} is not a string")


def _time(message: Fields) -> float:
    nanos = message.get("timeNano")
    try:
        if isinstance(nanos, int) and not isinstance(nanos, bool) and nanos > 0:
            seconds, rest = divmod(nanos, 1_000_000_000)  # exact, where nanos / 1e9 rounds twice
            moment = seconds + rest / 1e9
        else:
            moment = parse_time(message.get("time"))
    except OverflowError:  # JSON integers have no size limit
        raise RecordError("time out of range") from None
    if not math.isfinite(moment):
        raise RecordError("time out of range")
    return moment


def _container(actor_id: str | None, attributes: Fields, message: Fields) -> Container:
    uid = normalise_container_id(actor_id)
    if uid is None:
        raise RecordError("container event has no Actor.ID")
    image = to_str(attributes.get("image")) or _plain(message, "from")
    return Container(
        uid=uid,
        name=to_str(attributes.get("name")),
        image=_image(image),
        runtime="docker",
        pod_name=to_str(attributes.get(_POD_NAME)),
        namespace=to_str(attributes.get(_POD_NAMESPACE)),
    )


def _image(reference: str | None) -> Image | None:
    """The image as the container was created from it; a reference pinned by digest
    (``repo@sha256:...``) also identifies the image."""
    if reference is None:
        return None
    return Image(name=reference, uid=reference if "@sha256:" in reference else None)


def _container_api(call: _Call, verb: str, detail: str, attributes: Fields) -> Api:
    target = None
    command: tuple[str, ...] = ()
    if verb in _EXEC:
        command = split_command(detail)
    elif call.activity is Activity.COPY:
        target = to_str(attributes.get("path"))  # Docker sends none; a forwarder may add it
    elif verb == "commit":
        target = to_str(attributes.get("imageRef")) or to_str(attributes.get("imageID"))
    return Api(operation=call.operation, resource="container", target=target, command=command)


def _image_api(call: _Call, actor_id: str | None, attributes: Fields) -> Api:
    name = to_str(attributes.get("name"))
    if call.operation == "push":
        target = actor_id or name  # push events name the pushed reference as the Actor.ID
    elif call.operation == "tag":
        target = name  # the new tag; Actor.ID is the image id
    else:
        target = name or actor_id
    return Api(operation=call.operation, resource="image", target=target)


def split_command(text: str) -> tuple[str, ...]:
    """argv from the command in an exec Action, split as a shell would split it.

    Docker joins argv with single spaces and no quoting, so the original word boundaries are
    lost; quotes the command itself carried still group words. Backslashes are literal (Windows
    paths), and text a shell could not split falls back to whitespace. Nothing is evaluated."""
    lexer = shlex.shlex(text.strip(), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return tuple(lexer)
    except ValueError:  # an unbalanced quote
        return tuple(text.split())

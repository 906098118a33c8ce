"""Everything detection remembers, as one blob for a checkpoint.

The correlator's snapshot alone is not enough to carry on after a restart as if none had
happened: the identities are in it too, because an alert's container metadata (image, name,
pod) comes from them. A Falco record names a container by 12 characters and often without its
image; after a restart with empty identities it would replace the episode's rich identity with
that poor one, and the alert would lose its image. The registries seen (familiar or not to a push)
and the address book (which container a Zeek connection belongs to) are in it for the same reason,
and the expiry clock so that containers expire at the same point as without the restart.
"""

from __future__ import annotations

import msgspec

from tidewaiter.pipeline import Engine
from tidewaiter.watch.expiry import Expiry, ExpiryState

STATE_VERSION = 1


class WatchState(msgspec.Struct, array_like=True):
    version: int
    correlation: bytes
    identities: bytes
    addresses: bytes
    expiry: ExpiryState


def snapshot(engine: Engine, expiry: Expiry) -> bytes:
    return msgspec.msgpack.encode(
        WatchState(
            STATE_VERSION,
            engine.correlator.snapshot(),
            engine.identities.snapshot(),
            engine.addresses.snapshot(),
            expiry.snapshot(),
        )
    )


def restore(data: bytes, engine: Engine, expiry: Expiry) -> None:
    """Raises ValueError for state this version cannot read (then start without it)."""
    try:
        state = msgspec.msgpack.decode(data, type=WatchState)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable detection state ({exc})") from None
    if state.version != STATE_VERSION:
        raise ValueError(f"detection state version {state.version}, expected {STATE_VERSION}")
    try:
        engine.correlator.restore(state.correlation)
        engine.identities.restore(state.identities)
        engine.addresses.restore(state.addresses)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable detection state ({exc})") from None
    # A checkpoint saved before records dated far ahead were clamped may hold such a time.
    engine.correlator.clamp(engine.time_ceiling())
    expiry.restore(state.expiry)


def carry_over(old: Engine, new: Engine) -> None:
    """Move detection state to an engine built with a reloaded configuration."""
    new.correlator.restore(old.correlator.snapshot())
    new.identities.restore(old.identities.snapshot())
    new.addresses.restore(old.addresses.snapshot())

"""Continuous detection (`tidewaiter watch`) that survives crashes.

inputs      what an input is (files, stdin, HTTP; a sensor later), the runner's only view of them
lines       bytes → numbered lines → a source's decoder, as ``detect`` frames a file
follow      a file followed like ``tail -F``, with positions that survive restarts and rotation
stream      standard input, read without blocking
journal     HTTP records on disk before they are acknowledged
http_input  Falco http_output / falcosidekick POSTs, journaled, then followed like a file
expiry      per-container state released when a container idles or exits
state       detection state (correlation, identities, addresses, expiry) as one blob
checkpoint  positions and state saved together, atomically, in the store
delivery    every alert to every sink; a failing sink is reported, never fatal
status      the status line and messages on standard error
logs        those messages through logging, as text or JSON lines
metrics     the loop's figures, published once a round, for Prometheus and /readyz
health      /healthz, /readyz and /metrics on their own port
runner      the loop: read, detect, deliver, commit, checkpoint
config      settings from flags, TIDEWAITER_* variables and a YAML file that mirrors them

Delivery is at least once with idempotent sinks: the sinks make an alert durable (file fsync,
spool fsync, store commit) before the checkpoint that covers its events is saved, so after
``kill -9`` the run resumes from the last checkpoint, decides the same alerts again (finding uids
are stable), and every sink drops the uids it already has.

While watch runs it holds the store; ``tidewaiter.store_socket`` serves it to the other commands.
"""

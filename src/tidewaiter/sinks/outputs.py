"""The SIEM and file outputs that ``detect`` and ``watch`` share: Splunk HEC, Elastic bulk, CSV
and timeline CSV. Tokens and keys come from an environment variable or a file, never a flag."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from tidewaiter.sinks.batch import BatchSink, OutputError, Transport, secret
from tidewaiter.sinks.csv_timeline import CsvSink
from tidewaiter.sinks.elastic import INDEX, ElasticTransport
from tidewaiter.sinks.splunk_hec import SOURCETYPE, HecTransport


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SIEM and CSV outputs")
    group.add_argument(
        "--splunk-hec", metavar="URL", help="send alerts to Splunk's HTTP Event Collector at URL"
    )
    group.add_argument("--splunk-token-env", metavar="VAR", help="the HEC token's variable")
    group.add_argument("--splunk-token-file", metavar="PATH", help="the file with the HEC token")
    group.add_argument("--splunk-index", metavar="NAME", help="the Splunk index (default: token's)")
    group.add_argument(
        "--splunk-sourcetype", default=SOURCETYPE, metavar="NAME", help=f"default {SOURCETYPE}"
    )
    group.add_argument(
        "--splunk-ack",
        action="store_true",
        help="count a batch delivered only when HEC's indexer acknowledgement confirms it",
    )
    group.add_argument(
        "--elastic", metavar="URL", help="index alerts as ECS documents through URL/_bulk"
    )
    group.add_argument("--elastic-api-key-env", metavar="VAR", help="the API key's variable")
    group.add_argument("--elastic-api-key-file", metavar="PATH", help="the file with the API key")
    group.add_argument("--elastic-index", default=INDEX, metavar="NAME", help=f"default {INDEX}")
    group.add_argument("--csv", metavar="FILE", help="append one CSV row per finding to FILE")
    group.add_argument(
        "--timeline-csv", metavar="FILE", help="append one CSV row per evidence (Timesketch)"
    )


@dataclass(frozen=True)
class Outputs:
    splunk_hec: str | None = None
    splunk_token_env: str | None = None
    splunk_token_file: str | None = None
    splunk_index: str | None = None
    splunk_sourcetype: str = SOURCETYPE
    splunk_ack: bool = False
    elastic: str | None = None
    elastic_api_key_env: str | None = None
    elastic_api_key_file: str | None = None
    elastic_index: str = INDEX
    csv: str | None = None
    timeline_csv: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Outputs:
        given = {name: getattr(args, name, None) for name in cls.__dataclass_fields__}
        return cls(**{name: value for name, value in given.items() if value is not None})

    def transports(self, timeout: float = 10.0) -> list[Transport]:
        """The HTTP outputs, secrets read now. Raises OutputError."""
        transports: list[Transport] = []
        if self.splunk_hec:
            token = self.splunk_token()
            transports.append(
                HecTransport(
                    self.splunk_hec,
                    token,
                    self.splunk_index,
                    self.splunk_sourcetype,
                    ack=self.splunk_ack,
                    timeout=timeout,
                )
            )
        elif self.splunk_token_env or self.splunk_token_file or self.splunk_ack:
            raise OutputError("a --splunk-* option is given without --splunk-hec URL")
        if self.elastic:
            transports.append(
                ElasticTransport(self.elastic, self.elastic_api_key(), self.elastic_index, timeout)
            )
        elif self.elastic_api_key_env or self.elastic_api_key_file:
            raise OutputError("an --elastic-api-key-* option is given without --elastic URL")
        return transports

    def splunk_token(self) -> str:
        return secret("the Splunk HEC token", self.splunk_token_env, self.splunk_token_file)

    def elastic_api_key(self) -> str:
        return secret("the Elastic API key", self.elastic_api_key_env, self.elastic_api_key_file)

    def refresh(self, transport: object) -> None:
        """Read the secret again (watch's reload). Raises OutputError."""
        if isinstance(transport, HecTransport):
            transport.token = self.splunk_token()
        elif isinstance(transport, ElasticTransport):
            transport.api_key = self.elastic_api_key()

    def csv_sinks(self) -> list[tuple[str, CsvSink]]:
        sinks: list[tuple[str, CsvSink]] = []
        for name, path, timeline in (
            ("csv", self.csv, False),
            ("timeline-csv", self.timeline_csv, True),
        ):
            if path:
                try:
                    sinks.append((name, CsvSink(path, timeline)))
                except OSError as exc:
                    for _, sink in sinks:
                        sink.close()
                    raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        return sinks

    @property
    def names(self) -> list[str]:
        pairs = (
            ("splunk-hec", self.splunk_hec),
            ("elastic", self.elastic),
            ("csv", self.csv),
            ("timeline-csv", self.timeline_csv),
        )
        return [name for name, on in pairs if on]


def batch_sinks(outputs: Outputs) -> list[BatchSink]:
    """detect's HTTP outputs: everything sent in batches when the run ends."""
    return [BatchSink(t, t.size) for t in outputs.transports()]

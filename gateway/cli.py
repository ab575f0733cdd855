"""The ``vrgw`` command: run the gateway, or check a dialplan."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from gateway.dialplan import DialplanError, load_dialplan
from gateway.logs import configure as configure_logs
from gateway.sip.transaction import T1

if TYPE_CHECKING:
    from gateway.app import Settings

DEFAULT_DIALPLAN = Path(__file__).resolve().parent.parent / "dialplans" / "example.yaml"
# The built-in relay's worker processes unless --media-workers says otherwise (chosen by
# measurement: bench/README.md, "Media workers").
DEFAULT_MEDIA_WORKERS = 0


def _positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _workers(text: str) -> int:
    """An argparse type: a number of media worker processes, 0 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be 0 to 64, not {value}")
    return value


def default_records_path() -> Path:
    """Where call records go unless told: the user's state folder (XDG base directories)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "vrgw" / "call-records.sqlite"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrgw", description="visio-relais SIP gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the gateway",
        description="Run the gateway until SIGINT or SIGTERM; SIGHUP reloads the dialplan.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--dialplan", type=Path, default=DEFAULT_DIALPLAN, help="dialplan YAML file")
    run.add_argument("--sip-host", default="127.0.0.1", help="SIP listen address (UDP and TCP)")
    run.add_argument("--sip-port", type=int, default=5060, help="SIP listen port")
    run.add_argument("--no-tcp", action="store_true", help="listen on UDP only")
    run.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="PEM",
        help="certificate chain for SIP over TLS (with --tls-key: opens the TLS port); "
        "SIGHUP and POST /api/v1/reload read it again",
    )
    run.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="its private key")
    run.add_argument("--tls-port", type=int, default=5061, help="SIP over TLS port (0: any)")
    run.add_argument(
        "--tls-ca",
        type=Path,
        default=None,
        metavar="PEM",
        help="CAs that client certificates and called stations' certificates are checked "
        "against (default: the system's, for stations)",
    )
    run.add_argument(
        "--tls-verify-clients",
        action="store_true",
        help="require a client certificate signed by --tls-ca from every TLS peer",
    )
    run.add_argument(
        "--max-connections-per-source",
        type=int,
        default=32,
        metavar="N",
        help="open TCP/TLS connections one address may hold (0: no bound)",
    )
    run.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        metavar="N",
        help="open TCP/TLS connections in total (0: no bound)",
    )
    run.add_argument(
        "--max-transactions-per-source",
        type=int,
        default=1024,
        metavar="N",
        help="SIP requests one address may have awaiting an answer (0: no bound)",
    )
    run.add_argument(
        "--h323-port",
        type=int,
        default=1720,
        help="H.225.0 call signalling TCP port, on the SIP address (0: any free port)",
    )
    run.add_argument(
        "--ras-port",
        type=int,
        default=1719,
        help="the gatekeeper's RAS UDP port, on the SIP address (0: any free port, -1: off)",
    )
    run.add_argument("--http-host", default="127.0.0.1", help="admin HTTP listen address")
    run.add_argument(
        "--http-port",
        type=int,
        default=os.environ.get("VRGW_HTTP_PORT") or "8080",  # a string: argparse checks it
        help="admin HTTP port (-1: off; the environment's VRGW_HTTP_PORT sets the default)",
    )
    run.add_argument("--ring-timeout", type=float, default=60.0, help="seconds a station may ring")
    run.add_argument(
        "--test-clock",
        action="store_true",
        help="let PUT /api/v1/clock set the schedules' clock (tests and demos only)",
    )
    run.add_argument(
        "--sip-t1",
        type=_positive_seconds,
        default=T1,
        metavar="SECONDS",
        help="SIP timer T1 (RFC 3261 17); T2, T4 and the 64*T1 transaction "
        "timeouts follow it. For tests only: a shorter T1 ends transactions sooner and "
        "retransmits more often over UDP",
    )
    run.add_argument(
        "--records",
        default=str(default_records_path()),
        metavar="FILE",
        help="SQLite file of the call records (':memory:' keeps none beyond the process)",
    )
    run.add_argument(
        "--records-retention-days",
        type=int,
        default=365,
        metavar="DAYS",
        help="call records older than this are deleted",
    )
    run.add_argument(
        "--media-engine",
        choices=("builtin", "rtpengine"),
        default="builtin",
        help="who relays the media: the built-in relay (the dialplan's media section), "
        "or an rtpengine driven over its ng protocol (--rtpengine)",
    )
    run.add_argument(
        "--media-workers",
        type=_workers,
        default=DEFAULT_MEDIA_WORKERS,
        metavar="N",
        help="built-in relay: relay media in N worker processes, each on its own slice of "
        "the dialplan's port range (0: in the gateway's own loop); about one per core "
        "beyond the first (docs/operator-guide.md)",
    )
    run.add_argument(
        "--rtpengine",
        default="127.0.0.1:22222",
        metavar="HOST:PORT",
        help="rtpengine's ng control address (its --listen-ng), with --media-engine rtpengine",
    )
    run.add_argument(
        "--rtpengine-prompts",
        type=Path,
        default=None,
        metavar="DIR",
        help="the announcements' folder as rtpengine's host sees it (DIR/fr/attente.wav); "
        "default: the gateway's own, for an rtpengine on the same host",
    )
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text or as one JSON object each (call_id on every line of a call)",
    )
    check = sub.add_parser("check", help="validate a dialplan and exit")
    check.add_argument("path", type=Path)
    return parser


def run_settings(args: argparse.Namespace) -> Settings:
    """The gateway's settings from the arguments of ``vrgw run``."""
    # Imported here: ``vrgw check`` needs none of the gateway's components.
    from gateway.app import Settings

    return Settings(
        dialplan=args.dialplan,
        sip_host=args.sip_host,
        sip_port=args.sip_port,
        http_host=args.http_host,
        http_port=args.http_port,
        tcp=not args.no_tcp,
        h323_port=args.h323_port,
        ras_port=args.ras_port,
        ring_timeout=args.ring_timeout,
        test_clock=args.test_clock,
        sip_t1=args.sip_t1,
        records=args.records,
        records_retention_days=args.records_retention_days,
        media_engine=args.media_engine,
        media_workers=args.media_workers,
        rtpengine=args.rtpengine,
        rtpengine_prompts=args.rtpengine_prompts,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_port=args.tls_port,
        tls_ca=args.tls_ca,
        tls_verify_clients=args.tls_verify_clients,
        max_connections_per_source=args.max_connections_per_source,
        max_connections=args.max_connections,
        max_transactions_per_source=args.max_transactions_per_source,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vrgw`` command."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        try:
            dp = load_dialplan(args.path)
        except DialplanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"{args.path}: ok ({len(dp.kiosks)} kiosks, {len(dp.services)} services, "
            f"{len(dp.partners)} partners, "
            f"{sum(len(p.stations) for p in dp.partners.values())} stations)"
        )
        return 0
    if (args.tls_cert is None) != (args.tls_key is None):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 1
    configure_logs(str(args.log_level), args.log_format)
    try:
        dialplan = load_dialplan(args.dialplan)
    except DialplanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from gateway.app import Gateway

    try:
        # uvloop: the same asyncio API on libuv, markedly cheaper per datagram.
        uvloop.run(Gateway(run_settings(args), dialplan).run_forever())
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

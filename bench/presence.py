#!/usr/bin/env python3
"""Presence latency benchmark: how soon a kiosk's subscription hears that a partner changed.

The gateway runs with a one-station partner (a SIPp uas as the station) and a watcher
kiosk subscribed to it (a plain UDP SUBSCRIBE client that answers every NOTIFY). A SIPp
caller then places N short calls, one after the other. Every call makes the partner
busy (INVITE) and open again (BYE, no wrap-up); the latency is measured on the loopback
capture, by kernel timestamps, from the kiosk's INVITE (or BYE) reaching the gateway to
the NOTIFY carrying the new state leaving it.

Run from the project root with the project venv (needs sipp and tshark):
    .venv/bin/python bench/presence.py --calls 50
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WATCHER = "127.0.0.5"
CALLER = "127.0.0.6"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dialplan(folder: Path, station_port: int) -> Path:
    path = folder / "presence-bench.yaml"
    path.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        f"  - {{id: watcher, site: Mairie, addresses: [{WATCHER}], services: [caf]}}\n"
        f"  - {{id: caller, site: MSAP, addresses: [{CALLER}], services: [caf]}}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF\n    wrap_up: 0\n"
        "    queue: {waiting: ringing}\n    stations:\n"
        f'      - {{id: caf-1, address: "127.0.0.1:{station_port}", keepalive: 0}}\n'
    )
    return path


class Watcher(threading.Thread):
    """Subscribes once, answers NOTIFYs with 200 and keeps (CSeq, body) of each."""

    def __init__(self, gw_port: int) -> None:
        super().__init__(daemon=True)
        self.gw_port = gw_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((WATCHER, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.notifies: dict[int, bytes] = {}
        self.stop = threading.Event()

    def subscribe(self) -> None:
        msg = "\r\n".join(
            [
                f"SUBSCRIBE sip:caf@127.0.0.1:{self.gw_port} SIP/2.0",
                f"Via: SIP/2.0/UDP {WATCHER}:{self.port};branch=z9hG4bK-bench-1",
                "Max-Forwards: 70",
                "From: <sip:watcher@127.0.0.1>;tag=bench",
                "To: <sip:caf@127.0.0.1>",
                "Call-ID: presence-bench",
                "CSeq: 1 SUBSCRIBE",
                f"Contact: <sip:watcher@{WATCHER}:{self.port}>",
                "Event: presence",
                "Expires: 3600",
                "Content-Length: 0",
                "",
                "",
            ]
        )
        self.sock.sendto(msg.encode(), ("127.0.0.1", self.gw_port))

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            if not lines[0].startswith("NOTIFY"):
                continue
            keep = [
                line
                for line in lines[1:]
                if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
            ]
            cseq_line = next(x for x in keep if x.lower().startswith("cseq"))
            cseq = int(cseq_line.split(":", 1)[1].split()[0])
            self.notifies[cseq] = body
            reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])
            self.sock.sendto(reply.encode(), addr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vrgw-presence-"))
    station_port, sip_port, http_port = free_port(), free_port(), free_port(socket.SOCK_STREAM)
    plan = dialplan(work, station_port)
    gw = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--dialplan", str(plan), "--sip-port",
         str(sip_port), "--http-port", str(http_port), "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pcap = work / "presence.pcapng"
    capture = subprocess.Popen(
        ["tshark", "-n", "-q", "-i", "lo", "-f", f"udp port {sip_port}", "-w", str(pcap)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uas = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(station_port), "-nostdin"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2)  # tshark starts capturing
        watcher = Watcher(sip_port)
        watcher.start()
        watcher.subscribe()
        time.sleep(1)
        subprocess.run(
            ["sipp", "-sn", "uac", "-s", "caf", f"127.0.0.1:{sip_port}", "-i", CALLER,
             "-p", str(free_port()), "-m", str(args.calls), "-r", "2", "-d", "200",
             "-nostdin", "-timeout", f"{args.calls + 30}s"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        time.sleep(1)
        watcher.stop.set()
    finally:
        for proc in (uas, gw):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        time.sleep(0.5)
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
    rows = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "sip.Method == INVITE || sip.Method == BYE "
         "|| sip.Method == NOTIFY", "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
         "-e", "ip.dst", "-e", "sip.Method", "-e", "sip.CSeq.seq"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    events: list[tuple[float, str, str]] = []  # (time, kind, state)
    for row in rows:
        t, src, dst, method, cseq = row.split("\t")
        if src == CALLER and method in ("INVITE", "BYE"):
            events.append((float(t), method, ""))
        elif method == "NOTIFY" and dst == WATCHER:
            body = watcher.notifies.get(int(cseq), b"")
            busy = "Occupé".encode() in body
            state = "busy" if busy else "open" if b"Disponible" in body else "?"
            events.append((float(t), "NOTIFY", state))
    events.sort()
    latencies: dict[str, list[float]] = {"INVITE": [], "BYE": []}
    want = {"INVITE": "busy", "BYE": "open"}
    for i, (t, kind, _) in enumerate(events):
        if kind not in want:
            continue
        for t2, kind2, state in events[i + 1 :]:
            if kind2 == "NOTIFY" and state == want[kind]:
                latencies[kind].append((t2 - t) * 1000)
                break
            if kind2 in want:
                break  # a retransmission or the next call: this change was not notified alone
    result = {"calls": args.calls}
    for kind, values in latencies.items():
        if not values:
            continue
        values.sort()
        result[kind] = {
            "n": len(values),
            "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(values[int(0.95 * (len(values) - 1))], 2),
            "max_ms": round(values[-1], 2),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "presence-latency.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

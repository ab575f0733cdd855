#!/usr/bin/env python3
"""pjagent: one process, one PJSIP endpoint (pjsua2), running a scripted SIP scenario.

Usage::

    python pjagent.py SCENARIO.json RESULT.json [--ready READY.json]

The result goes to RESULT.json, never to stdout (pjlib writes there during libCreate).
Exit codes: 0 the scenario ran (calls may still have failed: the test judges);
2 the scenario is invalid; 3 the deadline passed (a partial result is still written);
4 the agent itself failed (a transport did not bind, ...). Errors go to stderr.
With --ready, READY.json is written once the transports listen and the accounts exist,
so that another process can start calling; it holds ``{"pid", "transports", "accounts"}``.
SIGTERM/SIGINT stop the running action, hang up every call and write the result (exit 0).

Scenario (JSON object; every key but ``accounts`` is optional)::

    {
      "deadline": 30,                 # seconds for the whole run, then exit 3
      "workdir": "/tmp/x",            # tone and recordings; default: RESULT.json's folder
      "log_file": "/tmp/x/pj.log",    # PJSIP log with every SIP message (level 5)
      "user_agent": "pjagent",
      "clock_rate": 8000,             # conference bridge rate
      "codecs": {"PCMU/8000": 255, "PCMA/8000": 254, "G722/16000": 253},
                                      # prefix -> priority; codecs not listed get 0 (disabled)
      "transports": [{"type": "udp", "port": 5070}, {"type": "tcp", "port": 0}],
                                      # bound on 127.0.0.1; default one UDP on any port;
                                      # {"type": "tls", "ca": PEM, "cert": PEM, "key": PEM,
                                      #  "verify_server": true}: SIP over TLS
      "rtp": {"port": 20000, "range": 9000},  # RTP port base and range (randomised inside)
      "unregister_at_end": true,      # REGISTER Expires: 0 for live bindings before exiting
      "media": {"tone_hz": 440, "tone_seconds": 3, "amplitude": 0.3, "record": true},
                                      # tone played looped into every call; record what
                                      # each call receives to WAV and report its level
      "accounts": [{
        "id": "kiosk",                # name used by actions and in the result
        "uri": "sip:kiosk@127.0.0.1", # AoR (From)
        "registrar": "sip:127.0.0.1:5060",  # default: sip:<domain of uri>
        "register": false,            # REGISTER when added
        "expires": 300,
        "username": "kiosk", "password": "secret", "realm": "*",   # digest credentials
        "proxy": "sip:127.0.0.1:5060;lr",  # outbound proxy: every request goes there
        "transport": 0,               # index into "transports" (default: any)
        "role": "station",            # "station": answer incoming calls; "kiosk": reject
        "answer": {"mode": "answer", "delay": 0.5, "ringing": 180, "code": 200},
                                      # mode: answer | reject (with "code") | ignore
                                      # (ring and never answer) | manual (actions decide)
        "hangup_after": 2.0,          # hang up any call of this account N s after CONFIRMED
        "tone_hz": 660,               # per-account tone (default: media.tone_hz)
        "srtp": "mandatory"           # SDES SRTP: disabled (default), optional, mandatory
      }],
      "actions": [ ... ]              # run in order; each may carry "delay" (sleep first)
                                      # and "at" (not before N s after start)
    }

Actions (``"do"`` names the kind; ``timeout`` defaults to 5 s; a timeout is recorded in
the action's outcome and the run goes on)::

    {"do": "sleep", "seconds": 1}
    {"do": "wait_registered", "accounts": ["kiosk"], "timeout": 5}  # default: all registering
    {"do": "register", "account": "kiosk"}        # (re-)REGISTER and wait for the answer
    {"do": "unregister", "account": "kiosk"}      # REGISTER Expires: 0 and wait
    {"do": "call", "account": "kiosk", "dest": "sip:station@127.0.0.1:5070",
     "name": "c1", "headers": {"X-Kiosk": "7"}}  # outgoing call; default name acct:outN
    {"do": "wait_state", "call": "c1", "state": "CONFIRMED"}   # or EARLY, DISCONNECTED...
    {"do": "wait_incoming", "account": "station", "count": 1}  # incoming calls: acct:inN
    {"do": "answer", "call": "station:in1", "code": 200}
    {"do": "hangup", "call": "c1", "after": 2.0, "code": 603}
                                      # "after": N s after CONFIRMED (waits for it first)
    {"do": "dtmf", "call": "c1", "digits": "12#", "method": "rfc2833"}  # or "info"
    {"do": "wait_dtmf", "call": "station:in1", "count": 3}
    {"do": "hold", "call": "c1"}
    {"do": "unhold", "call": "c1"}
    {"do": "wait_media", "call": "station:in1", "status": "REMOTE_HOLD"}  # or ACTIVE ...
    {"do": "wait_idle", "min_calls": 1, "timeout": 10}  # N calls seen, all disconnected
    {"do": "subscribe", "account": "kiosk", "uri": "sip:caf@example", "name": "b1"}
                                      # presence SUBSCRIBE (RFC 3856) through the account
    {"do": "wait_presence", "buddy": "b1", "note": "Occupé", "timeout": 5}
                                      # until the buddy's last PIDF note contains the text
                                      # ("basic": "open"|"closed" may be given as well)
    {"do": "unsubscribe", "buddy": "b1"}

After the actions, calls still up are hung up. The result (JSON)::

    {"ok", "errors", "exit", "started_at", "duration", "stopped", "transports",
     "accounts": {id: {"uri", "registrations": [{"t", "code", "reason", "expiration",
                       "status"}], "incoming": [call names]}},
     "actions": [{"do", "t_start", "t_end", "outcome"}],
     "calls": [{"name", "account", "role": "outgoing"|"incoming", "call_id", "local_uri",
                "remote_uri", "remote_contact", "states": [{"t", "state", "code",
                "reason"}], "responses": [initial INVITE's status codes in order; a
                failure's final code may be local, e.g. 408], "confirmed_at",
                "last_status", "last_reason", "hung_up_by": "local"|"remote"|null,
                "connect_duration", "tsx": [{"t", "role", "method", "state", "code"}],
                "media": [{"t", "status", "dir"}], "rtp_totals": {"tx_packets", ...},
                "streams": [{"codec", "remote_rtp", "local_rtp", "rx_from", "tx_packets",
                             "tx_bytes", "rx_packets", "rx_bytes", "rx_loss", ...}],
                "dtmf_sent": [...], "dtmf_received": [{"t", "digit", "method"}],
                "recording": {"path", "rms", "rms_active", "active_seconds",
                              "seconds", "freq_hz"}, "invite": raw INVITE (incoming)}],
     "buddies": {name: {"uri", "events": [{"t", "basic", "note", "activity", "sub_state",
                                           "term_reason"}]}}}
"""

from __future__ import annotations

import argparse
import faulthandler
import itertools
import json
import logging
import math
import os
import signal
import struct
import sys
import time
import traceback
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

LOG = logging.getLogger("pjagent")

EXIT_OK = 0
EXIT_BAD_SCENARIO = 2
EXIT_DEADLINE = 3
EXIT_AGENT_FAILED = 4

DEFAULT_CODECS = {"PCMU/8000": 255, "PCMA/8000": 254, "G722/16000": 253}
DEFAULT_TIMEOUT = 5.0
POLL_MS = 10
# Windows of 20 ms (one RTP frame) above this RMS count as "audio present".
ACTIVE_RMS = 300.0
MAX_RAW_MESSAGE = 8000

Json = dict[str, Any]


class ScenarioError(Exception):
    """The scenario file is malformed or names things that do not exist."""


class DeadlineExceeded(Exception):
    """The whole-scenario deadline passed."""


class StopRequested(Exception):
    """SIGTERM or SIGINT asked the agent to wrap up."""


def _enum_names(prefix: str) -> dict[int, str]:
    """Map the pjsua2 integer constants starting with ``prefix`` to their short names."""
    names: dict[int, str] = {}
    for name in dir(pj):
        if name.startswith(prefix):
            value = getattr(pj, name)
            if isinstance(value, int):
                names.setdefault(value, name[len(prefix) :])
    return names


INV_STATES = _enum_names("PJSIP_INV_STATE_")
TSX_STATES = _enum_names("PJSIP_TSX_STATE_")
MEDIA_STATUS = _enum_names("PJSUA_CALL_MEDIA_")
DIRS = _enum_names("PJMEDIA_DIR_")
SRTP_USE = {
    "disabled": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
}
STATE_ORDER = ["NULL", "CALLING", "INCOMING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED"]


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class AnswerPolicy:
    """What an account does with an incoming INVITE."""

    mode: str  # answer | reject | ignore | manual
    code: int
    delay: float
    ringing: int | None


@dataclass(frozen=True)
class AccountSpec:
    """One pjsua2 account as the scenario describes it."""

    id: str
    uri: str
    registrar: str
    register: bool
    expires: int
    username: str | None
    password: str | None
    realm: str
    proxy: str | None
    transport: int | None
    role: str
    answer: AnswerPolicy
    hangup_after: float | None
    tone_hz: float
    srtp: str = "disabled"


@dataclass(frozen=True)
class TransportSpec:
    """A SIP transport bound on 127.0.0.1."""

    type: str
    port: int
    ca: str = ""
    cert: str = ""
    key: str = ""
    verify_server: bool = False


@dataclass(frozen=True)
class MediaSpec:
    """Tone generation and recording options."""

    tone_hz: float
    tone_seconds: float
    amplitude: float
    record: bool


@dataclass(frozen=True)
class Scenario:
    """The validated scenario."""

    deadline: float
    workdir: Path
    log_file: str | None
    user_agent: str
    clock_rate: int
    codecs: dict[str, int]
    transports: list[TransportSpec]
    rtp_port: int
    rtp_range: int
    media: MediaSpec
    unregister_at_end: bool
    accounts: list[AccountSpec]
    actions: list[Json]


ACTION_KEYS: dict[str, set[str]] = {
    "sleep": {"seconds"},
    "wait_registered": set(),
    "register": {"account"},
    "unregister": {"account"},
    "call": {"account", "dest"},
    "wait_state": {"call", "state"},
    "wait_incoming": set(),
    "answer": {"call"},
    "hangup": {"call"},
    "dtmf": {"call", "digits"},
    "wait_dtmf": {"call"},
    "hold": {"call"},
    "unhold": {"call"},
    "wait_media": {"call", "status"},
    "wait_idle": set(),
    "subscribe": {"account", "uri"},
    "wait_presence": {"buddy"},
    "unsubscribe": {"buddy"},
}


def _get(obj: Json, key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = obj.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise ScenarioError(f"{where}.{key}: expected {kind}, got {value!r}")
    return value


def parse_scenario(raw: Any, result_path: Path) -> Scenario:
    """Validate the JSON scenario; raise ScenarioError with the offending key."""
    if not isinstance(raw, dict):
        raise ScenarioError("scenario: expected a JSON object")
    num = (int, float)
    media_raw = _get(raw, "media", dict, {}, "scenario")
    media = MediaSpec(
        tone_hz=float(_get(media_raw, "tone_hz", num, 440, "media")),
        tone_seconds=float(_get(media_raw, "tone_seconds", num, 3, "media")),
        amplitude=float(_get(media_raw, "amplitude", num, 0.3, "media")),
        record=bool(_get(media_raw, "record", bool, True, "media")),
    )
    if not 0 < media.amplitude <= 1:
        raise ScenarioError("media.amplitude: must be in (0, 1]")
    transports = []
    for i, t in enumerate(_get(raw, "transports", list, [{"type": "udp"}], "scenario")):
        where = f"transports[{i}]"
        if not isinstance(t, dict):
            raise ScenarioError(f"{where}: expected an object")
        kind = str(_get(t, "type", str, "udp", where)).lower()
        if kind not in ("udp", "tcp", "tls"):
            raise ScenarioError(f"{where}.type: udp, tcp or tls, got {kind!r}")
        transports.append(
            TransportSpec(
                kind,
                int(_get(t, "port", int, 0, where)),
                ca=str(_get(t, "ca", str, "", where)),
                cert=str(_get(t, "cert", str, "", where)),
                key=str(_get(t, "key", str, "", where)),
                verify_server=bool(_get(t, "verify_server", bool, False, where)),
            )
        )
    if not transports:
        raise ScenarioError("transports: at least one is needed")
    accounts = []
    raw_accounts = _get(raw, "accounts", list, None, "scenario")
    if not raw_accounts:
        raise ScenarioError("accounts: at least one is needed")
    for i, a in enumerate(raw_accounts):
        accounts.append(_parse_account(a, i, media, len(transports)))
    ids = [a.id for a in accounts]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"accounts: duplicate ids in {ids}")
    actions = _get(raw, "actions", list, [], "scenario")
    for i, act in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(act, dict) or act.get("do") not in ACTION_KEYS:
            raise ScenarioError(f"{where}: 'do' must be one of {sorted(ACTION_KEYS)}")
        missing = ACTION_KEYS[act["do"]] - act.keys()
        if missing:
            raise ScenarioError(f"{where} ({act['do']}): missing {sorted(missing)}")
        for key in ("account",):
            if key in act and act[key] not in ids:
                raise ScenarioError(f"{where}.{key}: unknown account {act[key]!r}")
        for key in act.get("accounts", []):
            if key not in ids:
                raise ScenarioError(f"{where}.accounts: unknown account {key!r}")
        if act["do"] == "dtmf" and act.get("method", "rfc2833") not in ("rfc2833", "info"):
            raise ScenarioError(f"{where}.method: rfc2833 or info")
        if act["do"] == "wait_state" and act["state"] not in STATE_ORDER:
            raise ScenarioError(f"{where}.state: one of {STATE_ORDER}")
    rtp = _get(raw, "rtp", dict, {}, "scenario")
    workdir = Path(_get(raw, "workdir", str, str(result_path.parent), "scenario")).resolve()
    codecs = _get(raw, "codecs", dict, DEFAULT_CODECS, "scenario")
    return Scenario(
        deadline=float(_get(raw, "deadline", num, 30, "scenario")),
        workdir=workdir,
        log_file=_get(raw, "log_file", str, None, "scenario"),
        user_agent=str(_get(raw, "user_agent", str, "pjagent", "scenario")),
        clock_rate=int(_get(raw, "clock_rate", int, 8000, "scenario")),
        codecs={str(k): int(v) for k, v in codecs.items()},
        transports=transports,
        rtp_port=int(_get(rtp, "port", int, 20000, "rtp")),
        rtp_range=int(_get(rtp, "range", int, 9000, "rtp")),
        media=media,
        unregister_at_end=bool(_get(raw, "unregister_at_end", bool, True, "scenario")),
        accounts=accounts,
        actions=actions,
    )


def _parse_account(a: Any, i: int, media: MediaSpec, n_transports: int) -> AccountSpec:
    where = f"accounts[{i}]"
    if not isinstance(a, dict):
        raise ScenarioError(f"{where}: expected an object")
    uri = _get(a, "uri", str, None, where)
    if not uri or not uri.startswith(("sip:", "sips:")):
        raise ScenarioError(f"{where}.uri: a sip: URI is required")
    role = _get(a, "role", str, "kiosk", where)
    if role not in ("station", "kiosk"):
        raise ScenarioError(f"{where}.role: station or kiosk")
    ans = _get(a, "answer", dict, {}, where)
    default_mode = "answer" if role == "station" else "reject"
    mode = _get(ans, "mode", str, default_mode, f"{where}.answer")
    if mode not in ("answer", "reject", "ignore", "manual"):
        raise ScenarioError(f"{where}.answer.mode: answer, reject, ignore or manual")
    default_code = {"answer": 200, "reject": 486 if role == "station" else 603}.get(mode, 0)
    ringing = _get(ans, "ringing", int, 180, f"{where}.answer")
    policy = AnswerPolicy(
        mode=mode,
        code=int(_get(ans, "code", int, default_code, f"{where}.answer")),
        delay=float(_get(ans, "delay", (int, float), 0, f"{where}.answer")),
        ringing=ringing if ringing else None,
    )
    transport = _get(a, "transport", int, None, where)
    if transport is not None and not 0 <= transport < n_transports:
        raise ScenarioError(f"{where}.transport: no transport #{transport}")
    domain = uri.split("@", 1)[-1].split(";", 1)[0].split(":", 1)[-1] if "@" in uri else ""
    registrar = _get(a, "registrar", str, f"sip:{domain}" if domain else "", where)
    return AccountSpec(
        id=str(_get(a, "id", str, f"acc{i}", where)),
        uri=uri,
        registrar=registrar,
        register=bool(_get(a, "register", bool, False, where)),
        expires=int(_get(a, "expires", int, 300, where)),
        username=_get(a, "username", str, None, where),
        password=_get(a, "password", str, None, where),
        realm=str(_get(a, "realm", str, "*", where)),
        proxy=_get(a, "proxy", str, None, where),
        transport=transport,
        role=role,
        answer=policy,
        hangup_after=_get(a, "hangup_after", (int, float), None, where),
        tone_hz=float(_get(a, "tone_hz", (int, float), media.tone_hz, where)),
        srtp=_srtp_mode(str(_get(a, "srtp", str, "disabled", where)), where),
    )


def _srtp_mode(mode: str, where: str) -> str:
    if mode not in SRTP_USE:
        raise ScenarioError(f"{where}.srtp: one of {sorted(SRTP_USE)}")
    return mode


# --------------------------------------------------------------------------- audio files


def write_tone(path: Path, freq: float, seconds: float, amplitude: float, rate: int = 8000) -> None:
    """Write a 16-bit mono sine WAV; whole cycles so that looping does not click."""
    cycles = max(1, round(freq * seconds))
    n = round(cycles * rate / freq)
    peak = amplitude * 32767
    frames = b"".join(
        struct.pack("<h", round(peak * math.sin(2 * math.pi * freq * i / rate))) for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def analyse_wav(path: Path) -> Json:
    """Level and dominant frequency of a recorded 16-bit WAV (RMS per 20 ms window)."""
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = w.readframes(w.getnframes())
    out: Json = {
        "path": str(path),
        "rate": rate,
        "rms": 0.0,
        "rms_active": 0.0,
        "active_seconds": 0.0,
        "seconds": 0.0,
        "freq_hz": None,
    }
    if width != 2 or not data:
        return out
    samples = struct.unpack(f"<{len(data) // 2}h", data[: len(data) // 2 * 2])[::channels]
    out["seconds"] = round(len(samples) / rate, 3)
    total = sum(s * s for s in samples)
    out["rms"] = round(math.sqrt(total / len(samples)), 1)
    win = max(1, rate // 50)
    active_energy, active_n, crossings = 0, 0, 0
    for start in range(0, len(samples) - win + 1, win):
        chunk = samples[start : start + win]
        energy = sum(s * s for s in chunk)
        if math.sqrt(energy / win) >= ACTIVE_RMS:
            active_energy += energy
            active_n += win
            crossings += sum(1 for a, b in itertools.pairwise(chunk) if (a < 0) != (b < 0))
    if active_n:
        out["rms_active"] = round(math.sqrt(active_energy / active_n), 1)
        out["active_seconds"] = round(active_n / rate, 3)
        out["freq_hz"] = round(crossings * rate / (2 * active_n), 1)
    return out


# --------------------------------------------------------------------------- pjsua2 glue


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Keep Python exceptions out of SWIG directors: one escaping there aborts the process."""

    def wrapper(self: Any, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:
            self.agent.errors.append(f"{method.__name__}: {traceback.format_exc(limit=3)}")
            LOG.exception("callback %s failed", method.__name__)

    wrapper.__name__ = method.__name__
    return wrapper


@dataclass
class CallRecord:
    """Everything observed about one call, serialised into the result."""

    name: str
    account: str
    role: str
    dest: str | None = None
    call_id: str | None = None
    local_uri: str | None = None
    remote_uri: str | None = None
    remote_contact: str | None = None
    states: list[Json] = field(default_factory=list)
    responses: list[int] = field(default_factory=list)
    last_status: int | None = None
    last_reason: str | None = None
    hung_up_by: str | None = None
    connect_duration: float | None = None
    confirmed_at: float | None = None
    disconnected_at: float | None = None
    tsx: list[Json] = field(default_factory=list)
    media: list[Json] = field(default_factory=list)
    streams: list[Json] = field(default_factory=list)
    dtmf_sent: list[Json] = field(default_factory=list)
    dtmf_received: list[Json] = field(default_factory=list)
    recording: Json | None = None
    invite: str | None = None

    def as_json(self) -> Json:
        """The result-file form of this record, with RTP counters summed over its streams."""
        doc = dict(self.__dict__)
        keys = ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "rx_loss")
        doc["rtp_totals"] = {k: sum(int(s.get(k, 0)) for s in self.streams) for k in keys}
        return doc


class AgentCall(pj.Call):  # type: ignore[misc]
    """A pjsua2 call that records its life into a CallRecord."""

    def __init__(
        self, agent: Agent, account: AgentAccount, record: CallRecord, call_id: int | None = None
    ) -> None:
        if call_id is None:
            super().__init__(account)
        else:
            super().__init__(account, call_id)
        self.agent = agent
        self.account = account
        self.rec = record
        self.local_hangup = False
        self.disconnected = False
        self.media_status: str | None = None
        self.audio: list[Any] = []  # AudioMedia wrappers kept alive while connected
        self.recorder: Any = None
        self.rec_path: Path | None = None
        self.recorder_closed_at = 0.0
        self.initial_answered = False

    def state_name(self) -> str:
        """The last invite-session state seen, as a name."""
        return self.rec.states[-1]["state"] if self.rec.states else "NULL"

    def hangup_now(self, code: int = 0) -> None:
        """Hang up (CANCEL, BYE or a final rejection, by state) and remember we did."""
        if self.disconnected:
            return
        self.local_hangup = True
        prm = pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        self.hangup(prm)

    @_guarded
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        t = self.agent.now()
        state = INV_STATES.get(ci.state, str(ci.state))
        self.rec.call_id = ci.callIdString
        self.rec.local_uri = ci.localUri
        self.rec.remote_uri = ci.remoteUri
        self.rec.remote_contact = ci.remoteContact
        self.rec.last_status = ci.lastStatusCode
        self.rec.last_reason = ci.lastReason
        self.rec.states.append(
            {"t": t, "state": state, "code": ci.lastStatusCode, "reason": ci.lastReason}
        )
        if state == "CONFIRMED" and self.rec.confirmed_at is None:
            self.rec.confirmed_at = t
            after = self.account.spec.hangup_after
            if after is not None:
                self.agent.later(after, self._auto_hangup)
        if state == "DISCONNECTED":
            self.disconnected = True
            self.rec.disconnected_at = t
            self.rec.connect_duration = ci.connectDuration.sec + ci.connectDuration.msec / 1000
            self.rec.hung_up_by = "local" if self.local_hangup else "remote"
            # pjsua2 stops reporting transactions of a disconnected call, so a failed
            # INVITE's final status (received, or generated locally: 408, 503) lands here.
            code = ci.lastStatusCode
            if not self.initial_answered and code >= 200:
                self.initial_answered = True
                if not self.rec.responses or self.rec.responses[-1] != code:
                    self.rec.responses.append(code)
            # The conference slot is gone; stop recording before silence dilutes the level.
            self.agent.later(0, self.stop_recording)

    def _auto_hangup(self) -> None:
        if not self.disconnected:
            self.hangup_now()

    @_guarded
    def onCallTsxState(self, prm: Any) -> None:
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState.tsx
        role = "uac" if tsx.role == pj.PJSIP_ROLE_UAC else "uas"
        entry = {
            "t": self.agent.now(),
            "role": role,
            "method": tsx.method,
            "state": TSX_STATES.get(tsx.state, str(tsx.state)),
            "code": tsx.statusCode,
        }
        last = self.rec.tsx[-1] if self.rec.tsx else None
        if last is None or any(last[k] != entry[k] for k in ("role", "method", "state", "code")):
            self.rec.tsx.append(entry)
        ours = "uac" if self.rec.role == "outgoing" else "uas"
        code = tsx.statusCode
        # Only the initial INVITE (up to its final answer) feeds "responses", not re-INVITEs.
        if (
            tsx.method == "INVITE"
            and role == ours
            and code
            and not self.initial_answered
            and (not self.rec.responses or self.rec.responses[-1] != code)
        ):
            self.rec.responses.append(code)
        if tsx.method == "INVITE" and role == ours and code >= 200:
            self.initial_answered = True

    @_guarded
    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = MEDIA_STATUS.get(mi.status, str(mi.status))
            self.media_status = status
            self.rec.media.append(
                {"t": self.agent.now(), "status": status, "dir": DIRS.get(mi.dir, str(mi.dir))}
            )
            if status in ("ACTIVE", "REMOTE_HOLD"):
                self.agent.connect_audio(self, self.getAudioMedia(mi.index))

    @_guarded
    def onStreamDestroyed(self, prm: Any) -> None:
        # Last moment the stream's counters exist: DISCONNECTED comes after.
        idx = prm.streamIdx
        entry: Json = {"t": self.agent.now(), "index": idx}
        try:
            info = self.getStreamInfo(idx)
            entry.update(
                codec=info.codecName,
                clock_rate=info.codecClockRate,
                remote_rtp=info.remoteRtpAddress,
                tx_pt=info.txPt,
                rx_pt=info.rxPt,
                dir=DIRS.get(info.dir, str(info.dir)),
            )
        except pj.Error as exc:
            entry["info_error"] = exc.info()
        try:
            tp = self.getMedTransportInfo(idx)
            entry.update(local_rtp=tp.localRtpName, rx_from=tp.srcRtpName)
        except pj.Error as exc:
            entry["transport_error"] = exc.info()
        try:
            st = self.getStreamStat(idx)
            tx, rx = st.rtcp.txStat, st.rtcp.rxStat
            entry.update(
                tx_packets=tx.pkt,
                tx_bytes=tx.bytes,
                rx_packets=rx.pkt,
                rx_bytes=rx.bytes,
                rx_loss=rx.loss,
                rx_discard=rx.discard,
                rx_dup=rx.dup,
                rx_reorder=rx.reorder,
                rx_jitter_us_mean=rx.jitterUsec.mean,
                rx_jitter_us_max=rx.jitterUsec.max,
                tx_loss_reported=tx.loss,
                rtt_us_mean=st.rtcp.rttUsec.mean,
                jb_avg_delay_ms=st.jbuf.avgDelayMsec,
                jb_lost=st.jbuf.lost,
                jb_discard=st.jbuf.discard,
                jb_empty=st.jbuf.empty,
            )
        except pj.Error as exc:
            entry["stat_error"] = exc.info()
        self.rec.streams.append(entry)

    @_guarded
    def onDtmfDigit(self, prm: Any) -> None:
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
        self.rec.dtmf_received.append({"t": self.agent.now(), "digit": prm.digit, "method": method})

    def stop_recording(self) -> None:
        """Destroy the recorder; the bridge removes its port (and writes the WAV header) later."""
        self.audio.clear()
        if self.recorder is not None:
            self.recorder = None  # the SWIG destructor destroys the pjsua recorder
            self.recorder_closed_at = time.monotonic()

    def analyse_recording(self) -> bool:
        """Measure the received audio once the WAV is complete; False while it is not yet."""
        if self.rec_path is None or self.recorder is not None or self.rec.recording:
            return True
        try:
            self.rec.recording = analyse_wav(self.rec_path)
        except (OSError, EOFError, wave.Error, struct.error) as exc:
            # The conference bridge finalises the file on its own clock tick.
            if time.monotonic() - self.recorder_closed_at < 1.0:
                return False
            self.rec.recording = {"path": str(self.rec_path), "error": str(exc)}
        return True


class AgentAccount(pj.Account):  # type: ignore[misc]
    """A pjsua2 account that records registrations and applies its answer policy."""

    def __init__(self, agent: Agent, spec: AccountSpec) -> None:
        super().__init__()
        self.agent = agent
        self.spec = spec
        self.registrations: list[Json] = []
        self.reg_pending = spec.register
        self.incoming: list[str] = []

    @_guarded
    def onRegState(self, prm: Any) -> None:
        self.registrations.append(
            {
                "t": self.agent.now(),
                "code": prm.code,
                "reason": prm.reason,
                "expiration": prm.expiration,
                "status": prm.status,
            }
        )
        self.reg_pending = False

    def is_registered(self) -> bool:
        """Whether the last REGISTER outcome left a live binding."""
        last = self.registrations[-1] if self.registrations else None
        return bool(last and last["code"] // 100 == 2 and last["expiration"] > 0)

    @_guarded
    def onIncomingCall(self, prm: Any) -> None:
        name = f"{self.spec.id}:in{len(self.incoming) + 1}"
        rec = CallRecord(name=name, account=self.spec.id, role="incoming")
        rec.invite = prm.rdata.wholeMsg[:MAX_RAW_MESSAGE]
        call = AgentCall(self.agent, self, rec, prm.callId)
        self.incoming.append(name)
        self.agent.add_call(call)
        policy = self.spec.answer
        if policy.mode == "reject" and policy.delay <= 0:
            self.agent.answer(call, policy.code)
            return
        if policy.ringing and policy.mode != "manual":
            self.agent.answer(call, policy.ringing)
        if policy.mode in ("answer", "reject"):
            self.agent.later(policy.delay, lambda: self.agent.answer(call, policy.code))


class AgentBuddy(pj.Buddy):  # type: ignore[misc]
    """A presence subscription whose every NOTIFY is recorded."""

    def __init__(self, agent: Agent, name: str, uri: str) -> None:
        super().__init__()
        self.agent = agent
        self.name = name
        self.uri = uri
        self.events: list[Json] = []

    def snapshot(self) -> Json:
        info = self.getInfo()
        ps = info.presStatus
        return {
            "t": self.agent.now(),
            "basic": "open" if ps.status == pj.PJSUA_BUDDY_STATUS_ONLINE else "closed",
            "status_text": ps.statusText,
            "note": ps.note,
            "activity": ps.activity,
            "sub_state": info.subStateName,
            "term_reason": info.subTermReason,
        }

    @_guarded
    def onBuddyState(self) -> None:
        self.events.append(self.snapshot())

    @_guarded
    def onBuddyEvSubState(self, prm: Any) -> None:
        self.events.append({**self.snapshot(), "ev_sub_state": True})


# --------------------------------------------------------------------------- agent


class Agent:
    """Owns the Endpoint, drives it by polling and runs the scenario's actions in order."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.t0 = time.monotonic()
        self.started_at = time.time()
        self.deadline = self.t0 + scenario.deadline
        self.errors: list[str] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.accounts: dict[str, AgentAccount] = {}
        self.calls: dict[str, AgentCall] = {}
        self.players: dict[float, Any] = {}
        self.action_log: list[Json] = []
        self.transports: list[Json] = []
        self.buddies: dict[str, AgentBuddy] = {}
        self.stop_requested = False
        self.stopped = False
        self.out_count: dict[str, int] = {}
        self.ep: Any = None

    # ---- time and the event loop

    def now(self) -> float:
        """Seconds since the agent started, to the millisecond."""
        return round(time.monotonic() - self.t0, 3)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run fn from the main loop once delay seconds have passed."""
        self.timers.append((time.monotonic() + max(0.0, delay), fn))

    def poll(self, enforce: bool = True) -> None:
        """Handle pending SIP/media events for one short slice, then due timers."""
        self.ep.libHandleEvents(POLL_MS)
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        if due:
            self.timers = [t for t in self.timers if t[0] > now]
            for _, fn in due:
                try:
                    fn()
                except pj.Error as exc:
                    self.errors.append(f"timer: {exc.info()}")
        if enforce:
            if now > self.deadline:
                raise DeadlineExceeded(f"deadline of {self.sc.deadline} s exceeded")
            if self.stop_requested:
                raise StopRequested

    def sleep(self, seconds: float) -> None:
        """Keep the endpoint running for a while."""
        self.wait_until(lambda: False, max(0.0, seconds))

    def wait_until(self, pred: Callable[[], bool], timeout: float, enforce: bool = True) -> bool:
        """Poll until pred() holds or timeout passes; return whether it held."""
        end = time.monotonic() + timeout
        while True:
            if pred():
                return True
            if time.monotonic() >= end:
                return False
            self.poll(enforce)

    # ---- setup

    def start(self) -> None:
        """Create the endpoint, transports, codecs, tone players and accounts."""
        sc = self.sc
        sc.workdir.mkdir(parents=True, exist_ok=True)
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        # No PJSIP worker threads: every callback runs inside libHandleEvents on this thread.
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = sc.user_agent
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.level = 5 if sc.log_file else 0
        cfg.logConfig.msgLogging = bool(sc.log_file)
        if sc.log_file:
            cfg.logConfig.filename = sc.log_file
        cfg.medConfig.clockRate = sc.clock_rate
        cfg.medConfig.sndClockRate = sc.clock_rate
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        for spec in sc.transports:
            tc = pj.TransportConfig()
            tc.port = spec.port
            tc.boundAddress = "127.0.0.1"
            tc.publicAddress = "127.0.0.1"
            kind = {
                "udp": pj.PJSIP_TRANSPORT_UDP,
                "tcp": pj.PJSIP_TRANSPORT_TCP,
                "tls": pj.PJSIP_TRANSPORT_TLS,
            }[spec.type]
            if spec.type == "tls":
                tls = tc.tlsConfig
                tls.CaListFile = spec.ca
                tls.certFile = spec.cert
                tls.privKeyFile = spec.key
                tls.verifyServer = spec.verify_server
            tid = self.ep.transportCreate(kind, tc)
            info = self.ep.transportGetInfo(tid)
            self.transports.append(
                {
                    "id": tid,
                    "type": spec.type,
                    "address": info.localName,
                    "port": int(info.localName.rsplit(":", 1)[1]),
                }
            )
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self._set_codecs()
        for acc_spec in sc.accounts:
            self._player(acc_spec.tone_hz)
            self._add_account(acc_spec)

    def _set_codecs(self) -> None:
        for ci in self.ep.codecEnum2():
            prio = 0
            for prefix, p in self.sc.codecs.items():
                if ci.codecId.lower().startswith(prefix.lower()):
                    prio = p
                    break
            self.ep.codecSetPriority(ci.codecId, prio)

    def _player(self, hz: float) -> Any:
        if hz not in self.players:
            path = self.sc.workdir / f"tone-{hz:g}hz.wav"
            m = self.sc.media
            write_tone(path, hz, m.tone_seconds, m.amplitude)
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(path))  # loops by default
            self.players[hz] = player
        return self.players[hz]

    def _check_uri(self, uri: str, what: str) -> None:
        # An invalid URI handed to pjsua2 can leave an object half-created; C asserts
        # compiled into the wheel then abort the whole process, so refuse it up front.
        if self.ep.utilVerifySipUri(uri) != 0:
            raise ScenarioError(f"{what}: invalid SIP URI {uri!r}")

    def _add_account(self, spec: AccountSpec) -> None:
        self._check_uri(spec.uri, f"account {spec.id} uri")
        ac = pj.AccountConfig()
        ac.idUri = spec.uri
        if spec.register:
            self._check_uri(spec.registrar, f"account {spec.id} registrar")
            ac.regConfig.registrarUri = spec.registrar
        ac.regConfig.registerOnAdd = spec.register
        ac.regConfig.timeoutSec = spec.expires
        ac.regConfig.retryIntervalSec = 0  # a failed registration stays failed: tests judge it
        ac.regConfig.unregWaitMsec = 1000
        if spec.username is not None:
            ac.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", spec.realm, spec.username, 0, spec.password or "")
            )
        if spec.proxy:
            self._check_uri(spec.proxy, f"account {spec.id} proxy")
            ac.sipConfig.proxies.append(spec.proxy)
        if spec.transport is not None:
            ac.sipConfig.transportId = self.transports[spec.transport]["id"]
        # Plain requests: no Contact/Via rewriting, no RFC 5626 instance ids, no STUN.
        ac.natConfig.contactRewriteUse = 0
        ac.natConfig.viaRewriteUse = 0
        ac.natConfig.sdpNatRewriteUse = 0
        ac.natConfig.sipOutboundUse = 0
        ac.mediaConfig.srtpUse = SRTP_USE[spec.srtp]
        ac.mediaConfig.srtpSecureSignaling = 0  # SRTP whatever the signalling transport
        mt = ac.mediaConfig.transportConfig
        mt.port = self.sc.rtp_port
        mt.portRange = self.sc.rtp_range
        mt.randomizePort = self.sc.rtp_range > 0
        mt.boundAddress = "127.0.0.1"
        mt.publicAddress = "127.0.0.1"
        acc = AgentAccount(self, spec)
        acc.create(ac)
        if not acc.isValid():
            raise ScenarioError(f"account {spec.id}: pjsua2 refused it")
        self.accounts[spec.id] = acc

    def ready_info(self) -> Json:
        """What another process needs to reach this one."""
        return {
            "pid": os.getpid(),
            "transports": self.transports,
            "accounts": {k: a.spec.uri for k, a in self.accounts.items()},
        }

    # ---- calls and media

    def add_call(self, call: AgentCall) -> None:
        """Register a call under its name (references must outlive the C object)."""
        self.calls[call.rec.name] = call

    def answer(self, call: AgentCall, code: int) -> None:
        """Answer with a provisional or final status; a final >= 300 counts as our hangup."""
        if call.disconnected:
            return
        if code >= 300:
            call.local_hangup = True
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        call.answer(prm)

    def connect_audio(self, call: AgentCall, aud: Any) -> None:
        """Play the account's tone into the call and record what the call receives."""
        call.audio.append(aud)
        self._player(call.account.spec.tone_hz).startTransmit(aud)
        if self.sc.media.record and call.recorder is None and not call.disconnected:
            safe = call.rec.name.replace(":", "-")
            call.rec_path = self.sc.workdir / f"rx-{safe}.wav"
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(call.rec_path))
            call.recorder = rec
        if call.recorder is not None:
            aud.startTransmit(call.recorder)

    def call(self, name: str) -> AgentCall:
        """Look a call up by name for an action."""
        if name not in self.calls:
            raise ScenarioError(f"no call named {name!r} (known: {sorted(self.calls)})")
        return self.calls[name]

    # ---- actions

    def run_actions(self) -> None:
        """Run every action in order, recording its outcome."""
        for act in self.sc.actions:
            if "at" in act:
                self.sleep(float(act["at"]) - (time.monotonic() - self.t0))
            if "delay" in act:
                self.sleep(float(act["delay"]))
            entry: Json = {"do": act["do"], "t_start": self.now()}
            self.action_log.append(entry)
            try:
                entry["outcome"] = getattr(self, "_do_" + act["do"])(act)
            except pj.Error as exc:
                entry["outcome"] = f"error: {exc.info()}"
            except DeadlineExceeded:
                entry["outcome"] = "deadline"
                raise
            except StopRequested:
                entry["outcome"] = "stopped"
                raise
            finally:
                entry["t_end"] = self.now()

    @staticmethod
    def _timeout(act: Json) -> float:
        return float(act.get("timeout", DEFAULT_TIMEOUT))

    def _ok(self, held: bool) -> str:
        return "ok" if held else "timeout"

    def _do_sleep(self, act: Json) -> str:
        self.sleep(float(act["seconds"]))
        return "ok"

    def _do_wait_registered(self, act: Json) -> str:
        ids = act.get("accounts") or [k for k, a in self.accounts.items() if a.spec.register]
        accs = [self.accounts[i] for i in ids]
        return self._ok(
            self.wait_until(lambda: not any(a.reg_pending for a in accs), self._timeout(act))
        )

    def _do_register(self, act: Json) -> str:
        acc = self.accounts[act["account"]]
        acc.reg_pending = True
        acc.setRegistration(True)
        return self._ok(self.wait_until(lambda: not acc.reg_pending, self._timeout(act)))

    def _do_unregister(self, act: Json) -> str:
        acc = self.accounts[act["account"]]
        acc.reg_pending = True
        acc.setRegistration(False)
        return self._ok(self.wait_until(lambda: not acc.reg_pending, self._timeout(act)))

    def _do_call(self, act: Json) -> str:
        acc = self.accounts[act["account"]]
        dest = str(act["dest"])
        self._check_uri(dest, "call.dest")
        n = self.out_count.get(acc.spec.id, 0) + 1
        self.out_count[acc.spec.id] = n
        name = str(act.get("name") or f"{acc.spec.id}:out{n}")
        if name in self.calls:
            raise ScenarioError(f"call name {name!r} used twice")
        rec = CallRecord(name=name, account=acc.spec.id, role="outgoing", dest=dest)
        call = AgentCall(self, acc, rec)
        self.add_call(call)
        prm = pj.CallOpParam(True)
        for hname, hvalue in (act.get("headers") or {}).items():
            h = pj.SipHeader()
            h.hName = str(hname)
            h.hValue = str(hvalue)
            prm.txOption.headers.append(h)
        try:
            call.makeCall(dest, prm)
        except pj.Error as exc:
            call.disconnected = True
            rec.states.append(
                {
                    "t": self.now(),
                    "state": "DISCONNECTED",
                    "code": 0,
                    "reason": f"makeCall failed: {exc.info()}",
                }
            )
            raise
        return "ok"

    def _do_wait_state(self, act: Json) -> str:
        call = self.call(act["call"])
        target = STATE_ORDER.index(act["state"])

        def reached() -> bool:
            return any(
                STATE_ORDER.index(s["state"]) >= target
                for s in call.rec.states
                if s["state"] in STATE_ORDER
            )

        held = self.wait_until(reached, self._timeout(act))
        if held and call.state_name() == "DISCONNECTED" and act["state"] != "DISCONNECTED":
            seen = {s["state"] for s in call.rec.states}
            return "ok" if act["state"] in seen else "disconnected"
        return self._ok(held)

    def _do_wait_incoming(self, act: Json) -> str:
        ids = [act["account"]] if "account" in act else list(self.accounts)
        count = int(act.get("count", 1))
        return self._ok(
            self.wait_until(
                lambda: sum(len(self.accounts[i].incoming) for i in ids) >= count,
                self._timeout(act),
            )
        )

    def _do_answer(self, act: Json) -> str:
        self.answer(self.call(act["call"]), int(act.get("code", 200)))
        return "ok"

    def _do_hangup(self, act: Json) -> str:
        call = self.call(act["call"])
        if "after" in act:
            self.wait_until(
                lambda: call.rec.confirmed_at is not None or call.disconnected, self._timeout(act)
            )
            if call.rec.confirmed_at is not None:
                when = self.t0 + call.rec.confirmed_at + float(act["after"])
                self.wait_until(
                    lambda: time.monotonic() >= when or call.disconnected, float(act["after"]) + 1
                )
        if call.disconnected:
            return "already disconnected"
        call.hangup_now(int(act.get("code", 0)))
        return "ok"

    def _do_dtmf(self, act: Json) -> str:
        call = self.call(act["call"])
        digits = str(act["digits"])
        method = act.get("method", "rfc2833")
        if method == "info":
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            prm.duration = int(act.get("duration_ms", 160))
            call.sendDtmf(prm)
        else:
            call.dialDtmf(digits)
        call.rec.dtmf_sent.append({"t": self.now(), "digits": digits, "method": method})
        return "ok"

    def _do_wait_dtmf(self, act: Json) -> str:
        call = self.call(act["call"])
        count = int(act.get("count", len(str(act.get("digits", "x")))))
        return self._ok(
            self.wait_until(lambda: len(call.rec.dtmf_received) >= count, self._timeout(act))
        )

    def _do_hold(self, act: Json) -> str:
        self.call(act["call"]).setHold(pj.CallOpParam(True))
        return "ok"

    def _do_unhold(self, act: Json) -> str:
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.call(act["call"]).reinvite(prm)
        return "ok"

    def _do_wait_media(self, act: Json) -> str:
        call = self.call(act["call"])
        want = str(act["status"])
        return self._ok(self.wait_until(lambda: call.media_status == want, self._timeout(act)))

    def _do_wait_idle(self, act: Json) -> str:
        n = int(act.get("min_calls", 1))
        return self._ok(
            self.wait_until(
                lambda: len(self.calls) >= n and all(c.disconnected for c in self.calls.values()),
                self._timeout(act),
            )
        )

    # ---- wrap-up

    def _do_subscribe(self, act: Json) -> str:
        acc = self.accounts[act["account"]]
        name = str(act.get("name", f"buddy{len(self.buddies) + 1}"))
        uri = str(act["uri"])
        self._check_uri(uri, f"buddy {name}")
        cfg = pj.BuddyConfig()
        cfg.uri = uri
        cfg.subscribe = True
        buddy = AgentBuddy(self, name, uri)
        buddy.create(acc, cfg)
        self.buddies[name] = buddy
        return "ok"

    def _do_wait_presence(self, act: Json) -> str:
        buddy = self.buddies[act["buddy"]]
        note = act.get("note")
        basic = act.get("basic")

        def seen() -> bool:
            last = buddy.events[-1] if buddy.events else None
            if last is None:
                return False
            if note is not None and note not in last["note"]:
                return False
            return basic is None or last["basic"] == basic

        return self._ok(self.wait_until(seen, self._timeout(act)))

    def _do_unsubscribe(self, act: Json) -> str:
        self.buddies[act["buddy"]].subscribePresence(False)
        return "ok"

    def finish(self, grace: float = 3.0) -> None:
        """Hang up what is still up, wait for DISCONNECTED, close recordings."""
        for call in self.calls.values():
            if not call.disconnected:
                try:
                    call.hangup_now()
                except pj.Error as exc:
                    self.errors.append(f"final hangup of {call.rec.name}: {exc.info()}")
        self.wait_until(
            lambda: all(c.disconnected for c in self.calls.values()), grace, enforce=False
        )
        for call in self.calls.values():
            call.stop_recording()
        if self.sc.unregister_at_end:
            regd = [a for a in self.accounts.values() if a.is_registered()]
            for acc in regd:
                acc.reg_pending = True
                try:
                    acc.setRegistration(False)
                except pj.Error as exc:
                    acc.reg_pending = False
                    self.errors.append(f"final unregister of {acc.spec.id}: {exc.info()}")
            self.wait_until(lambda: not any(a.reg_pending for a in regd), grace, enforce=False)
        self.wait_until(
            lambda: all(c.analyse_recording() for c in self.calls.values()), 1.5, enforce=False
        )

    def result(self, exit_code: int) -> Json:
        """The whole result document."""
        return {
            "ok": exit_code == EXIT_OK and not self.errors,
            "exit": exit_code,
            "errors": self.errors,
            "started_at": self.started_at,
            "duration": self.now(),
            "stopped": self.stopped,
            "transports": self.transports,
            "accounts": {
                k: {"uri": a.spec.uri, "registrations": a.registrations, "incoming": a.incoming}
                for k, a in self.accounts.items()
            },
            "actions": self.action_log,
            "calls": [c.rec.as_json() for c in self.calls.values()],
            "buddies": {n: {"uri": b.uri, "events": b.events} for n, b in self.buddies.items()},
        }


def _write_json(path: Path, doc: Json) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario file, write the result file, return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("scenario", type=Path)
    ap.add_argument("result", type=Path)
    ap.add_argument("--ready", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="pjagent %(levelname)s %(message)s"
    )
    try:
        scenario = parse_scenario(json.loads(args.scenario.read_text()), args.result)
    except (OSError, ValueError, ScenarioError) as exc:
        print(f"pjagent: bad scenario: {exc}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    # Hard watchdog: even a hang inside C code ends the process.
    faulthandler.dump_traceback_later(scenario.deadline + 15, exit=True)
    agent = Agent(scenario)

    def on_signal(signum: int, _frame: Any) -> None:
        agent.stop_requested = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = EXIT_OK
    try:
        agent.start()
        if args.ready:
            _write_json(args.ready, agent.ready_info())
        agent.run_actions()
    except StopRequested:
        agent.stopped = True
    except DeadlineExceeded as exc:
        agent.errors.append(str(exc))
        print(f"pjagent: {exc}", file=sys.stderr)
        code = EXIT_DEADLINE
    except ScenarioError as exc:
        agent.errors.append(str(exc))
        print(f"pjagent: bad scenario: {exc}", file=sys.stderr)
        code = EXIT_BAD_SCENARIO
    except pj.Error as exc:
        agent.errors.append(exc.info())
        print(f"pjagent: pjsua2 error: {exc.info()}", file=sys.stderr)
        code = EXIT_AGENT_FAILED
    except Exception:
        agent.errors.append(traceback.format_exc())
        print(f"pjagent: internal error:\n{traceback.format_exc()}", file=sys.stderr)
        code = EXIT_AGENT_FAILED
    if agent.ep is not None:
        try:
            agent.finish()
        except Exception:
            agent.errors.append(f"finish: {traceback.format_exc(limit=3)}")
    _write_json(args.result, agent.result(code))
    sys.stdout.flush()
    sys.stderr.flush()
    if agent.ep is not None:
        try:
            # Registrations were already removed in finish(): skip pjsua's fixed 1 s wait.
            agent.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        except pj.Error as exc:
            print(f"pjagent: libDestroy: {exc.info()}", file=sys.stderr)
    sys.stderr.flush()
    # Skip interpreter teardown: SWIG objects collected after libDestroy can crash it.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

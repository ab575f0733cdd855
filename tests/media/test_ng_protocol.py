"""The sans-IO ng client (gateway/media/ng.py): no socket, no sleep, a fake clock."""

from __future__ import annotations

import copy

import bencoder
import pytest

from gateway.media import ng
from gateway.model.events import Side


def reply(cookie: bytes, body: bytes) -> bytes:
    return cookie + b" " + body


def test_commands_are_cookie_space_bencode_and_tags_follow_the_sides() -> None:
    client = ng.NgClient(prefix="t")
    cookie = client.send(ng.offer("c1", b"v=0\r\n", from_side=Side.B), now=0.0)
    [datagram] = client.datagrams_to_send()
    assert cookie == b"t_1" and datagram.startswith(b"t_1 d")
    message = bencoder.bdecode(datagram[4:])
    assert message[b"command"] == b"offer" and message[b"call-id"] == b"c1"
    assert (message[b"from-tag"], message[b"to-tag"]) == (b"B", b"A")  # B offers here
    assert message[b"ICE"] == b"remove" and b"zero address" in message[b"replace"]
    answer = ng.answer("c1", b"v=0\r\n", from_side=Side.A)
    assert (answer[b"from-tag"], answer[b"to-tag"]) == (b"B", b"A")  # the offerer's From tag
    assert ng.play_media("c1", "/p.wav", to_side=Side.A, repeat=3)[b"from-tag"] == b"A"
    assert ng.delete("c1")[b"delete delay"] == 0
    assert client.send(ng.ping(), now=0.0) == b"t_2"  # every command its own cookie


def test_replies_match_by_cookie_in_any_key_order_and_duplicates_are_dropped() -> None:
    client = ng.NgClient(prefix="t")
    first = client.send(ng.ping(), now=0.0)
    second = client.send(ng.query("c1"), now=0.0)
    # rtpengine does not sort its keys (its README says so): accepted all the same
    client.receive(reply(second, b"d6:result5:error12:error-reason15:Unknown call-ide"))
    client.receive(reply(first, b"d6:result4:ponge"))
    client.receive(reply(first, b"d6:result4:ponge"))  # the answer to a retransmission
    client.receive(b"no-space-here")
    client.receive(reply(b"other_9", b"d6:result2:oke"))
    client.receive(reply(first, b"not bencode"))
    outcomes = client.outcomes()
    assert outcomes == [
        ng.NgFailure(second, "query: Unknown call-id"),
        ng.NgReply(first, {b"result": b"pong"}),
    ]
    assert client.pending == 0 and client.next_timer() is None


def test_retransmits_with_backoff_then_gives_up() -> None:
    client = ng.NgClient(prefix="t", retransmit_interval=0.5, attempts=3)
    cookie = client.send(ng.list_calls(10), now=10.0)
    sent = [client.datagrams_to_send()]
    assert client.next_timer() == 10.5
    client.handle_timer(10.4)  # not due yet
    assert client.datagrams_to_send() == []
    client.handle_timer(10.5)
    sent.append(client.datagrams_to_send())
    assert client.next_timer() == 11.5  # the wait doubles
    client.handle_timer(11.5)
    sent.append(client.datagrams_to_send())
    assert all(batch == sent[0] for batch in sent) and len(sent[0]) == 1  # same cookie
    assert client.outcomes() == []
    client.handle_timer(13.5)
    assert client.datagrams_to_send() == []
    assert client.outcomes() == [
        ng.NgFailure(cookie, "list: no reply after 3 attempts", timed_out=True)
    ]
    # a reply after giving up matches nothing
    client.receive(reply(cookie, b"d6:result2:oke"))
    assert client.outcomes() == []


def test_a_reply_stops_the_retransmissions_and_abandon_forgets() -> None:
    client = ng.NgClient(prefix="t")
    cookie = client.send(ng.ping(), now=0.0)
    other = client.send(ng.ping(), now=0.0)
    client.datagrams_to_send()
    client.receive(reply(cookie, b"d6:result4:ponge"))
    client.abandon(other)
    client.handle_timer(100.0)
    assert client.datagrams_to_send() == [] and client.pending == 0


@pytest.mark.parametrize(
    "body", [b"d6:result7:unknowne", b"d5:helloi1ee", b"d6:result5:errore"], ids=str
)
def test_anything_but_ok_is_a_failure(body: bytes) -> None:
    client = ng.NgClient(prefix="t")
    cookie = client.send(ng.query("c"), now=0.0)
    client.receive(reply(cookie, body))
    [outcome] = client.outcomes()
    assert isinstance(outcome, ng.NgFailure) and outcome.reason.startswith("query: ")


# A delete reply of rtpengine 10.5.3.5 for a PCMA call, as it came from the daemon
# (trimmed of keys the engine does not read).
DELETE_REPLY = {
    b"result": b"ok",
    b"created": 1796395810,
    b"tags": {
        b"A": {
            b"tag": b"A",
            b"medias": [
                {
                    b"index": 1,
                    b"type": b"audio",
                    b"protocol": b"RTP/AVP",
                    b"streams": [
                        {
                            b"local port": 41014,
                            b"endpoint": {
                                b"family": b"IPv4",
                                b"address": b"127.0.0.1",
                                b"port": 51028,
                            },
                            b"flags": [b"RTP", b"filled"],
                            b"stats": {b"bytes": 516, b"errors": 0, b"packets": 3},
                        },
                        {
                            b"local port": 41015,
                            b"flags": [b"RTCP", b"filled"],
                            b"stats": {b"bytes": 16, b"errors": 0, b"packets": 2},
                        },
                    ],
                }
            ],
        },
        b"B": {
            b"tag": b"B",
            b"medias": [
                {
                    b"index": 1,
                    b"type": b"audio",
                    b"streams": [
                        {
                            b"endpoint": {
                                b"family": b"IPv4",
                                b"address": b"127.0.0.1",
                                b"port": 45587,
                            },
                            b"flags": [b"RTP", b"filled"],
                            b"stats": {b"bytes": 92, b"errors": 0, b"packets": 1},
                        },
                        {b"flags": [b"RTCP"], b"stats": {b"bytes": 0, b"packets": 0}},
                    ],
                },
                {b"index": 2, b"type": b"video", b"streams": []},
            ],
        },
    },
    b"totals": {b"RTP": {b"bytes": 608, b"packets": 4}},
}


def test_query_replies_become_session_stats() -> None:
    wire = bencoder.bencode(DELETE_REPLY)
    stats = ng.session_stats("call-1", bencoder.bdecode(wire))
    assert stats.call_id == "call-1"
    audio, video = stats.streams
    assert (audio.index, audio.kind, video.index, video.kind) == (0, "audio", 1, "video")
    assert (audio.a_to_b.rtp_packets, audio.a_to_b.rtp_bytes) == (3, 516)
    assert (audio.a_to_b.rtcp_packets, audio.a_to_b.rtcp_bytes) == (2, 16)
    assert (audio.b_to_a.rtp_packets, audio.b_to_a.rtp_bytes) == (1, 92)
    assert audio.a_peer == ("127.0.0.1", 51028) and audio.b_peer == ("127.0.0.1", 45587)
    assert video.a_to_b.rtp_packets == 0 and video.b_peer is None
    # a reply missing its parts gives empty stats, not an exception
    assert ng.session_stats("x", {b"result": b"ok", b"tags": [b"odd"]}).streams == []


def test_list_replies_and_decode_errors() -> None:
    assert ng.call_ids({b"calls": [b"a-1", b"a-2"]}) == {"a-1", "a-2"}
    assert ng.call_ids({}) == set()
    with pytest.raises(ng.NgProtocolError, match="no cookie"):
        ng.decode(b"d6:result2:oke")
    with pytest.raises(ng.NgProtocolError, match="not a dictionary"):
        ng.decode(b"c1 li1ee")
    assert ng.decode(b"c1 d6:result2:oke") == (b"c1", {b"result": b"ok"})


def test_rtpengine_rtcp_quality_goes_to_the_sending_side() -> None:
    """rtpengine's ``SSRC`` table ("average MOS": packet loss %, jitter ms, round trip
    us, its reading of RFC 3550 6.4.1 reports) lands on the direction that SSRC sends;
    10.5 in userspace passthrough leaves it empty (tests/media/test_engine_contract.py)."""
    reply = copy.deepcopy(DELETE_REPLY)
    a_rtp = reply[b"tags"][b"A"][b"medias"][0][b"streams"][0]
    a_rtp[b"SSRC"] = 0x2A
    b_rtp = reply[b"tags"][b"B"][b"medias"][0][b"streams"][0]
    b_rtp[b"SSRC"] = 7
    reply[b"SSRC"] = {
        b"42": {
            b"average MOS": {
                b"MOS": 43,
                b"packet loss": 3,
                b"jitter": 12,
                b"round-trip time": 25000,
                b"samples": 4,
            }
        },
        b"7": {},
    }
    stats = ng.session_stats("call-1", bencoder.bdecode(bencoder.bencode(reply)))
    a_to_b, b_to_a = stats.streams[0].a_to_b, stats.streams[0].b_to_a
    assert a_to_b.reported_fraction_lost == 0.03 and a_to_b.loss_ratio == 0.03
    assert a_to_b.reported_jitter == 0.012 and a_to_b.rtt == 0.025
    assert (b_to_a.reported_fraction_lost, b_to_a.rtt, b_to_a.loss_ratio) == (None, None, None)

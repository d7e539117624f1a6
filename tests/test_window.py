"""A window of messages in flight with CHUNKING: order, verdicts, RSET, adaptation.

The server (``ScriptedServer(hold_replies=...)``) holds its replies until the
client goes quiet, so ``turns`` counts the client's waits: a client with W
messages in flight waits once per W messages, one that waits for each
verdict once per message. Every scenario runs on the blocking and the
asyncio sessions and pools, and checks what the server stored, message by
message. An answer never comes for a message whose BDAT LAST went out
before the connection was lost: that is an unknown outcome, not a failure
to retry blindly.
"""
from __future__ import annotations

import pytest

from smtpstream.smtp.errors import (
    RemoteProtocolError,
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPUnknownOutcome,
)
from smtpstream.smtp.window import DEFAULT_WINDOW, Window

from smtp_servers import ScriptedServer
from test_bulk import expected, fields, send_async, send_async_pool, send_blocking, send_pool

CHUNKING = ("PIPELINING", "CHUNKING", "8BITMIME")
HOLD = 0.05  # seconds of client silence before the server answers
SESSIONS = {"blocking": send_blocking, "asyncio": send_async}
POOLS = {"pool": send_pool, "async-pool": send_async_pool}


@pytest.fixture(params=list(SESSIONS) + list(POOLS))
def send(request):
    return {**SESSIONS, **POOLS}[request.param]


@pytest.fixture(params=list(SESSIONS))
def send_one(request):
    return SESSIONS[request.param]


@pytest.fixture(params=list(POOLS))
def send_pooled(request):
    return POOLS[request.param]


def big_fields(i: int) -> dict:
    """A message past one BDAT command (1 MiB): several BDATs, the last one in the window."""
    f = fields(i)
    f["source"] = [f["source"][0] + b"x" * 998 + b"\r\n"] * 1200
    return f


def unknown_then_not_sent(results) -> int:
    """How many results lead with an unknown outcome; the rest must say "not sent"."""
    n = 0
    while n < len(results) and results[n].unknown:
        assert isinstance(results[n].error, SMTPUnknownOutcome)
        n += 1
    assert all(isinstance(r.error, SMTPServerDisconnected) and not r.unknown for r in results[n:])
    return n


def stored(server) -> list[tuple[str, bytes]]:
    return [(m.mail_from, m.content) for m in server.messages]


def wanted(indexes, big=()) -> list[tuple[str, bytes]]:
    return [(f"sender{i}@example.com", b"".join(big_fields(i)["source"]) if i in big else expected(i))
            for i in indexes]


@pytest.mark.parametrize("w", [4, 16])
def test_a_window_of_w_messages_costs_one_round_trip_per_w_messages(send, w):
    k = 48
    messages = [big_fields(i) if i == 10 else fields(i) for i in range(k)]
    window = Window(w)
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD) as server:
        results = send(server.port, messages, window=window)
    assert [r.index for r in results] == list(range(k)) and all(r.ok and r.result.chunking for r in results)
    assert [r.result.queue_id for r in results] == ["4XyZ12"] * k  # each its own BDAT LAST's reply
    assert stored(server) == wanted(range(k), big={10})
    # greeting, EHLO, one wait per window, the big message's first BDAT, the end
    assert server.turns <= k // w + 6, server.turns
    assert window.limit == w and window.reason is None
    lines = [line.split(b" ")[0] for line in server.lines if not line.startswith(b"BDAT")]
    assert lines[1:] == [b"MAIL", b"RCPT", b"RSET"] * k + [b"QUIT"]  # an RSET after each BDAT LAST


def test_a_window_of_one_waits_for_every_verdict(send):
    k = 20
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD) as server:
        results = send(server.port, [fields(i) for i in range(k)], window=1)
    assert all(r.ok for r in results)
    assert stored(server) == wanted(range(k))
    assert server.turns >= k
    assert not any(line == b"RSET" for line in server.lines)


def test_data_mode_stays_one_round_trip_per_message_whatever_the_window(send):
    k = 20
    with ScriptedServer(hold_replies=HOLD) as server:  # PIPELINING, no CHUNKING
        results = send(server.port, [fields(i) for i in range(k)], window=64)
    assert all(r.ok and not r.result.chunking for r in results)
    assert stored(server) == wanted(range(k))
    assert server.turns >= k


def test_the_default_window(send):
    k = 3 * DEFAULT_WINDOW
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD) as server:
        results = send(server.port, [fields(i) for i in range(k)])
    assert all(r.ok for r in results)
    assert stored(server) == wanted(range(k))
    assert server.turns <= 3 + 6, server.turns


def test_refusals_mid_window_keep_their_own_verdicts_and_rset_closes_a_failed_transaction(send):
    # Message 4's BDAT LAST is refused and the server keeps that transaction
    # open: without the RSET after it, message 5's MAIL would get 503.
    # Message 9's only recipient is refused.
    k = 24
    messages = [fields(i) for i in range(k)]
    messages[9] = fields(9, rcpt="nobody@example.com")
    window = Window(8)
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD, keep_failed_open=True,
                        refuse={"nobody@example.com"}, replies={("END", 5): "554 5.7.1 rejected as spam"}) as server:
        results = send(server.port, messages, window=window)
    assert [r.index for r in results] == list(range(k))
    assert [r.ok for r in results] == [i not in (4, 9) for i in range(k)]
    assert isinstance(results[4].error, SMTPDataError)
    assert (results[4].error.code, results[4].error.phase) == (554, "end") and not results[4].unknown
    assert isinstance(results[9].error, SMTPRecipientsRefused)
    assert list(results[9].refused) == ["nobody@example.com"]
    assert stored(server) == wanted(i for i in range(k) if i not in (4, 9))
    assert window.limit == 8 and server.turns <= k // 8 + 6, server.turns


def test_a_503_to_mail_drops_the_window_to_one(send):
    k, w = 30, 8
    window = Window(w)
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD,
                        replies={("MAIL", 6): "503 5.5.1 Error: bad sequence of commands"}) as server:
        results = send(server.port, [fields(i) for i in range(k)], window=window)
    assert [r.ok for r in results] == [i != 5 for i in range(k)]
    assert isinstance(results[5].error, SMTPSenderRefused) and results[5].error.code == 503
    assert stored(server) == wanted(i for i in range(k) if i != 5)
    assert window.limit == 1 and "503" in window.reason
    # from the window that met it on, one message per round trip
    assert server.turns >= k - 2 * w, server.turns


def test_a_reply_that_breaks_the_protocol_mid_window(send_one):
    # The 5th MAIL is answered 354: a reply out of place. The four messages
    # before it have their verdicts; the 5th gets the protocol error; the
    # rest of the window had their BDAT LAST on the wire: unknown outcome.
    k, w = 20, 8
    window = Window(w)
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD, replies={("MAIL", 5): "354 go ahead"}) as server:
        results = send_one(server.port, [fields(i) for i in range(k)], window=window)
    assert [r.ok for r in results] == [True] * 4 + [False] * (k - 4)
    assert isinstance(results[4].error, RemoteProtocolError) and not results[4].unknown
    lost = unknown_then_not_sent(results[5:])
    assert w - 5 <= lost <= w  # at least the rest of the window, never more than a window
    assert window.limit == 1 and "RemoteProtocolError" in window.reason
    assert stored(server)[:4] == wanted(range(4))


def test_a_disconnect_mid_window_leaves_the_messages_in_flight_unknown(send_one):
    k, w = 20, 8
    window = Window(w)
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD, hang_up_after=3) as server:
        results = send_one(server.port, [fields(i) for i in range(k)], window=window)
    assert [r.ok for r in results] == [True] * 3 + [False] * (k - 3)
    # BDAT LAST of messages 3..7 (and maybe of a few more written before the
    # close was seen) went out, no reply came: maybe delivered, not a plain failure
    assert w - 3 <= unknown_then_not_sent(results[3:]) <= w
    assert stored(server) == wanted(range(3))
    assert window.limit == 1


def test_a_pool_resends_a_lost_window_once_one_message_at_a_time(send_pooled):
    # The server hangs up at the 9th MAIL of each connection: the messages of
    # the window after it are unknown, sent again (flagged possible
    # duplicates) on a new connection, now one at a time; each stored once, in order.
    k = 12
    with ScriptedServer(extensions=CHUNKING, hold_replies=HOLD, hang_up_after=8) as server:
        results = send_pooled(server.port, [fields(i) for i in range(k)], window=16)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    # 8..10 at least had their BDAT LAST out before the close was seen
    assert [r.possible_duplicate for r in results][:11] == [i >= 8 for i in range(11)]
    assert stored(server) == wanted(range(k))
    assert server.connections == 2


def test_window_field_is_checked():
    from smtpstream.smtp import Session

    for bad, kind in ((0, ValueError), (-3, ValueError), (True, TypeError), (2.5, TypeError), ("8", TypeError)):
        with pytest.raises(kind, match="window"):
            Session(server="127.0.0.1", port=1, window=bad)

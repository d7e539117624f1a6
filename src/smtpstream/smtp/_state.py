"""Every state of an SMTP client connection and every legal transition, in one place.

Rule 1 (h11's): everything that decides a state transition lives in this
file. ``protocol.py`` only looks the tables up.

* :data:`SEND` -- ``(state, verb) -> state``: the commands we may send in a
  state, and where sending one takes us. A pair not listed is a
  :class:`LocalProtocolError`. States move *when a command is sent*, so
  pipelined commands (RFC 2920) can follow each other before any reply.
* :data:`REPLY` -- ``(state, verb, outcome) -> state``: what a reply to a
  command does, given the state we are in when it arrives (with pipelining
  that may be several commands later). A key not listed is a bug here.
* :data:`NEUTRAL` -- verbs whose replies never change the state (one
  refused recipient does not end a transaction; RSET and NOOP act when sent).
* :data:`NEW_TRANSACTION` -- verbs that end the transaction in progress
  when they are *sent*. A reply to a command sent before the latest of them
  belongs to a finished transaction and changes nothing (so a refusal of
  the MAIL before an RSET cannot cancel the MAIL after it).
* :data:`OUTCOMES` -- which reply classes each verb can get; any other
  (a 354 to MAIL, a 250 to DATA) is a :class:`RemoteProtocolError`; so is
  a positive code other than :data:`COMPLETES` lists (a 221 to the end of data).
* :data:`GROUP_ENDERS` -- verbs after which nothing may be sent until every
  reply is in (RFC 2920 3.1, RFC 3207 4, RFC 4954 4). The end of data is not
  one: the next message's MAIL may follow it (pipelining across messages);
  its reply then arrives in the next transaction's epoch and is filed, not
  acted on.
* Rules outside the tables, stated here so they are in this file:
  a 421 reply (to anything, or unsolicited) and the end of the connection
  lead to ``CLOSED`` from any state; any protocol error leads to ``ERROR``,
  which is sticky; a command may be sent while replies are pending only when
  the server offered PIPELINING; :data:`TLS_STARTED` is the transport's
  "handshake done" event.
"""
from __future__ import annotations

from enum import Enum

__all__ = [
    "State", "Verb", "Outcome", "SEND", "REPLY", "OUTCOMES", "NEUTRAL", "NEW_TRANSACTION",
    "GROUP_ENDERS", "TLS_STARTED", "COMPLETES", "outcome_of",
]


class State(Enum):
    """Where the client connection is (RFC 5321 section 3)."""

    __hash__ = object.__hash__

    #: Connected; waiting for the server's greeting.
    CONNECTED = "connected"
    #: The greeting was not 2xx (e.g. 554): only QUIT is left (RFC 5321 3.1).
    REFUSED = "refused"
    #: Greeted (or TLS just started): EHLO or HELO is needed.
    GREETED = "greeted"
    #: EHLO or HELO sent; waiting for its reply.
    HELLO = "hello"
    #: Ready: no mail transaction open.
    READY = "ready"
    #: STARTTLS sent; waiting for its reply.
    STARTTLS = "starttls"
    #: The server said 220 to STARTTLS: the transport must do the handshake.
    TLS_HANDSHAKE = "tls-handshake"
    #: AUTH (or a response to a challenge) sent; waiting.
    AUTH = "auth"
    #: A 334 challenge arrived: a response (or "*" to cancel) is due.
    AUTH_CHALLENGE = "auth-challenge"
    #: MAIL FROM sent: RCPT may follow.
    MAIL = "mail"
    #: At least one RCPT TO sent: more RCPT, DATA or BDAT may follow.
    RCPT = "rcpt"
    #: DATA sent; waiting for 354.
    DATA = "data"
    #: 354 received: body chunks, then the end of data.
    BODY = "body"
    #: At least one BDAT chunk (not the last) sent.
    BDAT = "bdat"
    #: End of data or BDAT LAST sent; waiting for the verdict.
    FINISHING = "finishing"
    #: QUIT sent.
    QUITTING = "quitting"
    #: The connection is over (QUIT answered, 421, or end of stream).
    CLOSED = "closed"
    #: A protocol error happened; nothing more can be done (sticky).
    ERROR = "error"


class Verb(Enum):
    """What a reply can answer. GREETING, END_DATA and BDAT_LAST are not commands
    one types, but each gets exactly one reply, so each is a FIFO entry."""

    __hash__ = object.__hash__  # the state tables are looked up per reply: identity hashing is cheaper

    GREETING = "greeting"
    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    AUTH_RESPONSE = "auth response"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    END_DATA = "end of data"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


class Outcome(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, not Enum's by-name hash

    OK = 2  #: 2xx
    MORE = 3  #: 3xx: 334 (AUTH challenge), 354 (send the body)
    NO = 4  #: 4xx or 5xx: refused (temporary or permanent)


def outcome_of(code: int) -> Outcome:
    first = code // 100
    return Outcome.OK if first == 2 else Outcome.MORE if first == 3 else Outcome.NO


S, V, OK, MORE, NO = State, Verb, Outcome.OK, Outcome.MORE, Outcome.NO

# ------------------------------------------------------------------ sending

SEND: dict[tuple[State, Verb], State] = {
    (S.GREETED, V.EHLO): S.HELLO,
    (S.GREETED, V.HELO): S.HELLO,
    (S.READY, V.EHLO): S.HELLO,
    (S.READY, V.HELO): S.HELLO,
    (S.READY, V.STARTTLS): S.STARTTLS,
    (S.READY, V.AUTH): S.AUTH,
    (S.AUTH_CHALLENGE, V.AUTH_RESPONSE): S.AUTH,
    (S.READY, V.MAIL): S.MAIL,
    (S.MAIL, V.RCPT): S.RCPT,
    (S.RCPT, V.RCPT): S.RCPT,
    (S.RCPT, V.DATA): S.DATA,
    (S.BODY, V.END_DATA): S.FINISHING,
    (S.RCPT, V.BDAT): S.BDAT,
    (S.BDAT, V.BDAT): S.BDAT,
    (S.RCPT, V.BDAT_LAST): S.FINISHING,
    (S.BDAT, V.BDAT_LAST): S.FINISHING,
    # Pipelining across messages (RFC 2920 3.1: the end of one message's data
    # and the next MAIL/RCPT/DATA may share a group): the end of data ends the
    # transaction whatever its reply says, so the next one may start at once.
    (S.FINISHING, V.MAIL): S.MAIL,
    (S.FINISHING, V.RSET): S.READY,
    (S.FINISHING, V.QUIT): S.QUITTING,
    # RSET ends any transaction not in its data phase (RFC 5321 4.1.1.5;
    # RFC 3030 2: also after BDAT chunks).
    (S.GREETED, V.RSET): S.GREETED,
    (S.READY, V.RSET): S.READY,
    (S.MAIL, V.RSET): S.READY,
    (S.RCPT, V.RSET): S.READY,
    (S.BDAT, V.RSET): S.READY,
    (S.GREETED, V.NOOP): S.GREETED,
    (S.READY, V.NOOP): S.READY,
    (S.MAIL, V.NOOP): S.MAIL,
    (S.RCPT, V.NOOP): S.RCPT,
    (S.REFUSED, V.QUIT): S.QUITTING,
    (S.GREETED, V.QUIT): S.QUITTING,
    (S.READY, V.QUIT): S.QUITTING,
    (S.MAIL, V.QUIT): S.QUITTING,
    (S.RCPT, V.QUIT): S.QUITTING,
    (S.BDAT, V.QUIT): S.QUITTING,
}

# ------------------------------------------------------------------ replies

ANY = (OK, MORE, NO)  # narrowed by OUTCOMES when expanded

_REPLY_RULES: list[tuple[State, Verb, tuple[Outcome, ...], State | None]] = [
    # (state when the reply arrives, verb it answers, outcomes, new state; None = unchanged)
    (S.CONNECTED, V.GREETING, (OK,), S.GREETED),
    (S.CONNECTED, V.GREETING, (NO,), S.REFUSED),
    (S.HELLO, V.EHLO, (OK,), S.READY),
    (S.HELLO, V.EHLO, (NO,), S.GREETED),  # -> HELO fallback (RFC 5321 3.2)
    (S.HELLO, V.HELO, (OK,), S.READY),
    (S.HELLO, V.HELO, (NO,), S.GREETED),
    (S.STARTTLS, V.STARTTLS, (OK,), S.TLS_HANDSHAKE),
    (S.STARTTLS, V.STARTTLS, (NO,), S.READY),
    (S.AUTH, V.AUTH, (OK, NO), S.READY),
    (S.AUTH, V.AUTH, (MORE,), S.AUTH_CHALLENGE),
    (S.AUTH, V.AUTH_RESPONSE, (OK, NO), S.READY),
    (S.AUTH, V.AUTH_RESPONSE, (MORE,), S.AUTH_CHALLENGE),
    # MAIL (of the current transaction): refused -> the transaction is gone,
    # so later pipelined RCPTs and BDATs are refused too, and no more may be sent.
    (S.MAIL, V.MAIL, (OK,), None),
    (S.MAIL, V.MAIL, (NO,), S.READY),
    (S.RCPT, V.MAIL, (OK,), None),
    (S.RCPT, V.MAIL, (NO,), S.READY),
    (S.BDAT, V.MAIL, (OK,), None),
    (S.BDAT, V.MAIL, (NO,), S.READY),
    (S.DATA, V.MAIL, ANY, None),  # DATA's own reply decides
    (S.FINISHING, V.MAIL, ANY, None),  # so does BDAT LAST's
    (S.DATA, V.DATA, (MORE,), S.BODY),
    (S.DATA, V.DATA, (NO,), S.READY),
    (S.FINISHING, V.END_DATA, ANY, S.READY),
    # BDAT: after a refused chunk no more may be sent (RFC 3030 2).
    (S.BDAT, V.BDAT, (OK,), None),
    (S.BDAT, V.BDAT, (NO,), S.READY),
    (S.FINISHING, V.BDAT, ANY, None),  # BDAT LAST's reply decides
    (S.READY, V.BDAT, ANY, None),  # MAIL or an earlier chunk was refused already
    (S.FINISHING, V.BDAT_LAST, ANY, S.READY),
    (S.QUITTING, V.QUIT, ANY, S.CLOSED),
]

#: Replies to these never change the state, whenever they arrive.
NEUTRAL = frozenset({V.RCPT, V.RSET, V.NOOP})
#: Sending one of these starts a new transaction epoch (see the module doc).
NEW_TRANSACTION = frozenset({V.MAIL, V.RSET, V.QUIT})

#: Reply classes each verb may get (RFC 5321 4.3.2, RFC 4954, RFC 3030, RFC 3207).
OUTCOMES: dict[Verb, frozenset[Outcome]] = {
    verb: frozenset({OK, NO}) for verb in Verb
}
OUTCOMES[V.AUTH] = OUTCOMES[V.AUTH_RESPONSE] = frozenset({OK, MORE, NO})
OUTCOMES[V.DATA] = frozenset({MORE, NO})

#: The codes that complete a verb (RFC 5321 4.3.2, RFC 3030, RFC 3207): any other
#: 2xx or 3xx to it (a 221 or 299 after the end of data, a 220 to MAIL) is the
#: server's protocol error, never a success.
COMPLETES: dict[Verb, frozenset[int]] = {
    V.MAIL: frozenset({250}),
    V.RCPT: frozenset({250, 251}),
    V.DATA: frozenset({354}),
    V.END_DATA: frozenset({250}),
    V.BDAT: frozenset({250}),
    V.BDAT_LAST: frozenset({250}),
    V.STARTTLS: frozenset({220}),
}

REPLY: dict[tuple[State, Verb, Outcome], State | None] = {}
for _state, _verb, _outcomes, _next in _REPLY_RULES:
    for _outcome in _outcomes:
        if _outcome in OUTCOMES[_verb]:
            REPLY[(_state, _verb, _outcome)] = _next
del _state, _verb, _outcomes, _next, _outcome

#: After sending one of these, wait for every reply before sending anything.
#: The end of data and BDAT LAST are not among them: RFC 2920 3.1 names the
#: message content as allowed at the start of a group, so the next
#: transaction's commands may follow it in the same write.
GROUP_ENDERS = frozenset(
    {V.EHLO, V.HELO, V.STARTTLS, V.AUTH, V.AUTH_RESPONSE, V.DATA, V.NOOP, V.QUIT}
)

#: The transport finished the TLS handshake after STARTTLS: start over (RFC 3207 4.2).
TLS_STARTED: dict[State, State] = {S.TLS_HANDSHAKE: S.GREETED}

"""What the conformance suite's case files share (run.py, deflate_cases.py):
the case list and how a case is added, the servers' arguments and the
running servers, the pieces an input is written in per mode, and how a
declarative case is run and checked."""
from wsclient import (OP_PONG, Closed, Conn, Fail, clean_close, describe, expect_close, expect_message,
                      expect_silence, split_small)

MAIN_ARGS = ["--max-message", str(16 << 20), "--outbound-limit", str(64 << 20)]
LIMIT = 1000
LIMIT_ARGS = ["--max-message", str(LIMIT)]

CASES = []
SERVERS = {}  # name -> the running Server


class Case:
    def __init__(self, cid, desc, run=None, inp=None, expect=None, modes=("whole", "split"),
                 server="main", offsets=False, then_close=True, path="/"):
        self.cid, self.desc, self.fn = cid, desc, run
        self.inp, self.expect = inp, expect
        self.modes = list(modes) + (["offsets"] if offsets else [])
        self.server = server
        self.then_close = then_close
        self.path = path


def add(*a, **kw):
    CASES.append(Case(*a, **kw))


def pieces_for(mode, data, offset=None):
    if mode == "whole":
        return None, 0.0
    if mode == "split":
        p = split_small(data)
        return p, (0.0005 if len(p) <= 400 else 0.0)
    if mode == "offsets":
        return [data[:offset], data[offset:]], 0.002
    raise ValueError(mode)


def text(n):
    return (b"*" * n)


def binary(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# ---------------------------------------------------------------------------
# declarative cases: write `inp` (per mode), then check `expect` in order:
#   ("msg", opcode, payload)   the next message is exactly this
#   ("close", code | (codes))  the server closes with it and ends TCP
#   ("silence",)               nothing arrives for a moment
# A case whose expectations do not end in a close finishes with a clean
# closing handshake, which proves the connection was still healthy.

def M(op, payload):
    return ("msg", op, payload)


def CLOSE(codes):
    return ("close", codes)


SILENCE = ("silence",)


def PONGS(payloads):
    """Pongs for pings sent back to back: RFC 6455 5.5.3 lets the server
    answer only the most recent of the pings it has not answered yet, so the
    pongs must be an in-order subsequence that ends with the last ping."""
    return ("pongs", list(payloads))


def check_expectations(c, expect, then_close):
    for e in expect:
        if e[0] == "msg":
            expect_message(c, e[1], e[2])
        elif e[0] == "close":
            expect_close(c, e[1])
            return
        elif e[0] == "silence":
            expect_silence(c)
        elif e[0] == "pongs":
            want, at = e[1], -1
            while at != len(want) - 1:
                try:
                    op, data = c.recv_message()
                except TimeoutError:
                    raise Fail("expected pong %r, got nothing in time" % want[-1])
                except Closed as x:
                    raise Fail("expected pong %r, got TCP %s" % (want[-1], x.how))
                if op != OP_PONG or data not in want[at + 1:]:
                    raise Fail("expected pongs in order ending with %r, got %s after pong %d"
                               % (want[-1], describe(op, data), at + 1))
                at = want.index(data, at + 1)
    if then_close:
        clean_close(c)


def run_declarative(case, port, mode):
    data = case.inp() if callable(case.inp) else case.inp
    offsets = [None] if mode != "offsets" else range(1, len(data))
    for off in offsets:
        with Conn(port, case.path) as c:
            pieces, pause = pieces_for(mode, data, off)
            try:
                c.write(data, pieces, pause)
            except Closed:
                pass  # the server may fail the connection before all is written
            try:
                check_expectations(c, case.expect, case.then_close)
            except Fail as e:
                if off is not None:
                    raise Fail("cut at byte %d of %d: %s" % (off, len(data), e))
                raise

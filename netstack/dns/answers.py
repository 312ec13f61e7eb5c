"""Pre-rendered answers for the authoritative server: the wire form of an answer kept per
question, so a question asked again costs a dictionary look-up and three byte copies instead
of dnspython's parsing and rendering (~0.45 ms of CPU a query).

Two parts, no I/O and no clock:

- :func:`question_key`: a strict parser of the one query shape that is answered from the
  cache (RFC 1035 4.1.1 header, 4.1.2 question; RFC 6891 6.1.2 OPT), giving the key of
  everything the answer depends on, or None for anything else (which the server answers the
  long way, as before, and does not cache);
- :class:`AnswerCache`: answers by key, bounded in entries and bytes, emptied when the zone
  data changes; and in front of it, for queries over UDP, the answers by the query's exact
  bytes after its ID (:meth:`AnswerCache.exact`), which skips even the parsing: two queries
  equal but for their IDs get answers equal but for their IDs, since everything an answer
  copies or depends on is in those bytes (the RD bit, the question as sent, the OPT).

What an answer depends on, and so what the key holds (the server's behaviour, which this
keeps byte for byte):

- the question's name compared without ASCII case (RFC 4343 3), its QTYPE and its QCLASS;
- whether the query had an OPT (RFC 6891 7: an OPT in the answer exactly when the query had
  one) and its DO bit (RFC 3225 3: copied into the answer's OPT);
- the size the answer must fit (RFC 1035 4.2.1: 512 bytes over UDP without EDNS; RFC 6891
  6.2.3-6.2.5: the client's payload size, at least 512, at most the server's own; no limit
  over TCP): it decides whether additional records are left out (RFC 2181 9) or TC is set.

What an answer copies from its query, patched into a cached answer on every hit:

- the ID (RFC 1035 4.1.1);
- the RD bit (RFC 1035 4.1.1: "copied into the response"); no other header bit is copied
  (CD is not: this server is not security-aware, RFC 4035 3.2.2 speaks of those that are);
- the question's bytes as sent, so a client's mixed case comes back as it asked
  (draft-vixie-dnsext-dns0x20). The rest of an answer does not depend on that case: every
  later occurrence of the question's name, or of a suffix of it, is compressed to a pointer
  into the question (RFC 1035 4.1.4) at the same offset whatever its case, and names from the
  zone keep the zone's case.

Not answered from the cache (and not put in it): a header with an opcode other than QUERY,
QR set, or section counts other than one question and at most one additional record; a name
with a compression pointer or over 255 bytes; bytes after the last record; an additional
record that is not an OPT owned by the root; an OPT of a version other than 0 (BADVERS) or
with extended RCODE bits set; EDNS options that do not parse, that dnspython reads into
something it can reject (anything but NSID, COOKIE of a valid length and the options it
does not know), or a padding option on an encrypted transport (RFC 8467 4.1 pads those
answers). Those are all answered as before, by dnspython, and counted as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.edns

__all__ = ["VARIANTS", "AnswerCache", "CachedAnswer", "QuestionKey", "question_key"]

#: RFC 1035 4.1.1: the header's length.
HEADER_LEN = 12
#: RFC 1035 3.1: a name is at most 255 octets on the wire.
MAX_NAME = 255
#: RFC 1035 4.2.1 and RFC 6891 6.2.3: the UDP size without EDNS, and the least with it.
CLASSIC_UDP_SIZE = 512
#: No size limit over TCP but the length prefix's (RFC 1035 4.2.2).
STREAM_SIZE = 65535
_OPT = 41
_PADDING = int(dns.edns.OptionType.PADDING)
_NSID = int(dns.edns.OptionType.NSID)
_COOKIE = int(dns.edns.OptionType.COOKIE)
#: Section counts (QD, AN, NS, AR) of the two header shapes the cache answers.
_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
#: Renderings kept of an answer whose record order dnspython shuffles each time.
VARIANTS = 8
#: The exact-bytes table (:meth:`AnswerCache.exact`): queries kept, and the longest kept (a
#: query with a question and an OPT is far shorter; longer ones go the parsing way).
EXACT_ENTRIES = 4096
EXACT_MAX_QUERY = 512
#: Whether dnspython reads an option of a code as raw bytes (which it never rejects), by code.
_GENERIC: dict[int, bool] = {}

#: (question name in lower case, QTYPE and QCLASS bytes, EDNS: -1 none, 0 or 1 the DO bit,
#: the size the answer must fit).
QuestionKey = tuple[bytes, bytes, int, int]


def _option_ok(code: int, length: int, encrypted: bool) -> bool:
    """Whether an EDNS option leaves the query answerable from the cache."""
    if code == _PADDING:
        return not encrypted  # RFC 8467 4.1: only encrypted answers are padded
    if code == _NSID:
        return True
    if code == _COOKIE:
        # RFC 7873 4: an 8-byte client cookie and an 8 to 32 byte server cookie or none;
        # dnspython rejects (FORMERR) any other length.
        return length == 8 or 16 <= length <= 40
    generic = _GENERIC.get(code)
    if generic is None:
        generic = (
            dns.edns.get_option_class(dns.edns.OptionType.make(code)) is dns.edns.GenericOption
        )
        if len(_GENERIC) < 1024:
            _GENERIC[code] = generic
    return generic


def question_key(
    wire: bytes, *, udp: bool, encrypted: bool, udp_payload: int
) -> tuple[QuestionKey, int] | None:
    """The cache key of a query and the offset where its question's name ends, or None when
    the query is not of the shape answered from the cache (see the module docstring).

    Args:
        wire: the query, without a TCP length prefix; at least the 12-byte header.
        udp: whether it came over UDP (the answer's size limit depends on it).
        encrypted: whether it came over an encrypted transport (padding, RFC 8467).
        udp_payload: the largest UDP answer the server sends (RFC 6891 6.2.5).
    """
    end = len(wire)
    # RFC 1035 4.1.1: QR clear, opcode QUERY (0); the rest of the flags are not looked at.
    if wire[2] & 0xF8:
        return None
    counts = wire[4:12]
    with_opt = counts == _COUNTS_OPT
    if not with_opt and counts != _COUNTS_PLAIN:
        return None
    # RFC 1035 4.1.2 and 3.1: labels of 1-63 bytes up to the root; no pointer (0xC0) nor
    # extended label type (0x40, RFC 6891 5) in a question.
    pos = HEADER_LEN
    limit = min(end, HEADER_LEN + MAX_NAME)
    while True:
        if pos >= limit:
            return None
        n = wire[pos]
        if n == 0:
            break
        if n > 63:
            return None
        pos += n + 1
    name_end = pos + 1
    qend = name_end + 4
    if qend > end:
        return None
    if not with_opt:
        if qend != end:
            return None  # trailing bytes: dnspython answers FORMERR
        size = CLASSIC_UDP_SIZE if udp else STREAM_SIZE
        return (wire[HEADER_LEN:name_end].lower(), wire[name_end:qend], -1, size), name_end
    # RFC 6891 6.1.2: the OPT: root owner, TYPE 41, CLASS the payload size, TTL the extended
    # RCODE, version and flags, then RDLEN and the options.
    rdata = qend + 11
    if rdata > end or wire[qend] != 0 or wire[qend + 1] != 0 or wire[qend + 2] != _OPT:
        return None
    if wire[qend + 5] or wire[qend + 6]:
        return None  # extended RCODE bits, or a version above 0 (BADVERS, RFC 6891 6.1.3)
    if rdata + ((wire[qend + 9] << 8) | wire[qend + 10]) != end:
        return None
    pos = rdata
    while pos < end:
        if pos + 4 > end:
            return None
        length = (wire[pos + 2] << 8) | wire[pos + 3]
        if pos + 4 + length > end:
            return None
        if not _option_ok((wire[pos] << 8) | wire[pos + 1], length, encrypted):
            return None
        pos += 4 + length
    if udp:
        payload = (wire[qend + 3] << 8) | wire[qend + 4]
        size = min(max(CLASSIC_UDP_SIZE, payload), udp_payload)
    else:
        size = STREAM_SIZE
    edns = 1 if wire[qend + 7] & 0x80 else 0
    return (wire[HEADER_LEN:name_end].lower(), wire[name_end:qend], edns, size), name_end


@dataclass(slots=True)
class CachedAnswer:
    """An answer's wire form around the parts patched per query, and what answering it
    counts (the server's counters move on a hit as on the first answer).

    An answer with an RRset of several records is rendered by dnspython in a new random
    order each time (round robin among a name's addresses); such an answer is kept in
    :data:`VARIANTS` renderings, taken in turn, so clients still see the order change.
    """

    #: Bytes 2-11 of the header with RD clear and with RD set.
    head: bytes
    head_rd: bytes
    #: Everything after the question's name, one per rendering kept.
    tails: list[bytes]
    #: Renderings wanted: 1, or :data:`VARIANTS` for an answer whose order varies.
    wanted: int
    rcode: str
    truncated: bool
    additional_omitted: bool
    turn: int = 0

    def render(self, wire: bytes, name_end: int) -> bytes:
        """The answer to ``wire``: its ID, its RD bit, its question's bytes as sent."""
        head = self.head_rd if wire[2] & 1 else self.head
        tails = self.tails
        if len(tails) == 1:
            tail = tails[0]
        else:
            self.turn = turn = (self.turn + 1) % len(tails)
            tail = tails[turn]
        return b"".join((wire[:2], head, wire[HEADER_LEN:name_end], tail))


class AnswerCache:
    """Answers by :data:`QuestionKey`, at most ``max_entries`` of them and ``max_bytes`` of
    answer bytes; beyond either the oldest go first. :meth:`clear` when the zone data changes.

    Args:
        max_entries: answers kept.
        max_bytes: answer bytes kept, after the question (an answer over TCP may be 64 KiB).

    Raises:
        ValueError: a bound below 1.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 8 << 20) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("the answer cache's bounds must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._answers: dict[QuestionKey, CachedAnswer] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evicted = 0
        self.cleared = 0
        #: Answers by a UDP query's bytes after its ID: the answer and, when it has one
        #: rendering, the answer's bytes after the ID (else None: rendered each time, in
        #: turn). Entries refer to answers in the cache: emptied whenever one goes.
        self.exact: dict[bytes, tuple[CachedAnswer, bytes | None, int]] = {}

    def keep_exact(self, wire: bytes, answer: CachedAnswer, name_end: int) -> None:
        """Remember that the UDP query ``wire`` (at most :data:`EXACT_MAX_QUERY` bytes) is
        answered by ``answer``, its question's name ending at ``name_end``; at
        :data:`EXACT_ENTRIES` queries the table starts again (a client that varies its
        question's case (0x20) makes every query new)."""
        if len(wire) > EXACT_MAX_QUERY:
            return
        exact = self.exact
        if len(exact) >= EXACT_ENTRIES:
            exact.clear()
        rest = answer.render(wire, name_end)[2:] if len(answer.tails) == 1 else None
        exact[wire[2:]] = (answer, rest, name_end)

    def get(self, key: QuestionKey) -> CachedAnswer | None:
        """The answer kept for ``key``; None (a miss) when there is none, or fewer renderings
        of it than it wants (the caller renders it the long way and :meth:`put` keeps that
        one too)."""
        answer = self._answers.get(key)
        if answer is None or len(answer.tails) < answer.wanted:
            self.misses += 1
            return None
        self.hits += 1
        return answer

    def put(
        self,
        key: QuestionKey,
        name_end: int,
        out: bytes,
        *,
        rcode: str,
        truncated: bool,
        additional_omitted: bool,
        varies: bool = False,
    ) -> bool:
        """Keep ``out``, the answer rendered for a query of key ``key`` whose question's name
        ends at ``name_end`` (with ``varies``: one rendering of an answer whose record order
        changes each time, kept beside the others). Returns False (and keeps nothing) when
        ``out`` does not have the query's question where the patching expects it, or is
        larger than the cache."""
        size = len(out) - name_end
        if (
            size < 4
            or size > self.max_bytes
            or out[4:6] != b"\x00\x01"
            or out[HEADER_LEN:name_end].lower() != key[0]
            or out[name_end : name_end + 4] != key[1]
        ):
            return False
        flags = out[2]
        head = bytes((flags & 0xFE,)) + out[3:HEADER_LEN]
        old = self._answers.get(key)
        if old is not None:
            if (
                len(old.tails) < old.wanted
                and old.head == head
                and self.bytes + size <= self.max_bytes
            ):
                old.tails.append(out[name_end:])
                self.bytes += size
                return True
            self._forget(key)
        while self._answers and (
            len(self._answers) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            self._forget(next(iter(self._answers)))
            self.evicted += 1
        self._answers[key] = CachedAnswer(
            head=head,
            head_rd=bytes((flags | 1,)) + out[3:HEADER_LEN],
            tails=[out[name_end:]],
            wanted=VARIANTS if varies else 1,
            rcode=rcode,
            truncated=truncated,
            additional_omitted=additional_omitted,
        )
        self.bytes += size
        return True

    def _forget(self, key: QuestionKey) -> None:
        self.bytes -= sum(len(tail) for tail in self._answers.pop(key).tails)
        self.exact.clear()

    def clear(self) -> None:
        """Forget every answer (the zone data changed)."""
        if self._answers:
            self.cleared += 1
        self._answers.clear()
        self.exact.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._answers)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._answers),
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evicted": self.evicted,
            "cleared": self.cleared,
            "exact": len(self.exact),
        }

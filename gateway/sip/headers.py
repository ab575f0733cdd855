"""SIP header fields: their names, comma-separated lists and the ordered collection.

A header name is compared case-insensitively with its compact form expanded (RFC 3261
7.3.1, 7.3.3): :func:`canonical_name` gives the key every lookup uses, while the name as
received is kept for serialising the message back. The values stay text here; the few
that every layer reads are parsed by ``gateway.sip.fields`` and ``gateway.sip.uri``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from gateway.model.memo import Memo
from gateway.sip.errors import SipParseError

# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def is_number(text: str) -> bool:
    """``1*DIGIT`` (RFC 3261 25.1): ASCII digits only (str.isdigit() also accepts "²")."""
    return text.isascii() and text.isdigit()


# RFC 3261 7.3.3 and the IANA registry: compact forms of header names.
COMPACT_FORMS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
}

# Headers whose values are comma-separated lists that may be combined on one line
# (RFC 3261 7.3.1). Authorization and friends are not: their commas separate parameters.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "in-reply-to",
        "reason",
    }
)


def _canonical(name: str) -> str:
    lname = name.lower()
    return COMPACT_FORMS.get(lname, lname)


# Every message spells the same few names: each spelling is lowered once.
CANONICAL_NAME_MEMO: Memo[str] = Memo(_canonical, max_len=64)
# canonical_name(name): the lower-case name, compact forms expanded (RFC 3261 7.3.1, 7.3.3).
canonical_name = CANONICAL_NAME_MEMO.__getitem__


def _check_header_name(raw: str) -> tuple[str, str]:
    name = raw.strip()
    if not TOKEN.match(name):
        raise SipParseError(f"invalid header name {name[:40]!r}")
    return canonical_name(name), name


# Names as received, spaces before the colon included: the parser asks for one per line.
HEADER_NAME_MEMO: Memo[tuple[str, str]] = Memo(_check_header_name, max_len=64)
# header_name(raw): (canonical name, name as kept) of a header name as received, which
# must be a token (RFC 3261 7.3.1, 25.1); the white space before the colon is dropped.
header_name = HEADER_NAME_MEMO.__getitem__


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value outside quotes and angle brackets (7.3.1)."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            item = value[start:i].strip()
            if item:
                out.append(item)
            start = i + 1
        i += 1
    item = value[start:].strip()
    if item:
        out.append(item)
    return out


class Headers:
    """Ordered header fields keeping their received names; lookups by canonical name.

    Each field is kept as (canonical name, name as received, value). Lookups go through
    an index built on first use and dropped by any change, so the dozens of reads a
    message gets on its way through the stack cost a dict access each.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = (
            [(canonical_name(n), n, v) for n, v in items] if items else []
        )
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def from_fields(
        cls, fields: list[tuple[str, str, str]], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Headers that take over (canonical name, name, value) fields already named.

        The parser and response construction know each canonical name already; the
        parser also hands over the index it built on the way (canonical name -> values).
        """
        headers = cls()
        headers._items = fields
        headers._index = index
        return headers

    def _build_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key, _, value in self._items:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        self._index = index
        return index

    def by_name(self) -> Mapping[str, list[str]]:
        """Every value by canonical name, in order: the index lookups go through.

        Read-only: change the headers through the methods below.
        """
        return self._index if self._index is not None else self._build_index()

    def get(self, name: str) -> str | None:
        """The first value of a header, or ``None``."""
        index = self._index if self._index is not None else self._build_index()
        # The stack asks by canonical name; another spelling costs a second lookup.
        values = index.get(name) or index.get(canonical_name(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, comma lists split for list headers (7.3.1)."""
        index = self._index if self._index is not None else self._build_index()
        key = canonical_name(name)
        values = index.get(key)
        if not values:
            return []
        if key in LIST_HEADERS:
            return [item for value in values for item in split_list(value)]
        return list(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        self._items.append((canonical_name(name), name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Insert a header field before all others (Via on the way out, 18.1.1)."""
        self.insert(0, name, value)

    def insert(self, position: int, name: str, value: str) -> None:
        """Insert a header field at a position among all fields."""
        self._items.insert(position, (canonical_name(name), name, value))
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, at the place of the first."""
        key = canonical_name(name)
        self._index = None
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, name, value)
                self._items = [it for j, it in enumerate(self._items) if j <= i or it[0] != key]
                return
        self._items.append((key, name, value))

    def remove(self, name: str) -> None:
        """Remove every field of this name."""
        key = canonical_name(name)
        self._items = [it for it in self._items if it[0] != key]
        self._index = None

    def starting_with(self, prefix: str) -> list[tuple[str, str, str]]:
        """(canonical name, name as received, value) of the fields whose canonical name
        starts with ``prefix`` (lower case), in order."""
        return [item for item in self._items if item[0].startswith(prefix)]

    def serialize(self) -> str:
        """Each field as ``name: value`` and CRLF, Content-Length left out (RFC 3261 7.3).

        The message writes its own Content-Length, from the body it carries (18.3).
        """
        return "".join([f"{n}: {v}\r\n" for k, n, v in self._items if k != "content-length"])

    def items(self) -> Iterator[tuple[str, str]]:
        """(name as received, value) pairs in order."""
        for _, name, value in self._items:
            yield name, value

    def copy(self) -> Headers:
        """A shallow copy (values are immutable strings)."""
        return Headers.from_fields(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

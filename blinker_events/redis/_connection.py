"""The connection to Redis, and riding out its loss.

Each of the bridge's tasks (writer, reader) keeps going across a lost
connection on its own: redis-py reconnects on the next command, so a task
only has to notice the failure, wait -- longer each time, with jitter, so a
fleet of nodes does not reconnect in lockstep -- and try again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from urllib.parse import unquote_plus

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..lowlevel import DESCRIBE_LIMIT as LIMIT
from ..lowlevel import describe

if TYPE_CHECKING:
    from ._session import Counters

__all__ = [
    "CONNECTION_ERRORS",
    "Backoff",
    "Client",
    "Entry",
    "acknowledge",
    "claim_idle",
    "delivery_counts",
    "ensure_group",
    "group_consumers",
    "is_password_key",
    "make_client",
    "read_entries",
    "read_group",
    "read_new_in_group",
    "read_with_info",
    "redact",
    "stream_info",
]

logger = logging.getLogger("blinker_events.redis")

Client: TypeAlias = "redis.asyncio.Redis"

#: What a lost or unreachable server raises. (redis-py's own exceptions, and
#: OSError from the socket on some paths.)
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
#: What a server that refuses the credentials raises (both are also
#: connection errors to redis-py, but no retry fixes them by itself).
REFUSED = (AuthenticationError, AuthorizationError)

FIRST_DELAY = 0.05
MAX_DELAY = 5.0


#: A query parameter: what follows a ``?``, ``&`` or ``;`` (which redis-py
#: reads as part of the value before it, but which a secret may still be
#: written after), up to the next of them: see :func:`_masked`.
_QUERY_PARAM = re.compile(r"([?&;])([^&;#]*)")


def is_password_key(key: str) -> bool:
    """Whether the URL query text ``key`` names a secret: redis-py
    percent-decodes the query too (``pass%77ord`` is its ``password``), and
    ``ssl_password`` is one as well -- so any text that decodes to one
    containing "password"."""
    return "password" in unquote_plus(key).lower()


def _masked(param: re.Match[str]) -> str:
    # The whole parameter is looked at decoded, the value too: an encoded
    # ";" or "=" (``a=1%3Bpassword=...``, ``;password%3D...``) hides a
    # password from a look at the key alone.
    sep, text = param.groups()
    if not is_password_key(text):
        return param.group(0)
    key, equals, _ = text.partition("=")
    return f"{sep}{key}=***" if equals else f"{sep}***"


def redact(url: str) -> str:
    """``url`` fit for a log line or a message: the password of its userinfo
    and of a ``password=`` query parameter (however its key is spelt or
    percent-encoded, ``ssl_password=`` too) become ``***``
    (``redis://user:***@host:6379/0``). Any string is made safe, not only
    valid URLs: an ``@`` or ``/`` in a password need not be escaped for
    redis-py, so the userinfo is everything from ``://`` to the last ``@``
    (whatever comes before ``://``, leading whitespace say, is kept)."""
    start, at = url.find("://") + 3, url.rfind("@")
    shown = url
    if at >= 0:
        if start < 3 or start > at:
            return "<a URL with userinfo, not shown>"
        user, colon, _ = url[start:at].partition(":")
        if colon:
            shown = f"{url[:start]}{user}:***{url[at:]}"
    shown = _QUERY_PARAM.sub(_masked, shown)
    return shown if len(shown) <= LIMIT else shown[: LIMIT - 3] + "..."


def make_client(url: str, options: Mapping[str, Any]) -> Client:
    """A client for ``url`` (``redis://`` or ``rediss://``, with password
    and database; TLS and ACLs are redis-py's). Entries stay bytes."""
    settings: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        # A Redis that hangs (stopped, or behind a black hole) must look
        # unreachable, not slow; longer than the readers' 1 s blocking reads.
        "socket_timeout": 10.0,
        "socket_keepalive": True,
        # The bridge's tasks retry with their own backoff, and count and log
        # each outage; redis-py's retries would only hide and prolong it.
        "retry": Retry(NoBackoff(), 0),
    }
    settings.update(options)
    settings["decode_responses"] = False  # the wire module reads bytes
    settings["protocol"] = 2  # the answers' shapes below are RESP2's
    return redis.asyncio.Redis.from_url(url, **settings)


class Backoff:
    """Exponential backoff with jitter for one task; logs an outage once
    when it starts and once when it ends."""

    def __init__(self, counters: Counters, name: str, refused: Callable[[], object] = lambda: None) -> None:
        self._counters = counters
        self._name = name
        #: Called when Redis refuses the credentials (the session's start waits on it).
        self._refused = refused
        self.delay = 0.0

    @property
    def in_outage(self) -> bool:
        return self.delay > 0

    @asynccontextmanager
    async def retrying(self, doing: str) -> AsyncIterator[None]:
        """Run the block; on a connection error, log, wait and return
        normally so the caller's loop tries again."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Cancelled, yet still here: on Python 3.11 redis-py's use of
            # asyncio.wait_for can swallow a cancellation. The caller's loop
            # comes through here on every turn, so it ends here.
            raise asyncio.CancelledError
        try:
            yield
        except REFUSED as exc:
            # A wrong password is no outage: say so, once per outage; keep
            # trying, as the credentials may be fixed on the server's side.
            self._counters.auth_failures += 1
            self._refused()
            if not self.delay:
                self._counters.connection_errors += 1
                logger.error(
                    "redis bridge %s: Redis refused the credentials while %s (authentication failed, %s: %s); "
                    "check the password or ACL user; retrying",
                    self._name,
                    doing,
                    type(exc).__name__,
                    describe(str(exc)),
                )
            self.delay = min(MAX_DELAY, max(self.delay * 2, FIRST_DELAY * 10))
            await asyncio.sleep(self.delay * random.uniform(0.5, 1.0))
        except CONNECTION_ERRORS as exc:
            if task is not None and task.cancelling():
                # redis-py may turn the cancellation of a blocking read into
                # a connection error; a task being stopped must stop.
                raise asyncio.CancelledError from exc
            if not self.delay:
                self._counters.connection_errors += 1
                # str(), not repr(): redis-py's errors keep the reason (an
                # SSL verification failure, say) out of their repr.
                logger.warning(
                    "redis bridge %s: lost Redis while %s (%s: %s); retrying",
                    self._name,
                    doing,
                    type(exc).__name__,
                    describe(str(exc)),  # a server's error text, bounded
                )
                self.delay = FIRST_DELAY
            else:
                self.delay = min(MAX_DELAY, self.delay * 2)
            await asyncio.sleep(self.delay * random.uniform(0.5, 1.0))
        except Exception:
            # Anything else is a bug or a refusal (say, the stream's key
            # holds another type): never silent, and the bridge keeps trying
            # rather than stop reading without a word.
            self._counters.errors += 1
            logger.exception("redis bridge %s: unexpected error while %s; retrying", self._name, doing)
            self.delay = min(MAX_DELAY, max(self.delay * 2, FIRST_DELAY * 10))
            await asyncio.sleep(self.delay)
        else:
            if self.delay:
                self.delay = 0.0
                self._counters.reconnects += 1
                logger.warning("redis bridge %s: Redis is back; %s again", self._name, doing)


# -- the stream commands, typed as RESP2 answers them ------------------------
#
# redis-py types its answers as any of the RESP2 and RESP3 shapes; the client
# here always speaks RESP2 (see make_client), so each command's answer is
# narrowed once, here.

Entry: TypeAlias = "tuple[bytes, dict[bytes, bytes]]"


async def read_entries(client: Client, stream: str, after: bytes, count: int, block: int) -> list[Entry]:
    """XREAD: entries after ``after``, waiting up to ``block`` ms for one."""
    response = cast("list[tuple[bytes, list[Entry]]]", await client.xread({stream: after}, count=count, block=block))
    return response[0][1] if response else []


async def read_with_info(
    client: Client, stream: str, after: bytes, count: int
) -> tuple[dict[str, Any] | None, list[Entry]]:
    """In one transaction, XINFO STREAM (None if there is no stream yet) and
    XREAD of up to ``count`` entries after ``after``, without waiting: the
    stream's counts then describe exactly the state the entries were read in."""
    pipe = client.pipeline(transaction=True)
    pipe.xinfo_stream(stream)
    pipe.xread({stream: after}, count=count)
    info, response = await pipe.execute(raise_on_error=False)
    if isinstance(response, Exception):
        raise response
    entries = cast("list[tuple[bytes, list[Entry]]]", response)
    return (None if isinstance(info, Exception) else info), (entries[0][1] if entries else [])


#: Lua: a Redis reply of alternating names and values (XINFO's) as a table.
_LUA_PARSE = """
local function parse(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
"""

#: Entries trimmed from the stream before ``ARGV[1]``'s group read them (0
#: if none, -1 if some but Redis cannot tell how many: its entries-read is
#: not valid), and the stream's last-generated id. Redis 7 moves a group's last-delivered id across such a gap
#: without counting it in entries-read; so once counted, entries-read is set
#: to the trimmed head, and every gap is counted once, whichever node saw it.
_TRIMMED_UNREAD = (
    _LUA_PARSE
    + """
local function before(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '0-0'} end
local stream = parse(redis.call('XINFO', 'STREAM', KEYS[1]))
local newest = stream['last-generated-id']
local first = stream['recorded-first-entry-id']
if not stream['entries-added'] or not first or stream['length'] == 0 then return {0, newest} end
local head = stream['entries-added'] - stream['length']
for _, flat in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = parse(flat)
  if group['name'] == ARGV[1] then
    local last, read = group['last-delivered-id'], group['entries-read']
    if not before(last, first) then return {0, newest} end
    local lost = -1
    if type(read) ~= 'number' and last == '0-0' then
      return {0, newest}  -- a group that has read nothing yet: its first read sets entries-read
    end
    if type(read) == 'number' then
      if head <= read then return {0, newest} end
      lost = head - read
    end
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', head)
    return {lost, newest}
  end
end
return {0, newest}
"""
)


#: XACK of the ids in ``ARGV[2]`` (space-separated) for group ``ARGV[1]``:
#: one argument for the lot, as redis-py packs each argument of a command in
#: Python (some 0.5 us an id, on the reader's thread); XACK'd a thousand at
#: a time (Lua's unpack has a limit). Returns how many were acknowledged.
_ACK = """
local ids, acked = {}, 0
for id in string.gmatch(ARGV[2], '%S+') do
  ids[#ids + 1] = id
  if #ids == 1000 then
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) end
return acked
"""


async def acknowledge(client: Client, stream: str, group: str, ids: list[bytes]) -> None:
    """XACK ``ids`` (see ``_ACK``)."""
    await client.eval(_ACK, 1, stream, group, b" ".join(ids))


async def read_new_in_group(
    client: Client, stream: str, group: str, consumer: str, count: int, ack: list[bytes]
) -> tuple[int, bytes, list[Entry]]:
    """In one transaction: XACK of the ids in ``ack`` (if any: entries
    handled before, whose acknowledgement rides along instead of costing a
    round trip of its own), how many entries were trimmed before the group
    read them (see ``_TRIMMED_UNREAD``), the stream's newest id, and
    XREADGROUP of up to ``count`` new entries, without waiting -- so no gap
    opens between the count and the read."""
    pipe = client.pipeline(transaction=True)
    if ack:
        pipe.eval(_ACK, 1, stream, group, b" ".join(ack))
    pipe.eval(_TRIMMED_UNREAD, 1, stream, group)
    pipe.xreadgroup(group, consumer, {stream: ">"}, count=count)
    answers = await pipe.execute()
    (lost, newest), response = answers[-2:]
    entries = cast("list[tuple[bytes, list[Entry]]]", response)
    return int(lost), newest, (entries[0][1] if entries else [])


async def read_group(
    client: Client, stream: str, group: str, consumer: str, after: bytes | str, count: int, block: int | None
) -> list[Entry]:
    """XREADGROUP: new entries (``after=">"``) or this consumer's pending
    ones after an id. Pending entries deleted from the stream come with no
    fields."""
    response = await client.xreadgroup(group, consumer, {stream: after}, count=count, block=block)
    entries = cast("list[tuple[bytes, list[Entry]]]", response)
    return entries[0][1] if entries else []


async def claim_idle(
    client: Client, stream: str, group: str, consumer: str, idle_ms: int, cursor: bytes, count: int
) -> tuple[bytes, list[Entry], list[bytes]]:
    """XAUTOCLAIM: (next cursor, claimed entries, ids deleted meanwhile)."""
    answer = await client.xautoclaim(stream, group, consumer, idle_ms, start_id=cursor, count=count)
    next_cursor, entries, deleted = cast("tuple[bytes, list[Entry], list[bytes]]", answer)
    return next_cursor, entries, deleted


async def delivery_counts(
    client: Client, stream: str, group: str, consumer: str, entries: list[Entry]
) -> dict[bytes, int]:
    """XPENDING: how often each of ``entries`` (pending for ``consumer``) was
    delivered. One query per id, pipelined: a range query could be filled
    by other pending entries between them and miss some."""
    pipe = client.pipeline(transaction=False)
    for entry_id, _ in entries:
        pipe.xpending_range(stream, group, min=entry_id, max=entry_id, count=1, consumername=consumer)
    answers = cast("list[list[dict[str, Any]]]", await pipe.execute())
    return {row["message_id"]: row["times_delivered"] for rows in answers for row in rows}


#: XGROUP CREATE ``ARGV[1]`` at ``ARGV[2]`` ("$" or "0") with MKSTREAM
#: unless the group exists (1 if it made it, 0 if not). Redis 7 creates a group with an
#: unknown entries-read unless told (ENTRIESREAD), and from an unknown one
#: cannot tell how many entries were trimmed before the group's first read
#: (see ``_TRIMMED_UNREAD``): so it is set to what the group has, in effect,
#: read -- the stream's entries-added at "$", its trimmed head at "0" --
#: in the same script, so no entry is added in between.
_CREATE_GROUP = (
    _LUA_PARSE
    + """
local read = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, flat in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    if parse(flat)['name'] == ARGV[1] then return 0 end
  end
  local stream = parse(redis.call('XINFO', 'STREAM', KEYS[1]))
  read = stream['entries-added']
  if read and ARGV[2] ~= '$' then read = read - stream['length'] end
end
if read and redis.REDIS_VERSION_NUM then  -- a Redis before 7 knows neither
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', read)
else
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
end
return 1
"""
)


async def ensure_group(client: Client, stream: str, group: str, start: str = "$") -> None:
    """Create the consumer group (and the stream) unless it exists, reading
    from ``start`` ("$": the stream's end; "0": all it holds), with its
    entries-read set (see ``_CREATE_GROUP``). A script runs atomically, so
    no other node can make the group between its check and its XGROUP CREATE."""
    await client.eval(_CREATE_GROUP, 1, stream, group, start)


async def group_consumers(client: Client, stream: str, group: str) -> list[dict[str, Any]]:
    """XINFO CONSUMERS: each consumer's ``name`` (bytes), ``pending`` and ``idle`` (ms)."""
    return await client.xinfo_consumers(stream, group)


async def stream_info(client: Client, stream: str) -> dict[str, Any] | None:
    """XINFO STREAM (``last-generated-id``, ``entries-added``, ``length``...),
    None if there is no stream yet."""
    try:
        return await client.xinfo_stream(stream)
    except ResponseError as exc:
        if "no such key" in str(exc):
            return None
        raise

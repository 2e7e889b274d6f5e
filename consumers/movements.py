"""The inbound movement board: every linehaul movement (flight, block train, sea container) with
what its parcels have become since, kept incrementally in Redis by the projector and read by the
operations API (``consumers/tracking/operations.py``).

**Movements.** A movement is named by the references its units carry (``movement_of``): a block
train by its train id, a flight by its flight number and air waybill (one consignment on one
flight), a sea container by its container number; a ULD or container without references is a
movement of its own. Unit manifests (ULD or container → bags) and unit scans (departed, arrived,
unloaded) both name it, so either may come first.

**Counts.** ``expected``: the parcels of the movement's bags, from the manifests (bag → parcels,
unit → bags; ``remove`` manifests take them out again). The others count the movement's parcels by
their current state in the read model (``board_flags``): ``arrived`` (at or past the destination),
``cleared`` (import customs cleared or further), ``sorted`` (sorted at the hub or further),
``handed_to_last_mile``, ``delivered`` are how far they got; ``in_import_customs``, ``held``
(customs hold) and ``exceptions`` (status Exception) are where they are now. A parcel is counted in
its movement from its first state after the manifests linking it arrived.

**Customers.** The tracking service reads a parcel's movement key (``P:board:{tn}`` field ``mv``)
once a look-up is authorised, and tells the customer its flight number, train id or container
number (``customer_movement``), never an air waybill or ULD id.

**Bounds.** Every key expires ``retention`` after its last write (14 days by default); the index of
movements keeps the newest ``MAX_MOVEMENTS``. Per-movement data never becomes a metric label.

Keys (``P`` the Redis prefix; ids percent-encoded like the read model's): ``P:mv:{movement}`` hash,
``P:movements`` sorted set (score: the movement's first event time), ``P:unit-mv:{unit}``,
``P:bag-unit:{bag}``, ``P:parcel-bag:{tn}`` strings, ``P:bag-parcels:{bag}`` set and
``P:board:{tn}`` hash (the parcel's counted flags, movement and version). The scripts run on one
Redis node (they derive keys from the prefix).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import redis
import redis.asyncio as aioredis

from schemas.statuses import STATUSES

#: Counters of parcels per movement, in board order (``board_flags`` sets one bit per counter).
PARCEL_COUNTERS: Final[tuple[str, ...]] = (
    "arrived",
    "in_import_customs",
    "held",
    "cleared",
    "sorted",
    "handed_to_last_mile",
    "delivered",
    "exceptions",
)
MOVEMENT_KINDS: Final = ("flight", "train", "sea")
MOVEMENT_STATES: Final = ("planned", "departed", "arrived")
MAX_MOVEMENTS: Final = 10_000
DEFAULT_RETENTION_S: Final = 14 * 24 * 3600

_DEPARTED: Final = frozenset({"LINEHAUL_DEPARTED"})
_ARRIVED: Final = frozenset({"LINEHAUL_ARRIVED", "LINEHAUL_UNLOADED"})
_AFTER_CUSTOMS: Final = frozenset({"hub", "last_mile"})
_SORTED_SUB_STATUSES: Final = frozenset({"sorted_at_hub", "missorted_at_hub", "departed_hub"})


def _component(value: str) -> str:
    return quote(value, safe="-_.~")


def movement_of(references: Mapping[str, Any] | None, handling_unit: str | None, unit_type: str | None) -> str | None:
    """The movement key ("kind:id") a unit's references name; None for bags and loose parcels."""
    refs = references or {}
    if refs.get("train_id"):
        return f"train:{refs['train_id']}"
    if refs.get("flight_number") or refs.get("awb"):
        return "flight:" + "/".join(part for part in (refs.get("flight_number"), refs.get("awb")) if part)
    if refs.get("container"):
        return f"sea:{refs['container']}"
    if handling_unit and unit_type in ("uld", "container"):
        return f"{'flight' if unit_type == 'uld' else 'sea'}:{handling_unit}"
    if refs.get("uld"):
        return f"flight:{refs['uld']}"
    return None


def board_flags(status: str, sub_status: str, stage: str) -> int:
    """Bit ``i`` set when the parcel counts in ``PARCEL_COUNTERS[i]`` (from its read-model fields)."""
    delivered = status == "Delivered"
    arrived = delivered or stage in ("import_customs", "hub", "last_mile")
    cleared = delivered or stage in _AFTER_CUSTOMS or sub_status == "import_customs_cleared"
    sorted_ = delivered or stage == "last_mile" or (stage == "hub" and sub_status in _SORTED_SUB_STATUSES)
    held = status == "CustomsHold" and stage == "import_customs"
    flags = (
        arrived,
        stage == "import_customs" and not held and sub_status != "import_customs_cleared",
        held,
        cleared,
        sorted_,
        delivered or stage == "last_mile",
        delivered,
        status == "Exception",
    )
    return sum(1 << i for i, on in enumerate(flags) if on)


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def movement(self, movement: str) -> str:
        return f"{self.prefix}:mv:{_component(movement)}"

    def movements(self) -> str:
        return f"{self.prefix}:movements"

    def board(self, tracking_number: str) -> str:
        return f"{self.prefix}:board:{_component(tracking_number)}"


# Lua shared by the scripts: ``enc`` percent-encodes an id like ``_component``; ``index`` puts a
# movement in the index at its earliest event time and keeps the newest ``max`` movements.
_PRELUDE = """
local function enc(s)
  return (string.gsub(s, '[^%w%-_%.~]', function(c) return string.format('%%%02X', string.byte(c)) end))
end
local function index(p, mv, t, max)
  local key = p .. ':movements'
  local s = redis.call('ZSCORE', key, mv)
  if not s or t < tonumber(s) then redis.call('ZADD', key, t, mv) end
  if redis.call('ZCARD', key) > max then redis.call('ZREMRANGEBYRANK', key, 0, 0) end
end
"""

# Lua: one manifest, atomically. ARGV: prefix, ttl, movement ('' for a bag manifest), kind, id,
# carrier, event ms, max movements, unit, action, member type, members...
_MANIFEST = (
    _PRELUDE
    + """
local p, ttl, mv, t = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[7])
local unit, action, member_type = ARGV[9], ARGV[10], ARGV[11]
local function mv_of_unit(u)
  local m = redis.call('GET', p .. ':unit-mv:' .. enc(u))
  if m then return m end
  local outer = redis.call('GET', p .. ':bag-unit:' .. enc(u))
  if outer then return redis.call('GET', p .. ':unit-mv:' .. enc(outer)) end
  return false
end
if mv ~= '' then
  local h = p .. ':mv:' .. enc(mv)
  redis.call('HSETNX', h, 'kind', ARGV[4]); redis.call('HSETNX', h, 'movement_id', ARGV[5])
  redis.call('HSETNX', h, 'carrier', ARGV[6]); redis.call('EXPIRE', h, ttl)
  local first = redis.call('HGET', h, 'first_ms')
  if not first or t < tonumber(first) then redis.call('HSET', h, 'first_ms', t) end
  index(p, mv, t, tonumber(ARGV[8]))
  redis.call('SET', p .. ':unit-mv:' .. enc(unit), mv, 'EX', ttl)
end
local target = mv_of_unit(unit)
local delta = 0
for i = 12, #ARGV do
  local m = ARGV[i]
  if member_type == 'parcel' then
    local set = p .. ':bag-parcels:' .. enc(unit)
    if action == 'add' then
      if redis.call('SADD', set, m) == 1 then delta = delta + 1 end
      redis.call('SET', p .. ':parcel-bag:' .. enc(m), unit, 'EX', ttl)
    elseif redis.call('SREM', set, m) == 1 then delta = delta - 1 end
    redis.call('EXPIRE', set, ttl)
  else
    local key = p .. ':bag-unit:' .. enc(m)
    local n = redis.call('SCARD', p .. ':bag-parcels:' .. enc(m))
    local current = redis.call('GET', key)
    if action == 'add' then
      if current ~= unit then
        if current then
          local old = redis.call('GET', p .. ':unit-mv:' .. enc(current))
          if old then redis.call('HINCRBY', p .. ':mv:' .. enc(old), 'expected', -n) end
        end
        delta = delta + n
      end
      redis.call('SET', key, unit, 'EX', ttl)
    elseif current == unit then
      redis.call('DEL', key); delta = delta - n
    end
  end
end
if target and delta ~= 0 then redis.call('HINCRBY', p .. ':mv:' .. enc(target), 'expected', delta) end
return delta
"""
)

# Lua: one unit scan. ARGV: prefix, ttl, movement, kind, id, carrier, event ms, max movements, unit,
# time field ('' for none), place field, place code.
_UNIT_SCAN = (
    _PRELUDE
    + """
local p, ttl, mv, t = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[7])
local h = p .. ':mv:' .. enc(mv)
redis.call('HSETNX', h, 'kind', ARGV[4]); redis.call('HSETNX', h, 'movement_id', ARGV[5])
redis.call('HSETNX', h, 'carrier', ARGV[6]); redis.call('EXPIRE', h, ttl)
local first = redis.call('HGET', h, 'first_ms')
if not first or t < tonumber(first) then redis.call('HSET', h, 'first_ms', t) end
if ARGV[10] ~= '' then
  local cur = redis.call('HGET', h, ARGV[10])
  if not cur or t < tonumber(cur) then
    redis.call('HSET', h, ARGV[10], t)
    if ARGV[12] ~= '' then redis.call('HSET', h, ARGV[11], ARGV[12]) end
  end
end
index(p, mv, t, tonumber(ARGV[8]))
local u = p .. ':unit-mv:' .. enc(ARGV[9])
if redis.call('EXISTS', u) == 0 then redis.call('SET', u, mv, 'EX', ttl) end
return 1
"""
)

# Lua: a parcel's new board flags (or its removal: version -1). ARGV: prefix, ttl, tn, version,
# flags, counter names... Applied only for a newer version; moves the counts to the parcel's
# current movement.
_BOARD = (
    _PRELUDE
    + """
local p, ttl, tn, version, flags = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = p .. ':board:' .. enc(tn)
local stored = redis.call('HMGET', key, 'version', 'mv', 'flags')
if version >= 0 and stored[1] and tonumber(stored[1]) >= version then return 0 end
local function apply(mv, f, sign)
  if not mv or mv == '' or f == 0 then return end
  local h = p .. ':mv:' .. enc(mv)
  if redis.call('EXISTS', h) == 0 then return end
  for i = 6, #ARGV do
    if math.floor(f / 2 ^ (i - 6)) % 2 == 1 then redis.call('HINCRBY', h, ARGV[i], sign) end
  end
end
apply(stored[2], tonumber(stored[3] or '0'), -1)
if version < 0 then redis.call('DEL', key); return 1 end
local mv = false
local bag = redis.call('GET', p .. ':parcel-bag:' .. enc(tn))
if bag then
  mv = redis.call('GET', p .. ':unit-mv:' .. enc(bag))
  if not mv then
    local unit = redis.call('GET', p .. ':bag-unit:' .. enc(bag))
    if unit then mv = redis.call('GET', p .. ':unit-mv:' .. enc(unit)) end
  end
end
if mv and redis.call('EXISTS', p .. ':mv:' .. enc(mv)) == 0 then mv = false end
apply(mv, flags, 1)
redis.call('HSET', key, 'version', version, 'mv', mv or '', 'flags', flags)
redis.call('EXPIRE', key, ttl)
return 1
"""
)


@dataclass(frozen=True)
class UnitScan:
    movement: str
    handling_unit: str
    carrier: str
    code: str
    event_time_ms: int
    place: str


def unit_scan_of(scan: Mapping[str, Any]) -> UnitScan | None:
    """The movement event of a decoded ScanEvent: a unit's linehaul scan that names a movement."""
    unit = scan.get("handling_unit")
    if scan.get("tracking_number") or not unit:
        return None
    movement = movement_of(scan.get("references"), unit, None)
    if movement is None:
        return None
    location = scan.get("location") or {}
    return UnitScan(
        movement, unit, scan.get("carrier") or "", scan["code"], scan["event_time_ms"], location.get("code") or ""
    )


class MovementWriter:
    """The projector's writes to the board (sync Redis; each call is one atomic script)."""

    def __init__(self, client: redis.Redis, prefix: str, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_s = retention_s
        self._manifest = client.register_script(_MANIFEST)
        self._unit_scan = client.register_script(_UNIT_SCAN)
        self._board = client.register_script(_BOARD)

    def manifest(self, manifest: Mapping[str, Any], client: redis.client.Pipeline | None = None) -> None:
        unit = manifest["handling_unit"]
        movement = None
        if manifest["unit_type"] != "bag":
            movement = movement_of(manifest.get("references"), unit, manifest["unit_type"])
        kind, _, movement_id = (movement or "::").partition(":")
        self._manifest(
            args=[
                self.prefix,
                self.retention_s,
                movement or "",
                kind,
                movement_id,
                manifest.get("carrier") or "",
                manifest["event_time_ms"],
                MAX_MOVEMENTS,
                unit,
                manifest["action"],
                manifest["member_type"],
                *manifest["members"],
            ],
            client=client,
        )

    def unit_scan(self, scan: UnitScan, client: redis.client.Pipeline | None = None) -> None:
        kind, _, movement_id = scan.movement.partition(":")
        time_field, place_field = ("", "")
        if scan.code in _DEPARTED:
            time_field, place_field = "departed_ms", "origin"
        elif scan.code in _ARRIVED:
            time_field, place_field = "arrived_ms", "destination"
        self._unit_scan(
            args=[
                self.prefix,
                self.retention_s,
                scan.movement,
                kind,
                movement_id,
                scan.carrier,
                scan.event_time_ms,
                MAX_MOVEMENTS,
                scan.handling_unit,
                time_field,
                place_field,
                scan.place,
            ],
            client=client,
        )

    def parcel(
        self, tracking_number: str, version: int, fields: Mapping[str, str], client: redis.client.Pipeline | None = None
    ) -> None:
        """Count a parcel's state (``version``, read-model ``fields``) in its movement."""
        flags = board_flags(fields.get("status", ""), fields.get("sub_status", ""), fields.get("stage", ""))
        args = [self.prefix, self.retention_s, tracking_number, version, flags, *PARCEL_COUNTERS]
        self._board(args=args, client=client)

    def remove_parcel(self, tracking_number: str, client: redis.client.Pipeline | None = None) -> None:
        """Take a deleted parcel out of its movement's counts (whatever deletes a parcel calls this)."""
        self._board(args=[self.prefix, self.retention_s, tracking_number, -1, 0, *PARCEL_COUNTERS], client=client)


# -- a parcel's movement, as customers are told it (the tracking service) ------------------------------

# IATA (two characters, not both digits) or ICAO (three letters) airline designator, 1-4 digits, an
# optional suffix; an air waybill ("157-12345675") or a ULD id ("AKE12345CK") never matches.
_FLIGHT_NUMBER: Final = re.compile(r"(?:[A-Z][A-Z0-9]|[0-9][A-Z]|[A-Z]{3})[0-9]{1,4}[A-Z]?")
_CONTAINER_NUMBER: Final = re.compile(r"[A-Z]{3}[UJZ][0-9]{7}")  # ISO 6346


def customer_movement(movement: str | bytes | None) -> dict[str, str] | None:
    """What a customer may be told of a movement key ("kind:id"): its kind and the flight number,
    block train id or sea container number; None when the key names none of these (a flight known
    only by its air waybill or ULD, a container unit that is not an ISO 6346 number) or is empty.
    Air waybills and ULD ids stay internal."""
    kind, _, movement_id = _text(movement).partition(":")
    reference = ""
    if kind == "flight":
        reference = next((part for part in movement_id.split("/") if _FLIGHT_NUMBER.fullmatch(part)), "")
    elif kind == "train" or (kind == "sea" and _CONTAINER_NUMBER.fullmatch(movement_id)):
        reference = movement_id
    return {"kind": kind, "reference": reference} if reference else None


# -- reading the board (the operations API) ----------------------------------------------------------


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int | None:
    text = _text(value)
    return int(text) if text.lstrip("-").isdigit() else None


def movement_view(movement: str, fields: Mapping[bytes | str, bytes | str], now_ms: int) -> dict[str, Any]:
    """One row of the board from a movement hash."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    departed, arrived, first = (_int(values.get(name)) for name in ("departed_ms", "arrived_ms", "first_ms"))
    state = "arrived" if arrived is not None else "departed" if departed is not None else "planned"
    since = arrived or departed or first or now_ms
    origin, destination = values.get("origin", ""), values.get("destination", "")
    return {
        "movement": movement,
        "kind": values.get("kind", ""),
        "movement_id": values.get("movement_id", ""),
        "carrier": values.get("carrier", ""),
        "lane": f"{origin or '?'}-{destination or '?'}",
        "state": state,
        "departed_ms": departed,
        "arrived_ms": arrived,
        "age_seconds": max(now_ms - since, 0) // 1000,
        "expected": max(_int(values.get("expected")) or 0, 0),
        **{counter: max(_int(values.get(counter)) or 0, 0) for counter in PARCEL_COUNTERS},
    }


@dataclass(frozen=True)
class MovementPage:
    movements: list[dict[str, Any]]
    next_offset: int | None
    now_ms: int


async def reference_now_ms(client: aioredis.Redis, prefix: str) -> int:
    """The later of the wall clock and the newest event of the read model (as ``consumers/backlog.py``)."""
    async with client.pipeline(transaction=False) as pipe:
        for status in STATUSES:
            pipe.zrange(f"{prefix}:status:{_component(status)}", -1, -1, withscores=True)
        replies = await pipe.execute()
    newest = [int(score) for reply in replies for _member, score in reply]
    return max([time.time_ns() // 1_000_000, *newest])


async def read_movements(
    client: aioredis.Redis,
    prefix: str,
    *,
    limit: int = 20,
    offset: int = 0,
    lane: str | None = None,
    state: str | None = None,
    max_scanned: int = 2_000,
) -> MovementPage:
    """Newest movements first (by first event time), ``limit`` after skipping ``offset`` matches;
    filters compare the lane ("HGH-LGG") and state exactly. At most ``max_scanned`` index entries are
    read per call; ``next_offset`` is None when no more match."""
    keys = Keys(prefix)
    now_ms = await reference_now_ms(client, prefix)
    rows: list[dict[str, Any]] = []
    matched = 0
    start = 0
    chunk = 100
    while start < max_scanned:
        members = await client.zrevrange(keys.movements(), start, start + chunk - 1)
        if not members:
            return MovementPage(rows, None, now_ms)
        async with client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hgetall(keys.movement(_text(member)))
            hashes = await pipe.execute()
        for member, fields in zip(members, hashes, strict=True):
            if not fields:  # expired: the index forgets it
                await client.zrem(keys.movements(), member)
                continue
            row = movement_view(_text(member), fields, now_ms)
            if (lane and row["lane"] != lane) or (state and row["state"] != state):
                continue
            matched += 1
            if matched <= offset:
                continue
            if len(rows) == limit:
                return MovementPage(rows, offset + limit, now_ms)
            rows.append(row)
        start += chunk
    return MovementPage(rows, offset + limit if len(rows) == limit else None, now_ms)


def lanes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({row["lane"] for row in rows})

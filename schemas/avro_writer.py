"""Avro writers generated from a schema once, byte for byte what ``fastavro.schemaless_writer`` writes.

fastavro's writer walks the schema on every call and resolves every union by validating the value
against each branch (a nested record is validated field by field, then written). For the worker's
output records that was most of an encode's cost. ``compile_writer`` turns a parsed schema into
Python source once, straight-line code per record type, and compiles it: a ``["null", T]`` union
becomes an ``is None`` test, an enum a dict lookup, a string ``encode`` plus its length.

Only what the registered schemas use is generated: records, the primitive types, enums, arrays,
maps, fixed and unions of ``null`` with one other type. A schema with anything else (logical
types, unions of several non-null types) gets no writer (``None``): the caller keeps fastavro.

A generated writer trusts the value's shape the way fastavro's does for valid values; a value it
cannot write raises (``TypeError``, ``KeyError``, ``AttributeError``, ``ValueError``,
``OverflowError``, ``IndexError``: ``WRITE_ERRORS``), and the caller then asks fastavro, whose
answer (bytes or its error) stays the reference (schemas/codec.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

#: What a generated writer raises for a value it cannot write.
WRITE_ERRORS = (TypeError, KeyError, AttributeError, ValueError, OverflowError, IndexError)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1

Writer = Callable[[Mapping[str, Any], bytearray], None]


class UnsupportedSchemaError(Exception):
    """The schema uses something a generator (this writer's or ``avro_reader``'s) does not handle:
    fastavro keeps it."""


class CodeGenerator:
    """What the generated writers and readers share: fresh names and constants bound into the
    namespace the generated source is compiled in."""

    def __init__(self, named: Mapping[str, Any], namespace: dict[str, Any]) -> None:
        self.named = dict(named)
        self.namespace = namespace
        self._counter = 0

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def constant(self, value: Any) -> str:
        name = self.fresh("_c")
        self.namespace[name] = value
        return name


#: Varint bytes of every 14-bit group: with the continuation bit on both bytes (a group followed by
#: more), and as the last group (1 or 2 bytes). Millisecond timestamps take 3 lookups instead of a
#: 6-step loop (~1.1 MB for both tables).
_GROUP_BITS = 14
_GROUP_MASK = (1 << _GROUP_BITS) - 1
_CONTINUED = [bytes(((group & 0x7F) | 0x80, (group >> 7) | 0x80)) for group in range(1 << _GROUP_BITS)]
_LAST = [
    bytes((group,)) if group < 0x80 else bytes(((group & 0x7F) | 0x80, group >> 7)) for group in range(1 << _GROUP_BITS)
]


def encode_long(value: int) -> bytes:
    """Avro int/long: zig-zag, then base-128 varint (fastavro refuses values beyond 64 bits)."""
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError(f"{value} does not fit an Avro long")
    zigzag = (value << 1) ^ (value >> 63)
    if zigzag <= _GROUP_MASK:
        return _LAST[zigzag]
    if zigzag >> 28 <= _GROUP_MASK:  # up to 42 bits: millisecond timestamps until the year 2109
        if zigzag >> 14 <= _GROUP_MASK:
            return _CONTINUED[zigzag & _GROUP_MASK] + _LAST[zigzag >> 14]
        return _CONTINUED[zigzag & _GROUP_MASK] + _CONTINUED[zigzag >> 14 & _GROUP_MASK] + _LAST[zigzag >> 28]
    out = b""
    while zigzag > _GROUP_MASK:
        out += _CONTINUED[zigzag & _GROUP_MASK]
        zigzag >>= _GROUP_BITS
    return out + _LAST[zigzag]


#: Non-negative values whose zig-zag takes exactly three 14-bit groups (2**28 to 2**42 - 1):
#: millisecond timestamps, written inline by the generated code with ``_long``'s tables.
_THREE_GROUPS = (1 << (2 * _GROUP_BITS - 1), 1 << (3 * _GROUP_BITS - 1))


class _Generator(CodeGenerator):
    def __init__(self, named: Mapping[str, Any]) -> None:
        namespace = {
            "_long": encode_long,
            "_continued": _CONTINUED,
            "_last": _LAST,
            "_pack_float": struct.Struct("<f").pack,
            "_pack_double": struct.Struct("<d").pack,
        }
        super().__init__(named, namespace)
        self.functions: dict[str, str] = {}  # record name -> generated function name
        self.sources: list[str] = []

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            try:
                return self.named[schema]
            except KeyError:
                raise UnsupportedSchemaError(f"unknown named type {schema!r}") from None
        return schema

    def record_function(self, schema: dict[str, Any]) -> str:
        """The name of the generated function writing this record type (generated on first use)."""
        name = schema["name"]
        function = self.functions.get(name)
        if function is not None:
            return function
        function = self.functions[name] = self.fresh("_record")
        self.named.setdefault(name, schema)
        lines = [f"def {function}(d, a):"]
        for field in schema["fields"]:
            field_type = field["type"]
            nullable = isinstance(field_type, list) and "null" in field_type
            if "default" in field:
                default = field["default"]
                literal = repr(default) if default is None or isinstance(default, (bool, int, str)) else None
                lines.append(f"    v = d.get({field['name']!r}, {literal or self.constant(default)})")
            elif nullable:
                lines.append(f"    v = d.get({field['name']!r})")
            else:
                lines.append(f"    v = d[{field['name']!r}]")
            lines.extend(self.write("v", field_type, "    "))
        if len(lines) == 1:
            lines.append("    pass")
        self.sources.append("\n".join(lines))
        return function

    def write(self, value: str, schema: Any, indent: str) -> list[str]:
        """Lines that append ``value`` (a local name) written as ``schema`` to the bytearray ``a``."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return self.union(value, schema, indent)
        kind = schema["type"] if isinstance(schema, dict) else schema
        if isinstance(schema, dict) and "logicalType" in schema:
            raise UnsupportedSchemaError(f"logical type {schema['logicalType']!r}")
        if kind in self.named and kind not in _PRIMITIVES:  # {"type": "parcelstream.Location"}
            return self.write(value, kind, indent)
        if kind == "null":
            return [f"{indent}if {value} is not None: raise TypeError('not null')"]
        if kind == "boolean":  # fastavro writes any value's truth
            return [f"{indent}a.append(1 if {value} else 0)"]
        if kind in ("int", "long"):
            # Inline, no call: small values (counts, sequences) and millisecond timestamps (3 groups
            # of _long's tables); anything else (negative, huge, not an int) goes through _long.
            return [
                f"{indent}if 0 <= {value} < 64: a.append({value} << 1)",
                f"{indent}elif {_THREE_GROUPS[0]} <= {value} < {_THREE_GROUPS[1]}:",
                f"{indent}    z = {value} << 1",
                f"{indent}    a += _continued[z & {_GROUP_MASK}]",
                f"{indent}    a += _continued[z >> {_GROUP_BITS} & {_GROUP_MASK}]",
                f"{indent}    a += _last[z >> {2 * _GROUP_BITS}]",
                f"{indent}else: a += _long({value})",
            ]
        if kind == "float":
            return [f"{indent}a += _pack_float(float({value}))"]
        if kind == "double":
            return [f"{indent}a += _pack_double(float({value}))"]
        if kind in ("string", "bytes"):
            data = self.fresh("b")
            head = f"{indent}{data} = {value}.encode()" if kind == "string" else f"{indent}{data} = {value}"
            if kind == "bytes":
                head += f"\n{indent}if not isinstance({data}, (bytes, bytearray)): raise TypeError('not bytes')"
            return [
                head,
                f"{indent}if (n := len({data})) < 64: a.append(n << 1)",
                f"{indent}else: a += _long(n)",
                f"{indent}a += {data}",
            ]
        if kind == "enum":
            indices = {symbol: encode_long(index) for index, symbol in enumerate(schema["symbols"])}
            return [f"{indent}a += {self.constant(indices)}[{value}]"]
        if kind == "fixed":
            return [
                f"{indent}if len({value}) != {int(schema['size'])}: raise ValueError('fixed size')",
                f"{indent}a += {value}",
            ]
        if kind == "record":
            return [f"{indent}{self.record_function(schema)}({value}, a)"]
        if kind == "array":
            item = self.fresh("i")
            return [
                f"{indent}if len({value}):",
                f"{indent}    a += _long(len({value}))",
                f"{indent}    for {item} in {value}:",
                *self.write(item, schema["items"], indent + "        "),
                f"{indent}a.append(0)",
            ]
        if kind == "map":
            key, item = self.fresh("k"), self.fresh("i")
            return [
                f"{indent}if len({value}):",
                f"{indent}    a += _long(len({value}))",
                f"{indent}    for {key}, {item} in {value}.items():",
                *self.write(key, "string", indent + "        "),
                *self.write(item, schema["values"], indent + "        "),
                f"{indent}a.append(0)",
            ]
        raise UnsupportedSchemaError(f"type {kind!r}")

    def union(self, value: str, branches: list[Any], indent: str) -> list[str]:
        others = [index for index, branch in enumerate(branches) if branch != "null"]
        if len(branches) != 2 or len(others) != 1:
            raise UnsupportedSchemaError(f"union {branches!r}")  # fastavro picks the branch by validation
        null_index, other = 1 - others[0], others[0]
        return [
            f"{indent}if {value} is None: a.append({null_index << 1})",
            f"{indent}else:",
            f"{indent}    a.append({other << 1})",
            *self.write(value, branches[other], indent + "    "),
        ]


def compile_writer(schema: Mapping[str, Any], named: Mapping[str, Any] | None = None) -> Writer | None:
    """A function ``write(record, out)`` appending ``record`` written as the record ``schema`` (as
    ``fastavro.parse_schema`` returns it) to the bytearray ``out``; ``None`` when the schema uses
    something the generator does not write. ``named``: named types defined elsewhere (by full name)."""
    if schema.get("type") != "record":
        return None
    generator = _Generator({**(named or {}), **schema.get("__named_schemas", {})})
    try:
        function = generator.record_function(dict(schema))
    except UnsupportedSchemaError:
        return None
    exec(compile("\n\n".join(generator.sources), f"<avro writer {schema['name']}>", "exec"), generator.namespace)
    writer: Writer = generator.namespace[function]
    return writer

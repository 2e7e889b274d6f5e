"""Avro readers generated from a schema once: for data that fastavro reads, the same value.

The counterpart of ``schemas/avro_writer.py`` for the worker's inputs (every scan and manifest is
decoded once, fan-out copies again): fastavro's reader walks the schema and reads field by field
through a file object; ``compile_reader`` generates one function per schema that reads the bytes
by index, nested records inline.

A generated reader is only for data written with the same schema (no resolution between
versions) and supports what ``avro_writer`` does. It refuses anything unusual instead of guessing
(a union or enum index out of range, a varint beyond 64 bits, a length past the end, a boolean
byte other than 0 or 1, invalid UTF-8) by raising one of ``READ_ERRORS``; the caller then lets
fastavro read the message, so its verdict stays the reference (schemas/codec.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schemas.avro_writer import CodeGenerator, UnsupportedSchemaError

#: What a generated reader raises for data it does not read.
READ_ERRORS = (IndexError, ValueError, KeyError, TypeError, OverflowError)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

#: ``reader(data, position) -> (value, position after it)``.
Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]


def read_long(data: bytes, position: int) -> tuple[int, int]:
    """Avro int/long at ``position``: (value, position after it). The generated readers inline
    the same loop (``_Generator.long``)."""
    byte = data[position]
    position += 1
    value = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    if value >> 64:
        raise OverflowError("varint beyond 64 bits")
    return (value >> 1) ^ -(value & 1), position


class _Generator(CodeGenerator):
    def __init__(self, named: Mapping[str, Any]) -> None:
        super().__init__(named, {})
        self._open: list[str] = []  # records being generated: a recursive schema is not inlined

    def long(self, target: str, indent: str) -> list[str]:
        """Lines reading a varint into ``target``, inline (no call, no tuple): one byte for most
        lengths and small ints, a loop for the rest (millisecond timestamps: 6 bytes)."""
        return [
            f"{indent}b = data[p]",
            f"{indent}p += 1",
            f"{indent}if b < 0x80:",
            f"{indent}    {target} = (b >> 1) ^ -(b & 1)",
            f"{indent}else:",
            f"{indent}    x = b & 0x7F",
            f"{indent}    s = 7",
            f"{indent}    while True:",
            f"{indent}        b = data[p]",
            f"{indent}        p += 1",
            f"{indent}        x |= (b & 0x7F) << s",
            f"{indent}        if b < 0x80: break",
            f"{indent}        s += 7",
            f"{indent}    if x >> 64: raise OverflowError('varint beyond 64 bits')",
            f"{indent}    {target} = (x >> 1) ^ -(x & 1)",
        ]

    def read(self, target: str, schema: Any, indent: str) -> list[str]:
        """Lines that read a value of ``schema`` at ``p`` into ``target`` (a local name)."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise UnsupportedSchemaError(f"unknown named type {schema!r}")
            schema = self.named[schema]
        if isinstance(schema, list):
            return self.union(target, schema, indent)
        kind = schema["type"] if isinstance(schema, dict) else schema
        if isinstance(schema, dict) and "logicalType" in schema:
            raise UnsupportedSchemaError(f"logical type {schema['logicalType']!r}")
        if kind in self.named and kind not in _PRIMITIVES:
            return self.read(target, kind, indent)
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind == "boolean":
            return [
                f"{indent}b = data[p]",
                f"{indent}if b > 1: raise ValueError('boolean byte')",
                f"{indent}{target} = b == 1",
                f"{indent}p += 1",
            ]
        if kind in ("int", "long"):
            return self.long(target, indent)
        if kind in ("string", "bytes"):
            length = self.fresh("n")
            value = "data[p:p + {0}].decode()" if kind == "string" else "data[p:p + {0}]"
            return [
                *self.long(length, indent),
                f"{indent}if {length} < 0 or p + {length} > end: raise ValueError('length past the end')",
                f"{indent}{target} = {value.format(length)}",
                f"{indent}p += {length}",
            ]
        if kind == "enum":
            index = self.fresh("e")
            symbols = self.constant(tuple(schema["symbols"]))
            return [
                *self.long(index, indent),
                f"{indent}if {index} < 0: raise IndexError('enum index')",
                f"{indent}{target} = {symbols}[{index}]",
            ]
        if kind == "record":
            return self.record(target, schema, indent)
        if kind == "array":
            count, item = self.fresh("n"), self.fresh("i")
            return [
                f"{indent}{target} = []",
                f"{indent}while True:",
                *self.long(count, indent + "    "),
                f"{indent}    if {count} == 0: break",
                f"{indent}    if {count} < 0:",  # a block with its size in bytes: skip the size
                f"{indent}        {count} = -{count}",
                *self.long("_", indent + "        "),
                f"{indent}    for _ in range({count}):",
                *self.read(item, schema["items"], indent + "        "),
                f"{indent}        {target}.append({item})",
            ]
        raise UnsupportedSchemaError(f"type {kind!r}")

    def record(self, target: str, schema: dict[str, Any], indent: str) -> list[str]:
        name = schema["name"]
        if name in self._open:
            raise UnsupportedSchemaError(f"recursive record {name!r}")
        self.named.setdefault(name, schema)
        self._open.append(name)
        record = self.fresh("r")
        lines = [f"{indent}{record} = {{}}"]
        for field in schema["fields"]:
            value = self.fresh("v")
            lines.extend(self.read(value, field["type"], indent))
            lines.append(f"{indent}{record}[{field['name']!r}] = {value}")
        lines.append(f"{indent}{target} = {record}")
        self._open.pop()
        return lines

    def union(self, target: str, branches: list[Any], indent: str) -> list[str]:
        others = [index for index, branch in enumerate(branches) if branch != "null"]
        if len(branches) != 2 or len(others) != 1:
            raise UnsupportedSchemaError(f"union {branches!r}")
        index = self.fresh("u")
        return [
            *self.long(index, indent),
            f"{indent}if {index} == {1 - others[0]}:",
            f"{indent}    {target} = None",
            f"{indent}elif {index} == {others[0]}:",
            *self.read(target, branches[others[0]], indent + "    "),
            f"{indent}else: raise IndexError('union index')",
        ]


def compile_reader(schema: Mapping[str, Any], named: Mapping[str, Any] | None = None) -> Reader | None:
    """A function ``read(data, position) -> (record, position after it)`` for the record ``schema``
    (as ``fastavro.parse_schema`` returns it); ``None`` when the schema uses something the
    generator does not read."""
    if schema.get("type") != "record":
        return None
    generator = _Generator({**(named or {}), **schema.get("__named_schemas", {})})
    try:
        body = generator.record("value", dict(schema), "    ")
    except UnsupportedSchemaError:
        return None
    source = "\n".join(["def read(data, p):", "    end = len(data)", *body, "    return value, p"])
    exec(compile(source, f"<avro reader {schema['name']}>", "exec"), generator.namespace)
    reader: Reader = generator.namespace["read"]
    return reader

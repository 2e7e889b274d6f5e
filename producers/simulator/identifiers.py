"""Makers of the identifiers the simulator hands out, with the check digits real ones carry
(the check-digit rules live in producers/formats/identifiers.py, which also validates them)."""

from __future__ import annotations

from producers.formats.identifiers import awb_check_digit, container_check_digit, s10_check_digit


def make_awb(prefix: str, serial: int) -> str:
    """IATA air waybill: ``make_awb("157", 1234567)`` → ``157-12345675`` (mod-7 check digit)."""
    digits = f"{serial:07d}"
    return f"{prefix}-{digits}{awb_check_digit(digits)}"


def make_container_number(owner: str, serial: int) -> str:
    """ISO 6346: ``make_container_number("CSQ", 305438)`` → ``CSQU3054383``."""
    first_ten = f"{owner}U{serial:06d}"
    return first_ten + str(container_check_digit(first_ten))


def make_tracking_number(service: str, serial: int, country: str) -> str:
    """UPU S10: ``make_tracking_number("RR", 47312482, "CH")`` → ``RR473124829CH``."""
    digits = f"{serial:08d}"
    return f"{service}{digits}{s10_check_digit(digits)}{country}"

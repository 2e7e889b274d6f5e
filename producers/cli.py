"""Carrier-side commands: ``parcelstream publish`` and ``parcelstream simulate``."""

from __future__ import annotations

import typer

app = typer.Typer()

"""pytest plugin (entry point ``pytest11`` name ``lstmcheck``): oracle fixtures for conformance tests.

Loaded by every pytest run once lstmcheck is installed, so importing it must stay cheap: heavy
modules are imported inside the fixtures.
"""
from __future__ import annotations

"""Docs match the code (#15 point 11): the unit's Documentation= files exist; the example
config's stated defaults are the real ones and it names every key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from gsmgw import config as c

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "gsmgw.example.toml"
# Keys the example sets to a sample value on purpose (the header says which are examples).
SAMPLE_VALUES = {"modem.id", "modem.port"}


def test_systemd_documentation_points_at_files_that_exist() -> None:
    unit = (REPO / "systemd" / "gsmgw.service").read_text()
    docs = [u for line in unit.splitlines() if line.startswith("Documentation=") for u in line.split("=", 1)[1].split()]
    assert docs
    for url in docs:
        assert url.startswith("file:///opt/gsmgw/src/"), url  # the README's install path
        assert (REPO / url.removeprefix("file:///opt/gsmgw/src/")).is_file(), url


def _sections(cls: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted section name -> dataclass, for every table of the config schema."""
    out = {prefix: cls}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp):
            out.update(_sections(tp, f"{prefix}.{f.name}" if prefix else f.name))
    return out


def _mentioned() -> dict[str, set[str]]:
    """Keys the example names per section, set or commented out (``# key = ...``)."""
    seen: dict[str, set[str]] = {}
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        if m := re.match(r"^#?\s*\[\[?([a-z_.]+)\]\]?\s*$", line):
            section = m[1]
            continue
        if m := re.match(r"^#?\s*([a-z_]+)\s*=", line):
            seen.setdefault(section, set()).add(m[1])
    return seen


def test_example_config_names_every_key() -> None:
    mentioned = _mentioned()
    missing = []
    for name, cls in _sections(c.Config).items():
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal") or _is_table(cls, f.name):
                continue
            if f.name not in mentioned.get(name, set()):
                missing.append(f"{name}.{f.name}" if name else f.name)
    assert not missing, f"keys the example does not name: {missing}"


def _is_table(cls: Any, name: str) -> bool:
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return dataclasses.is_dataclass(tp)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def test_example_config_values_are_the_defaults() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    sections = _sections(c.Config)
    wrong = []

    def walk(table: dict[str, Any], name: str) -> None:
        cls = sections[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in table.items():
            dotted = f"{name}.{key}" if name else key
            if isinstance(value, dict):
                walk(value, dotted)
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    walk(item, dotted)
                continue
            if dotted in SAMPLE_VALUES:
                continue
            default = _default(fields[key])
            if isinstance(default, tuple):
                default = list(default)
            if value != default:
                wrong.append(f"{dotted} = {value!r} (the default is {default!r})")

    walk(data, "")
    assert not wrong, wrong

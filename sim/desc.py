"""Read the JSON description ``hdl.export`` writes next to the Verilog, and pack/unpack ports.

Every bit offset the testbenches use comes from the description's ``"fields"`` table, never
from a hard-coded layout, so a testbench checks the RTL it is given rather than the layout
it expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from golden.core import CoreConfig
from golden.timing import CreditPipeline, StallPipeline

__all__ = ["Field", "PortLayout", "RtlDescription"]

FORMAT = "spikefold-rtl"
VERSION = 1


@dataclass(frozen=True)
class Field:
    """One field of a packed port: ``count`` elements of ``width`` bits from ``offset``."""

    name: str
    offset: int
    width: int
    count: int = 1
    signed: bool = False

    @classmethod
    def from_json(cls, obj, port):
        try:
            field = cls(str(obj["name"]), int(obj["offset"]), int(obj["width"]),
                        int(obj.get("count", 1)), bool(obj.get("signed", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"port {port!r}: bad field description {obj!r} ({exc})") from None
        if field.offset < 0 or field.width < 1 or field.count < 1:
            raise ValueError(f"port {port!r}: bad field description {obj!r}")
        return field

    @property
    def end(self):
        return self.offset + self.width * self.count

    def extract(self, word):
        """The field's element values from the packed integer ``word`` (list if count > 1)."""
        mask = (1 << self.width) - 1
        sign = 1 << (self.width - 1)
        values = []
        for j in range(self.count):
            v = (word >> (self.offset + j * self.width)) & mask
            if self.signed and v & sign:
                v -= 1 << self.width
            values.append(v)
        return values if self.count > 1 else values[0]

    def insert(self, word, values):
        """``word`` with this field set to ``values`` (a scalar or ``count`` elements)."""
        if self.count == 1 and not isinstance(values, (list, tuple)):
            values = [values]
        values = [int(v) for v in values]
        if len(values) != self.count:
            raise ValueError(f"field {self.name!r} has {self.count} elements, not {len(values)}")
        lo = -(1 << (self.width - 1)) if self.signed else 0
        hi = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
        mask = (1 << self.width) - 1
        for j, v in enumerate(values):
            if not lo <= v <= hi:
                raise ValueError(
                    f"field {self.name!r}[{j}] = {v} does not fit {self.width} "
                    f"{'signed' if self.signed else 'unsigned'} bits")
            shift = self.offset + j * self.width
            word = (word & ~(mask << shift)) | ((v & mask) << shift)
        return word


class PortLayout:
    """The fields of one packed port, by name."""

    def __init__(self, port, fields, width):
        self.port = port
        self.width = width
        self.fields = {f.name: f for f in fields}
        for f in fields:
            if f.end > width:
                raise ValueError(
                    f"port {port!r}: field {f.name!r} ends at bit {f.end} but the port has "
                    f"{width} bits")

    def __getitem__(self, name):
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"port {self.port!r} has no field {name!r} "
                           f"(it has {sorted(self.fields)})") from None

    def __contains__(self, name):
        return name in self.fields

    def pack(self, **values):
        word = 0
        for name, value in values.items():
            word = self[name].insert(word, value)
        return word

    def unpack(self, word):
        return {name: f.extract(word) for name, f in self.fields.items()}


class RtlDescription:
    """The ``<name>.json`` written by :func:`hdl.export.export_verilog`.

    Attributes
    ----------
    top, lanes, latency, beats_per_step, config (:class:`~golden.core.CoreConfig`),
    ports (name -> {"dir", "width"}), layouts (port -> :class:`PortLayout`),
    flow (``"stall"``, the default when the description has no ``flow``, or ``"credit"``),
    capacity (credit flow: the outstanding-beat limit; default ``latency + 2``; else None).
    :meth:`timing_model` is the cycle model the testbenches replay.
    """

    def __init__(self, obj):
        if not isinstance(obj, dict):
            raise ValueError(f"an RTL description is a JSON object, not {type(obj).__name__}")
        if obj.get("format") != FORMAT:
            raise ValueError(f"RTL description format is {obj.get('format')!r}, not {FORMAT!r}")
        if obj.get("version") != VERSION:
            raise ValueError(f"RTL description version {obj.get('version')!r} is not supported "
                             f"(expected {VERSION})")
        missing = [k for k in ("top", "lanes", "latency", "beats_per_step", "config", "ports")
                   if k not in obj]
        if missing:
            raise ValueError(f"RTL description has no field {missing[0]!r}")
        self.raw = obj
        try:
            self.top = str(obj["top"])
            self.lanes = int(obj["lanes"])
            self.latency = int(obj["latency"])
            self.beats_per_step = int(obj["beats_per_step"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"RTL description: top/lanes/latency/beats_per_step: {exc}") from None
        try:
            self.config = CoreConfig.from_json(obj["config"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"RTL description field 'config': {exc}") from None
        if not isinstance(obj["ports"], dict):
            raise ValueError(f"RTL description field 'ports' must be an object, not "
                             f"{obj['ports']!r}")
        self.ports = dict(obj["ports"])
        self.layouts = {}
        for port, fields in obj.get("fields", {}).items():
            if port not in self.ports:
                raise ValueError(f"fields given for unknown port {port!r}")
            try:
                width = int(self.ports[port]["width"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"port {port!r} has no integer 'width': "
                                 f"{self.ports[port]!r}") from None
            self.layouts[port] = PortLayout(
                port, [Field.from_json(f, port) for f in fields], width)
        if self.lanes < 1 or self.latency < 1:
            raise ValueError(f"bad lanes/latency in RTL description: {self.lanes}/{self.latency}")
        self.flow = obj.get("flow", "stall")
        if self.flow not in ("stall", "credit"):
            raise ValueError(f"RTL description field 'flow' must be 'stall' or 'credit', not "
                             f"{self.flow!r}")
        self.capacity = None
        if self.flow == "credit":
            cap = obj.get("capacity")
            if cap is None:
                cap = CreditPipeline.capacity_for(self.latency)
            if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
                raise ValueError(f"RTL description field 'capacity' must be a positive "
                                 f"integer, not {cap!r}")
            self.capacity = cap
        if self.beats_per_step != -(-self.config.neurons // self.lanes):
            raise ValueError(
                f"beats_per_step {self.beats_per_step} != ceil(N / P) for N = "
                f"{self.config.neurons}, P = {self.lanes}")
        for port in ("i_current__payload", "o_spikes__payload", "load_threshold__payload"):
            if port not in self.layouts:
                raise ValueError(f"RTL description has no field table for {port!r}")

    @classmethod
    def load(cls, path, flag=None):
        """Read ``path``; every error is one ValueError naming the file (and ``flag``)."""
        path = Path(path)
        where = f"{flag} {path}" if flag else str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no such file")
        try:
            obj = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}: not a readable RTL description ({exc})") from None
        try:
            return cls(obj)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def timing_model(self):
        """A fresh cycle model of the DUT's handshake (:mod:`golden.timing`)."""
        if self.flow == "credit":
            return CreditPipeline(self.latency, self.capacity)
        return StallPipeline(self.latency)

    @property
    def has_affine(self):
        return "load_affine__payload" in self.ports

    def width(self, port):
        return int(self.ports[port]["width"])

    @property
    def current(self):
        return self.layouts["i_current__payload"]

    @property
    def output(self):
        return self.layouts["o_spikes__payload"]

    @property
    def load_threshold(self):
        return self.layouts["load_threshold__payload"]

    def current_field(self):
        """The single array field of ``i_current__payload`` (lane p = element p)."""
        fields = list(self.current.fields.values())
        if len(fields) != 1 or fields[0].count != self.lanes:
            raise ValueError(f"i_current__payload must be one array of {self.lanes} lanes, "
                             f"not {fields}")
        return fields[0]

"""The folded core file: one LIF array's configuration and integer tables, as ``.npz``.

This is what ``spikefold verilog``/``cosim``/``build`` read with ``--model``. Layout
(format version 1):

* ``format``: the string ``"spikefold-core"``; ``version``: 1;
* ``config``: JSON of :class:`golden.core.CoreConfig`;
* ``theta_q`` (int64, N), ``compare`` (int8, N);
* ``a_q``, ``b_q`` (int64, (T, C)) when the config has the affine stage.
"""

from __future__ import annotations

import inspect
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core import CoreConfig, CoreModel
from .quantize import AffineTable, ThresholdTable

__all__ = ["FoldedCore", "FORMAT", "VERSION", "open_npz"]

FORMAT = "spikefold-core"
VERSION = 1


#: How every .npz file starts (a zip archive's local file header; an empty archive).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

#: Errors a damaged or truncated .npz raises on opening or on reading an array.
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def open_npz(path, what):
    """Open ``path`` as an ``.npz`` archive of plain arrays (``np.load``, no pickle).

    Every way the file can be wrong is one ValueError naming it: missing, a directory,
    not an ``.npz`` at all (a text file, a bare ``.npy``), truncated or damaged. ``what``
    names the expected content ("spikefold core file").
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a {what} (a directory, not an .npz file)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    head = raw[:4]
    if head not in _ZIP_MAGIC:
        kind = "empty" if not head else f"it starts with {head!r}"
        raise ValueError(f"{path}: not a {what}: not an .npz archive ({kind})")
    try:
        # From memory: np.load(path) leaves the file open when the archive is damaged.
        data = np.load(io.BytesIO(raw), allow_pickle=False)
    except NPZ_ERRORS as exc:
        raise ValueError(f"{path}: not a {what}: truncated or damaged .npz ({exc})") from None
    return data


def _required_fields(cls):
    return [name for name, p in inspect.signature(cls).parameters.items()
            if p.default is inspect.Parameter.empty]


@dataclass
class FoldedCore:
    """A LIF array ready for hardware: config, thresholds and (optional) affine table."""

    config: CoreConfig
    thresholds: ThresholdTable
    affine: AffineTable | None = None

    def __post_init__(self):
        # CoreModel performs every consistency check once.
        CoreModel(self.config, self.thresholds, self.affine)

    def model(self):
        """A fresh bit-exact :class:`~golden.core.CoreModel` of this core."""
        return CoreModel(self.config, self.thresholds, self.affine)

    def save(self, path):
        arrays = {
            "format": np.array(FORMAT), "version": np.array(VERSION),
            "config": np.array(json.dumps(self.config.to_json(), sort_keys=True)),
            "theta_q": self.thresholds.theta_q, "compare": self.thresholds.compare,
        }
        if self.affine is not None:
            arrays["a_q"] = self.affine.a_q
            arrays["b_q"] = self.affine.b_q
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a core file; every error is one ValueError naming the file and field."""
        path = Path(path)
        data = open_npz(path, "spikefold core file")
        with data:
            try:
                return cls._parse(data)
            except NPZ_ERRORS as exc:
                if isinstance(exc, ValueError) and not isinstance(exc, zipfile.BadZipFile):
                    raise ValueError(f"{path}: {exc}") from None
                raise ValueError(f"{path}: truncated or damaged .npz ({exc})") from None
            except (TypeError, KeyError) as exc:
                raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def _parse(cls, data):
        for key in ("format", "version", "config", "theta_q", "compare"):
            if key not in data:
                raise ValueError(f"missing array {key!r}")
        if str(data["format"]) != FORMAT:
            raise ValueError(f"format is {str(data['format'])!r}, not {FORMAT!r}")
        if int(data["version"]) != VERSION:
            raise ValueError(
                f"version {int(data['version'])} is not supported (expected {VERSION})")
        try:
            obj = json.loads(str(data["config"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"config must be a JSON object, not {obj!r}")
        for name in _required_fields(CoreConfig):
            if name not in obj:
                raise ValueError(f"config has no field {name!r} (it has {sorted(obj)})")
        try:
            config = CoreConfig.from_json(obj)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"config: {exc}") from None
        thresholds = ThresholdTable(data["theta_q"], data["compare"])
        affine = None
        if config.affine:
            for key in ("a_q", "b_q"):
                if key not in data:
                    raise ValueError(f"config has the affine stage but {key!r} is missing")
            affine = AffineTable(data["a_q"], data["b_q"])
        return cls(config, thresholds, affine)

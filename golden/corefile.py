"""The folded core file: one LIF array's configuration and integer tables, as ``.npz``.

This is what ``spikefold verilog``/``cosim``/``build`` read with ``--model``. Layout
(format version 1):

* ``format``: the string ``"spikefold-core"``; ``version``: 1;
* ``config``: JSON of :class:`golden.core.CoreConfig`;
* ``theta_q`` (int64, N), ``compare`` (int8, N);
* ``a_q``, ``b_q`` (int64, (T, C)) when the config has the affine stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core import CoreConfig, CoreModel
from .quantize import AffineTable, ThresholdTable

__all__ = ["FoldedCore", "FORMAT", "VERSION"]

FORMAT = "spikefold-core"
VERSION = 1


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
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a spikefold core file ({exc})") from None
        with data:
            for key in ("format", "version", "config", "theta_q", "compare"):
                if key not in data:
                    raise ValueError(f"{path}: missing array {key!r}")
            if str(data["format"]) != FORMAT:
                raise ValueError(f"{path}: format is {str(data['format'])!r}, not {FORMAT!r}")
            if int(data["version"]) != VERSION:
                raise ValueError(
                    f"{path}: version {int(data['version'])} is not supported (expected {VERSION})")
            config = CoreConfig.from_json(str(data["config"]))
            thresholds = ThresholdTable(data["theta_q"], data["compare"])
            affine = None
            if config.affine:
                for key in ("a_q", "b_q"):
                    if key not in data:
                        raise ValueError(f"{path}: config has the affine stage but {key!r} is missing")
                affine = AffineTable(data["a_q"], data["b_q"])
        return cls(config, thresholds, affine)

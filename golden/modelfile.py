"""The spikefold model file: a trained network (plus formats and data) as one ``.npz``.

Format ``spikefold-network``, version 2 (version 1 files still load, with identical
results). A NumPy ``.npz`` archive (zip, compressed) read with ``allow_pickle=False``;
every entry is a plain array:

==========================  ================================================================
entry                       content
==========================  ================================================================
``format``                  the string ``"spikefold-network"``
``version``                 the integer ``2``
``architecture``            a JSON string (below)
``layer{i}.{name}``         the arrays of layer ``i``; names and shapes per layer kind
                            (:mod:`golden.layers`). ``dense``: ``weight`` ``(n_out, n_in)``,
                            ``bias`` ``(n_out,)``, ``norm.{name}`` (the normalizer's
                            eval-mode state, :data:`golden.normalizers.NORM_PARAMS`),
                            ``mpbn.{name}`` (``gamma``, ``beta``, ``running_mean``,
                            ``running_var``) when ``mpbn`` is true
``data.calib_x``            uint8 ``(n, *input_shape)`` calibration inputs (raw pixels);
                            optional
``data.test_x``             uint8 ``(m, *input_shape)`` evaluation inputs; optional
``data.test_y``             int ``(m,)`` evaluation labels; with ``data.test_x``
==========================  ================================================================

Float arrays are stored as float32 when that is lossless (trainer output), else float64.

``architecture`` JSON (version 2)::

    {"T": 4, "tau": 0.25, "v_th": 0.5, "encoding": "direct", "input_shape": [64],
     "layers": [{"kind": "dense", "n_out": 128, "norm": "tdbn", "norm_eps": 1e-05,
                 "norm_alpha": 1.0, "mpbn": true, "mpbn_eps": 1e-05, "readout": false,
                 "neuron": null | {"tau": 0.25, "v_th": 0.5, "reset": "zero"}}, ...,
                {"kind": "dense", "n_out": 10, ..., "readout": true}],
     "formats": null | {"input": {"bits": 8, "frac": 6},
                        "layers": [null | {"weight": {...}, "current": {...},
                                           "membrane": {...} | null,
                                           "scale": {...} | null}, ...]},
     "data": null | {"name": "...", "pixel_scale": 0.0625},
     "meta": {...free-form: training settings, accuracies...}}

Each layer entry is ``{"kind": ..., **params}`` as the kind's ``entries()`` writes it; a
LIF layer without ``neuron`` uses the network's ``tau`` and ``v_th`` with zero reset.
Version 1 had ``sizes`` instead of ``input_shape`` and layers without ``kind`` (all dense,
one ``tau``/``v_th``, zero reset).

The network input is ``x = pixel_scale * data`` (direct encoding: the same ``x`` at every
timestep). Loading checks everything and raises ``ValueError`` naming the file and the
entry: a missing or unexpected array, a wrong shape, NaN/inf, an unknown format, version,
kind or field; a file that is not an ``.npz`` archive (or is truncated) is named as such.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .layers import kind_class
from .network import (
    MPBN_PARAMS, NORM_PARAMS, NORMS, IntegerNetwork, Layer, Network, NetworkFormats, shape_of,
)

__all__ = ["FORMAT", "VERSION", "ModelFile", "DEFAULT_MODEL", "DEFAULT_CONV_MODEL", "load_default",
           "load_conv_default", "is_network_file"]

FORMAT = "spikefold-network"
VERSION = 2
VERSIONS = (1, 2)
DEFAULT_MODEL = Path(__file__).parent / "models" / "digits_mpbn.npz"
#: The conv default (digits 1 x 8 x 8): ``spikefold train --arch conv --out <this file>``.
DEFAULT_CONV_MODEL = Path(__file__).parent / "models" / "digits_conv.npz"

_ARCH_KEYS = {"T", "tau", "v_th", "reset", "encoding", "sizes", "layers", "formats", "data",
              "meta"}
_ARCH_KEYS_V2 = {"T", "tau", "v_th", "encoding", "input_shape", "layers", "formats", "data",
                 "meta"}
_LAYER_KEYS = {"norm", "norm_eps", "norm_alpha", "mpbn", "mpbn_eps", "readout"}
_DATA_KEYS = {"name", "pixel_scale"}


@dataclass
class ModelFile:
    """A network with its (optional) fixed-point formats and (optional) data.

    Parameters
    ----------
    network : golden.network.Network
    formats : golden.network.NetworkFormats or None
        Calibrated fixed-point formats (from :mod:`golden.calibrate`).
    calib_x, test_x : uint8 arrays ``(n, n_in)`` or None
        Raw inputs; the network sees ``pixel_scale * x``.
    test_y : int array ``(m,)`` or None
    data_name : str
    pixel_scale : float
    """

    network: Network
    formats: NetworkFormats | None = None
    calib_x: np.ndarray | None = None
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    data_name: str = ""
    pixel_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    @property
    def has_data(self):
        return self.calib_x is not None or self.test_x is not None

    def integer(self):
        """The bit-exact :class:`~golden.network.IntegerNetwork` with the stored formats."""
        if self.formats is None:
            raise ValueError("this model file has no fixed-point formats: run "
                             "golden.calibrate.calibrate on calibration data first")
        return IntegerNetwork.from_folded(self.network.fold(), self.formats)

    def inputs(self, raw):
        """Network inputs for raw data ``raw`` (``pixel_scale * raw`` as float64)."""
        return np.asarray(raw, dtype=np.float64) * self.pixel_scale

    # -- save -----------------------------------------------------------------------------

    def save(self, path):
        """Write the model file (version 2) to ``path``."""
        net = self.network.check()
        specs, arrays = [], {}
        for i, layer in enumerate(net.layers):
            params, entries = layer.entries()
            specs.append({"kind": layer.kind, **params})
            for name, value in entries.items():
                arrays[f"layer{i}.{name}"] = _compact(value)
        arch = {
            "T": net.T, "tau": net.tau, "v_th": net.v_th, "encoding": "direct",
            "input_shape": [int(n) for n in net.input_shape], "layers": specs,
            "formats": None if self.formats is None else self.formats.to_json(),
            "data": ({"name": self.data_name, "pixel_scale": float(self.pixel_scale)}
                     if self.has_data else None),
            "meta": {**net.meta, **self.meta},
        }
        header = {"format": np.array(FORMAT), "version": np.array(VERSION),
                  "architecture": np.array(json.dumps(arch, sort_keys=True))}
        arrays = {**header, **arrays}
        for key, value in (("data.calib_x", self.calib_x), ("data.test_x", self.test_x)):
            if value is not None:
                arrays[key] = _raw_data(key, value, net.input_shape)
        if self.test_y is not None:
            if self.test_x is None or len(self.test_y) != len(self.test_x):
                raise ValueError("test_y needs test_x with the same number of samples")
            arrays["data.test_y"] = np.asarray(self.test_y, dtype=np.int64)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    # -- load -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} does not exist")
        from .corefile import open_npz
        data = open_npz(path, "spikefold model file")
        if not hasattr(data, "files"):
            raise ValueError(f"{path}: not a spikefold model file (a bare array, not an .npz)")
        with data:
            try:
                return cls._parse(data)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise ValueError(f"{path}: not a spikefold model file: truncated or damaged .npz ({exc})") \
                    from None

    @classmethod
    def _parse(cls, data):
        files = set(data.files)
        for key in ("format", "version", "architecture"):
            if key not in files:
                raise ValueError(f"missing array {key!r}")
        if data["format"].shape != () or str(data["format"]) != FORMAT:
            raise ValueError(f"format is {str(data['format'])!r}, not {FORMAT!r}")
        try:
            version = int(data["version"])
        except (TypeError, ValueError):
            raise ValueError(f"version must be an integer, not {data['version']!r}") from None
        if version not in VERSIONS:
            raise ValueError(f"unknown version {version} (this spikefold reads versions "
                             f"{', '.join(map(str, VERSIONS))})")
        try:
            arch = json.loads(str(data["architecture"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"architecture is not valid JSON ({exc})") from None
        if not isinstance(arch, dict):
            raise ValueError("architecture must be a JSON object")
        keys = _ARCH_KEYS if version == 1 else _ARCH_KEYS_V2
        unknown = set(arch) - keys
        if unknown:
            raise ValueError(f"architecture has unknown fields {sorted(unknown)}")
        for key in ("T", "tau", "v_th", "sizes" if version == 1 else "input_shape", "layers"):
            if key not in arch:
                raise ValueError(f"architecture.{key} is missing")
        if arch.get("reset", "zero") != "zero":
            raise ValueError(f"architecture.reset must be 'zero', not {arch['reset']!r}")
        if arch.get("encoding", "direct") != "direct":
            raise ValueError(f"architecture.encoding must be 'direct', not {arch['encoding']!r}")
        T = arch["T"]
        if not isinstance(T, int) or isinstance(T, bool) or T < 1:
            raise ValueError(f"architecture.T must be a positive integer, not {T!r}")
        expected = {"format", "version", "architecture"}

        def array(key, shape, dtype=np.float64):
            if key not in files:
                raise ValueError(f"missing array {key!r}")
            expected.add(key)
            arr = data[key]
            if shape is not None and arr.shape != tuple(shape):
                raise ValueError(f"array {key!r} has shape {arr.shape}, expected {tuple(shape)}")
            if dtype is np.float64:
                if not np.issubdtype(arr.dtype, np.floating):
                    raise ValueError(f"array {key!r} must hold floats, not {arr.dtype}")
                arr = arr.astype(np.float64)
                if not np.all(np.isfinite(arr)):
                    index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                    raise ValueError(f"array {key!r} holds {float(arr[index])!r} at index {index}")
            return arr

        parse = _layers_v1 if version == 1 else _layers_v2
        layers, input_shape = parse(arch, array, T)
        meta = arch.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("architecture.meta must be a JSON object")
        for key in ("tau", "v_th"):
            if not isinstance(arch[key], (int, float)) or isinstance(arch[key], bool):
                raise ValueError(f"architecture.{key} must be a number, not {arch[key]!r}")
        network = Network(layers, T=T, tau=arch["tau"], v_th=arch["v_th"], meta=meta)
        formats = None
        if arch.get("formats") is not None:
            try:
                formats = NetworkFormats.from_json(arch["formats"])
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"architecture.formats is malformed ({exc!r})") from None
            if len(formats.layers) != len(layers):
                raise ValueError(f"architecture.formats has {len(formats.layers)} layers, the "
                                 f"network {len(layers)}")
        result = cls(network, formats)
        classes = int(np.prod(layers[-1].out_shape))
        info = arch.get("data")
        if info is not None:
            if not isinstance(info, dict) or set(info) - _DATA_KEYS:
                raise ValueError(f"architecture.data must be an object with fields "
                                 f"{sorted(_DATA_KEYS)}")
            scale = info.get("pixel_scale", 1.0)
            if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
                raise ValueError(f"architecture.data.pixel_scale must be > 0, not {scale!r}")
            result.data_name = str(info.get("name", ""))
            result.pixel_scale = float(scale)
            for key, attr in (("data.calib_x", "calib_x"), ("data.test_x", "test_x")):
                if key in files:
                    arr = array(key, None, dtype=None)
                    if arr.ndim < 2 or arr.shape[1:] != input_shape or arr.dtype != np.uint8:
                        want = ", ".join(map(str, input_shape))
                        raise ValueError(f"array {key!r} must be uint8 of shape (n, {want}),"
                                         f" not {arr.dtype} {arr.shape}")
                    setattr(result, attr, arr)
            if result.test_x is not None:
                y = array("data.test_y", (len(result.test_x),), dtype=None)
                if not np.issubdtype(y.dtype, np.integer):
                    raise ValueError(f"array 'data.test_y' must hold integers, not {y.dtype}")
                if np.any((y < 0) | (y >= classes)):
                    raise ValueError(f"array 'data.test_y' holds labels outside 0..{classes - 1}")
                result.test_y = y.astype(np.int64)
        extra = files - expected
        if extra:
            raise ValueError(f"unexpected arrays {sorted(extra)}")
        return result


def _layers_v1(arch, array, T):
    """Version 1: dense layers of ``sizes``, one tau/v_th, zero reset."""
    sizes = arch["sizes"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in sizes)):
        raise ValueError(f"architecture.sizes must list >= 2 positive integers, not {sizes!r}")
    specs = arch["layers"]
    if not isinstance(specs, list) or len(specs) != len(sizes) - 1:
        raise ValueError(f"architecture.layers must list {len(sizes) - 1} layers "
                         f"(one per pair of sizes)")
    layers = []
    for i, spec in enumerate(specs):
        where = f"architecture.layers[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a JSON object")
        unknown = set(spec) - _LAYER_KEYS
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
        norm = spec.get("norm", "none")
        if norm not in NORMS:
            raise ValueError(f"{where}.norm must be one of {NORMS}, not {norm!r}")
        n_in, n_out = sizes[i], sizes[i + 1]
        params = {name: array(f"layer{i}.norm.{name}", shape_of(code, T, n_out))
                  for name, code in NORM_PARAMS[norm].items()}
        mpbn = None
        if spec.get("mpbn", False):
            mpbn = {name: array(f"layer{i}.mpbn.{name}", (n_out,)) for name in MPBN_PARAMS}
        for key in ("norm_eps", "norm_alpha", "mpbn_eps"):
            value = spec.get(key, 1.0 if key == "norm_alpha" else 1e-5)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}.{key} must be a finite number, not {value!r}")
        layers.append(Layer(
            array(f"layer{i}.weight", (n_out, n_in)), array(f"layer{i}.bias", (n_out,)),
            norm=norm, norm_params=params, norm_eps=float(spec.get("norm_eps", 1e-5)),
            norm_alpha=float(spec.get("norm_alpha", 1.0)), mpbn=mpbn,
            mpbn_eps=float(spec.get("mpbn_eps", 1e-5)),
            readout=bool(spec.get("readout", i == len(specs) - 1))))
    return layers, (sizes[0],)


def _layers_v2(arch, array, T):
    """Version 2: ``input_shape`` and a list of layers of registered kinds."""
    shape = arch["input_shape"]
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"architecture.input_shape must list positive integers, not {shape!r}")
    specs = arch["layers"]
    if not isinstance(specs, list) or not specs:
        raise ValueError("architecture.layers must be a non-empty list")
    in_shape = tuple(shape)
    layers = []
    for i, spec in enumerate(specs):
        where = f"architecture.layers[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a JSON object")
        if "kind" not in spec:
            raise ValueError(f"{where}.kind is missing")
        cls = kind_class(spec["kind"], where)
        params = {k: v for k, v in spec.items() if k != "kind"}
        layer = cls.from_entries(params, lambda name, shape, i=i: array(f"layer{i}.{name}", shape),
                                 in_shape, T, where)
        layers.append(layer)
        in_shape = tuple(layer.out_shape)
    return layers, tuple(shape)


def is_network_file(path):
    """Whether ``path`` is a spikefold network model file (``format`` entry), as opposed to
    a folded core file; ``False`` for anything that is not a readable ``.npz``."""
    try:
        # From memory: np.load(path) leaves the file open when the archive is damaged.
        with np.load(io.BytesIO(Path(path).read_bytes()), allow_pickle=False) as data:
            return "format" in data.files and str(data["format"]) == FORMAT
    except Exception:                                   # noqa: BLE001 -- any unreadable file
        return False


def _compact(value):
    """float32 when lossless, else float64."""
    arr = np.asarray(value, dtype=np.float64)
    arr32 = arr.astype(np.float32)
    return arr32 if np.array_equal(arr32.astype(np.float64), arr) else arr


def _raw_data(key, value, input_shape):
    arr = np.asarray(value)
    input_shape = tuple(input_shape)
    if arr.ndim >= 2 and arr.shape[1:] != input_shape and \
            int(np.prod(arr.shape[1:])) == int(np.prod(input_shape)):
        arr = arr.reshape((len(arr),) + input_shape)
    if arr.ndim < 2 or arr.shape[1:] != input_shape:
        want = ", ".join(map(str, input_shape))
        raise ValueError(f"{key} must have shape (n, {want}), not {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{key} must hold raw integers 0..255 (stored as uint8)")
    return arr.astype(np.uint8)


def load_default():
    """The embedded default model (digits, MPBN); needs no torch."""
    return ModelFile.load(DEFAULT_MODEL)


def load_conv_default():
    """The embedded conv default model (digits, conv SNN with MPBN); needs no torch."""
    return ModelFile.load(DEFAULT_CONV_MODEL)

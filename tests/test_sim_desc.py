"""Packing and unpacking ports from the JSON field table."""

import copy
import functools
import json
import tempfile

import pytest

from golden.examples import example_core
from hdl.export import export_verilog
from sim.desc import Field, RtlDescription


@functools.lru_cache(maxsize=None)
def _exported(affine):
    with tempfile.TemporaryDirectory() as tmp:
        _, path = export_verilog(example_core(10, affine=affine), 4, tmp, name="dut")
        return path.read_text()


def desc_dict(affine=False):
    return json.loads(_exported(affine))


def test_field_round_trip_signed_array():
    f = Field("membrane", offset=3, width=8, count=3, signed=True)
    word = f.insert(0b101, [-128, 127, -1])
    assert word & 0b111 == 0b101                      # bits below the field untouched
    assert f.extract(word) == [-128, 127, -1]
    assert (word >> 3) & 0xFF == 0x80


def test_field_refuses_values_that_do_not_fit():
    f = Field("theta", offset=0, width=4, signed=True)
    with pytest.raises(ValueError, match="theta"):
        f.insert(0, 8)
    with pytest.raises(ValueError, match="3 elements"):
        Field("x", 0, 2, count=3).insert(0, [1, 2])


def test_description_layouts_follow_the_contract():
    d = RtlDescription(desc_dict())
    cfg = d.config
    out = d.output
    assert out["spikes"].offset == 0 and out["spikes"].width == 4
    assert out["membrane"].count == 4 and out["membrane"].signed
    assert d.current_field().count == 4 and d.current_field().width == cfg.current.bits
    word = d.load_threshold.pack(index=9, theta=-3, compare=1)
    assert d.load_threshold.unpack(word) == {"index": 9, "theta": -3, "compare": 1}
    assert not d.has_affine
    assert RtlDescription(desc_dict(affine=True)).has_affine


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(beats_per_step=7), "beats_per_step"),
    (lambda d: d["fields"].pop("o_spikes__payload"), "o_spikes__payload"),
    (lambda d: d["fields"]["o_spikes__payload"].append(
        {"name": "x", "offset": 10_000, "width": 1, "count": 1, "signed": False}), "ends at bit"),
])
def test_bad_descriptions_are_refused(edit, message):
    d = copy.deepcopy(desc_dict())
    edit(d)
    with pytest.raises((ValueError, KeyError), match=message):
        RtlDescription(d)

"""README consistency: every quoted command parses, every derived time matches its cycles.

Two checks that need no build and no simulation (the figures themselves are re-measured by
their commands, see NOTES / the README's "Figures"):

* every ``spikefold SUBCOMMAND ...`` the README quotes (``sh`` blocks, indented command
  blocks, inline code) is accepted by the real argument parser: no flag name that does not
  exist, no bad choice or value. Placeholders (an all-capital word such as ``NAME`` or ``N``,
  ``[...]``, ``a|b``, an ellipsis) and bare mentions (``spikefold run`` in prose) are left
  out: a parser error for a missing required argument is not a README error.
* every time the README derives from a cycle count at a clock (``C cycles = X µs at F MHz``,
  and in a table row with ``Fmax F MHz``: ``X µs/image streaming (C cycles)``, ``X µs first
  image (C cycles)``) equals C / F to the digits it states.
"""

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()

NUM = r"(\d[\d,]*(?:\.\d+)?)"


# -- commands ---------------------------------------------------------------------------

def quoted_command_lines(text):
    """Every piece of text the README shows as code: sh-block lines, indented lines, spans."""
    pieces = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        pieces += [line.split(" #")[0] for line in block.splitlines()]
    pieces += [line.split(" #")[0] for line in re.findall(r"^    (.*spikefold .*)$", text, re.M)]
    pieces += re.findall(r"`([^`\n]+)`", text)
    return pieces


def spikefold_commands(text, commands):
    """The argument lists of every ``spikefold CMD ...`` quoted in ``text``, in order, once."""
    names = "|".join(sorted(commands, key=len, reverse=True))
    found = []
    for piece in quoted_command_lines(text):
        for m in re.finditer(rf"(?:^|[\s/(])spikefold ((?:{names})\b.*)", piece):
            args = re.split(r"\s*(?:&&|;|\|\|)|\)$", m.group(1))[0].strip()
            if args not in found:
                found.append(args)
    return found


def is_placeholder(args):
    return bool(re.search(r"[\[\]|…]|\.\.\.", args)) or any(
        re.fullmatch(r"[A-Z]+", token) for token in shlex.split(args))


#: Parser errors that mean the README names a flag, choice or value the command does not
#: take (a missing required argument only means a bare mention in prose).
README_ERRORS = ("unrecognized arguments", "invalid choice", "invalid", "ambiguous option",
                 "not allowed with")


def parse_error(parser, args, capsys):
    """The parser's one-line error for ``args`` (None when they parse)."""
    capsys.readouterr()
    try:
        parser.parse_args(shlex.split(args))
    except SystemExit:
        return capsys.readouterr().err.strip()
    return None


def test_readme_quotes_commands():
    from spikefold.cli import COMMANDS
    commands = spikefold_commands(TEXT, COMMANDS)
    assert len(commands) > 50
    assert "build --board icebreaker" in commands
    assert "cosim --bench --steps 1000 --out reports/bench" in commands
    assert "bench" in commands                             # `for ...; do spikefold bench; done`


def test_readme_commands_parse(capsys):
    from spikefold.cli import COMMANDS, build_parser
    parser = build_parser()
    bad = []
    for args in spikefold_commands(TEXT, COMMANDS):
        if is_placeholder(args):
            continue
        error = parse_error(parser, args, capsys)
        if error is not None and any(e in error for e in README_ERRORS):
            bad.append(f"spikefold {args}: {error}")
    assert not bad, "README quotes commands the CLI refuses:\n" + "\n".join(bad)


def test_parse_error_is_seen(capsys):
    """The check is not vacuous: a wrong flag name or choice is reported."""
    from spikefold.cli import build_parser
    parser = build_parser()
    assert "unrecognized arguments" in parse_error(parser, "demo --core-seed 2", capsys)
    assert "invalid choice" in parse_error(parser, "build --board icebraker", capsys)
    assert parse_error(parser, "demo --samples 2", capsys) is None


# -- derived times ----------------------------------------------------------------------

def _value(s):
    return float(s.replace(",", ""))


def _decimals(s):
    return len(s.split(".")[1]) if "." in s else 0


def derived_times(text):
    """(quoted text, cycles, stated time, its digits, unit, MHz) for every derived time."""
    out = []
    at = r" = \**" + NUM + r" (µs|ms) at (?:an assumed )?" + NUM + " MHz"
    for pattern in (NUM + r" cycles\)?" + at, NUM + r" \([^()]*\)" + at, NUM + at):
        for m in re.finditer(pattern, text):
            out.append((m.group(0), _value(m.group(1)), m.group(2), m.group(3),
                        _value(m.group(4))))
    for row in re.findall(r"^\|.*$", text, re.M):
        fmax = re.search(r"Fmax \**" + NUM + r"\** MHz", row)
        if fmax is None:
            continue
        for m in re.finditer(NUM + r" µs(?:/image)?\**(?: streaming| first image)\** \(" + NUM, row):
            out.append((m.group(0), _value(m.group(2)), m.group(1), "µs", _value(fmax.group(1))))
    return out


def wrong_times(text):
    wrong = []
    for quoted, cycles, stated, unit, mhz in derived_times(text):
        want = cycles / mhz / (1000 if unit == "ms" else 1)
        if abs(want - _value(stated)) > 0.5 * 10 ** -_decimals(stated) + 1e-9:
            wrong.append(f"{quoted!r}: {cycles:g} cycles at {mhz:g} MHz are {want:.4f} {unit}")
    return wrong


def test_readme_derives_times():
    assert len(derived_times(TEXT)) >= 8
    assert not wrong_times(TEXT), "\n".join(wrong_times(TEXT))


@pytest.mark.parametrize("quoted, wrong", [
    ("16.78 µs first image (1,878 cycles)", "16.87 µs first image (1,878 cycles)"),
    ("9.95 µs/image** streaming", "9.59 µs/image** streaming"),
    ("7.68 µs/image** streaming (1,114", "7.86 µs/image** streaming (1,114"),
])
def test_wrong_time_is_seen(quoted, wrong):
    """The check is not vacuous: a time that does not follow from its cycles is reported."""
    assert quoted in TEXT
    assert wrong_times(TEXT.replace(quoted, wrong))

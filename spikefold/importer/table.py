"""The import table (source module -> spikefold layer, conversions) and the refusal error."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ImportRefused", "ImportTable", "Row"]


class ImportRefused(ValueError):
    """A module cannot be imported exactly; the message names the module and the reason."""

    def __init__(self, name, module, reason):
        self.name = name
        self.module = module
        self.reason = reason
        super().__init__(f"cannot import module {name!r} ({module}): {reason}")


@dataclass
class Row:
    """One source module: its name and type, the spikefold layer it went to and how."""

    source: str
    module: str
    target: str
    conversions: list = field(default_factory=list)

    def to_json(self):
        return {"source": self.source, "module": self.module, "target": self.target,
                "conversions": list(self.conversions)}


@dataclass
class ImportTable:
    """Every source module of an import, in order (JSON-able via :meth:`to_json`)."""

    library: str = ""
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def add(self, source, module, target, *conversions):
        row = Row(source, module, target, [c for c in conversions if c])
        self.rows.append(row)
        return row

    def to_json(self):
        return {"library": self.library, "rows": [r.to_json() for r in self.rows],
                "notes": list(self.notes)}

    def markdown(self):
        """The table as Markdown (the CLI prints this)."""
        lines = ["| source module | type | spikefold layer | conversions |",
                 "|---|---|---|---|"]
        for r in self.rows:
            conv = "; ".join(r.conversions) if r.conversions else "as is"
            lines.append(f"| {r.source} | {r.module} | {r.target} | {conv} |")
        for note in self.notes:
            lines.append(f"\nnote: {note}")
        return "\n".join(lines)

    def __str__(self):
        return self.markdown()

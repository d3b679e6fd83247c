"""Signature compatibility: what would break for callers of the version a new one replaces.

A new version is compatible when every request the old one accepted is still accepted and every
output callers read still comes back with the same kind (and classes): no new required input
column, no narrower column type, no column that stops accepting missing values, the same tensors,
no removed output, no changed output kind or class set. Dropping an input column is compatible
(extra columns are ignored with a warning).
"""

from __future__ import annotations

from modelport.core.types import ColumnSpec, Signature

_WIDENINGS = frozenset(
    {("int", "float"), ("bool", "int"), ("bool", "float"), ("category", "string"), ("string", "category")}
)


def breaking_changes(old: Signature, new: Signature) -> list[str]:
    """Each way ``new`` breaks callers of ``old``, as a sentence; empty when it is compatible."""
    if old.kind != new.kind:
        return [f"input kind changed from {old.kind} to {new.kind}"]
    changes = _column_changes(old, new) if old.kind == "tabular" else _tensor_changes(old, new)
    return changes + _output_changes(old, new)


def _column_changes(old: Signature, new: Signature) -> list[str]:
    before = {c.name: c for c in old.columns}
    changes = []
    for column in new.columns:
        previous = before.get(column.name)
        if previous is None:
            changes.append(f"new required input column {column.name!r}")
        else:
            changes += _column_change(previous, column)
    return changes


def _column_change(old: ColumnSpec, new: ColumnSpec) -> list[str]:
    changes = []
    if old.type != new.type and (old.type, new.type) not in _WIDENINGS:
        changes.append(f"input column {new.name!r} changed type from {old.type} to {new.type}")
    if old.nullable and not new.nullable:
        changes.append(f"input column {new.name!r} no longer accepts missing values")
    return changes


def _tensor_changes(old: Signature, new: Signature) -> list[str]:
    before = {t.name: t for t in old.tensors}
    after = {t.name: t for t in new.tensors}
    changes = [f"input tensor {name!r} removed" for name in before if name not in after]
    changes += [f"new required input tensor {name!r}" for name in after if name not in before]
    for name in sorted(set(before) & set(after)):
        if (before[name].dtype, before[name].shape) != (after[name].dtype, after[name].shape):
            changes.append(
                f"input tensor {name!r} changed from {before[name].dtype}{list(before[name].shape)} to "
                f"{after[name].dtype}{list(after[name].shape)}"
            )
    return changes


def _output_changes(old: Signature, new: Signature) -> list[str]:
    changes = []
    for output in old.outputs:
        now = new.output(output.name)
        if now is None:
            changes.append(f"output {output.name!r} removed")
        elif now.kind != output.kind:
            changes.append(f"output {output.name!r} changed kind from {output.kind} to {now.kind}")
        elif output.classes is not None and set(map(str, output.classes)) != set(map(str, now.classes or ())):
            changes.append(
                f"output {output.name!r} changed classes from {list(output.classes)} to {list(now.classes or ())}"
            )
    return changes

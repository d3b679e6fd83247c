"""``modelport models ...``: list, show, register, alias, delete, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table

app = typer.Typer(help="Registered models: versions, aliases and their audit trail.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]


@app.command("list")
def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List models with their latest version and aliases."""
    from modelport.api import open_registry

    registry = open_registry(settings_of(ctx))
    summaries = registry.list_models()
    if as_json:
        print_json([_plain(s) for s in summaries])
        return
    if not summaries:
        stdout.print("No models yet. Try [bold]modelport quickstart[/] or modelport.save_model(...).")
        return
    table(
        "Models",
        ["name", "latest", "versions", "aliases", "updated"],
        (
            [
                s.name,
                s.latest_version,
                s.version_count,
                ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items())),
                s.updated_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for s in summaries
        ),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3 or name@alias")],
    as_json: JsonFlag = False,
) -> None:
    """Show one version: flavor, signature, metrics, aliases."""
    from modelport.api import open_registry
    from modelport.core.errors import InvalidName
    from modelport.core.refs import ModelRef

    parsed = ModelRef.parse(ref)
    if parsed.is_path:
        raise InvalidName(
            f"Invalid model name {ref!r}: 'show' takes a registry reference.", hint="Use name, name:3 or name@alias."
        )
    mv = open_registry(settings_of(ctx)).resolve(parsed)
    if as_json:
        print_json(_plain(mv))
        return
    table(
        f"{mv.name}:{mv.version}",
        ["field", "value"],
        [
            ["flavor", mv.flavor],
            ["aliases", ", ".join(mv.aliases) or "-"],
            ["created", f"{mv.created_at:%Y-%m-%d %H:%M} by {mv.created_by}"],
            ["description", mv.description or "-"],
            ["metrics", ", ".join(f"{k}={v:.4g}" for k, v in mv.metrics.items()) or "-"],
            ["tags", ", ".join(f"{k}={v}" for k, v in mv.tags.items()) or "-"],
            ["digest", mv.digest[:16]],
        ],
    )
    sig = mv.signature
    if sig.kind == "tabular":
        table("Inputs", ["column", "type", "nullable"], ([c.name, c.dtype, c.nullable] for c in sig.columns))
    else:
        table("Inputs", ["tensor", "dtype", "shape"], ([t.name, t.dtype, t.shape] for t in sig.tensors))
    table("Outputs", ["output", "kind", "classes"], ([o.name, o.kind, o.classes or ""] for o in sig.outputs))


@app.command("register")
def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A bundle folder or .tar.gz written by save_bundle.")],
    name: Annotated[str | None, typer.Option(help="Register under this name (default: the bundle's).")] = None,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a bundle folder or archive as the next version of its model."""
    from modelport.api import local_bundle, open_registry

    registry = open_registry(settings_of(ctx))
    bundle_dir = local_bundle(path)
    mv = registry.register(bundle_dir, name=name, reason=reason)
    if as_json:
        print_json(_plain(mv))
    else:
        stdout.print(f"Registered [bold]{mv.name}:{mv.version}[/] ({mv.flavor}).")


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: str,
    version: int,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production, staging")],
    reason: ReasonOpt = None,
) -> None:
    """Point ALIAS of model NAME at VERSION, through the promotion policy (audited).

    An alias the policy protects is not moved: a promotion request is opened instead.
    """
    from modelport.api.governing import promote

    result = promote(name, version, to=alias_name, reason=reason, settings=settings_of(ctx))
    if result.moved:
        stdout.print(f"{name}@{alias_name} → version {version}")
        return
    request_id = result.request.id if result.request is not None else "?"
    stdout.print(
        f"{name}@{alias_name} is protected: opened promotion request {request_id} "
        f"({'; '.join(result.blockers) or 'awaiting approval'}). Approve it with: modelport approve {request_id}",
        highlight=False,
    )


@app.command("delete")
def delete(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="name:version")], reason: ReasonOpt = None
) -> None:
    """Soft-delete a version that no alias points to."""
    from modelport.api import open_registry
    from modelport.core.errors import InvalidName
    from modelport.core.refs import ModelRef

    parsed = ModelRef.parse(ref)
    if parsed.name is None or parsed.version is None:
        raise InvalidName(f"Delete needs an explicit version, got {ref!r}.", hint="Use name:version, e.g. churn:2.")
    open_registry(settings_of(ctx)).delete_version(parsed.name, parsed.version, reason=reason)
    stdout.print(f"Deleted {ref} (soft: its record stays in the audit log).")


@app.command("audit")
def audit(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit trail: who did what, when and why."""
    from modelport.api import open_registry

    records = open_registry(settings_of(ctx)).audit(name)
    if as_json:
        print_json([_plain(r) for r in records])
        return
    table(
        "Audit log",
        ["time", "actor", "action", "target", "reason"],
        ([f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.action, r.target, r.reason or ""] for r in records),
    )


def _plain(obj: object) -> dict[str, object]:
    """A dataclass or pydantic object as a JSON-ready dict."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            out[field.name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        return out
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        result: dict[str, object] = dump(mode="json")
        return result
    return dict(vars(obj))

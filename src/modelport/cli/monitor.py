"""``modelport logs``, ``modelport monitor drift|feedback|metrics|check`` and ``modelport dashboard``.

A thin shell over :mod:`modelport.api.monitoring`: parse the options, call one function, render
the result as a Rich table or, with ``--json``, as JSON for scripts. ``monitor drift`` and
``monitor check`` exit with status 1 when a threshold is crossed, so cron jobs and CI can alert
on the exit code alone; errors keep their own codes (2 for a bad option, 3 for an unknown model).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelport.cli._context import settings_of
from modelport.cli._render import print_json, stdout, table

if TYPE_CHECKING:
    from modelport.monitoring.alerts import CheckResult
    from modelport.monitoring.drift import DriftReport, FeatureDrift
    from modelport.monitoring.performance import PerformanceReport

app = typer.Typer(help="Watch served models: drift, live accuracy from ground truth, alerts.", no_args_is_help=True)

DRIFT_EXIT = 1
"""Exit status of ``monitor drift`` when drift crosses a threshold, and of ``monitor check`` when an alert fires."""
MAX_CELL = 60
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION = ("mae", "rmse", "r2")

RefArg = Annotated[str, typer.Argument(help="name (see each command), name:3, name@alias or a bundle path")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_VERDICTS = {
    "ok": "[green]ok[/]",
    "drift": "[bold red]DRIFT[/]",
    "insufficient_data": "[yellow]too few rows[/]",
    "not_logged": "[dim]not logged[/]",
    "skipped": "[dim]skipped (redacted)[/]",
}


def logs(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name (every version), name:3, name@alias or a bundle path")],
    since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d...")] = "24h",
    where: Annotated[
        str | None, typer.Option(help='DuckDB condition on the record, e.g. "status <> \'ok\'" or "inputs.age > 60".')
    ] = None,
    limit: Annotated[int, typer.Option(help="Most rows shown, newest first.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Show logged predictions of a model, newest first (read with DuckDB from the prediction log)."""
    from modelport.api.monitoring import query

    result = query(settings_of(ctx), ref, since=since, where=where, limit=limit)
    if as_json:
        print_json(result.to_dict())
        return
    if not result.rows:
        stdout.print(f"No prediction of {escape(ref)} logged in the last {escape(since)}.")
        return
    shown = [c for c in result.columns if c not in ("model", "kind") and any(r.get(c) is not None for r in result.rows)]
    table(
        f"Prediction log: {escape(ref)} (last {escape(since)})",
        shown,
        ([_cell(c, row.get(c)) for c in shown] for row in result.rows),
    )
    if result.truncated:
        stdout.print(f"[dim]Showing the newest {limit} rows; raise --limit or narrow --where/--since for more.[/]")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "ts" and isinstance(value, str):
        return escape(value[:19].replace("T", " "))
    if column == "latency_ms" and isinstance(value, int | float):
        return f"{value:.1f}"
    text = json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, dict | list) else str(value)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return escape(text)


@app.command("drift")
def drift(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name (the version it resolves to), name:3, name@alias or a bundle path")],
    window: Annotated[str, typer.Option(help="How far back to look: 1h, 24h, 7d...")] = "24h",
    threshold: Annotated[
        list[str] | None,
        typer.Option(help="Override a threshold, e.g. psi=0.3 or ks_alpha=0.001 (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare recent traffic with the version's reference statistics; exit 1 when drift crosses a threshold."""
    from modelport.api.monitoring import drift_report, drift_thresholds

    limits = drift_thresholds(_overrides(threshold or []))
    report = drift_report(settings_of(ctx), ref, window=window, thresholds=limits)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_drift(report, window)
    if report.drift:
        raise typer.Exit(DRIFT_EXIT)


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    from modelport.core.errors import ValidationError

    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"Invalid --threshold {item!r}.", hint="Write NAME=VALUE, e.g. --threshold psi=0.3.")
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            values[key.strip()] = lowered == "true"
            continue
        try:
            values[key.strip()] = float(text)
        except ValueError:
            raise ValidationError(
                f"Invalid --threshold {item!r}: {text!r} is not a number.", hint="e.g. --threshold psi=0.3"
            ) from None
    return values


def _print_drift(report: DriftReport, window: str) -> None:
    version = f":{report.version}" if report.version is not None else ""
    rows = [_drift_row(f) for f in report.features]
    if report.prediction is not None:
        rows.append(_drift_row(report.prediction, label="prediction (predict)"))
    table(
        f"Drift of {escape(report.model)}{version}: {report.rows} predictions in the last {escape(window)}",
        ["feature", "kind", "rows", "PSI", "PSI limit", "test", "statistic", "limit", "missing Δ", "verdict"],
        rows,
    )
    if report.drift:
        drifted = report.drifted_features
        if report.prediction is not None and report.prediction.drift:
            drifted.append("the prediction")
        stdout.print(f"[bold red]Drift[/] in {escape(', '.join(drifted))}.")
    elif report.rows == 0:
        stdout.print(f"[yellow]No prediction logged in the last {escape(window)}[/]: nothing to compare.")
    else:
        stdout.print("[green]No drift.[/]")


def _drift_row(item: FeatureDrift, *, label: str | None = None) -> list[str]:
    stats, limits = item.statistics, item.thresholds
    if item.kind == "numeric":
        test, statistic, limit = "KS", stats.get("ks_statistic"), limits.get("ks_critical_value")
    else:
        test, statistic, limit = "χ² (Cramér's V)", stats.get("cramers_v"), limits.get("chi2_min_effect")
    missing = stats.get("missing_rate_change")
    verdict = _VERDICTS.get(item.status, item.status)
    if item.drift and item.reasons:
        verdict += f" [red]({', '.join(item.reasons)})[/]"
    return [
        escape(label or item.feature),
        item.kind,
        str(item.count),
        _num(stats.get("psi")),
        _num(limits.get("psi_threshold")),
        test if item.status in ("ok", "drift") else "",
        _num(statistic),
        _num(limit),
        _num(missing, signed=True),
        verdict,
    ]


def _num(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3g}"


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    ref: RefArg,
    file: Annotated[Path, typer.Option("--file", "-f", help="Labels: CSV, Parquet or JSON Lines.")],
    key: Annotated[
        str,
        typer.Option(help="Column with the key: a logged input column, or request_id (with an optional row column)."),
    ],
    label: Annotated[str, typer.Option(help="Column with the true label or value.")] = "label",
    window: Annotated[str, typer.Option(help="Window of prediction times for the live metrics shown.")] = "30d",
    as_json: JsonFlag = False,
) -> None:
    """Record ground truth from a labels file, then show the live metrics it gives."""
    from modelport.api.monitoring import live_report, record_feedback

    settings = settings_of(ctx)
    receipt = record_feedback(settings, ref, file, key=key, label=label)
    report = live_report(settings, ref, window=window)
    if as_json:
        print_json({"feedback": receipt.to_dict(), "metrics": report.to_dict()})
        return
    stdout.print(f"Stored {receipt.accepted} labels for [bold]{escape(receipt.model)}[/].")
    _print_metrics(report, window)


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name (every version), name:3, name@alias or a bundle path")],
    window: Annotated[str, typer.Option(help="Window of prediction times: 24h, 7d, 30d...")] = "30d",
    as_json: JsonFlag = False,
) -> None:
    """Live accuracy, precision, recall, F1, ROC AUC (or MAE, RMSE, R²) per version, from feedback."""
    from modelport.api.monitoring import live_report

    report = live_report(settings_of(ctx), ref, window=window)
    if as_json:
        print_json(report.to_dict())
        return
    _print_metrics(report, window)


def _print_metrics(report: PerformanceReport, window: str) -> None:
    if report.labelled == 0 or report.task is None:
        stdout.print(
            f"No labelled prediction of {escape(report.model)} in the last {escape(window)}. "
            "Send ground truth with [bold]modelport monitor feedback[/] or POST /v2/models/<name>/feedback."
        )
        return
    names = CLASSIFICATION if report.task == "classification" else REGRESSION
    title = f"Live {report.task} metrics of {escape(report.model)} (predictions of the last {escape(window)})"
    table(
        title,
        ["version", "labelled", *names],
        ([p.version, p.n, *(_num(p.metrics.get(n)) or "n/a" for n in names)] for p in report.overall),
    )
    if report.positive_label is not None and report.task == "classification":
        stdout.print(f"[dim]Binary metrics for the positive class {escape(report.positive_label)}.[/]")


@app.command("check")
def check(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Alert rules (YAML); default MODELPORT_HOME/alerts.yaml.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate the alert rules once, post changes to the webhook; exit 1 while an alert fires."""
    from modelport.api.monitoring import run_checks

    result = run_checks(settings_of(ctx), config)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_checks(result)
    if result.firing:
        raise typer.Exit(DRIFT_EXIT)


def _print_checks(result: CheckResult) -> None:
    if not result.checks:
        stdout.print("No limit was evaluated: the configuration has no rule, or see the warnings above.")
        return
    states = {True: "[bold red]FIRING[/]", False: "[green]ok[/]", None: "[yellow]no verdict[/]"}
    table(
        "Alerts",
        ["model", "alert", "value", "threshold", "state", "detail"],
        (
            [escape(c.model), c.alert, _num(c.value), _num(c.threshold), states[c.firing], escape(c.detail)]
            for c in result.checks
        ),
    )
    for event in result.events:
        sent = {True: "sent", False: "[red]webhook failed, will retry[/]", None: "no webhook"}[event.delivered]
        colour = "red" if event.status == "firing" else "green"
        stdout.print(f"[{colour}]{event.status}[/] {escape(event.message)} ({sent})")


def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8090,
    host: Annotated[str, typer.Option(help="Bind address (loopback unless --public).")] = "127.0.0.1",
    public: Annotated[
        bool, typer.Option("--public", help="Allow a non-loopback address: the dashboard has no authentication.")
    ] = False,
) -> None:
    """Serve the monitoring dashboard on its own (the server also mounts it at /dashboard)."""
    from modelport.api.monitoring import check_dashboard_bind, dashboard_url, serve_dashboard

    check_dashboard_bind(host, public=public)
    stdout.print(f"Dashboard at [bold]{dashboard_url(host, port)}[/] (Ctrl+C to stop)", highlight=False)
    serve_dashboard(settings_of(ctx), host=host, port=port, public=public)

"""Human-readable tables on the terminal (rich)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from converters.summary import WeightsSummary


def _g(value: float) -> str:
    return f"{value:.4g}"


def _layer_table(title: str, rows: Any) -> Table:
    table = Table(title=title)
    sourced = any("source" in row for row in rows)
    for column in ("layer", "type", "output (h x w x c)", "parameters", *(["from the file"] if sourced else [])):
        table.add_column(column)
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        cells = [row["layer"], row["type"], " x ".join(map(str, row["output"])), params]
        table.add_row(*cells, *([row.get("source", "")] if sourced else []))
    return table


def print_architecture(arch: Any, *, console: Console | None = None) -> None:
    """Print ``arch show``: the input line and one row per layer with its output shape."""
    from converters.arch import parameter_count, trace

    console = console or Console(width=None if sys.stdout.isatty() else 160)
    shapes = trace(arch)
    rows = [
        {"layer": getattr(layer, "name", "") or layer.type, "type": layer.type, "output": list(shapes[i + 1]),
         "params": {k: v for k, v in layer.__dict__.items() if k != "name"}}
        for i, layer in enumerate(arch.layers)
    ]
    console.print(f"{arch.name}: {arch.description}")
    console.print(f"input: {arch.input.describe()}; predict fits pictures by {arch.input.fit}")
    console.print(_layer_table(arch.name, rows))
    console.print(f"parameters: {parameter_count(arch):,}; classes: {arch.num_classes}")


def print_summary(summary: WeightsSummary, *, console: Console | None = None) -> None:
    """Print the ``inspect`` tables (architecture, then tensors) and the checksum lines."""
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    kind = f" (read from a {summary.source_format} file)" if summary.source_format else ""
    console.print(_layer_table(f"architecture {summary.architecture}{kind}", summary.shapes))
    table = Table(title=f"{summary.path}" if summary.path else "weights")
    for column in ("tensor", "shape", "groups", "dtype", "params", "min", "max", "mean", "std", "NaN", "Inf"):
        table.add_column(column, justify="left" if column in ("tensor", "shape", "dtype") else "right")
    for layer in summary.layers:
        labelled: tuple[tuple[str, Any], ...] = (("kernel", layer.kernel), ("bias", layer.bias))
        if layer.kind == "batchnorm":
            labelled = (
                ("gamma", layer.kernel), ("beta", layer.bias), ("mean", layer.extra[0]), ("variance", layer.extra[1])
            )
        for label, stats in labelled:
            table.add_row(
                f"{layer.name}/{label}", "x".join(map(str, stats.shape)),
                str(layer.groups) if label == "kernel" else "", stats.dtype,
                f"{layer.parameters:,}" if label in ("kernel", "gamma") else "",
                _g(stats.min), _g(stats.max), _g(stats.mean), _g(stats.std), str(stats.nan), str(stats.inf),
            )
    console.print(table)
    size = "full size" if summary.full_size else "not full size"
    console.print(f"parameters: {summary.parameters:,} ({size}), classes: {summary.num_classes}")
    if summary.published_sha256:
        verdict = "matches" if summary.matches_published else "does NOT match"
        verdict += " the published checksum"
        console.print(f"sha256: {summary.sha256} ({verdict} {summary.published_sha256[:12]}...)")
    else:
        console.print(f"sha256: {summary.sha256}")
    if summary.nonfinite:
        console.print(f"[red]{summary.nonfinite} NaN/Inf values: these weights cannot be exported[/]")


def _cells(row: Any) -> list[str]:
    m = row.metrics
    figures = ["-"] * 6
    if m is not None and m.nonfinite == 0 and m.max_abs == m.max_abs:
        figures = [f"{m.max_abs:.3g}", f"{m.max_rel:.3g}", f"{m.mean_abs:.3g}", f"{m.cosine:.6f}"]
        figures += [f"{m.top1:.2f}", f"{m.top5:.2f}"]
    note = "; ".join(row.failures) or row.reason
    return [row.status, row.artifact, row.precision, row.runtime, row.device, *figures, note]


VERIFY_COLUMNS = (
    "status", "artifact", "precision", "runtime", "device", "max abs", "max rel (min tol)", "mean abs", "cosine",
    "top-1", "top-5", "note",
)


def print_verify(report: Any, *, console: Console | None = None) -> None:
    """Print the parity matrix, the weight checks and the verdict."""
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"logits vs float64 oracle, {report.inputs.images.shape[0]} images")
    for column in VERIFY_COLUMNS:
        table.add_column(column, overflow="fold")
    styles = {"passed": "green", "failed": "bold red", "not verified": "yellow"}
    for row in report.rows:
        table.add_row(*_cells(row), style=styles[row.status])
    console.print(table)
    for check in report.weights:
        detail = f": {', '.join(check.mismatches)}" if check.mismatches else ""
        if check.status == "fold-exact":
            detail = (
                f" (BatchNormalization folded into {', '.join(check.folded)}: "
                "within 2 float32 ulps of the float64 fold)"
            )
        console.print(f"weights {check.status}: {check.artifact}{detail}", highlight=False)
    for check in report.structures:
        content = ", ".join(f"{k} {v}" for k, v in check.content.to_json().items())
        verdict = "matches the graph its architecture implies" if check.status == "matches" else "DIFFERS"
        console.print(f"structure {check.status}: {check.artifact} ({content}): {verdict}", highlight=False)
    for entry in report.image_top5:
        best = entry["predictions"][0]
        console.print(
            f"oracle top-1 for {entry['source']}: {best['label']} ({best['index']}, p={best['probability']:.3f})",
            highlight=False,
        )
    for problem in report.problems:
        console.print(f"[bold red]FAIL[/] {problem}", highlight=False)
    for command in report.diagnose_commands:
        console.print(f"where and why: {command}", highlight=False, soft_wrap=True)
    verified = sum(row.status != "not verified" for row in report.rows)
    verdict = "PASSED" if report.exit_code == 0 else "FAILED"
    console.print(
        f"{verdict}: {verified} of {len(report.rows)} rows ran, {len(report.problems)} problems, "
        f"{len(report.rows) - verified} not verified",
        highlight=False,
    )


def verify_markdown(report: Any) -> str:
    """The report as GitHub-flavoured markdown for a CI job summary."""
    verdict = "✅ passed" if report.exit_code == 0 else "❌ failed"
    lines = [
        f"## alexnet-export verify: {verdict}",
        "",
        f"Source sha256 `{report.source.get('sha256', '')}`; inputs: {report.inputs.images.shape[0]} images "
        f"(sha256 `{report.inputs.sha256[:16]}…`).",
        "",
        "| " + " | ".join(VERIFY_COLUMNS) + " |",
        "|" + "---|" * len(VERIFY_COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |" for row in report.rows]
    lines += ["", "| weights | artifact | mismatches |", "|---|---|---|"]
    lines += [f"| {c.status} | {c.artifact} | {', '.join(c.mismatches)} |" for c in report.weights]
    lines += ["", "| structure | artifact | content | differences |", "|---|---|---|---|"]
    for c in report.structures:
        content = ", ".join(f"{k} {v}" for k, v in c.content.to_json().items())
        found = "; ".join((*c.differences, *c.manifest)).replace("|", "\\|")
        lines.append(f"| {c.status} | {c.artifact} | {content} | {found} |")
    if report.problems:
        lines += ["", "### Problems", "", *[f"- {problem}" for problem in report.problems]]
    return "\n".join(lines) + "\n"


def print_diagnosis(found: Any, *, console: Console | None = None) -> None:
    """The per-layer table of ``diagnose`` and its one-sentence finding."""
    console = console or Console()
    table = Table(title=f"{found.artifact} ({found.format}, {found.precision}) vs float64 oracle, layer by layer")
    for column in ("", "layer", "op", "shape", "layout", "max rel", "cosine", "note"):
        table.add_column(column)
    for index, row in enumerate(found.rows):
        mark = "ok" if row.passed else ("FIRST" if index == found.first else "differs")
        table.add_row(
            mark, row.label, row.probe.op if row.probe else "-", "x".join(map(str, row.shape)) if row.shape else "-",
            row.layout, _fmt(row.max_rel), _fmt(row.cosine, ".6f"), row.note,
        )
    console.print(table)
    console.print(found.sentence(), highlight=False, soft_wrap=True)


def _fmt(value: float, spec: str = ".3g") -> str:
    return "-" if value != value or value in (float("inf"), float("-inf")) else format(value, spec)

"""The ``alexnet-export`` command line: each command parses, calls one library function, prints.

Heavy imports (numpy, TensorFlow, ONNX) happen inside the commands, so ``--help`` and ``--version``
answer fast. Every :class:`converters.errors.InputError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from alexnet_export import __version__

app = typer.Typer(
    name="alexnet-export",
    help="BVLC AlexNet weights (bvlc_alexnet.npy) to SavedModel, TFLite and ONNX, with proof of parity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handles_errors(command: F) -> F:
    """Turn the toolkit's input errors and OS errors into one line and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from converters.errors import InputError

        try:
            return command(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        except KeyboardInterrupt:
            fail("interrupted; nothing was written", code=130)

    return wrapper  # type: ignore[return-value]


def import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter silenced.

    TF 2.21 writes INFO lines (oneDNN, CUDA probing) to fd 2 before absl logging is initialised,
    whatever ``TF_CPP_MIN_LOG_LEVEL`` says; a command's stderr is for its own progress and errors.
    An import failure still raises after stderr is restored.
    """
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ ERROR lines too (cuInit on GPU-less hosts)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tensorflow.get_logger().setLevel("ERROR")  # deprecation notices from tf2onnx's use of TF1 APIs


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alexnet-export {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """BVLC AlexNet weights to SavedModel, TFLite and ONNX, with proof of logits parity."""


WeightsArg = Annotated[
    Path, typer.Argument(help="Weight file: bvlc_alexnet.npy (or its layout) or HDF5 from npy2h5.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output if it exists.")]
AllowCastOpt = Annotated[
    bool, typer.Option("--allow-cast", help="Convert float64/float16 weights to float32 instead of refusing.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]


@app.command()
@handles_errors
def inspect(
    weights: WeightsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    allow_cast: AllowCastOpt = False,
) -> None:
    """Print per-layer shapes, groups, parameter counts and statistics, and the file's sha256.

    Exits 1 when any layer holds NaN or Inf values (they are counted, not refused, here).
    """
    from converters import read_weights
    from converters.summary import summarize

    summary = summarize(read_weights(weights, allow_cast=allow_cast, check_finite=False))
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        from alexnet_export.report import print_summary

        print_summary(summary)
    if summary.nonfinite:
        raise typer.Exit(1)


@app.command()
@handles_errors
def synthesize(
    out: Annotated[Path, typer.Argument(help="The .npy file to write.")],
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same bytes anywhere.")] = 0,
    num_classes: Annotated[int, typer.Option(help="Width of fc8.")] = 1000,
    width_divisor: Annotated[int, typer.Option(help="Divide every hidden width (1 = full size).")] = 1,
    force: ForceOpt = False,
) -> None:
    """Write seeded synthetic weights in the exact bvlc_alexnet.npy layout."""
    from converters import write_npy
    from converters.atomic import check_output
    from converters.synthetic import synthesize as make

    check_output(out, force=force)
    weights = make(seed=seed, num_classes=num_classes, width_divisor=width_divisor)
    write_npy(weights, out, force=force)
    typer.echo(f"wrote {out}: {weights.parameter_count:,} parameters, {weights.num_classes} classes, seed {seed}")


@app.command()
@handles_errors
def npy2savedmodel(
    weights: WeightsArg,
    out_dir: Annotated[Path, typer.Argument(help="The SavedModel folder to create.")],
    groups: Annotated[str, typer.Option(help="Grouped layers: native, split or dense.")] = "native",
    profile: Annotated[
        str, typer.Option(help="caffe (faithful) or guerzhoy (conv1 SAME, as myalexnet_forward).")
    ] = "caffe",
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights to a SavedModel (signature serving_default: images -> logits, probabilities)."""
    from alexnet_export.artifacts import check_output
    from alexnet_export.progress import Progress
    from converters import read_weights
    from converters.spec import GROUP_MODES, PROFILES, check_choice

    check_choice("--groups", groups, GROUP_MODES)
    check_choice("--profile", profile, tuple(PROFILES))
    check_output(out_dir, force=force)
    progress = Progress(quiet=quiet)
    with progress.step(f"reading {weights}"):
        loaded = read_weights(weights, allow_cast=allow_cast)
    with progress.step("loading TensorFlow"):
        import_tensorflow()
    from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel

    options = SavedModelOptions(groups=groups, profile=profile)
    export_savedmodel(loaded, out_dir, options=options, force=force, progress=progress)
    typer.echo(f"wrote {out_dir} (SavedModel, groups={options.groups}, profile={options.profile})")


@app.command()
@handles_errors
def npy2onnx(
    weights: WeightsArg,
    out: Annotated[Path, typer.Argument(help="The .onnx file to write (manifest beside it).")],
    opset: Annotated[int, typer.Option(help="ONNX opset, 13 to 26.")] = 17,
    layout: Annotated[
        str, typer.Option(help="Input layout: nhwc ([batch,227,227,3], the contract) or nchw (no Transpose).")
    ] = "nhwc",
    groups: Annotated[str, typer.Option(help="Grouped layers: native (Conv group=2), split or dense.")] = "native",
    profile: Annotated[str, typer.Option(help="caffe (faithful) or guerzhoy (conv1 SAME).")] = "caffe",
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights to ONNX: tf2onnx converts the graph structure, the weights become initializers."""
    from alexnet_export.artifacts import check_output, sidecar_manifest_path
    from alexnet_export.exporters.onnx import OnnxOptions, export_onnx
    from alexnet_export.progress import Progress
    from converters import read_weights

    options = OnnxOptions(opset=opset, layout=layout, groups=groups, profile=profile)
    options.check()
    check_output(out, force=force)
    check_output(sidecar_manifest_path(out), force=force)
    progress = Progress(quiet=quiet)
    with progress.step(f"reading {weights}"):
        loaded = read_weights(weights, allow_cast=allow_cast)
    with progress.step("loading TensorFlow and tf2onnx"):
        import_tensorflow()
    summary = export_onnx(loaded, out, options=options, force=force, progress=progress)
    counts = ", ".join(f"{op} {count}" for op, count in summary.nodes.items())
    typer.echo(
        f"wrote {out} (ONNX opset {options.opset}, IR {summary.ir_version}, layout={options.layout}, "
        f"groups={options.groups}, profile={options.profile})"
    )
    typer.echo(f"nodes: {sum(summary.nodes.values())} ({counts})")


@app.command()
@handles_errors
def npy2h5(
    weights: WeightsArg,
    out: Annotated[Path, typer.Argument(help="The .h5 file to write.")],
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
) -> None:
    """Convert weights to self-describing HDF5 (no pickle; a sha256 per tensor)."""
    from converters import read_weights
    from converters.atomic import check_output
    from converters.hdf5 import write_h5

    check_output(out, force=force)
    loaded = read_weights(weights, allow_cast=allow_cast)
    write_h5(loaded, out, force=force)
    typer.echo(f"wrote {out} (HDF5, {loaded.parameter_count:,} parameters)")


@app.command()
@handles_errors
def h52npy(
    weights: Annotated[Path, typer.Argument(help="HDF5 weights written by npy2h5.")],
    out: Annotated[Path, typer.Argument(help="The .npy file to write, in the legacy bvlc layout.")],
    force: ForceOpt = False,
) -> None:
    """Convert HDF5 weights back to the legacy bvlc_alexnet.npy layout (checksums verified first)."""
    from converters import write_npy
    from converters.atomic import check_output
    from converters.hdf5 import read_h5

    check_output(out, force=force)
    loaded = read_h5(weights)
    write_npy(loaded, out, force=force)
    typer.echo(f"wrote {out} (bvlc .npy layout, {loaded.parameter_count:,} parameters)")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: SIGTERM cleans up like Ctrl-C."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(app())

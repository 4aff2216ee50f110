"""The ``alexnet-export`` command line: each command parses, calls one library function, prints.

Heavy imports (numpy, TensorFlow, ONNX) happen inside the commands, so ``--help`` and ``--version``
answer fast. Every :class:`converters.errors.InputError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from alexnet_export import __version__
from alexnet_export.quiet import import_tensorflow, import_tensorflow_in_background

app = typer.Typer(
    name="alexnet-export",
    help="BVLC AlexNet weights (bvlc_alexnet.npy) to SavedModel, TFLite and ONNX, with proof of parity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def one_line(message: str) -> str:
    """``message`` with every unprintable character (newlines, tabs, bytes read from a file) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr, on one line whatever the message holds, and exit with ``code``."""
    typer.echo(f"error: {one_line(message)}", err=True)
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
        except KeyboardInterrupt as exc:
            from converters.atomic import InterruptedAfterWrite

            fail(str(exc) if isinstance(exc, InterruptedAfterWrite) else "interrupted; nothing was written", code=130)
        except MemoryError:
            fail(f"{command.__name__}: ran out of memory (an input larger than this machine can hold?)")
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # anything unforeseen: one line naming the command, the traceback behind --debug
            if DEBUG["on"]:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(
                f"{command.__name__}: unexpected {type(exc).__name__}: {first[:300]}; please report it "
                "(alexnet-export --debug ... prints the traceback)"
            )

    return wrapper  # type: ignore[return-value]


DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alexnet-export {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    """BVLC AlexNet weights to SavedModel, TFLite and ONNX, with proof of logits parity."""
    DEBUG["on"] = debug


WeightsArg = Annotated[
    Path,
    typer.Argument(
        help="Weights: bvlc_alexnet.npy (or its layout), HDF5 from npy2h5, a Keras .weights.h5, .keras or full-model "
        ".h5, or a TensorFlow checkpoint (prefix or folder).",
    ),
]
ArchOpt = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Architecture: a preset (see `alexnet-export arch list`) or a JSON file. Default: bvlc-alexnet "
        "(HDF5 from npy2h5 and artifacts record their own).",
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option(help="Old spelling of --arch: caffe (= bvlc-alexnet) or guerzhoy.", hidden=False)
]
LabelsOpt = Annotated[Path | None, typer.Option(help="Class names, one per line in output order.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output if it exists.")]
AllowCastOpt = Annotated[
    bool, typer.Option("--allow-cast", help="Convert float64/float16 weights to float32 instead of refusing.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
EmbedOpt = Annotated[
    bool,
    typer.Option(
        "--embed-preprocessing",
        help="Input uint8 RGB [batch,H,W,3]: resize to 227, RGB->BGR and mean subtraction happen in-graph.",
    ),
]


@app.command()
@handles_errors
def inspect(
    weights: WeightsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    allow_cast: AllowCastOpt = False,
    arch: ArchOpt = None,
) -> None:
    """Print the architecture, per-layer shapes, groups, parameter counts and statistics, and the file's sha256.

    Exits 1 when any layer holds NaN or Inf values (they are counted, not refused, here).
    """
    from alexnet_export.sources import read_weights
    from converters.arch import load_arch
    from converters.summary import summarize

    chosen = load_arch(arch) if arch is not None else None
    summary = summarize(read_weights(weights, allow_cast=allow_cast, check_finite=False, arch=chosen))
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
    num_classes: Annotated[
        int | None, typer.Option(help="Width of the logits layer (default: the architecture's).")
    ] = None,
    width_divisor: Annotated[int, typer.Option(help="Divide every hidden width (1 = full size).")] = 1,
    arch: ArchOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write seeded synthetic weights for an architecture, in the exact bvlc_alexnet.npy layout (a dict of layers)."""
    from converters import write_npy
    from converters.arch import load_arch
    from converters.atomic import check_output
    from converters.synthetic import synthesize as make

    chosen = load_arch(arch)
    check_output(out, force=force)
    weights = make(seed=seed, num_classes=num_classes, width_divisor=width_divisor, arch=chosen)
    write_npy(weights, out, force=force)
    typer.echo(
        f"wrote {out}: {chosen.name}, {weights.parameter_count:,} parameters, {weights.num_classes} classes, "
        f"seed {seed}"
    )


def _embedded(options: Any) -> str:
    return ", input uint8 RGB with embedded preprocessing" if options.embed_preprocessing else ""


def _architecture(arch: str | None, profile: str | None = None) -> Any:
    """``--arch`` (with ``--profile`` as its old alias) as an architecture, or ``None`` when neither is given."""
    from converters.arch import resolve

    return None if arch is None and profile is None else resolve(arch, profile)


def _prepare(
    weights: Path,
    outputs: list[Path],
    *,
    force: bool,
    allow_cast: bool,
    quiet: bool,
    arch: Any = None,
    tensorflow: bool = True,
) -> tuple[Any, Any]:
    """The shared start of every export command: refuse existing outputs, read the weights, import TF.

    ``tensorflow=False`` leaves TensorFlow to be imported where it is needed (a placed TFLite export
    from cached small conversions does not need it).

    Returns:
        The weights and the progress reporter.

    """
    from alexnet_export.progress import Progress
    from alexnet_export.sources import read_weights
    from converters.atomic import check_output

    for out in outputs:
        check_output(out, force=force)
    progress = Progress(quiet=quiet)
    with progress.step(f"reading {weights}"):
        loaded = read_weights(weights, allow_cast=allow_cast, arch=arch)
    if tensorflow:
        with progress.step("loading TensorFlow"):
            import_tensorflow()
    return loaded, progress


@app.command()
@handles_errors
def npy2savedmodel(
    weights: WeightsArg,
    out_dir: Annotated[Path, typer.Argument(help="The SavedModel folder to create.")],
    groups: Annotated[str, typer.Option(help="Grouped layers: native, split or dense.")] = "native",
    arch: ArchOpt = None,
    profile: ProfileOpt = None,
    embed_preprocessing: EmbedOpt = False,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights to a SavedModel (signature serving_default: images -> logits, probabilities)."""
    from converters.arch import GROUP_MODES, check_choice

    check_choice("--groups", groups, GROUP_MODES)
    chosen = _architecture(arch, profile)
    loaded, progress = _prepare(weights, [out_dir], force=force, allow_cast=allow_cast, quiet=quiet, arch=chosen)
    from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel

    options = SavedModelOptions(groups=groups, embed_preprocessing=embed_preprocessing)
    export_savedmodel(loaded, out_dir, options=options, force=force, progress=progress)
    typer.echo(f"wrote {out_dir} (SavedModel, {loaded.arch.name}, groups={options.groups}{_embedded(options)})")


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
    arch: ArchOpt = None,
    profile: ProfileOpt = None,
    embed_preprocessing: EmbedOpt = False,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights to ONNX: tf2onnx converts the graph structure, the weights become initializers."""
    from alexnet_export.artifacts import sidecar_manifest_path
    from alexnet_export.exporters.onnx import OnnxOptions, export_onnx

    options = OnnxOptions(opset=opset, layout=layout, groups=groups, embed_preprocessing=embed_preprocessing)
    options.check()
    chosen = _architecture(arch, profile)
    outputs = [out, sidecar_manifest_path(out)]
    loaded, progress = _prepare(  # TensorFlow only if tf2onnx must convert the structure (not cached)
        weights, outputs, force=force, allow_cast=allow_cast, quiet=quiet, arch=chosen, tensorflow=False
    )
    summary = export_onnx(loaded, out, options=options, force=force, progress=progress)
    counts = ", ".join(f"{op} {count}" for op, count in summary.nodes.items())
    typer.echo(
        f"wrote {out} (ONNX opset {options.opset}, IR {summary.ir_version}, {loaded.arch.name}, "
        f"layout={options.layout}, groups={options.groups}{_embedded(options)})"
    )
    typer.echo(f"nodes: {sum(summary.nodes.values())} ({counts})")


@app.command()
@handles_errors
def npy2tflite(
    weights: WeightsArg,
    out: Annotated[Path, typer.Argument(help="The .tflite file to write (manifest beside it).")],
    precision: Annotated[str, typer.Option(help="fp32, fp16, int8-dynamic or int8 (full integer).")] = "fp32",
    calibration: Annotated[
        Path | None, typer.Option(help="Folder of images to calibrate int8 (default: seeded synthetic images).")
    ] = None,
    groups: Annotated[str, typer.Option(help="Grouped layers: native, split or dense.")] = "native",
    arch: ArchOpt = None,
    profile: ProfileOpt = None,
    check_images: Annotated[
        int, typer.Option("--check-images", help="Synthetic images for the accuracy profile (0: skip it).")
    ] = 8,
    embed_preprocessing: EmbedOpt = False,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights to TFLite, then print its accuracy against the float64 oracle (run with LiteRT).

    Exits 1 when the accuracy misses the precision's declared tolerance (the file is still written).
    """
    from alexnet_export.artifacts import sidecar_manifest_path
    from alexnet_export.exporters.tflite import PLACED_PRECISIONS, TFLiteOptions, export_tflite

    options = TFLiteOptions(
        precision=precision, calibration=None if calibration is None else str(calibration), groups=groups,
        embed_preprocessing=embed_preprocessing,
    )
    options.check()
    chosen = _architecture(arch, profile)
    outputs = [out, sidecar_manifest_path(out)]
    loaded, progress = _prepare(
        weights, outputs, force=force, allow_cast=allow_cast, quiet=quiet, arch=chosen,
        tensorflow=options.precision not in PLACED_PRECISIONS,
    )
    summary = export_tflite(loaded, out, options=options, force=force, progress=progress)
    typer.echo(
        f"wrote {out} (TFLite {options.precision}, {summary.size / 2**20:.1f} MiB, {loaded.arch.name}, "
        f"groups={options.groups}"
        f"{_embedded(options)})"
    )
    if summary.calibration:
        typer.echo(f"calibration: {summary.calibration}")
    if check_images > 0:
        from alexnet_export.verify import accuracy_profile

        with progress.step(f"accuracy profile on {check_images} synthetic images"):
            result = accuracy_profile(out, loaded, precision=options.precision, count=check_images)
        typer.echo(result.line())
        if result.failures:
            raise typer.Exit(1)


@app.command()
@handles_errors
def npy2h5(
    weights: WeightsArg,
    out: Annotated[Path, typer.Argument(help="The .h5 file to write.")],
    arch: ArchOpt = None,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
) -> None:
    """Convert weights to self-describing HDF5 (no pickle; a sha256 per tensor; the architecture recorded)."""
    from alexnet_export.sources import read_weights
    from converters.hdf5 import write_h5

    read = partial(read_weights, allow_cast=allow_cast, arch=_architecture(arch))
    _convert_weights(weights, out, read, write_h5, "HDF5", force=force)


@app.command()
@handles_errors
def h52npy(
    weights: Annotated[Path, typer.Argument(help="HDF5 weights written by npy2h5.")],
    out: Annotated[Path, typer.Argument(help="The .npy file to write, in the legacy bvlc layout.")],
    arch: ArchOpt = None,
    force: ForceOpt = False,
) -> None:
    """Convert HDF5 weights back to the legacy bvlc_alexnet.npy layout (checksums verified first)."""
    from converters import write_npy
    from converters.hdf5 import read_h5

    read = partial(read_h5, arch=_architecture(arch))
    _convert_weights(weights, out, read, write_npy, "bvlc .npy layout", force=force)


def _convert_weights(
    source: Path, out: Path, read: Callable[[Path], Any], write: Callable[..., None], what: str, *, force: bool
) -> None:
    """The weight-file conversions: refuse an existing ``out`` first, read, write atomically, say what was written."""
    from converters.atomic import check_output

    check_output(out, force=force)
    loaded = read(source)
    write(loaded, out, force=force)
    typer.echo(f"wrote {out} ({what}, {loaded.parameter_count:,} parameters)")


@app.command()
@handles_errors
def extract(
    artifact: Annotated[Path, typer.Argument(help="SavedModel folder, .onnx or fp32 .tflite written by this toolkit.")],
    out: Annotated[Path, typer.Argument(help="OUT.npy (bvlc layout), OUT.h5 (checksummed) or OUT.weights.h5 (Keras).")],
    arch: ArchOpt = None,
    force: ForceOpt = False,
) -> None:
    """Read the weights back out of an artifact into the canonical layout (bit-exact for fp32).

    The architecture is the artifact's own. Where BatchNormalization was folded into a layer, the
    weights are those of the folded architecture (NAME-folded), and the folded layers are named.
    """
    from alexnet_export.runtimes import detect_format

    _check_weights_output(out, force=force)
    chosen = _architecture(arch)
    if detect_format(artifact) == "savedmodel":  # ONNX and TFLite are read without TensorFlow
        import_tensorflow()
    from alexnet_export.extract import extract as read_artifact

    weights = read_artifact(artifact, arch=chosen)
    _write_weights(weights, out, force=force)
    typer.echo(f"wrote {out} ({weights.arch.name}, {weights.parameter_count:,} parameters from {artifact})")
    if weights.arch.folded:
        folds = ", ".join(f"{bn} into {into}" for bn, into in weights.arch.folded)
        typer.echo(f"folded BatchNormalization: {folds}; read these weights with --arch {weights.arch.name}")


WEIGHT_OUTPUTS = ".npy (legacy bvlc layout), .h5 (self-describing HDF5) or .weights.h5 (Keras 3)"


def _check_weights_output(out: Path, *, force: bool) -> None:
    from converters.atomic import check_output
    from converters.errors import InputError

    if not out.name.lower().endswith((".npy", ".h5", ".hdf5")):
        raise InputError(f"{out}: expected an output ending in {WEIGHT_OUTPUTS}, received {out.suffix or 'no suffix'}")
    check_output(out, force=force)


def _write_weights(weights: Any, out: Path, *, force: bool) -> None:
    """Write ``weights`` in the format ``out``'s name asks for (see :data:`WEIGHT_OUTPUTS`)."""
    name = out.name.lower()
    if name.endswith(".npy"):
        from converters import write_npy

        write_npy(weights, out, force=force)
    elif name.endswith(".weights.h5"):
        import_tensorflow()
        from alexnet_export.keras_model import write_keras_weights

        write_keras_weights(weights, out, force=force)
    else:
        from converters.hdf5 import write_h5

        write_h5(weights, out, force=force)


@app.command()
@handles_errors
def npy2keras(
    weights: WeightsArg,
    out: Annotated[Path, typer.Argument(help="The Keras 3 weights file to write; its name must end in .weights.h5.")],
    arch: ArchOpt = None,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
) -> None:
    """Write weights as a Keras 3 .weights.h5 that the model from alexnet_export.keras_model loads.

    In Python: ``model = build_model(weights, load=False); model.load_weights(OUT)``.
    """
    from alexnet_export.sources import read_weights
    from converters.hdf5 import check_keras_name

    check_keras_name(out)
    read = partial(read_weights, allow_cast=allow_cast, arch=_architecture(arch))
    what = "Keras 3 weights, layers named as the architecture"
    _convert_weights(weights, out, read, _write_weights, what, force=force)


@app.command()
@handles_errors
def predict(
    model: Annotated[
        Path, typer.Argument(help="Weights (.npy, .h5, .weights.h5) or an artifact (SavedModel dir, .onnx, .tflite).")
    ],
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
    top: Annotated[int, typer.Option(help="How many classes to list per image.")] = 5,
    fit: Annotated[
        str | None,
        typer.Option(help="crop (shorter side 256, centre crop) or resize (straight to the input size); "
                     "default: the architecture's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: per image its path and predictions.")] = False,
    arch: ArchOpt = None,
    labels: LabelsOpt = None,
    allow_cast: AllowCastOpt = False,
) -> None:
    """The top classes of each image, preprocessed as the model's architecture says, from weights or any artifact."""
    from alexnet_export.predict import check_options
    from alexnet_export.predict import predict as run_predict

    check_options(top=top, mode=fit)
    chosen = _architecture(arch)
    import_tensorflow()

    predictions, what = run_predict(
        model, images, top=top, mode=fit, allow_cast=allow_cast, arch=chosen, labels=labels
    )
    if as_json:
        typer.echo(json.dumps([p.to_json() for p in predictions], indent=2))
        return
    typer.echo(f"model: {what}")
    for prediction in predictions:
        typer.echo(prediction.path)
        for rank, entry in enumerate(prediction.top, 1):
            typer.echo(f"  {rank:>2}. {entry['probability']:8.4f}  {entry['index']:>4}  {entry['label']}")


@app.command()
@handles_errors
def download(
    dest: Annotated[Path, typer.Argument(help="Where to put the weights.")] = Path("bvlc_alexnet.npy"),
    url: Annotated[str | None, typer.Option(help="Where to fetch them (default: the official location).")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 (default: the published pin of bvlc_alexnet.npy).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds any connect or read may wait.")] = 30.0,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fetch bvlc_alexnet.npy with resume and a timeout; keep it only if its sha256 matches.

    A DEST already there with the expected sha256 is kept and nothing is fetched (a cached copy);
    one with another digest needs --force.

    Exit 1 when the transfer was cut or timed out (DEST.part is kept: run again to resume);
    exit 2 on an HTTP error, a checksum mismatch (nothing is left) or a bad option.
    """
    from alexnet_export.download import DEFAULT_URL, DownloadError, check_sha256
    from alexnet_export.download import download as fetch
    from converters.arch import PUBLISHED_SHA256

    pin = check_sha256(sha256) if sha256 is not None else PUBLISHED_SHA256
    source = url or DEFAULT_URL
    show = not quiet and sys.stderr.isatty()
    try:
        if show:
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()) as bar:
                task = bar.add_task(f"downloading {dest.name}", total=None)
                result = fetch(
                    dest, url=source, sha256=pin, timeout=timeout, force=force,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            result = fetch(dest, url=source, sha256=pin, timeout=timeout, force=force)
    except DownloadError as exc:
        fail(str(exc), code=1)
    which = "the published pin" if pin == PUBLISHED_SHA256 else "--sha256"
    if result.already_present:
        typer.echo(f"kept {dest}: already there ({result.size:,} bytes; sha256 {result.sha256} matches {which})")
        return
    resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
    typer.echo(f"wrote {dest} ({result.size:,} bytes{resumed}; sha256 {result.sha256} matches {which})")


DeviceOpt = Annotated[str, typer.Option(help="Rows to run: cpu, gpu or all.")]
ImagesOpt = Annotated[Path | None, typer.Option(help="A folder of extra images (Caffe preprocessing).")]
BatchOpt = Annotated[int, typer.Option(help="Seeded synthetic images to run.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the synthetic images.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON here.")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Write a markdown summary here (CI job summary).")]
Tf32Opt = Annotated[bool, typer.Option("--tf32", help="Allow TF32 on GPUs (off by default for parity).")]
RequireGpuOpt = Annotated[bool, typer.Option("--require-gpu", help="Fail when no GPU row can run.")]


@app.command()
@handles_errors
def verify(
    artifacts: Annotated[
        list[Path], typer.Argument(help="Artifacts: SavedModel folders, .onnx, .tflite, or export folders.")
    ],
    weights: Annotated[Path, typer.Option(help="The source weights (.npy or .h5).")],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture of the weights (default: the first artifact's own).")
    ] = None,
    device: DeviceOpt = "all",
    images: ImagesOpt = None,
    batch: BatchOpt = 8,
    seed: SeedOpt = 0,
    max_rel: Annotated[
        float | None, typer.Option(help="Override every precision's max_rel tolerance (relative to max |logit|).")
    ] = None,
    atol: Annotated[
        float | None, typer.Option(help="Also require |actual - oracle| <= atol + rtol*|oracle| for every logit.")
    ] = None,
    rtol: Annotated[float | None, typer.Option(help="The rtol of that element-wise check (default 0).")] = None,
    json_out: JsonOpt = None,
    markdown: MarkdownOpt = None,
    tf32: Tf32Opt = False,
    require_gpu: RequireGpuOpt = False,
    reference_kernels: Annotated[
        bool, typer.Option("--tflite-reference-kernels", help="Also run TFLite with LiteRT's reference kernels.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing --json/--markdown reports.")] = False,
) -> None:
    """Run every artifact on every runtime and device against the float64 oracle; check weights bit-exactly.

    Exit status: 0 all verified rows and weight checks pass; 1 any mismatch (all listed); 2 bad input.
    """
    from alexnet_export.artifacts import artifact_architecture
    from alexnet_export.sources import read_weights

    _check_verify_options(device=device, batch=batch, max_rel=max_rel, atol=atol, rtol=rtol)
    _check_reports(json_out, markdown, force=force)
    paths = _expand_artifacts(artifacts)
    chosen = _architecture(arch) or artifact_architecture(paths[0])
    loaded = read_weights(weights, arch=chosen)
    from alexnet_export.verify import background_oracle, make_inputs
    from alexnet_export.verify import verify as run_verify

    inputs = make_inputs(count=batch, seed=seed, images_dir=images, spec=loaded.arch.input)
    oracle = background_oracle(loaded, inputs)  # numpy, on the second core while TensorFlow imports
    # verify checks and runs the artifacts that TensorFlow does not run while TensorFlow imports (their
    # runtimes compute mostly without the GIL, which the import holds); its own rows wait for the import.
    from concurrent.futures import wait

    importing = import_tensorflow_in_background()
    try:
        report = run_verify(
            paths, loaded, inputs=inputs, device=device, tf32=tf32, require_gpu=require_gpu,
            tolerance=_tolerance_overrides(max_rel=max_rel, atol=atol, rtol=rtol),
            reference_kernels=reference_kernels, oracle=oracle,
        )
    finally:  # an error is reported only once the import has given stderr back
        wait([importing])
    _write_reports(report, json_out, markdown, force=force)
    raise typer.Exit(report.exit_code)


@app.command()
@handles_errors
def diagnose(
    artifact: Annotated[Path, typer.Argument(help="A SavedModel folder, .onnx or .tflite (any converter's).")],
    weights: Annotated[Path, typer.Option(help="The source weights (.npy, .h5, .weights.h5).")],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture of the weights (default: the artifact's own).")
    ] = None,
    images: ImagesOpt = None,
    batch: Annotated[int, typer.Option(help="Seeded synthetic images to run.")] = 2,
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
) -> None:
    """Compare every layer of ARTIFACT with the float64 oracle; name the first divergent layer and its likely cause.

    Ops are matched to layers by the graph's structure, not by names, so artifacts of other converters
    work. Causes: lrn-constants, conv-padding, pool-rounding, channel-order, mean-or-scale, flatten-order,
    group-order, kernel-layout, batchnorm, double-softmax, or unknown.
    Exit status: 0 no divergence, 1 a divergence (diagnosed or not), 2 bad input.
    """
    from alexnet_export.artifacts import artifact_architecture
    from alexnet_export.sources import read_weights
    from converters.errors import InputError

    if batch < 1:
        raise InputError(f"--batch: expected 1 or more images, received {batch}")
    if not artifact.exists():
        raise InputError(f"{artifact}: no such artifact")
    _check_reports(json_out)
    chosen = _architecture(arch) or artifact_architecture(artifact)
    loaded = read_weights(weights, arch=chosen)
    import_tensorflow()
    from alexnet_export.diagnose import diagnose as run_diagnose
    from alexnet_export.report import print_diagnosis
    from alexnet_export.verify import make_inputs

    inputs = make_inputs(count=batch, seed=seed, images_dir=images, fixtures=False, spec=loaded.arch.input)
    found = run_diagnose(artifact, loaded, inputs.images, inputs=", ".join(inputs.sources))
    print_diagnosis(found)
    if json_out is not None:
        _write_text(json_out, json.dumps(found.to_json(), indent=2) + "\n")
    raise typer.Exit(0 if found.passed else 1)


def _check_verify_options(
    *, device: str, batch: int, max_rel: float | None, atol: float | None = None, rtol: float | None = None
) -> None:
    from converters.arch import check_choice
    from converters.errors import InputError

    check_choice("--device", device, ("cpu", "gpu", "all"))
    if batch < 0:
        raise InputError(f"--batch: expected 0 or more images, received {batch}")
    if max_rel is not None and not max_rel > 0:
        raise InputError(f"--max-rel: expected a positive number, received {max_rel}")
    for option, value in (("--atol", atol), ("--rtol", rtol)):
        if value is not None and not value >= 0:
            raise InputError(f"{option}: expected a number >= 0, received {value}")


def _tolerance_overrides(*, max_rel: float | None, atol: float | None, rtol: float | None) -> dict[str, float] | None:
    """The CLI's tolerance options as overrides of every precision's profile (``None``: the profiles)."""
    given = {"max_rel": max_rel, "atol": atol, "rtol": rtol}
    return {key: value for key, value in given.items() if value is not None} or None


def _expand_artifacts(paths: list[Path]) -> list[Path]:
    """Artifacts as given; an export folder stands for the artifacts listed in its manifest."""
    from alexnet_export.artifacts import MANIFEST_NAME, listed_artifacts
    from converters.errors import InputError

    expanded: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such artifact")
        listing = path / MANIFEST_NAME
        if path.is_dir() and not (path / "saved_model.pb").exists() and listing.is_file():
            expanded.extend(listed_artifacts(path))
        else:
            expanded.append(path)
    return expanded


def _check_reports(*paths: Path | None, force: bool = False) -> None:
    """Refuse report paths that exist (without ``force``) or cannot be created, before the run starts."""
    from converters.atomic import check_output
    from converters.errors import InputError

    given = [p for p in paths if p is not None]
    for path in given:
        check_output(path, force=force)
        if path.is_dir():
            raise InputError(f"{path}: expected a file path for the report, received a folder")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK):
            raise InputError(f"{path}: cannot write the report: {parent} is not writable")
    if len({p.resolve() for p in given}) < len(given):
        raise InputError("--json and --markdown: expected two different paths, received the same one twice")


def _write_text(path: Path, text: str, *, force: bool = False) -> None:
    """Write a report atomically, under the same rules as every other output."""
    from converters.atomic import atomic_output

    with atomic_output(path, force=force) as tmp:
        tmp.write_text(text)


def _write_reports(report: Any, json_out: Path | None, markdown: Path | None, *, force: bool = False) -> None:
    from alexnet_export.report import print_verify, verify_markdown

    print_verify(report)
    if json_out is not None:
        _write_text(json_out, json.dumps(report.to_json(), indent=2) + "\n", force=force)
    if markdown is not None:
        _write_text(markdown, verify_markdown(report), force=force)


@app.command()
@handles_errors
def export(
    weights: WeightsArg,
    out_dir: Annotated[Path, typer.Argument(help="Folder to create with every artifact, the manifest and the report.")],
    formats: Annotated[str, typer.Option(help="Comma-separated: savedmodel, onnx, tflite.")] = "savedmodel,onnx,tflite",
    precision: Annotated[
        str, typer.Option(help="TFLite precisions, comma-separated: fp32, fp16, int8-dynamic, int8.")
    ] = "fp32",
    batch: BatchOpt = 8,
    device: DeviceOpt = "all",
    json_out: JsonOpt = None,
    arch: ArchOpt = None,
    labels: LabelsOpt = None,
    force: ForceOpt = False,
    allow_cast: AllowCastOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export every format, verify them all, and write one manifest and the report in OUT_DIR.

    Exit status as for verify: 0 all verified and passing, 1 any mismatch, 2 bad input.
    """
    from alexnet_export.export import ExportPlan

    plan = ExportPlan.parse(formats=formats, precisions=precision)
    _check_verify_options(device=device, batch=batch, max_rel=None)
    _check_reports(json_out, force=force)
    loaded, progress = _prepare(
        weights, [out_dir], force=force, allow_cast=allow_cast, quiet=quiet, arch=_architecture(arch),
        tensorflow=False,
    )
    from alexnet_export.export import export_all
    from alexnet_export.labels import read_labels
    from alexnet_export.verify import background_oracle, make_inputs

    names = read_labels(labels, loaded.num_classes) if labels is not None else None
    inputs = make_inputs(count=batch, spec=loaded.arch.input)
    oracle = background_oracle(loaded, inputs)  # numpy, on the second core while ONNX and TFLite are written
    report = export_all(
        loaded, out_dir, plan=plan, batch=batch, device=device, force=force, progress=progress, labels=names,
        oracle=(inputs, oracle), tensorflow=import_tensorflow_in_background,
    )
    _write_reports(report, json_out, None, force=force)
    typer.echo(f"wrote {out_dir}: {', '.join(report.artifacts)}; report in {out_dir}/report.json and report.md")
    raise typer.Exit(report.exit_code)


arch_app = typer.Typer(
    help="Architectures: list the presets, show one (copy it as JSON, edit it, pass it with --arch FILE.json).",
    no_args_is_help=True,
)
app.add_typer(arch_app, name="arch")


@arch_app.command("list")
@handles_errors
def arch_list() -> None:
    """List the preset architectures: name, input, classes, parameters and where they come from."""
    from converters.arch import PRESETS, parameter_count

    for name, preset in PRESETS.items():
        typer.echo(
            f"{name:<14} {preset.input.height}x{preset.input.width}x{preset.input.channels} "
            f"{preset.input.channel_order:<4} {preset.num_classes:>5} classes {parameter_count(preset):>12,} "
            f"parameters  {preset.description}"
        )


@arch_app.command("show")
@handles_errors
def arch_show(
    name: Annotated[str, typer.Argument(help="A preset name or a JSON file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON that --arch FILE.json accepts.")] = False,
) -> None:
    """Show an architecture layer by layer (feature-map shapes at full width), or as JSON to copy and edit."""
    from converters.arch import load_arch

    chosen = load_arch(name)
    if as_json:
        typer.echo(json.dumps(chosen.to_json(), indent=2))
        return
    from alexnet_export.report import print_architecture

    print_architecture(chosen)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: SIGTERM cleans up like Ctrl-C."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(app())

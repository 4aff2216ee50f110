"""The CI recipe as a user copies it: the workflow, the composite action and the shell script.

Every ``alexnet-export`` command line in their steps is parsed by the real CLI (so a misspelt option
or command fails here), every file a step reads must be produced by an earlier step, and the shell
version runs end to end against weights served from 127.0.0.1 with the exit codes a CI would see.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer

from alexnet_export.cli import app
from converters.arch import PUBLISHED_SHA256

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "ci-github-actions.yml"
ACTION = ROOT / "action.yml"
SCRIPT = ROOT / "docs" / "ci-recipe.sh"
CLI = typer.main.get_command(app)

# What each command reads and writes, by the name of its parameter; `export` also writes these into
# OUT_DIR (checked against a real run below).
READS = {"weights", "artifacts", "artifact", "model", "images", "calibration", "labels"}
WRITES = {"out", "out_dir", "dest", "json_out", "markdown_out"}
EXPORT_WRITES = ("report.json", "report.md", "alexnet-export.json")
RUNNER_VARS = {"GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"}  # set by the runner, not by a step
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "!", "{", "}", "do", "done"}


class RecipeError(AssertionError):
    """A step of the recipe would fail in CI (before running anything heavy)."""


def expand_expressions(text: str, scope: Mapping[str, Mapping[str, str]]) -> str:
    """Replace GitHub's ``${{ env.X }}`` / ``${{ inputs.x }}`` / ``${{ github.x }}`` with their values."""

    def value(match: re.Match[str]) -> str:
        head, _, name = match.group(1).strip().partition(".")
        if head not in scope or name not in scope[head]:
            raise RecipeError(f"unknown expression ${{{{ {match.group(1).strip()} }}}}")
        return scope[head][name]

    return re.sub(r"\$\{\{(.+?)\}\}", value, text)


def expand_vars(word: str, env: Mapping[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise RecipeError(f"{where}: ${name} is used but set by no step")
        return env[name]

    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", value, word)


def commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script (quotes removed, variables not yet expanded)."""
    script = script.replace("\\\n", " ")
    for line in script.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in {";", "&&", "||", "|", "&", ";;"}:
                while words and words[0] in SHELL_WORDS:
                    words.pop(0)
                if words:
                    yield words
                words = []
            else:
                words.append(token)


class Recipe:
    """Walks the steps in order, tracking the files they produce."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.produced: set[str] = set()
        self.ran: list[list[str]] = []

    def exists(self, path: str) -> bool:
        """A file a step produced, or a folder holding one (what is inside a folder is not guessed)."""
        norm = os.path.normpath(path)
        return any(p == norm or p.startswith(norm + os.sep) for p in self.produced)

    def need(self, path: str, where: str) -> None:
        if not self.exists(path):
            raise RecipeError(f"{where}: needs {path}, which no earlier step produces")

    def run_script(self, script: str, where: str) -> None:
        for words in commands(script):
            assignment = re.fullmatch(r"(\w+)=(.*)", words[0])
            if assignment and len(words) == 1:
                self.env[assignment.group(1)] = default_of(assignment.group(2), self.env)
                continue
            env = {**self.env, **dict.fromkeys(RUNNER_VARS, "/runner/file")}
            words = [expand_vars(word, env, where) for word in words]
            if words[0] == "alexnet-export":
                self.alexnet_export(words[1:], where)
            elif words[0] == "rm":
                for gone in (os.path.normpath(w) for w in words[1:] if not w.startswith("-")):
                    self.produced = {p for p in self.produced if p != gone and not p.startswith(gone + os.sep)}
            elif words[0] == "cat":
                for word in words[1:]:
                    if word.startswith(">"):
                        break
                    self.need(word, where)

    def alexnet_export(self, args: list[str], where: str) -> None:
        line = "alexnet-export " + shlex.join(args)
        command = CLI.commands.get(args[0]) if args else None  # type: ignore[attr-defined]
        if command is None:
            raise RecipeError(f"{where}: `{line}`: no such command")
        try:
            params = command.make_context(f"alexnet-export {args[0]}", list(args[1:])).params
        except Exception as exc:  # the CLI's own usage error: a misspelt option, a missing argument
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise RecipeError(f"{where}: `{line}`: {message}") from None
        for name, value in params.items():
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if item is not None and name in READS:
                    self.need(str(item), where)
                if name == "arch" and str(item).endswith(".json"):
                    self.need(str(item), where)
        for name, value in params.items():
            if value is not None and name in WRITES:
                self.produced.add(os.path.normpath(str(value)))
        if args[0] == "export":
            self.produced.update(os.path.normpath(os.path.join(params["out_dir"], f)) for f in EXPORT_WRITES)
        self.ran.append(args)

    def uses(self, step: Mapping[str, Any], where: str) -> None:
        action = str(step["uses"]).split("@")[0]
        if action == "actions/upload-artifact":
            for path in str(step["with"]["path"]).split():
                self.need(path, where)


def default_of(word: str, env: Mapping[str, str]) -> str:
    """The value of a ``NAME=${NAME:-default}`` assignment of the shell recipe (quotes already removed)."""
    match = re.fullmatch(r"\$\{(\w+):?-(.*)\}", word)
    if match:
        return env.get(match.group(1)) or default_of(match.group(2), env)
    return expand_vars(word, env, "assignment") if word != "$?" else word


def check_workflow(doc: Mapping[str, Any]) -> Recipe:
    env = {k: str(v) for k, v in doc.get("env", {}).items()}
    recipe = Recipe(env)
    for job_name, job in doc["jobs"].items():
        for index, step in enumerate(job["steps"]):
            where = f"job {job_name}, step {index + 1} ({step.get('name') or step.get('uses') or 'run'})"
            scope = {"env": recipe.env, "inputs": {}, "github": {}}
            if "run" in step:
                step_env = {k: expand_expressions(str(v), scope) for k, v in step.get("env", {}).items()}
                saved = recipe.env
                recipe.env = {**saved, **step_env}
                recipe.run_script(expand_expressions(step["run"], scope), where)
                recipe.env = saved
            else:
                recipe.uses(expand_step(step, scope), where)
    return recipe


def check_action(doc: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> Recipe:
    values = {name: str(spec.get("default", "")) for name, spec in doc["inputs"].items()}
    values.update(inputs or {})
    scope = {"inputs": values, "github": {"action_path": str(ROOT)}, "env": {}}
    recipe = Recipe({})
    assert doc["runs"]["using"] == "composite"
    for index, step in enumerate(doc["runs"]["steps"]):
        where = f"action step {index + 1} ({step.get('name') or step.get('uses')})"
        if "run" in step:
            assert step.get("shell") == "bash", f"{where}: a composite run step needs shell: bash"
            if "${{" in step["run"]:
                raise RecipeError(f"{where}: expression in run: pass inputs through env (script injection)")
            step_env = {k: expand_expressions(str(v), scope) for k, v in step.get("env", {}).items()}
            recipe.env = step_env
            recipe.run_script(step["run"], where)
        else:
            recipe.uses(expand_step(step, scope), where)
    return recipe


def expand_step(step: Mapping[str, Any], scope: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    return {**step, "with": {k: expand_expressions(str(v), scope) for k, v in (step.get("with") or {}).items()}}


def load(path: Path, text: str | None = None) -> Any:
    return yaml.safe_load(text if text is not None else path.read_text())


# --- the files as shipped -------------------------------------------------------------------------


def test_the_workflow_runs_download_then_export_with_options_the_cli_has() -> None:
    recipe = check_workflow(load(WORKFLOW))
    assert [args[0] for args in recipe.ran] == ["download", "download", "export"]  # both branches of the if
    assert recipe.exists("alexnet-export-out/report.json")


def test_the_action_runs_download_then_export_with_options_the_cli_has() -> None:
    doc = load(ACTION)
    recipe = check_action(doc)
    assert [args[0] for args in recipe.ran] == ["download", "download", "export"]
    assert set(doc["inputs"]) >= {"weights", "formats"}
    assert doc["inputs"]["sha256"]["default"] == PUBLISHED_SHA256
    assert doc["outputs"]["report"]["value"] == "${{ steps.export.outputs.report }}"


def test_the_shell_recipe_runs_download_then_export_with_options_the_cli_has() -> None:
    recipe = Recipe({})
    recipe.run_script(SCRIPT.read_text(), "ci-recipe.sh")
    assert [args[0] for args in recipe.ran] == ["download", "download", "export"]


def test_the_three_copies_pin_the_same_weights_and_formats() -> None:
    workflow, action = load(WORKFLOW), load(ACTION)
    script = SCRIPT.read_text()
    assert workflow["env"]["WEIGHTS_SHA256"] == PUBLISHED_SHA256 and f"WEIGHTS_SHA256:-{PUBLISHED_SHA256}" in script
    assert workflow["env"]["FORMATS"] == action["inputs"]["formats"]["default"] == "savedmodel,onnx,tflite"
    assert f"FORMATS:-{action['inputs']['formats']['default']}" in script


# --- deliberately broken copies fail ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('--formats "$FORMATS"', '--format "$FORMATS"', r"No such option: --format"),
        ('--sha256 "$WEIGHTS_SHA256" --quiet', '--sha "$WEIGHTS_SHA256" --quiet', r"No such option: --sha"),
        ("alexnet-export export", "alexnet-export exportt", r"`alexnet-export exportt .*`: no such command"),
        ('alexnet-export export "$WEIGHTS"', 'alexnet-export export "weights/other.npy"',
         r"needs weights/other.npy, which no earlier step produces"),
        ('cat "$OUT/report.md"', 'cat "$OUT/summary.md"', r"needs alexnet-export-out/summary.md, which no earlier"),
        ("path: ${{ env.OUT }}", "path: ${{ env.OUT }}-reports", r"needs alexnet-export-out-reports, which no"),
        ('"$WEIGHTS" "$OUT" --arch', '"$WEIGHTS" "$OUTDIR" --arch', r"\$OUTDIR is used but set by no step"),
    ],
)
def test_a_broken_workflow_fails_the_check(old: str, new: str, message: str) -> None:
    text = WORKFLOW.read_text()
    assert old in text
    with pytest.raises(RecipeError, match=message):
        check_workflow(load(WORKFLOW, text.replace(old, new)))


def test_a_workflow_without_the_download_step_fails_the_check() -> None:
    doc = load(WORKFLOW)
    steps = doc["jobs"]["export-and-verify"]["steps"]
    doc["jobs"]["export-and-verify"]["steps"] = [s for s in steps if "download" not in s.get("run", "")]
    with pytest.raises(RecipeError, match=r"needs weights/bvlc_alexnet.npy, which no earlier step produces"):
        check_workflow(doc)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('--precision "$PRECISION"', '--precisions "$PRECISION"', r"No such option: --precisions"),
        ("WEIGHTS: ${{ inputs.weights }}\n        ARCH", "WEIGHTS: ${{ inputs.weight }}\n        ARCH",
         r"unknown expression \$\{\{ inputs.weight \}\}"),
        ('run: python -m pip install "$ACTION_PATH"', "run: python -m pip install ${{ github.action_path }}",
         r"pass inputs through env"),
    ],
)
def test_a_broken_action_fails_the_check(old: str, new: str, message: str) -> None:
    text = ACTION.read_text()
    assert old in text
    with pytest.raises(RecipeError, match=message):
        check_action(load(ACTION, text.replace(old, new)))


def test_a_broken_shell_recipe_fails_the_check() -> None:
    text = SCRIPT.read_text()
    with pytest.raises(RecipeError, match=r"No such option: --sha-256"):
        Recipe({}).run_script(text.replace("--sha256", "--sha-256"), "ci-recipe.sh")
    with pytest.raises(RecipeError, match=r"needs weights/bvlc_alexnet.npy"):
        Recipe({}).run_script(re.sub(r"(?m)^\s*alexnet-export download.*$", "", text), "ci-recipe.sh")


# --- the shell version end to end against 127.0.0.1 -----------------------------------------------------


@pytest.fixture()
def served(small_npy: Path) -> Iterator[tuple[str, str, list[str]]]:
    """The small synthetic weights at http://127.0.0.1:PORT/w.npy; yields (url, sha256, request log)."""
    payload = small_npy.read_bytes()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path != "/w.npy":
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/w.npy", hashlib.sha256(payload).hexdigest(), requests
    finally:
        server.shutdown()
        server.server_close()


def run_recipe(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        ALEXNET_EXPORT="",  # installed already: this checkout
        WEIGHTS="cache/w.npy", OUT="out", SUMMARY="summary.md", TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.update(settings)
    assert shutil.which("alexnet-export", path=env["PATH"])
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_shell_recipe_end_to_end_with_a_pinned_download(tmp_path: Path, served: tuple[str, str, list[str]]) -> None:
    url, digest, requests = served
    first = run_recipe(tmp_path, WEIGHTS_URL=url, WEIGHTS_SHA256=digest, FORMATS="savedmodel,onnx,tflite")
    assert first.returncode == 0, first.stdout + first.stderr
    assert requests == ["/w.npy"] and "PASSED" in first.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["passed"] is True
    assert {Path(r["artifact"]).name for r in report["rows"]} >= {"savedmodel", "alexnet.onnx", "alexnet_fp32.tflite"}
    for name in EXPORT_WRITES:  # what the recipe check assumes export produces
        assert (tmp_path / "out" / name).is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert summary == (tmp_path / "out" / "report.md").read_text()

    # the next run: the cache hit costs no request, the stale out/ is replaced, the summary appended
    (tmp_path / "out" / "stale.txt").write_text("from an earlier run")
    again = run_recipe(tmp_path, WEIGHTS_URL=url, WEIGHTS_SHA256=digest, FORMATS="onnx")
    assert again.returncode == 0, again.stdout + again.stderr
    assert requests == ["/w.npy"] and "kept cache/w.npy: already there" in again.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "alexnet-export.json", "alexnet.onnx", "alexnet.onnx.alexnet-export.json", "report.json", "report.md"]
    assert (tmp_path / "summary.md").read_text() == summary + (tmp_path / "out" / "report.md").read_text()


def test_the_shell_recipe_fails_the_job_on_a_wrong_pin_or_a_cut_download(
    tmp_path: Path, served: tuple[str, str, list[str]]
) -> None:
    url, digest, _ = served
    wrong = run_recipe(tmp_path, WEIGHTS_URL=url, WEIGHTS_SHA256="0" * 64)
    assert wrong.returncode == 2 and "checksum mismatch" in wrong.stderr
    assert not (tmp_path / "cache" / "w.npy").exists() and not (tmp_path / "out").exists()
    missing = run_recipe(tmp_path, WEIGHTS_URL=url.replace("/w.npy", "/nope.npy"), WEIGHTS_SHA256=digest)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr
    bad_arch = run_recipe(tmp_path, WEIGHTS_URL=url, WEIGHTS_SHA256=digest, ARCH="alexnet-9000")
    assert bad_arch.returncode == 2 and "alexnet-9000" in bad_arch.stderr
    assert not (tmp_path / "summary.md").exists()

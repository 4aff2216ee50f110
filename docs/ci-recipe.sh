#!/usr/bin/env bash
# The steps of docs/ci-github-actions.yml as one script, for any CI (GitLab, Jenkins, Buildkite, ...):
# install alexnet-export, fetch the weights with a sha256 pin into a cache folder (a no-op when the
# cached copy matches), export every format and verify every artifact, and append the Markdown report
# to the job summary. The exit status is export's: 0 all verified, 1 any mismatch (or a download that
# was cut: rerun to resume), 2 bad input (wrong pin, unreadable weights, bad option).
#
# Settings (environment variables; the defaults are for bvlc_alexnet.npy):
#   ALEXNET_EXPORT  what `pip install` gets: a tag of the repository you install from (replace OWNER),
#                   a wheel file or URL; empty skips the install (alexnet-export already on PATH)
#   WEIGHTS         where the weights live between runs (point your CI's cache at its folder)
#   WEIGHTS_URL     where to fetch them if they are not there (empty: the toolkit's default URL)
#   WEIGHTS_SHA256  their pin; for a file of your own: `sha256sum` of it
#   ARCH            the network: a preset (`alexnet-export arch list`) or a JSON file
#   FORMATS         comma-separated: savedmodel, onnx, tflite
#   OUT             the folder export creates (artifacts, manifest, report.json, report.md)
#   SUMMARY         the file the Markdown report is appended to (GitHub: $GITHUB_STEP_SUMMARY)
set -euo pipefail

ALEXNET_EXPORT=${ALEXNET_EXPORT-"alexnet-export @ git+https://github.com/OWNER/alexnet-export@v0.1.0"}
WEIGHTS=${WEIGHTS:-weights/bvlc_alexnet.npy}
WEIGHTS_URL=${WEIGHTS_URL:-}
WEIGHTS_SHA256=${WEIGHTS_SHA256:-1294ef51496c52f2e4879ee3b5e1da22c35d61f3240937491b4469403d5428cc}
ARCH=${ARCH:-bvlc-alexnet}
FORMATS=${FORMATS:-savedmodel,onnx,tflite}
OUT=${OUT:-alexnet-export-out}
SUMMARY=${SUMMARY:-${GITHUB_STEP_SUMMARY:-$OUT.summary.md}}

if [ -n "$ALEXNET_EXPORT" ]; then
  python -m pip install "$ALEXNET_EXPORT"
fi

if [ -n "$WEIGHTS_URL" ]; then
  alexnet-export download "$WEIGHTS" --sha256 "$WEIGHTS_SHA256" --url "$WEIGHTS_URL"
else
  alexnet-export download "$WEIGHTS" --sha256 "$WEIGHTS_SHA256"
fi

# A clean folder every run: --force would replace a stale one, but starting empty says what this run made.
rm -rf "$OUT"
status=0
alexnet-export export "$WEIGHTS" "$OUT" --arch "$ARCH" --formats "$FORMATS" --device all || status=$?

if [ -f "$OUT/report.md" ]; then
  cat "$OUT/report.md" >> "$SUMMARY"
fi
exit "$status"

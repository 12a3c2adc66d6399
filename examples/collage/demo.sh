#!/usr/bin/env bash
# The language end to end through the CLI: encode the collage pipeline, show it, change
# blur's sha, and see exactly blur and collage get new output IDs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${ALAMODE_BIN:-alamode}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" encode "$here/pipeline.py" -o "$work/before.alamode"
"$bin" show "$work/before.alamode"
sed "s/\"sha\": \"6f09d\"/\"sha\": \"qwetr3\"/" "$here/pipeline.py" > "$work/pipeline.py"
"$bin" encode "$work/pipeline.py" -o "$work/after.alamode"
echo
echo "After changing blur's sha:"
status=0
"$bin" diff "$work/before.alamode" "$work/after.alamode" || status=$?
[ "$status" -eq 1 ] || { echo "expected the files to differ (exit 1), got $status" >&2; exit 1; }
"$bin" graph "$work/before.alamode" -o "${ALAMODE_GRAPH:-collage.svg}"

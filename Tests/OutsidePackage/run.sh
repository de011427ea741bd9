#!/usr/bin/env bash
# Builds a throwaway package outside this repository that depends on FuseKit by path, as a user's
# package would, and runs
#   - the README's library example ("Using FuseKit as a library", copied from the README itself)
#     on one TNO pair, and
#   - a command line of its own (Template/Sources/my-fusekit/main.swift) that registers a toy
#     fusion plugin next to FuseKit's: `plugins`, `gradcheck` and a short `train` through it.
# This shows that no unsafe flags or other settings keep FuseKit from being used as a dependency.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fusekit-outside-XXXXXX")"
trap 'rm -rf "$work"' EXIT

cp -R "$here/Template/." "$work/"
mkdir -p "$work/Sources/embedding-example"
# The library example, exactly as the README shows it.
awk '/<!-- library-example -->/{found=1; next} found && /^```swift/{inside=1; next} inside && /^```/{exit} inside{print}' \
    "$repo/README.md" > "$work/Sources/embedding-example/main.swift"
if [ ! -s "$work/Sources/embedding-example/main.swift" ]; then
    echo "outside package: the README has no library example after <!-- library-example -->" >&2
    exit 1
fi

echo "outside package: building in $work (FuseKit at $repo)"
(cd "$work" && FUSEKIT_PATH="$repo" swift build 2>&1 | tail -n 3)
bin="$(cd "$work" && FUSEKIT_PATH="$repo" swift build --show-bin-path)"

# (Through a file: `grep -q` stops reading early, and the writer's SIGPIPE would fail the pipeline.)
"$bin/my-fusekit" plugins > "$work/plugins.txt"
grep -q '^mix-fusion (fusion): a two-layer mix of the sources' "$work/plugins.txt"
grep -q '^restormer-fusion (fusion)' "$work/plugins.txt"
"$bin/my-fusekit" gradcheck --plugin mix-fusion
"$bin/my-fusekit" train "$here/toy-recipe.yaml" --out "$work/run"
test -s "$work/run/metrics.json"
test -s "$work/run/checkpoints/last.safetensors"
echo "outside package: plugins, gradcheck and train ran through my-fusekit"

tno="$repo/../shared/data/tno"
if [ -d "$tno/ir" ]; then
    mkdir -p "$work/fused"
    "$bin/embedding-example" "$here/restormer-fusion-untrained.safetensors" "$tno/ir/01.png" "$tno/vi/01.png" "$work/fused/01.png"
    # The fused image is read back and scored against its sources.
    "$bin/my-fusekit" eval --ir "$tno/ir" --vis "$tno/vi" --fused "$work/fused" --metrics EN,SSIM
    echo "outside package: the README's library example fused TNO pair 01"
else
    echo "outside package: SKIPPED the library example: $tno is absent (it needs a TNO pair)"
fi

#!/bin/bash
# Compile-and-link check of the ascend backend against a real MindSpore Lite API, without Ascend hardware: the
# PyPI mindspore-lite 2.0.0 wheel (cp37, unzipped, no Python 3.7 needed) holds include/api/*.h and
# lib/libmindspore-extendrt_python.so. Builds
#   1. the Lite flavour (Model::Build(path, kMindIR, ctx)), compiled with -Werror and linked against that library;
#   2. the TINYNET_MS_GRAPH_API flavour (Serialization::Load + GraphCell) against the same headers, compile only.
# Its runtime cannot run our models (Lite 2.0 reads MindIR v1, MindSpore 2.10 writes v3): a check of the API
# use, not a run. The wheel is cached in ${TINYNET_CACHE:-~/.cache/tinynet_ms}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TINYNET_CACHE:-$HOME/.cache/tinynet_ms}
lite=$cache/mindspore-lite-2.0.0
if [ ! -f "$lite/mindspore_lite/include/api/model.h" ]; then
  mkdir -p "$cache/wheels"
  ${PYTHON:-python3} -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.7 \
    --platform manylinux1_x86_64 mindspore-lite==2.0.0 -d "$cache/wheels"
  rm -rf "$lite.tmp" && mkdir -p "$lite.tmp"
  ${PYTHON:-python3} -m zipfile -e "$cache"/wheels/mindspore_lite-2.0.0-*.whl "$lite.tmp"
  rm -rf "$lite" && mv "$lite.tmp" "$lite"
fi
# The wheel's mindspore_lite/ has the layout of a Lite package's runtime/ (include/api/, lib/).
home=$cache/mslite-home && mkdir -p "$home" && ln -sfn "$lite/mindspore_lite" "$home/runtime"
build=${1:-$(mktemp -d)} && mkdir -p "$build"
cmake -S "$here" -B "$build/lite" -DCMAKE_BUILD_TYPE=Release -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$build/lite/out" \
  -DMSLITE_HOME="$home" -DMSLITE_LIBRARY="$lite/mindspore_lite/lib/libmindspore-extendrt_python.so" \
  -DOpenVINO_DIR=OFF > "$build/lite.log"
cmake --build "$build/lite" -j "$(nproc)" >> "$build/lite.log"
cmake -S "$here" -B "$build/graph" -DCMAKE_BUILD_TYPE=Release -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$build/graph/out" \
  -DMINDSPORE_PATH="$lite/mindspore_lite" -DTINYNET_ASCEND_SYNTAX_ONLY=ON -DOpenVINO_DIR=OFF > "$build/graph.log"
cmake --build "$build/graph" -j "$(nproc)" --target ascend_backend >> "$build/graph.log"
echo "check_ascend_api.sh: the ascend backend compiles (-Werror) and links against MindSpore Lite 2.0.0, and" \
  "compiles in the GraphCell flavour; logs in $build"

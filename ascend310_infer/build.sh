#!/bin/bash
# Builds ascend310_infer/out/main. Extra arguments go to cmake, e.g. -DTINYNET_ASCEND_SYNTAX_ONLY=ON.
# The ascend backend is built when MSLITE_HOME (or LITE_HOME) or MINDSPORE_PATH is set, or when the
# python3 on PATH imports a mindspore that ships include/api/model.h and lib/libmindspore.so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

mslite_home=${MSLITE_HOME:-${LITE_HOME:-}}
mindspore_path=""
if [ -z "$mslite_home" ]; then
  mindspore_path=${MINDSPORE_PATH:-}
  if [ -z "$mindspore_path" ]; then
    probe="import mindspore, os; print(os.path.dirname(mindspore.__file__))"
    ms=$(${PYTHON:-python3} -c "$probe" 2>/dev/null | tail -n 1 || true)
    if [ -n "$ms" ] && [ -f "$ms/include/api/model.h" ] && [ -f "$ms/lib/libmindspore.so" ]; then
      mindspore_path=$ms
    fi
  fi
fi
# OpenVINO for the cpu backend: OpenVINO_DIR, else the pip wheel of the python3 on PATH.
openvino_dir=${OpenVINO_DIR:-}
if [ -z "$openvino_dir" ]; then
  probe="import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), 'cmake'))"
  ov=$(${PYTHON:-python3} -c "$probe" 2>/dev/null | tail -n 1 || true)
  if [ -n "$ov" ] && [ -f "$ov/OpenVINOConfig.cmake" ]; then openvino_dir=$ov; fi
fi
echo "build.sh: MSLITE_HOME='${mslite_home}' MINDSPORE_PATH='${mindspore_path}' OpenVINO_DIR='${openvino_dir}'"

# One build at a time in this tree (two harness runs, or test workers, starting together would share build/).
exec 9> "$here/.build.lock"
flock 9
# Always passed, so a previous configure's cache never outlives the current environment; "$@" comes last to win.
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release \
  -DMSLITE_HOME="$mslite_home" -DMINDSPORE_PATH="$mindspore_path" -DOpenVINO_DIR="$openvino_dir" \
  -DTINYNET_ASCEND_SYNTAX_ONLY=OFF "$@"
cmake --build "$here/build" -j "$(nproc)"
echo "build.sh: built $here/out/main"

#!/usr/bin/env bash
# The GPU check: the parity suite on CUDA (f32 at the CPU's tolerances, bf16 drift), full-size
# random-weight timings in bf16, a whole 60 s and 240 s generation with peak GPU memory.
#
#   tools/gpu-check.sh pack    # here (no GPU needed): builds the CUDA binaries (tools/cuda-build.sh),
#                              # strips and packs them into target/gpu-check/bundle.tar.xz (< 64 MiB)
#   tools/gpu-check.sh run     # on the GPU machine, in a copy of the repository with that bundle:
#                              # no Rust, no network; CUDA 13 libraries from its PyTorch install
#   tools/gpu-check.sh dry     # here, on the CPU: the same steps with the tiny checkpoint
#
# The PyTorch reference on the same GPU (umt5, DiT, DCAE timings of tools/bench_reference.py in
# bf16): `ACESTEP_REFERENCE=/path/to/ACE-Step tools/gpu-check.sh pack` also packs its `acestep`
# sources (about 1 MB, not committed) and a wheelhouse of what it imports beyond PyTorch
# (transformers, diffusers and their dependencies, for CPython 3.10-3.13), installed there
# without network into a temporary folder. Without them the run says what is missing.
#
# With the device tool: run(command="tools/gpu-check.sh run", carry=["target/gpu-check/bundle.tar.xz"],
# timeout_s=560). The run takes at most 8 minutes: each step has its own time limit, cut to what
# is left of ACESTEP_GPU_CHECK_BUDGET (470 s after unpacking), and it ends with a summary;
# ACESTEP_GPU_CHECK_SECONDS="60 240" sets the generation lengths.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=target/gpu-check
mode=${1:-}

step() { printf '\n== %s\n' "$*"; }

# What the reference's benches import beyond PyTorch, numpy and pillow (installed --no-deps).
ref_wheels=(transformers==4.50.0 diffusers==0.33.1 huggingface_hub tokenizers safetensors regex pyyaml
  tqdm requests urllib3 idna certifi charset_normalizer filelock packaging fsspec
  importlib_metadata zipp typing_extensions)

case "$mode" in
pack)
  set -e
  # One profile and one feature set for both binaries: they share every compiled dependency.
  tools/cuda-build.sh test --locked --release --features cuda --test parity --no-run
  tools/cuda-build.sh build --locked --release --features cuda --example gpu_check
  rm -rf "$out/bin" && mkdir -p "$out/bin"
  parity=$(ls -t target/release/deps/parity-* | grep -v '\.d$' | head -n 1)
  cp "$parity" "$out/bin/parity"
  cp target/release/examples/gpu_check "$out/bin/gpu_check"
  strip "$out/bin/parity" "$out/bin/gpu_check"
  # The lyric vocab (not committed) lets the timed generation have lyrics.
  [ -f ../shared/reference/vocab.json ] && cp ../shared/reference/vocab.json "$out/bin/"
  ls -l "$out/bin"
  parts=(bin)
  rm -rf "$out/reference"
  if [ -n "${ACESTEP_REFERENCE:-}" ]; then
    mkdir -p "$out/reference/wheels"
    cp -r "$ACESTEP_REFERENCE/acestep" "$out/reference/"
    # Wheels for CPython 3.10-3.13 of what the reference imports beyond what a PyTorch install
    # brings (numpy, pillow, torchaudio and torchvision must be on the machine).
    for py in 3.10 3.11 3.12 3.13; do
      python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        --python-version "$py" -d "$out/reference/wheels" "${ref_wheels[@]}"
    done
    rm -f "$out/reference/wheels"/{numpy,pillow,hf_xet,torch,nvidia,triton}[-_]*
    du -sh "$out/reference"
    parts+=(reference)
  fi
  XZ_OPT=-T0 tar -C "$out" -cJf "$out/bundle.tar.xz" "${parts[@]}"
  ls -l "$out/bundle.tar.xz"
  size=$(stat -c %s "$out/bundle.tar.xz")
  if [ "$size" -gt $((64 * 1024 * 1024)) ]; then
    echo "gpu-check: the bundle is over the 64 MiB a device run can carry" >&2
    exit 1
  fi
  exit 0
  ;;
run)
  device=cuda dtype=bf16 fixtures="$repo/tests/fixtures"
  work=$(mktemp -d /tmp/gpu-check.XXXXXX)
  tar -C "$work" -xJf "$out/bundle.tar.xz" || { echo "no bundle: run 'tools/gpu-check.sh pack' first" >&2; exit 1; }
  bin="$work/bin"
  python3 --version
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  # The CUDA 13 runtime libraries (cuBLAS, cuRAND, NVRTC) of the machine's PyTorch install.
  libs=$(python3 - <<'EOF' 2>/dev/null
import glob, os
import nvidia
dirs = set()
for root in list(nvidia.__path__):
    for p in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(p))
print(":".join(sorted(dirs)))
EOF
)
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  ;;
dry)
  device=cpu dtype=f32 fixtures="$repo/tests/fixtures"
  work=$(mktemp -d /tmp/gpu-check.XXXXXX)
  bin="$work/bin"
  mkdir -p "$bin"
  set -e
  # The debug profile (dependencies optimised) of the test command: nothing new to compile
  # for the parity suite.
  cargo test --locked --test parity --no-run 2>&1 | tail -n 1
  cargo build --locked --example gpu_check 2>&1 | tail -n 1
  set +e
  cp "$(ls -t target/debug/deps/parity-* | grep -v '\.d$' | head -n 1)" "$bin/parity"
  cp target/debug/examples/gpu_check "$bin/gpu_check"
  [ -f ../shared/reference/vocab.json ] && cp ../shared/reference/vocab.json "$bin/"
  ;;
*)
  echo "usage: tools/gpu-check.sh pack|run|dry" >&2
  exit 2
  ;;
esac

export ACESTEP_FIXTURES="$fixtures"
summary=()
record() { summary+=("$1"); }

# A step's time limit: its own, or what is left of the whole check's budget (at least 1 s).
if [ "$mode" = run ]; then
  deadline=$((SECONDS + ${ACESTEP_GPU_CHECK_BUDGET:-470}))
else
  deadline=$((SECONDS + 7200))
fi
budget() {
  local left=$((deadline - SECONDS))
  [ "$left" -lt 1 ] && left=1
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# Peak device memory of a command: the largest memory.used sampled every 20 ms while it runs,
# minus the value before it started (on the CPU: the process's peak RSS).
peak_mem() {
  local log="$work/mem.log"
  if [ "$device" = cpu ]; then
    /usr/bin/time -f "gpu_check peak RSS: %M KiB" "$@"
    return
  fi
  local base
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 >"$log" &
  local smi=$!
  "$@"
  local rc=$?
  kill "$smi" 2>/dev/null
  wait "$smi" 2>/dev/null
  local peak
  peak=$(sort -n "$log" | tail -n 1)
  echo "gpu_check peak GPU memory: $((peak - base)) MiB above the idle $base MiB (${peak} MiB used)"
  return $rc
}

parity() {
  local dt=$1 limit=$2
  step "parity suite on $device, $dt"
  ACESTEP_TEST_DEVICE=$device ACESTEP_TEST_DTYPE=$dt timeout "$(budget "$limit")" \
    "$bin/parity" --test-threads 1 --nocapture >"$work/parity-$dt.log" 2>&1
  local rc=$?
  grep -E '^parity |^test .* \.\.\. |^test result|panicked|FAILED|error' "$work/parity-$dt.log"
  record "parity $device $dt: $(grep -E '^test result' "$work/parity-$dt.log" | tail -n 1) (exit $rc)"
}

vocab=()
[ -f "$bin/vocab.json" ] && vocab=(--vocab "$bin/vocab.json")

# The PyTorch reference's component timings on the same device and dtype, when its sources were
# packed and its imports resolve (from the machine's Python, else the packed wheelhouse).
reference() {
  step "PyTorch reference on $device, $dtype"
  local ref="$work/reference"
  if [ ! -d "$ref/acestep" ]; then
    echo "reference: not run (not packed: ACESTEP_REFERENCE=/path/to/ACE-Step tools/gpu-check.sh pack)"
    record "reference: not packed"
    return
  fi
  if ! python3 -c 'import transformers, diffusers' 2>/dev/null; then
    timeout "$(budget 120)" python3 -m pip install -q --no-index --no-deps --find-links "$ref/wheels" \
      --target "$work/py" "${ref_wheels[@]}" >"$work/pip.log" 2>&1
    export PYTHONPATH="$work/py${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! python3 -c 'import transformers, diffusers' >"$work/import.log" 2>&1; then
    tail -n 3 "$work/pip.log" "$work/import.log"
    record "reference: imports failed ($(tail -n 1 "$work/import.log"))"
    return
  fi
  for what in umt5 dit dcae; do
    ACESTEP_REFERENCE="$ref" timeout "$(budget "$1")" python3 tools/bench_reference.py "$what" \
      --device "$device" --dtype "$dtype" --reps "$2" 2>&1 | grep -vE 'Warning|warn\(' | tee -a "$work/reference.log"
  done
  record "reference: $(grep -c ' ms ' "$work/reference.log") timings"
}

if [ "$mode" = run ]; then
  parity f32 150
  parity bf16 150
  step "full-size random checkpoint"
  ckpt="$work/checkpoint"
  timeout "$(budget 120)" "$bin/gpu_check" checkpoint "$ckpt"
  record "checkpoint: exit $?"
  step "components at the full configs, $dtype"
  timeout "$(budget 150)" "$bin/gpu_check" components --device "$device" --dtype "$dtype" --reps 5 | tee "$work/components.log"
  record "components: exit ${PIPESTATUS[0]}"
  for s in ${ACESTEP_GPU_CHECK_SECONDS:-60 240}; do
    step "generation of $s s, 27 steps, $dtype"
    peak_mem timeout "$(budget 150)" "$bin/gpu_check" generate --checkpoint "$ckpt" --seconds "$s" --steps 27 \
      --device "$device" --dtype "$dtype" "${vocab[@]}" | tee "$work/gen-$s.log"
    record "generate $s s (exit ${PIPESTATUS[0]}): $(grep -E 'real time|peak' "$work/gen-$s.log" | tr '\n' ' ')"
  done
  step "whole-pipeline drift: 10 s, 27 steps, $dtype against f32"
  timeout "$(budget 120)" "$bin/gpu_check" drift --checkpoint "$ckpt" --seconds 10 --steps 27 \
    --device "$device" --dtype "$dtype" "${vocab[@]}" | tee "$work/drift.log"
  record "drift (exit ${PIPESTATUS[0]}): $(grep -E 'drift' "$work/drift.log" | tr '\n' ' ')"
  reference 150 5
else
  parity f32 600
  parity bf16 900
  step "components at the tiny configs (dry run)"
  timeout "$(budget 300)" "$bin/gpu_check" components --device "$device" --dtype "$dtype" --reps 1 --tiny
  record "components (tiny): exit $?"
  step "generation on the tiny checkpoint (dry run)"
  # (No lyrics: the tiny DiT's lyric vocabulary is smaller than vocab.json's ids.)
  peak_mem timeout "$(budget 300)" "$bin/gpu_check" generate --checkpoint "$fixtures/tiny" --seconds 10 --steps 27 \
    --device "$device" --dtype "$dtype" | tee "$work/gen.log"
  record "generate tiny (exit ${PIPESTATUS[0]}): $(grep -E 'real time|peak' "$work/gen.log" | tr '\n' ' ')"
  step "whole-pipeline drift on the tiny checkpoint: f16 against f32 (dry run)"
  timeout "$(budget 300)" "$bin/gpu_check" drift --checkpoint "$fixtures/tiny" --seconds 10 --steps 27 \
    --device "$device" --dtype f16 | tee "$work/drift.log"
  record "drift (exit ${PIPESTATUS[0]}): $(grep -E 'drift' "$work/drift.log" | tr '\n' ' ')"
  if [ -n "${ACESTEP_REFERENCE:-}" ]; then
    mkdir -p "$work/reference" && cp -r "$ACESTEP_REFERENCE/acestep" "$work/reference/"
    reference 600 1
  fi
fi

step "summary"
printf '%s\n' "${summary[@]}"

#!/usr/bin/env bash
# Builds (or checks) the crate with `--features cuda` on a machine with no GPU and no system CUDA:
# installs the CUDA 13.0 toolkit's wheels from PyPI into a folder (once), adds the link names and
# an empty `libcuda.so` stub (cudarc loads the real driver at run time), and runs cargo with the
# paths set. The GPU machines' driver is CUDA 13.0 (580): every wheel is pinned to 13.0 so the PTX
# is one that driver accepts.
#
#   tools/cuda-build.sh                                   # cargo build --release --features cuda
#   tools/cuda-build.sh check --features cuda --all-targets   # what CI runs (compiler wheels only)
#   tools/cuda-build.sh build --release --features cuda --example gpu_check
#
# Environment: ACESTEP_CUDA_DIR (default target/cuda13) where the wheels go; CUDA_COMPUTE_CAP
# (default 90, the H100/H200) the architecture candle's kernels are compiled for.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${ACESTEP_CUDA_DIR:-$PWD/target/cuda13}
[ $# -gt 0 ] || set -- build --release --features cuda

# The compiler (nvcc, its front ends, headers); linking a binary needs the libraries too.
wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)
links=0
case "$1" in
  check | clippy | doc) ;;
  *)
    links=1
    wheels+=(nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)
    ;;
esac

stamp="$dir/.installed-$(printf '%s\n' "${wheels[@]}" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "cuda-build: installing ${#wheels[@]} CUDA 13.0 wheels into $dir" >&2
  python3 -m pip install -q --disable-pip-version-check --upgrade --no-deps --target "$dir" "${wheels[@]}"
  touch "$stamp"
fi

root="$dir/nvidia/cu13"
if [ ! -x "$root/bin/nvcc" ]; then
  echo "cuda-build: no nvcc under $root/bin after the install" >&2
  exit 1
fi
export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_TOOLKIT_ROOT_DIR="$root"
export PATH="$root/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

if [ "$links" = 1 ]; then
  # The wheels ship only versioned names; the linker asks for the plain ones.
  for lib in nvrtc cublas cublasLt cudart; do
    ln -sfn "lib$lib.so.13" "$root/lib/lib$lib.so"
  done
  ln -sfn libcurand.so.10 "$root/lib/libcurand.so"
  # No wheel has libcuda (it comes with the driver): an empty stub with the driver's soname.
  if [ ! -e "$root/lib/libcuda.so" ]; then
    echo | gcc -shared -x c - -o "$root/lib/libcuda.so" -Wl,-soname,libcuda.so.1
  fi
  # Only when linking: other RUSTFLAGS would make cargo rebuild what `check` shares with clippy.
  export RUSTFLAGS="${RUSTFLAGS:-} -L $root/lib -C link-arg=-Wl,--unresolved-symbols=ignore-all"
fi

exec cargo "$@"

//! Device and dtype selection.
//!
//! Strings accepted on the command line and in APIs: devices `auto`, `cpu`, `cuda`, `cuda:N`,
//! `metal`, `metal:N`; dtypes `auto`, `f32`, `bf16`, `f16`. `auto` picks a GPU when one is compiled
//! in and present (else the CPU), and bf16 on a GPU, f32 on the CPU.

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// Parses a device string (see the module docs).
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (kind, ordinal) = match spec.split_once(':') {
        Some((k, n)) => {
            let n: usize = n.parse().map_err(|_| Error::InvalidArgument {
                name: "device",
                value: spec.clone(),
                expected: "an ordinal after the colon, e.g. cuda:0".into(),
            })?;
            (k.to_string(), n)
        }
        None => (spec.clone(), 0),
    };
    match kind.as_str() {
        "auto" => Ok(default_device()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::DeviceUnavailable {
                    device: spec,
                    message: "this build has no CUDA support (rebuild with `--features cuda`)"
                        .into(),
                });
            }
            Device::new_cuda(ordinal).map_err(|e| Error::DeviceUnavailable {
                device: spec,
                message: e.to_string(),
            })
        }
        "metal" => {
            if !candle_core::utils::metal_is_available() {
                return Err(Error::DeviceUnavailable {
                    device: spec,
                    message: "this build has no Metal support (rebuild with `--features metal`)"
                        .into(),
                });
            }
            Device::new_metal(ordinal).map_err(|e| Error::DeviceUnavailable {
                device: spec,
                message: e.to_string(),
            })
        }
        _ => Err(Error::InvalidArgument {
            name: "device",
            value: spec,
            expected: "one of auto, cpu, cuda, cuda:N, metal, metal:N".into(),
        }),
    }
}

/// The first GPU that is compiled in and present, else the CPU.
pub fn default_device() -> Device {
    if candle_core::utils::cuda_is_available() {
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
    }
    if candle_core::utils::metal_is_available() {
        if let Ok(d) = Device::new_metal(0) {
            return d;
        }
    }
    Device::Cpu
}

/// The default compute dtype for `device`: bf16 on a GPU, f32 on the CPU.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

/// Parses a dtype string; `auto` gives [`default_dtype`] for `device`.
pub fn parse_dtype(spec: &str, device: &Device) -> Result<DType> {
    let dtype = match spec.trim().to_ascii_lowercase().as_str() {
        "auto" => default_dtype(device),
        "f32" | "float32" | "fp32" => DType::F32,
        "bf16" | "bfloat16" => DType::BF16,
        "f16" | "float16" | "fp16" | "half" => DType::F16,
        other => {
            return Err(Error::InvalidArgument {
                name: "dtype",
                value: other.to_string(),
                expected: "one of auto, f32, bf16, f16".into(),
            })
        }
    };
    check_dtype(device, dtype)?;
    Ok(dtype)
}

/// Whether `device` can run the models in `dtype`. bf16 on the CPU is refused up front: candle's
/// CPU backend has no bf16 matrix kernel (it widens both operands of every bf16 matmul to f32
/// and narrows the result), so it is slower than f32 and less exact (f32 and f16 work
/// everywhere; the parity suite measures bf16 on the CPU through `acestep::testing` only).
pub fn check_dtype(device: &Device, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 => Ok(()),
        DType::BF16 if !device.is_cpu() => Ok(()),
        DType::BF16 => Err(Error::InvalidArgument {
            name: "dtype",
            value: "bf16".into(),
            expected: "f32 or f16 on the CPU (candle's CPU matmul has no bf16 kernel: bf16 would be slower than f32); bf16 needs a cuda or metal device".into(),
        }),
        other => Err(Error::InvalidArgument {
            name: "dtype",
            value: format!("{other:?}").to_lowercase(),
            expected: "f32, f16 or (on a GPU) bf16".into(),
        }),
    }
}

/// Tunes the process's allocator for the engine's CPU workload (glibc on Linux; a no-op
/// elsewhere). Activations of the audio decoder are tens of MB each and every op allocates its
/// output: by default glibc serves such blocks with fresh `mmap`s and returns them on free, so
/// each op pays page faults, page zeroing and TLB shootdowns (about 10 % of a decode). This keeps
/// large blocks in the heap for reuse (`M_MMAP_MAX = 0`) and only trims free memory above
/// 1 GiB (`M_TRIM_THRESHOLD`), so the resident size stays near the peak between generations.
/// The `acestep` binary calls it at start; an embedding program may call it once, before its
/// first allocation-heavy work, or use an allocator of its choice.
pub fn tune_cpu_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_dtypes() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        let e = parse_dtype("bf16", &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("bf16") && e.contains("cuda"), "{e}");
        assert_eq!(parse_dtype("auto", &Device::Cpu).unwrap(), DType::F32);
        assert_eq!(parse_dtype("F16", &Device::Cpu).unwrap(), DType::F16);
    }

    #[test]
    fn rejects_bad_specs_with_the_value() {
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.contains("tpu") && e.contains("cuda:N"), "{e}");
        let e = parse_device("cuda:x").unwrap_err().to_string();
        assert!(e.contains("cuda:x"), "{e}");
        let e = parse_dtype("int8", &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("int8"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let e = parse_device("cuda:0").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}

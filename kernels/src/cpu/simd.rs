//! A small SIMD vocabulary shared by the CPU kernels: one generic kernel body is written against
//! [`Simd`] and compiled three times (AVX-512, AVX2 + FMA, portable arrays that LLVM vectorises
//! for the baseline ISA, NEON included), with the widest one the CPU has picked at run time.

// The polynomial coefficients are the published fits, digit for digit.
#![allow(clippy::excessive_precision)]

/// Operations on a vector of `LANES` f32.
pub(crate) trait Simd: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// The vector.
    type V: Copy;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` values from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// Stores `LANES` values to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c` (fused where the ISA has it).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// Rounds to the nearest integer (ties to even).
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^n` for integral `n` in [-126, 127].
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// `1 / sqrt(a)` to full f32 precision.
    unsafe fn rsqrt(a: Self::V) -> Self::V;
    /// `a` and `b` interleaved: the first vector holds `a0 b0 a1 b1 ...` (the low halves), the
    /// second the high halves.
    unsafe fn interleave(a: Self::V, b: Self::V) -> (Self::V, Self::V);
    /// Hints that the cache line at `p` will be read soon.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        let _ = p;
    }
}

/// `e^x` (Cephes' single-precision polynomial, about 1 ulp over the clamped range).
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    let x = S::min(S::max(x, S::splat(-87.336_54)), S::splat(88.376_26));
    let n = S::round(S::mul(x, S::splat(std::f32::consts::LOG2_E)));
    let r = S::fma(n, S::splat(-0.693_359_4), x);
    let r = S::fma(n, S::splat(2.121_944_4e-4), r);
    let mut p = S::splat(1.987_569_1e-4);
    p = S::fma(p, r, S::splat(1.398_199_9e-3));
    p = S::fma(p, r, S::splat(8.333_452e-3));
    p = S::fma(p, r, S::splat(4.166_579_6e-2));
    p = S::fma(p, r, S::splat(1.666_666_5e-1));
    p = S::fma(p, r, S::splat(5.000_000_1e-1));
    let r2 = S::mul(r, r);
    let y = S::add(S::fma(p, r2, r), S::splat(1.0));
    // 2^n in two halves so that n = 127 (x near the top of the range) stays finite.
    let h = S::round(S::mul(n, S::splat(0.5)));
    S::mul(S::mul(y, S::pow2i(h)), S::pow2i(S::sub(n, h)))
}

/// `x * sigmoid(x)`.
#[inline(always)]
pub(crate) unsafe fn silu<S: Simd>(x: S::V) -> S::V {
    let e = exp::<S>(S::sub(S::splat(0.0), x));
    S::div(x, S::add(S::splat(1.0), e))
}

/// `erfc(|x|)` (Numerical Recipes' Chebyshev fit: fractional error < 1.2e-7 everywhere).
#[inline(always)]
unsafe fn erfc_abs<S: Simd>(x: S::V) -> S::V {
    let ax = S::max(x, S::sub(S::splat(0.0), x));
    let t = S::div(S::splat(1.0), S::fma(S::splat(0.5), ax, S::splat(1.0)));
    let mut p = S::splat(0.170_872_77);
    p = S::fma(p, t, S::splat(-0.822_152_23));
    p = S::fma(p, t, S::splat(1.488_515_9));
    p = S::fma(p, t, S::splat(-1.135_203_98));
    p = S::fma(p, t, S::splat(0.278_868_07));
    p = S::fma(p, t, S::splat(-0.186_288_06));
    p = S::fma(p, t, S::splat(0.096_784_18));
    p = S::fma(p, t, S::splat(0.374_091_96));
    p = S::fma(p, t, S::splat(1.000_023_68));
    p = S::fma(p, t, S::splat(-1.265_512_23));
    S::mul(t, exp::<S>(S::sub(p, S::mul(ax, ax))))
}

/// `0.5 x (1 + erf(x / sqrt 2))` (the exact GELU).
///
/// `1 + erf(x / sqrt 2)` is formed as `erfc(|x| / sqrt 2)` for negative `x` and
/// `2 - erfc(x / sqrt 2)` otherwise: no cancellation, so the result keeps its relative precision
/// on the negative tail (where `1 + erf` would lose it all below about -5).
#[inline(always)]
pub(crate) unsafe fn gelu<S: Simd>(x: S::V) -> S::V {
    let c = erfc_abs::<S>(S::mul(x, S::splat(std::f32::consts::FRAC_1_SQRT_2)));
    let one_plus_erf = select_neg::<S>(x, c, S::sub(S::splat(2.0), c));
    S::mul(S::mul(x, S::splat(0.5)), one_plus_erf)
}

/// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (the tanh GELU, `gelu_new`).
///
/// Evaluated as `x / (1 + e^{-2z})` (`0.5 (1 + tanh z)` is `sigmoid(2z)`): no cancellation on the
/// negative tail, and exact at both ends (`e^{-2z}` saturates to 0 or a large value).
#[inline(always)]
pub(crate) unsafe fn gelu_tanh<S: Simd>(x: S::V) -> S::V {
    let z = S::mul(
        S::splat(-2.0 * 0.797_884_6),
        S::fma(S::mul(S::splat(0.044_715), S::mul(x, x)), x, x),
    );
    S::div(x, S::add(S::splat(1.0), exp::<S>(z)))
}

/// `if x < 0 { a } else { b }` lane-wise (finite `a`, `b`), from min/max arithmetic (no mask type
/// needed); exact: each lane is `a * 1 + b * 0` or `a * 0 + b * 1`.
#[inline(always)]
unsafe fn select_neg<S: Simd>(x: S::V, a: S::V, b: S::V) -> S::V {
    // s = 1 where x < 0, 0 where x >= 0 (x / |x| is not safe at 0).
    let big = S::splat(1.0e30);
    let s = S::min(
        S::max(S::mul(S::sub(S::splat(0.0), x), big), S::splat(0.0)),
        S::splat(1.0),
    );
    S::fma(a, s, S::mul(b, S::sub(S::splat(1.0), s)))
}

/// Portable 8-lane vector: plain arrays, vectorised by LLVM for the baseline target.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::ptr::read_unaligned(p as *const [f32; 8])
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::ptr::write_unaligned(p as *mut [f32; 8], v)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] - b[i])
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] / b[i])
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn round(a: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].round_ties_even())
    }
    #[inline(always)]
    unsafe fn pow2i(n: Self::V) -> Self::V {
        std::array::from_fn(|i| f32::from_bits((((n[i] as i32) + 127) as u32) << 23))
    }
    #[inline(always)]
    unsafe fn rsqrt(a: Self::V) -> Self::V {
        std::array::from_fn(|i| 1.0 / a[i].sqrt())
    }
    #[inline(always)]
    unsafe fn interleave(a: Self::V, b: Self::V) -> (Self::V, Self::V) {
        let lo = std::array::from_fn(|i| if i % 2 == 0 { a[i / 2] } else { b[i / 2] });
        let hi = std::array::from_fn(|i| {
            if i % 2 == 0 {
                a[4 + i / 2]
            } else {
                b[4 + i / 2]
            }
        });
        (lo, hi)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// 16 lanes of AVX-512F.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        }
        type V = __m512;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            _mm512_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            _mm512_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
            _mm512_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm512_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn round(a: Self::V) -> Self::V {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self::V) -> Self::V {
            let i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(i))
        }
        #[inline(always)]
        unsafe fn rsqrt(a: Self::V) -> Self::V {
            _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_sqrt_ps(a))
        }
        #[inline(always)]
        unsafe fn interleave(a: Self::V, b: Self::V) -> (Self::V, Self::V) {
            let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let hi =
                _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            (
                _mm512_permutex2var_ps(a, lo, b),
                _mm512_permutex2var_ps(a, hi, b),
            )
        }
    }

    /// 8 lanes of AVX2 with FMA.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        }
        type V = __m256;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            _mm256_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            _mm256_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
            _mm256_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm256_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn round(a: Self::V) -> Self::V {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self::V) -> Self::V {
            let i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
        }
        #[inline(always)]
        unsafe fn rsqrt(a: Self::V) -> Self::V {
            _mm256_div_ps(_mm256_set1_ps(1.0), _mm256_sqrt_ps(a))
        }
        #[inline(always)]
        unsafe fn interleave(a: Self::V, b: Self::V) -> (Self::V, Self::V) {
            let lo = _mm256_unpacklo_ps(a, b);
            let hi = _mm256_unpackhi_ps(a, b);
            (
                _mm256_permute2f128_ps::<0x20>(lo, hi),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            )
        }
    }
}

/// The widest instruction set of this CPU that the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (16 lanes).
    Avx512,
    /// AVX2 + FMA (8 lanes).
    Avx2,
    /// Anything else: portable arrays.
    Portable,
}

/// Detected once.
pub(crate) fn isa() -> Isa {
    use std::sync::OnceLock;
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("ACESTEP_KERNELS_PORTABLE").is_some() {
                return Isa::Portable;
            }
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// Defines `$name(args)` that runs the generic `$body::<S>(args)` compiled for the CPU's widest
/// ISA: `#[target_feature]` wrappers for AVX-512 and AVX2, the portable one elsewhere.
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $body:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body::<$crate::cpu::simd::Avx512>($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body::<$crate::cpu::simd::Avx2>($($arg),*)
                }
                match $crate::cpu::simd::isa() {
                    // SAFETY: the CPU was checked for the features these functions enable.
                    $crate::cpu::simd::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::cpu::simd::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::cpu::simd::Isa::Portable => {}
                }
            }
            // SAFETY: the portable vector needs no CPU feature.
            unsafe { $body::<$crate::cpu::simd::Portable>($($arg),*) }
        }
    };
}
pub(crate) use dispatch;

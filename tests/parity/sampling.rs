//! Parity of the flow-matching schedulers and the guidance functions with the reference
//! (`acestep/schedulers/*`, `acestep/apg_guidance.py`) on recorded inputs written by
//! `tools/make_fixtures.py --only sampling`.
//!
//! Tolerances (max|ours - ref| / max|ref|, f32): timesteps and sigmas 1e-6 (host math, on every
//! target); a 9-step sampling trajectory 1e-5; guidance 1e-5 (drift bounds in bf16 / f16:
//! `DRIFT`).

use std::collections::HashMap;
use std::sync::OnceLock;

use acestep::guidance::{self, MomentumBuffer, APG_NORM_THRESHOLD};
use acestep::schedulers::{self, ScheduleConfig, SchedulerType};
use acestep::testing::{assert_close, test_target, Drift};
use candle_core::{Device, Tensor};

/// Tensor math of the schedulers and guidance on the test target: f32 tolerances as stated per
/// check; in bf16 / f16 the inputs are rounded to the dtype and results held to these bounds.
const DRIFT: Drift = Drift {
    bf16: 5e-2,
    f16: 5e-3,
};

/// The fixture as recorded (host, f32): references, and inputs of host-side math.
fn io() -> &'static HashMap<String, Tensor> {
    static IO: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    IO.get_or_init(|| {
        let p = crate::fixtures().join("sampling.safetensors");
        candle_core::safetensors::load(p, &Device::Cpu).expect("fixture")
    })
}

/// The fixture's tensor `key` on the test target.
fn input(key: &str) -> Tensor {
    test_target()
        .put(&io()[key])
        .expect("fixture tensor on the test target")
}

fn vec_tensor(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn timesteps_match_the_reference() {
    let r = io();
    for kind in [
        SchedulerType::Euler,
        SchedulerType::Heun,
        SchedulerType::PingPong,
    ] {
        for steps in [9usize, 60] {
            let s = schedulers::build(kind, &ScheduleConfig::steps(steps)).unwrap();
            let want = &r[&format!("{kind}_{steps}_timesteps")];
            assert_close(
                &format!("{kind} timesteps, {steps} steps"),
                &vec_tensor(s.timesteps()),
                want,
                1e-6,
            );
        }
    }
    // Heun visits every timestep but the first twice.
    let h = schedulers::build(SchedulerType::Heun, &ScheduleConfig::steps(9)).unwrap();
    assert_eq!(h.timesteps().len(), 17);
}

#[test]
fn oss_steps_remap_like_the_reference() {
    let r = io();
    let oss = [1usize, 3, 7, 15, 30, 45, 60];
    let sigmas = schedulers::oss_sigmas(&oss, 3.0).unwrap();
    for kind in [SchedulerType::Euler, SchedulerType::PingPong] {
        let cfg = ScheduleConfig {
            sigmas: Some(sigmas.clone()),
            ..ScheduleConfig::steps(oss.len())
        };
        let s = schedulers::build(kind, &cfg).unwrap();
        assert_close(
            &format!("oss_steps {kind} timesteps"),
            &vec_tensor(s.timesteps()),
            &r[&format!("oss_{kind}_timesteps")],
            1e-6,
        );
        assert_close(
            &format!("oss_steps {kind} sigmas"),
            &vec_tensor(s.sigmas()),
            &r[&format!("oss_{kind}_sigmas")],
            1e-6,
        );
    }
    // The reference's Heun scheduler has no custom sigmas; neither do we, with a clear error.
    let cfg = ScheduleConfig {
        sigmas: Some(sigmas),
        ..ScheduleConfig::steps(oss.len())
    };
    let e = schedulers::build(SchedulerType::Heun, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("oss_steps") && e.contains("heun"), "{e}");
    assert!(schedulers::oss_sigmas(&[0, 3], 3.0).is_err());
}

#[test]
fn nine_step_trajectories_match_the_reference() {
    let r = io();
    for kind in [
        SchedulerType::Euler,
        SchedulerType::Heun,
        SchedulerType::PingPong,
    ] {
        let key = format!("{kind}_9");
        let mut s = schedulers::build(kind, &ScheduleConfig::steps(9)).unwrap();
        let w = &input(&format!("{key}_w"));
        let mut x = input(&format!("{key}_x0"));
        let noise = r
            .contains_key(&format!("{key}_noise"))
            .then(|| input(&format!("{key}_noise")));
        let ts: Vec<f32> = s.timesteps().to_vec();
        for (i, t) in ts.iter().enumerate() {
            let v = (x.tanh().unwrap().affine((*t / 1000.0) as f64, 0.0).unwrap() + w).unwrap();
            let mut draw = |_: &candle_core::Shape| -> acestep::Result<Tensor> {
                Ok(noise.as_ref().expect("pingpong noise").get(i)?)
            };
            x = s.step(&v, &x, 10.0, &mut draw).unwrap();
        }
        assert_eq!(s.step_index(), ts.len());
        assert_close(
            &format!("{kind}, 9 steps, omega 10"),
            &x,
            &r[&format!("{key}_final")],
            test_target().tol(1e-5, DRIFT),
        );
        // Stepping past the end is an error, not a panic.
        let v = x.zeros_like().unwrap();
        assert!(s.step(&v, &x, 10.0, &mut |_| Ok(v.clone())).is_err());
    }
}

#[test]
fn apg_with_momentum_matches_the_reference() {
    let r = io();
    let tol = test_target().tol(1e-5, DRIFT);
    let mut mb = MomentumBuffer::default();
    for i in 0..3 {
        let out = guidance::apg(
            &input(&format!("g_cond{i}")),
            &input(&format!("g_uncond{i}")),
            15.0,
            Some(&mut mb),
            0.0,
            APG_NORM_THRESHOLD,
        )
        .unwrap();
        assert_close(
            &format!("APG with momentum, call {i}"),
            &out,
            &r[&format!("apg_momentum{i}")],
            tol,
        );
    }
    let out = guidance::apg(
        &input("g_cond0"),
        &input("g_uncond0"),
        7.0,
        None,
        0.0,
        APG_NORM_THRESHOLD,
    )
    .unwrap();
    assert_close("APG without momentum", &out, &r["apg_plain"], tol);
    let out = guidance::apg(
        &input("g_cond1"),
        &input("g_small"),
        5.0,
        None,
        0.0,
        APG_NORM_THRESHOLD,
    )
    .unwrap();
    assert_close("APG below the norm threshold", &out, &r["apg_small"], tol);
}

#[test]
fn cfg_variants_match_the_reference() {
    let r = io();
    let tol = test_target().tol(1e-5, DRIFT);
    let (c, u) = (&input("g_cond0"), &input("g_uncond0"));
    assert_close("CFG", &guidance::cfg(c, u, 7.5).unwrap(), &r["cfg"], tol);
    let z0 = guidance::cfg_zero_star(c, u, 7.5, 0, 1, true).unwrap();
    assert_close(
        "CFG-zero* step 0 (zero init)",
        &z0,
        &r["cfg_star_step0"],
        0.0,
    );
    let z2 = guidance::cfg_zero_star(c, u, 7.5, 2, 1, true).unwrap();
    assert_close("CFG-zero* step 2", &z2, &r["cfg_star_step2"], tol);
    let d = guidance::cfg_double_condition(c, u, &input("g_only_text"), 5.0, 2.5).unwrap();
    assert_close("double-condition guidance", &d, &r["cfg_double"], tol);
}

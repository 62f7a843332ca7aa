//! Parity of every model component against the reference implementation (PyTorch), one binary:
//! the UMT5 text encoder, the DiT, the music DCAE + vocoder, the schedulers and guidance, the
//! text2music sampling loop and the editing tasks + LoRA, on the tiny random checkpoints that
//! `tools/make_fixtures.py` writes.
//!
//! The suite runs where `ACESTEP_TEST_DEVICE` / `ACESTEP_TEST_DTYPE` say
//! (`acestep::testing::test_target`; the CPU in f32 by default): in f32 every comparison holds
//! the module's f32 tolerance on any device; in bf16 / f16 each holds its stated drift bound
//! against the same f32 reference. Checks that only hold bit-exact (masks, token ids, lengths,
//! error messages) run on every target.
//!
//! ```sh
//! cargo test --test parity                              # CPU, f32
//! ACESTEP_TEST_DTYPE=bf16 cargo test --test parity      # CPU, bf16 drift
//! ACESTEP_TEST_DEVICE=cuda cargo test --features cuda --test parity
//! ```

mod dcae;
mod diffusion;
mod dit;
mod editing;
mod sampling;
mod umt5;

/// The fixture folder (`$ACESTEP_FIXTURES`, else the crate's `tests/fixtures`).
pub use acestep::testing::fixtures_dir as fixtures;

/// The DiT of the tiny four-component checkpoint on the test target (the sampling-loop and
/// editing cases run on it).
pub fn tiny_dit() -> acestep::dit::AceStepTransformer2DModel {
    let target = acestep::testing::test_target();
    acestep::dit::AceStepTransformer2DModel::load_dir(
        &fixtures().join("tiny/ace_step_transformer"),
        &target.device,
        target.dtype,
    )
    .expect("tiny DiT")
}

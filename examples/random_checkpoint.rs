//! Writes a full-size checkpoint of seeded random weights in the real folder layout, from the
//! tensor manifests of `tests/fixtures/manifests/` (configs and shapes of ACE-Step v1 3.5B), for
//! measuring memory and speed where the real weights are not available:
//!
//! ```sh
//! cargo run --release --example random_checkpoint -- /data/acestep-random
//! ```
//!
//! About 15 GB (f32); see [`acestep::testing::write_random_checkpoint`] for the values.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: random_checkpoint OUT_DIR")?,
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    acestep::testing::write_random_checkpoint(&out, &fixtures)?;
    Ok(())
}

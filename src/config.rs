//! Reading `config.json` files, and small serde helpers shared by the component configs.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Reads and deserialises a component's `config.json`, naming the file in every error.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.is_file() {
        return Err(Error::MissingPath {
            what: "config file".into(),
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Config {
        path: path.to_path_buf(),
        source,
    })
}

/// A config value given either once for every block or once per block (diffusers writes both
/// forms, e.g. `"decoder_act_fns": "silu"` or `["silu", "silu", ...]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value for every block.
    One(T),
    /// One value per block.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The value for each of `n` blocks; `None` if a per-block list has another length.
    pub fn expand(&self, n: usize) -> Option<Vec<T>> {
        match self {
            OneOrMany::One(v) => Some(vec![v.clone(); n]),
            OneOrMany::Many(v) if v.len() == n => Some(v.clone()),
            OneOrMany::Many(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_many_expands() {
        let one: OneOrMany<String> = serde_json::from_str("\"silu\"").unwrap();
        assert_eq!(one.expand(3).unwrap(), vec!["silu"; 3]);
        let many: OneOrMany<u32> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(many.expand(2).unwrap(), vec![1, 2]);
        assert!(many.expand(3).is_none());
    }

    #[test]
    fn bad_json_names_the_file() {
        let dir = std::env::temp_dir().join(format!("acestep-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(&p, "{ \"d_model\": ").unwrap();
        let e = read_config::<serde_json::Value>(&p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json"), "{e}");
        let e = read_config::<serde_json::Value>(&dir.join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.json"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! A scratch directory for capture files, removed on drop.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::netns::unique_prefix;

/// Set to keep capture files after a test (their directory is printed).
pub const KEEP_ENV: &str = "MIRROR_TESTS_KEEP";

/// A fresh directory under the system temp dir, removed with its contents on drop unless
/// [`KEEP_ENV`] is set.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/mirror-tests-<unique>`.
    pub fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("mirror-tests-{}", unique_prefix()));
        fs::create_dir_all(&path)
            .with_context(|| format!("creating scratch dir {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("cleanup: removing {}: {err}", self.path.display());
        }
    }
}

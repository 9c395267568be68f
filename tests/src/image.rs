//! The agent's runtime image built from a local binary, nothing pulled: the root filesystem laid
//! out by `deploy/rootfs.sh` (the binary and exactly the libraries it links), built `FROM scratch`
//! by `deploy/Dockerfile.prebuilt`. `cargo xtask image` and the image test share it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Once,
};

use anyhow::{Context as _, Result};

use crate::{
    agent::workspace_root,
    netns::stale_owner,
    proc::{command, run, run_stdout},
};

/// The Containerfile that takes a prebuilt root filesystem from its context (`rootfs/`).
pub const PREBUILT_FILE: &str = "deploy/Dockerfile.prebuilt";
/// The script that lays out the root filesystem (also run by the build stage of the Dockerfile).
pub const ROOTFS_SCRIPT: &str = "deploy/rootfs.sh";
/// Where the agent is in the image.
pub const IMAGE_BIN: &str = "usr/local/bin/mirror";

/// Lays out the build context of [`PREBUILT_FILE`] in `context` (emptied first): `rootfs/` with
/// `bin` and the libraries it links.
pub fn prepare_context(bin: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        fs::remove_dir_all(context).with_context(|| format!("emptying {}", context.display()))?;
    }
    fs::create_dir_all(context).with_context(|| format!("creating {}", context.display()))?;
    let script = workspace_root().join(ROOTFS_SCRIPT);
    run(Command::new("sh")
        .arg(&script)
        .arg(bin)
        .arg(context.join("rootfs")))
    .with_context(|| {
        format!(
            "laying out the image's root filesystem from {}",
            bin.display()
        )
    })?;
    Ok(())
}

/// `ENGINE build -f deploy/Dockerfile.prebuilt -t TAG CONTEXT` (podman or docker).
pub fn build(engine: &str, context: &Path, tag: &str) -> Result<()> {
    let file = workspace_root().join(PREBUILT_FILE);
    let mut cmd = Command::new(engine);
    cmd.arg("build")
        .arg("-f")
        .arg(&file)
        .args(["-t", tag])
        .arg(context);
    run(&mut cmd).with_context(|| format!("building the image {tag}"))?;
    Ok(())
}

/// The absolute paths `ldd` prints for `bin`: the libraries it links and the dynamic loader.
pub fn linked_files(bin: &Path) -> Result<Vec<PathBuf>> {
    let text = run(Command::new("ldd").arg(bin))
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())?;
    Ok(text
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// `program` if it is on `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The repository of the images the tests build; each tag is a [`unique_prefix`] name.
///
/// [`unique_prefix`]: crate::netns::unique_prefix
pub const TEST_REPOSITORY: &str = "localhost/mirror-test";

/// An image in podman's local store; removed on drop.
pub struct PodmanImage {
    tag: String,
}

impl PodmanImage {
    /// Builds `tag` from `context` (see [`prepare_context`]) with podman.
    pub fn build(context: &Path, tag: &str) -> Result<Self> {
        sweep_stale();
        // The guard first: a build that fails half way may still have tagged the image.
        let image = Self {
            tag: tag.to_owned(),
        };
        build("podman", context, tag)?;
        Ok(image)
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Writes the root filesystem of a container of the image (created, exported, removed; its
    /// name is `container`) into `dest`, which must not exist yet.
    pub fn export_rootfs(&self, container: &str, dest: &Path) -> Result<()> {
        fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
        let created = PodmanContainer::create(&self.tag, container)?;
        let tar = dest.with_extension("tar");
        let mut export = command("podman", ["export", "-o"]);
        export.arg(&tar).arg(&created.name);
        run(&mut export).with_context(|| format!("exporting the file system of {container}"))?;
        let untarred = run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(dest));
        let _ = fs::remove_file(&tar);
        untarred.with_context(|| format!("unpacking the export of {container}"))?;
        Ok(())
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        // Quiet when the build never tagged it.
        let _ = command("podman", ["rmi", "-f", self.tag.as_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Removes the containers and [`TEST_REPOSITORY`] images that [`crate::netns::unique_prefix`]
/// named for a process that no longer runs (a test run killed before its guards could clean up).
/// Runs once per process; failures are printed.
fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let listings: [(&[&str], [&str; 2], &str); 2] = [
            (
                &["ps", "-a", "--format", "{{.Names}}"],
                ["rm", "-f"],
                "container",
            ),
            (
                &["images", "--format", "{{.Repository}}:{{.Tag}}"],
                ["rmi", "-f"],
                "image",
            ),
        ];
        for (list, remove, what) in listings {
            let names = match run_stdout(&mut command("podman", list)) {
                Ok(names) => names,
                Err(err) => return eprintln!("sweeping stale test {what}s: {err:#}"),
            };
            for name in names.lines() {
                // Images by their tag in the tests' repository, containers by name.
                let unique = if what == "image" {
                    name.strip_prefix(TEST_REPOSITORY)
                        .and_then(|tag| tag.strip_prefix(':'))
                } else {
                    Some(name)
                };
                let Some(pid) = unique.and_then(stale_owner) else {
                    continue;
                };
                eprintln!("removing {what} {name}, left behind by test process {pid}");
                if let Err(err) = run(command("podman", remove).arg(name)) {
                    eprintln!("removing stale {what} {name}: {err:#}");
                }
            }
        }
    });
}

/// A created (never started) podman container; removed on drop.
struct PodmanContainer {
    name: String,
}

impl PodmanContainer {
    fn create(image: &str, name: &str) -> Result<Self> {
        let container = Self {
            name: name.to_owned(),
        };
        run(&mut command("podman", ["create", "--name", name, image]))
            .with_context(|| format!("creating a container of {image}"))?;
        Ok(container)
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        if let Err(err) = run(&mut command("podman", ["rm", "-f", self.name.as_str()])) {
            eprintln!("cleanup: removing container {}: {err:#}", self.name);
        }
    }
}

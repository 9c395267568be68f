//! The runtime image: built with podman from the binary under test (nothing pulled), its root
//! filesystem exported, and the agent started from inside it (chroot) with exactly the
//! DaemonSet's capabilities, mirroring a pod's pings to a kernel VxLAN remote.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, World,
    agent::{existing_mirror_bin, workspace_root},
    caps::{CapsWrapper, ProcessCaps, daemonset_capabilities, mask},
    diff_frames,
    image::{
        IMAGE_BIN, PREBUILT_FILE, PodmanImage, TEST_REPOSITORY, linked_files, on_path,
        prepare_context,
    },
    netns::unique_prefix,
    report,
    scratch::ScratchDir,
    skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, POD_IF, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;

#[test]
fn image_mirrors_pings_with_the_daemonsets_capabilities() -> Result<()> {
    let test = "image_mirrors_pings_with_the_daemonsets_capabilities";
    if skip_unless_root(test) {
        return Ok(());
    }
    if on_path("podman").is_none() {
        report(&format!(
            "{test}: skipped: podman is not installed (Debian package podman; `cargo xtask setup` installs it)"
        ));
        return Ok(());
    }
    if on_path("capsh").is_none() {
        report(&format!(
            "{test}: skipped: capsh is not installed (Debian package libcap2-bin; `cargo xtask setup` installs it)"
        ));
        return Ok(());
    }
    let scratch = ScratchDir::new()?;
    let name = unique_prefix();
    let context = scratch.join("context");
    let bin = existing_mirror_bin()?;
    prepare_context(&bin, &context)?;
    let image = PodmanImage::build(&context, &format!("{TEST_REPOSITORY}:{name}-image"))?;
    let root = scratch.join("root");
    image.export_rootfs(&format!("{name}-rootfs"), &root)?;
    check_contents(&root, &bin)?;

    let caps = daemonset_capabilities()?;
    report(&format!(
        "{test}: {} from {}, with {}",
        IMAGE_BIN,
        image.tag(),
        caps.join(", ")
    ));
    let wrapper = CapsWrapper::chrooted(&root, &caps)?;
    let world = World::new(VNI)?;
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut remote_capture = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = Agent::start_bin(
        &world.node,
        &wrapper.path,
        &AgentArgs::vxlan(&world, &[NODE_POD_IF]),
    )
    .context("the agent did not start from the image with the DaemonSet's capabilities")?;
    ProcessCaps::of(agent.pid())?
        .check_exactly(mask(&caps)?)
        .context("the agent holds other capabilities than the DaemonSet's")?;
    // The process is the image's binary, with the image as its root.
    let proc = format!("/proc/{}", agent.pid());
    let exe = fs::read_link(format!("{proc}/exe"))?;
    let agent_root = fs::read_link(format!("{proc}/root"))?;
    ensure!(
        agent_root == root && exe == root.join(IMAGE_BIN),
        "the agent runs {} in {}, not {IMAGE_BIN} of {}",
        exe.display(),
        agent_root.display(),
        root.display()
    );

    world
        .pod
        .run(
            "ping",
            ["-c", &PINGS.to_string(), "-i", "0.01", "-q", NODE_POD_IP],
        )
        .context("pinging the node from the pod")?;
    let arrived =
        remote_capture.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    report(&format!(
        "{test}: {arrived} frames decapsulated at the remote VTEP"
    ));
    let pod_frames = pod_capture.finish()?;
    ensure!(
        pod_frames.len() == FRAMES,
        "the pod itself saw {} frames, not {FRAMES}: the world is not quiet",
        pod_frames.len()
    );
    drop(agent);
    let remote_frames = remote_capture.finish()?;
    if let Some(diff) = diff_frames(&pod_frames, &remote_frames) {
        anyhow::bail!(
            "the agent of the image: the remote VTEP did not receive the pod's frames exactly: {diff}"
        );
    }
    Ok(())
}

/// The image holds the agent, the libraries it links and the loader (as `ldd` names them), and
/// no other file.
fn check_contents(root: &Path, bin: &Path) -> Result<()> {
    let mut files = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(Path::new("/").join(path.strip_prefix(root)?));
            }
        }
    }
    let mut expected: BTreeSet<PathBuf> = linked_files(bin)?.into_iter().collect();
    expected.insert(Path::new("/").join(IMAGE_BIN));
    ensure!(
        files == expected,
        "the image holds {files:?}, expected the agent and what it links: {expected:?}"
    );
    Ok(())
}

/// The runtime stage of deploy/Dockerfile (from its build stage's root filesystem) is the image
/// deploy/Dockerfile.prebuilt builds from a local one: the same instructions after `COPY`.
#[test]
fn dockerfile_runtime_stage_is_the_prebuilt_image() -> Result<()> {
    let read = |file: &str| -> Result<Vec<String>> {
        let path = workspace_root().join(file);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // The last stage, without comments and blank lines.
        let stage = text
            .rsplit_once("\nFROM ")
            .map_or(text.as_str(), |(_, last)| last);
        Ok(format!("FROM {stage}")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect())
    };
    let shipped = read("deploy/Dockerfile")?;
    let prebuilt = read(PREBUILT_FILE)?;
    ensure!(
        shipped.first().map(String::as_str) == Some("FROM scratch"),
        "deploy/Dockerfile's runtime stage is not FROM scratch: {shipped:?}"
    );
    ensure!(
        shipped
            .get(1)
            .is_some_and(|l| l.starts_with("COPY --from=build"))
            && prebuilt.get(1).is_some_and(|l| l.starts_with("COPY ")),
        "each runtime stage starts with one COPY of the root filesystem: {shipped:?}, {prebuilt:?}"
    );
    ensure!(
        shipped[2..] == prebuilt[2..] && shipped[0] == prebuilt[0],
        "deploy/Dockerfile's runtime stage {shipped:?} differs from {PREBUILT_FILE}'s {prebuilt:?}"
    );
    Ok(())
}

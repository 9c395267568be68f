//! Running the agent with only some capabilities, as a container runtime would, and reading what
//! a process really holds.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    agent::{existing_mirror_bin, target_dir, workspace_root},
    image::IMAGE_BIN,
    netns::unique_prefix,
};

/// Capability numbers (`linux/capability.h`) of the names the project uses.
const NUMBERS: [(&str, u32); 8] = [
    ("net_admin", 12),
    ("net_raw", 13),
    ("ipc_lock", 14),
    ("sys_ptrace", 19),
    ("sys_admin", 21),
    ("perfmon", 38),
    ("bpf", 39),
    ("checkpoint_restore", 40),
];

/// The bit mask of `caps` (names as `setpriv` spells them: `net_admin`).
pub fn mask(caps: &[String]) -> Result<u64> {
    caps.iter().try_fold(0_u64, |mask, cap| {
        let (_, bit) = NUMBERS
            .iter()
            .find(|(name, _)| *name == cap.as_str())
            .with_context(|| format!("unknown capability {cap}"))?;
        Ok(mask | 1 << bit)
    })
}

/// The capabilities the README says `mirror run` needs: those for every run, and those added
/// for `--pod NAME` without the API, as `setpriv` spells them. Read from the sentence "`mirror
/// run` needs root (or `CAP_...`, ..., and for `--pod NAME` without the Kubernetes API also
/// `CAP_...` and `CAP_...`, ...".
pub fn readme_capabilities() -> Result<(Vec<String>, Vec<String>)> {
    let path = workspace_root().join("README.md");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let paragraph: String = text
        .split("\n\n")
        .find(|p| p.trim_start().starts_with("`mirror run` needs root"))
        .with_context(|| {
            format!(
                "{} no longer says which capabilities `mirror run` needs",
                path.display()
            )
        })?
        .replace('\n', " ");
    let marker = "for `--pod NAME` without the Kubernetes API also";
    let (always, pod) = paragraph
        .split_once(marker)
        .with_context(|| format!("the README's capability sentence has no `{marker}` part"))?;
    // The pod part ends where the sentence says what pods known by IP need.
    let pod = pod.split(';').next().unwrap_or_default();
    let names = |text: &str| -> Vec<String> {
        text.split('`')
            .filter_map(|word| word.strip_prefix("CAP_"))
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let (always, pod) = (names(always), names(pod));
    ensure!(
        !always.is_empty() && !pod.is_empty(),
        "no capabilities found in the README's sentence: {paragraph}"
    );
    Ok((always, pod))
}

/// The `add:` list of the DaemonSet's capabilities, as `setpriv` spells them (`net_admin`).
pub fn daemonset_capabilities() -> Result<Vec<String>> {
    let path = workspace_root().join("deploy/daemonset.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().skip_while(|l| l.trim() != "add:").skip(1);
    let mut caps = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(cap) = line.strip_prefix("- ") else {
            break;
        };
        caps.push(cap.trim().to_ascii_lowercase());
    }
    ensure!(
        !caps.is_empty(),
        "no capabilities added in {}",
        path.display()
    );
    Ok(caps)
}

/// A script that runs the agent with only `caps` (bounding, inheritable and ambient sets) and a
/// 64 KiB memlock limit, as a container runtime would; removed on drop.
pub struct CapsWrapper {
    pub path: PathBuf,
}

impl CapsWrapper {
    pub fn new(caps: &[String]) -> Result<Self> {
        let mirror = existing_mirror_bin()?;
        let set = format!("-all,+{}", caps.join(",+"));
        let path = target_dir().join(format!("mirror-caps-{}.sh", unique_prefix()));
        let script = format!(
            "#!/bin/sh\nulimit -l 64 || exit 1\n\
             exec setpriv --bounding-set={set} --inh-caps={set} --ambient-caps={set} {} \"$@\"\n",
            mirror.display()
        );
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(Self { path })
    }

    /// Like [`CapsWrapper::new`], but the agent is `/usr/local/bin/mirror` of the root filesystem
    /// `root` (an image's), started inside it: chroot, then only `caps`, as a runtime starts a
    /// container. capsh does both in one process, so no tool from outside `root` runs in it.
    ///
    /// In a mount namespace of its own (gone with the agent: nothing to unmount), `root` gets
    /// what a runtime gives an unprivileged container, and nothing more: `/proc` with
    /// `/proc/sys` read-only, and `/sys` read-only (a fresh sysfs: the node namespace's devices).
    /// The agent mirrors with neither (tried); with them it tells whether the agent named in a
    /// leftover mirror veth's alias still runs (`/proc/PID`), and the test shows that the
    /// read-only `/proc/sys` (IPv6 stays on the mirror veth) and `/sys` (no threaded NAPI) do
    /// not stop it. No `/sys/fs/bpf` (the agent pins nothing) and no `/dev` (it opens no device).
    pub fn chrooted(root: &Path, caps: &[String]) -> Result<Self> {
        let iab = iab(mask(caps)?)?;
        let path = target_dir().join(format!("mirror-image-{}.sh", unique_prefix()));
        let script = format!(
            "#!/bin/sh\nulimit -l 64 || exit 1\n\
             exec unshare --mount --propagation private -- sh -ec '\n\
             root=$1; shift\n\
             mount -t proc proc \"$root/proc\"\n\
             mount -o bind,ro \"$root/proc/sys\" \"$root/proc/sys\"\n\
             mount -t sysfs -o ro sysfs \"$root/sys\"\n\
             exec capsh --chroot=\"$root\" --iab={iab} --shell=/{IMAGE_BIN} -- \"$@\"\n\
             ' sh '{}' \"$@\"\n",
            root.display()
        );
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(Self { path })
    }
}

/// capsh's `--iab` text for exactly the capabilities of `mask`: each of them inheritable and
/// ambient (`^N`), every other one this kernel knows dropped from the bounding set (`!N`).
fn iab(mask: u64) -> Result<String> {
    let last = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .context("reading /proc/sys/kernel/cap_last_cap")?;
    let last: u32 = last
        .trim()
        .parse()
        .context("/proc/sys/kernel/cap_last_cap")?;
    ensure!(last < 64, "cap_last_cap {last} does not fit a 64-bit mask");
    Ok((0..=last)
        .map(|n| {
            if mask & 1 << n == 0 {
                format!("!{n}")
            } else {
                format!("^{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(","))
}

impl Drop for CapsWrapper {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What a process holds: effective, permitted, bounding and ambient sets (`/proc/PID/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCaps {
    pub effective: u64,
    pub permitted: u64,
    pub bounding: u64,
    pub ambient: u64,
}

impl ProcessCaps {
    /// Reads the sets of process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> Result<u64> {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .with_context(|| format!("no {name} in {path}"))?;
            u64::from_str_radix(hex.trim(), 16).with_context(|| format!("{name} in {path}"))
        };
        Ok(Self {
            effective: field("CapEff:")?,
            permitted: field("CapPrm:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:")?,
        })
    }

    /// Fails unless every set is exactly `mask` (so no capability beyond it can be gained).
    pub fn check_exactly(&self, mask: u64) -> Result<()> {
        if [self.effective, self.permitted, self.bounding, self.ambient] != [mask; 4] {
            bail!("the process holds {self:x?}, expected exactly {mask:#x} in every set");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_readme() {
        assert_eq!(
            mask(&["net_admin".into(), "bpf".into()]).unwrap(),
            1 << 12 | 1 << 39
        );
        assert!(mask(&["sys_module".into()]).is_err());
        let (always, pod) = readme_capabilities().unwrap();
        assert!(always.contains(&"bpf".to_owned()), "{always:?}");
        assert_eq!(pod, ["sys_admin", "sys_ptrace"]);
        let daemonset = daemonset_capabilities().unwrap();
        assert!(
            !daemonset.contains(&"sys_admin".to_owned())
                && !daemonset.contains(&"sys_ptrace".to_owned()),
            "{daemonset:?}"
        );
        mask(&always).unwrap();
        mask(&pod).unwrap();
    }

    #[test]
    fn iab_keeps_exactly_the_mask() {
        let text = iab(mask(&["net_admin".into(), "bpf".into()]).unwrap()).unwrap();
        let items: Vec<&str> = text.split(',').collect();
        let kept: Vec<&str> = items
            .iter()
            .filter(|i| i.starts_with('^'))
            .copied()
            .collect();
        assert_eq!(kept, ["^12", "^39"]);
        assert!(items.contains(&"!0") && items.contains(&"!21"), "{text}");
        // Every capability the kernel knows, numbered from 0.
        assert_eq!(*items.last().unwrap(), format!("!{}", items.len() - 1));
    }
}

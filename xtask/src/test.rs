//! `cargo xtask test`: unit tests, then the privileged integration tests one at a time.

use anyhow::Result;
use mirror_tests::{agent::MIRROR_BIN_ENV, is_root};

use crate::{
    cargo::{build_mirror, cargo, status},
    setup::{kubernetes_validate, setup},
};

/// Seconds each fuzz target runs in the test: enough to catch a regression on the seeds and
/// near them; longer runs are `cargo xtask fuzz`.
const FUZZ_SMOKE_S: u32 = 15;

pub fn test(args: &[String]) -> Result<()> {
    setup()?;
    let bin = build_mirror()?;

    println!("== unit tests (cargo test --workspace --exclude mirror-tests)");
    status(
        &mut cargo(["test", "--workspace", "--exclude", "mirror-tests"]),
        "the unit tests",
    )?;

    println!("== fuzz smoke run (cargo xtask fuzz --seconds {FUZZ_SMOKE_S}: every target)");
    crate::fuzz::run(&[], FUZZ_SMOKE_S)?;

    println!("== integration tests (cargo test -p mirror-tests -- --test-threads=1)");
    if !is_root() {
        println!("   not root: the privileged tests will print why they skip");
    }
    // One at a time: each test builds its own world, and the machine has 2 cores.
    let mut integration = cargo(["test", "-p", "mirror-tests", "--", "--test-threads=1"]);
    integration
        .args(args)
        .env(MIRROR_BIN_ENV, &bin)
        .env("KUBERNETES_VALIDATE", kubernetes_validate());
    status(&mut integration, "the integration tests")?;

    // A filter asks for some tests, not the whole suite: the bench smoke is not one of them.
    if args.is_empty() {
        println!(
            "== bench smoke run (cargo xtask bench --smoke: figures present, no speed checked)"
        );
        crate::bench::smoke()?;
    } else {
        println!(
            "== bench smoke run: skipped, a test filter was given ({})",
            args.join(" ")
        );
    }

    println!("== soak, short (cargo xtask soak --seconds 20, on this build)");
    crate::soak::soak(&crate::soak::SoakArgs::short(bin))
}

//! The mirror's kernel side. See `mirror-common` for how a copy carries its origin.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The workspace lints hold here too, but for two that the kernel side has good cause to break.
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::needless_pass_by_value,
        reason = "aya's program macros hand each program its context by value"
    )
)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::inline_always,
        reason = "each program stays one function: eBPF programs must not call out"
    )
)]

#[cfg(target_arch = "bpf")]
mod clone;
#[cfg(target_arch = "bpf")]
mod config;
#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod filter;
#[cfg(target_arch = "bpf")]
mod tag;
#[cfg(target_arch = "bpf")]
mod xsk;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("mirror-ebpf holds eBPF programs; it is built for bpfel-unknown-none by mirror-user");
}

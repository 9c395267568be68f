//! Classic BPF (what libpcap compiles a pcap-filter expression to) translated into an eBPF
//! TC program, so that `--filter` runs in the classifier before the clone. The mapping follows
//! the kernel's own `bpf_convert_filter` for socket filters, with two differences that matter
//! for a program that sits in other programs' TCX chain:
//! - packet loads go through `bpf_skb_load_bytes`, not the legacy `LD_ABS`/`LD_IND`, whose
//!   out-of-bounds exit returns 0 (TCX "pass") and would skip the programs attached after us;
//! - the verdict is a tail call (kept) or "next" (left out), never a drop.
//!
//! Registers: A in R8, X in R7, the context in R6; the 16 scratch words live on the stack.

use std::fmt;

/// One eBPF instruction, as `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// A classic BPF instruction, as libpcap's `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classic {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Why a classic program cannot run in the kernel path (user space filters instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable(pub String);

impl fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the generated program finds its maps and what it does with a verdict.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// fd of the `FILTERS` program array.
    pub filters_fd: i32,
    /// Slot a kept packet continues at.
    pub selected_slot: u32,
    /// fd of the per-CPU `COUNTERS` array, and the slot that counts left-out packets.
    pub counters_fd: i32,
    pub left_out_counter: u32,
}

/// TCX "next": the original packet goes on untouched.
pub const TC_NEXT: i32 = -1;

// Classic BPF encoding (linux/filter.h, pcap/bpf.h).
mod c {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;
    pub const X: u16 = 0x08;
    pub const RET_A: u16 = 0x10;
    pub const TXA: u16 = 0x80;
    pub const NEG: u16 = 0x80;
    pub const DIV: u16 = 0x30;
    pub const MOD: u16 = 0x90;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const JA: u16 = 0x00;
    pub const MEMWORDS: u32 = 16;
}

// eBPF encoding (linux/bpf.h).
mod e {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;
    pub const IMM: u8 = 0x00;
    pub const MEM: u8 = 0x60;
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;
    pub const ADD: u8 = 0x00;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const MOV: u8 = 0xb0;
    pub const END: u8 = 0xd0;
    pub const TO_BE: u8 = 0x08;
    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    pub const PSEUDO_MAP_FD: u8 = 1;
    pub const FN_MAP_LOOKUP_ELEM: i32 = 1;
    pub const FN_TAIL_CALL: i32 = 12;
    pub const FN_SKB_LOAD_BYTES: i32 = 26;
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const CTX: u8 = 6;
const X: u8 = 7;
const A: u8 = 8;
const FP: u8 = 10;

/// Stack: the packet load buffer, the counter key, then `M[0..16]`.
const LOAD_BUF: i16 = -8;
const COUNTER_KEY: i16 = -4;
const MEM_BASE: i16 = -8 - 4 * c::MEMWORDS as i16;

/// `struct __sk_buff` offset of `len`.
const SKB_LEN: i16 = 0;

/// Where a jump goes before offsets are known.
#[derive(Clone, Copy, Debug)]
enum Label {
    Classic(usize),
    Match,
    NoMatch,
    CountDone,
}

struct Emitter {
    out: Vec<Insn>,
    /// (index of the jump instruction, where it goes).
    fixups: Vec<(usize, Label)>,
}

impl Emitter {
    fn push(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.out.push(Insn {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        });
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.out.len(), to));
        self.push(code, dst, src, 0, imm);
    }

    fn mov32_imm(&mut self, dst: u8, imm: u32) {
        self.push(e::ALU | e::MOV | e::K, dst, 0, 0, imm.cast_signed());
    }

    fn mov64_reg(&mut self, dst: u8, src: u8) {
        self.push(e::ALU64 | e::MOV | e::X, dst, src, 0, 0);
    }

    fn ld_map_fd(&mut self, dst: u8, fd: i32) {
        self.push(e::LD | e::DW | e::IMM, dst, e::PSEUDO_MAP_FD, 0, fd);
        self.push(0, 0, 0, 0, 0);
    }

    /// `dst = ntoh(packet[r2 .. r2 + size])`, or "no match" when the bytes are not there, as a
    /// classic load past the end ends the filter with 0. `r2` holds the offset.
    fn load_packet(&mut self, dst: u8, size: u16) {
        let (bytes, width) = match size {
            c::W => (4, e::W),
            c::H => (2, e::H),
            _ => (1, e::B),
        };
        self.mov64_reg(R1, CTX);
        self.mov64_reg(R3, FP);
        self.push(e::ALU64 | e::ADD | e::K, R3, 0, 0, i32::from(LOAD_BUF));
        self.mov32_imm(R4, bytes);
        self.push(e::JMP | e::CALL, 0, 0, 0, e::FN_SKB_LOAD_BYTES);
        self.jump(e::JMP | 0x50 | e::K, R0, 0, 0, Label::NoMatch); // JNE r0, 0
        self.push(e::LDX | e::MEM | width, dst, FP, LOAD_BUF, 0);
        if bytes > 1 {
            self.push(
                e::ALU | e::END | e::TO_BE,
                dst,
                0,
                0,
                bytes.cast_signed() * 8,
            );
        }
    }

    fn mem_slot(k: u32) -> Result<i16, Untranslatable> {
        if k >= c::MEMWORDS {
            return Err(Untranslatable(format!("scratch word M[{k}] out of range")));
        }
        Ok(MEM_BASE + 4 * k as i16)
    }
}

/// Translates `program` into an eBPF TC program (see the module comment for its verdicts).
pub fn translate(program: &[Classic], target: Target) -> Result<Vec<Insn>, Untranslatable> {
    if program.is_empty() {
        return Err(Untranslatable("empty program".into()));
    }
    let reachable = reachable(program)?;
    let mut em = Emitter {
        out: Vec::with_capacity(program.len() * 8 + 32),
        fixups: Vec::new(),
    };
    // Prologue: keep the context, zero A, X and the scratch words (the verifier refuses reads
    // of stack it has not seen written).
    em.mov64_reg(CTX, R1);
    em.mov32_imm(A, 0);
    em.mov32_imm(X, 0);
    for k in 0..c::MEMWORDS {
        em.push(e::ST | e::MEM | e::W, FP, 0, Emitter::mem_slot(k)?, 0);
    }
    let mut starts = vec![usize::MAX; program.len()];
    for (i, insn) in program.iter().enumerate() {
        if !reachable[i] {
            continue;
        }
        starts[i] = em.out.len();
        translate_one(&mut em, i, *insn)?;
    }
    // Epilogue: the verdicts, each emitted only if something jumps to it (the verifier
    // refuses unreachable instructions).
    let wanted = |l: fn(&Label) -> bool, em: &Emitter| em.fixups.iter().any(|(_, t)| l(t));
    let mut match_at = None;
    if wanted(|l| matches!(l, Label::Match), &em) {
        match_at = Some(em.out.len());
        em.mov64_reg(R1, CTX);
        em.ld_map_fd(R2, target.filters_fd);
        em.mov32_imm(R3, target.selected_slot);
        em.push(e::JMP | e::CALL, 0, 0, 0, e::FN_TAIL_CALL);
        // Only reached when the slot is empty: nothing to clone into.
        em.push(e::ALU64 | e::MOV | e::K, R0, 0, 0, TC_NEXT);
        em.push(e::JMP | e::EXIT, 0, 0, 0, 0);
    }
    let mut no_match_at = None;
    let mut count_done_at = None;
    if wanted(|l| matches!(l, Label::NoMatch), &em) {
        no_match_at = Some(em.out.len());
        em.push(
            e::ST | e::MEM | e::W,
            FP,
            0,
            COUNTER_KEY,
            target.left_out_counter.cast_signed(),
        );
        em.ld_map_fd(R1, target.counters_fd);
        em.mov64_reg(R2, FP);
        em.push(e::ALU64 | e::ADD | e::K, R2, 0, 0, i32::from(COUNTER_KEY));
        em.push(e::JMP | e::CALL, 0, 0, 0, e::FN_MAP_LOOKUP_ELEM);
        em.jump(e::JMP | e::JEQ | e::K, R0, 0, 0, Label::CountDone);
        em.push(e::LDX | e::MEM | e::DW, R1, R0, 0, 0);
        em.push(e::ALU64 | e::ADD | e::K, R1, 0, 0, 1);
        em.push(e::STX | e::MEM | e::DW, R0, R1, 0, 0);
        count_done_at = Some(em.out.len());
        em.push(e::ALU64 | e::MOV | e::K, R0, 0, 0, TC_NEXT);
        em.push(e::JMP | e::EXIT, 0, 0, 0, 0);
    }
    for (at, label) in std::mem::take(&mut em.fixups) {
        let to = match label {
            Label::Classic(i) => starts[i],
            Label::Match => match_at.unwrap_or(usize::MAX),
            Label::NoMatch => no_match_at.unwrap_or(usize::MAX),
            Label::CountDone => count_done_at.unwrap_or(usize::MAX),
        };
        let off = i64::try_from(to).unwrap_or(i64::MAX) - i64::try_from(at).unwrap_or(0) - 1;
        em.out[at].off = i16::try_from(off).map_err(|_| {
            Untranslatable("the filter is too long for a 16-bit jump in eBPF".into())
        })?;
    }
    Ok(em.out)
}

/// Classic instructions some path reaches (libpcap's optimiser can leave dead ones, which the
/// eBPF verifier would refuse). Jumps past the end are refused here, as the kernel's checker
/// refuses them.
fn reachable(program: &[Classic]) -> Result<Vec<bool>, Untranslatable> {
    let mut seen = vec![false; program.len()];
    seen[0] = true;
    // Classic jumps only go forward, so one pass in order sees every predecessor first.
    for i in 0..program.len() {
        if !seen[i] {
            continue;
        }
        let insn = program[i];
        let mut mark = |offset: u64| -> Result<(), Untranslatable> {
            let to = i as u64 + 1 + offset;
            let slot = usize::try_from(to)
                .ok()
                .and_then(|t| seen.get_mut(t))
                .ok_or_else(|| Untranslatable(format!("instruction {i} jumps past the end")))?;
            *slot = true;
            Ok(())
        };
        match insn.code & 0x07 {
            c::RET => {}
            c::JMP if insn.code & 0xf0 == c::JA => mark(u64::from(insn.k))?,
            c::JMP => {
                mark(u64::from(insn.jt))?;
                mark(u64::from(insn.jf))?;
            }
            _ => mark(0)?,
        }
    }
    Ok(seen)
}

fn translate_one(em: &mut Emitter, i: usize, insn: Classic) -> Result<(), Untranslatable> {
    let Classic { code, jt, jf, k } = insn;
    let unsupported = || Untranslatable(format!("instruction {i} (code {code:#06x}, k {k:#x})"));
    let next = |offset: u32| Label::Classic(i + 1 + offset as usize);
    // Offsets at or above 2^31 are the kernel's ancillary loads (SKF_AD_OFF and friends),
    // which libpcap emits only for live Linux captures, not for the dead handle we compile on.
    let packet_offset = |k: u32| {
        i32::try_from(k).map_err(|_| Untranslatable(format!("instruction {i}: ancillary load")))
    };
    match code & 0x07 {
        c::LD | c::LDX => {
            let dst = if code & 0x07 == c::LD { A } else { X };
            let size = code & 0x18;
            match code & 0xe0 {
                c::IMM => em.mov32_imm(dst, k),
                c::MEM => em.push(e::LDX | e::MEM | e::W, dst, FP, Emitter::mem_slot(k)?, 0),
                c::LEN => em.push(e::LDX | e::MEM | e::W, dst, CTX, SKB_LEN, 0),
                c::ABS if dst == A => {
                    em.mov32_imm(R2, packet_offset(k)?.cast_unsigned());
                    em.load_packet(A, size);
                }
                c::IND if dst == A => {
                    em.push(e::ALU | e::MOV | e::X, R2, X, 0, 0);
                    em.push(e::ALU | e::ADD | e::K, R2, 0, 0, packet_offset(k)?);
                    em.load_packet(A, size);
                }
                c::MSH if dst == X && size == c::B => {
                    // X = 4 * (P[k] & 0xf): the IPv4 header length.
                    em.mov32_imm(R2, packet_offset(k)?.cast_unsigned());
                    em.load_packet(X, c::B);
                    em.push(e::ALU | e::AND | e::K, X, 0, 0, 0xf);
                    em.push(e::ALU | e::LSH | e::K, X, 0, 0, 2);
                }
                _ => return Err(unsupported()),
            }
        }
        c::ST => em.push(e::STX | e::MEM | e::W, FP, A, Emitter::mem_slot(k)?, 0),
        c::STX => em.push(e::STX | e::MEM | e::W, FP, X, Emitter::mem_slot(k)?, 0),
        c::ALU => {
            let op = (code & 0xf0) as u8;
            if code & 0xf0 == c::NEG {
                em.push(e::ALU | op | e::K, A, 0, 0, 0);
            } else if code & c::X != 0 {
                if matches!(code & 0xf0, c::DIV | c::MOD) {
                    // Classic division by zero ends the filter with 0.
                    em.jump(e::JMP | e::JEQ | e::K, X, 0, 0, Label::NoMatch);
                }
                em.push(e::ALU | op | e::X, A, X, 0, 0);
            } else {
                let bad_divisor = matches!(code & 0xf0, c::DIV | c::MOD) && k == 0;
                let bad_shift = matches!(code & 0xf0, c::LSH | c::RSH) && k >= 32;
                if bad_divisor || bad_shift || op > 0xa0 {
                    return Err(unsupported());
                }
                em.push(e::ALU | op | e::K, A, 0, 0, k.cast_signed());
            }
        }
        c::JMP => {
            let op = (code & 0xf0) as u8;
            if code & 0xf0 == c::JA {
                em.jump(e::JMP | e::JA, 0, 0, 0, next(k));
                return Ok(());
            }
            if op > 0x40 {
                return Err(unsupported());
            }
            // Unsigned 32-bit compares, as classic BPF's.
            if code & c::X != 0 {
                em.jump(e::JMP32 | op | e::X, A, X, 0, next(u32::from(jt)));
            } else {
                em.jump(
                    e::JMP32 | op | e::K,
                    A,
                    0,
                    k.cast_signed(),
                    next(u32::from(jt)),
                );
            }
            if jf != 0 {
                em.jump(e::JMP | e::JA, 0, 0, 0, next(u32::from(jf)));
            }
        }
        c::RET => match code & 0x18 {
            0 => {
                let verdict = if k == 0 { Label::NoMatch } else { Label::Match };
                em.jump(e::JMP | e::JA, 0, 0, 0, verdict);
            }
            c::RET_A | c::X => {
                let reg = if code & 0x18 == c::RET_A { A } else { X };
                em.jump(e::JMP | e::JEQ | e::K, reg, 0, 0, Label::NoMatch);
                em.jump(e::JMP | e::JA, 0, 0, 0, Label::Match);
            }
            _ => return Err(unsupported()),
        },
        c::MISC => {
            if code & 0xf8 == c::TXA {
                em.push(e::ALU | e::MOV | e::X, A, X, 0, 0);
            } else if code & 0xf8 == 0 {
                em.push(e::ALU | e::MOV | e::X, X, A, 0, 0);
            } else {
                return Err(unsupported());
            }
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target = Target {
        filters_fd: 3,
        selected_slot: 2,
        counters_fd: 4,
        left_out_counter: 7,
    };

    fn classic(code: u16, jt: u8, jf: u8, k: u32) -> Classic {
        Classic { code, jt, jf, k }
    }

    #[test]
    fn accept_all_jumps_to_the_tail_call_only() {
        let out = translate(&[classic(c::RET, 0, 0, 0xffff)], TARGET).unwrap();
        // No "left out" block: nothing jumps there.
        assert!(
            !out.iter()
                .any(|i| i.code == e::JMP | e::CALL && i.imm == e::FN_MAP_LOOKUP_ELEM)
        );
        let call = out
            .iter()
            .position(|i| i.code == e::JMP | e::CALL && i.imm == e::FN_TAIL_CALL)
            .unwrap();
        assert_eq!(out[call - 3].imm, 3, "the FILTERS fd in the map load");
        assert_eq!(out[call - 3].regs >> 4, e::PSEUDO_MAP_FD);
        assert_eq!(out[call - 1].imm, 2, "the selected slot");
        assert_eq!(out.last().unwrap().code, e::JMP | e::EXIT);
    }

    #[test]
    fn jumps_land_on_the_translated_targets() {
        // ldh [12]; jeq #0x800 jt 0 jf 1; ret #1; ret #0
        let program = [
            classic(c::LD | c::H | c::ABS, 0, 0, 12),
            classic(c::JMP | 0x10, 0, 1, 0x800),
            classic(c::RET, 0, 0, 1),
            classic(c::RET, 0, 0, 0),
        ];
        let out = translate(&program, TARGET).unwrap();
        let jeq = out
            .iter()
            .position(|i| i.code == e::JMP32 | e::JEQ | e::K)
            .unwrap();
        assert_eq!(out[jeq].imm, 0x800);
        // jt = 0 falls into the next classic instruction: the jump after the "jf" jump.
        let to = |at: usize| {
            at.wrapping_add(1)
                .wrapping_add_signed(isize::from(out[at].off))
        };
        assert_eq!(to(jeq), jeq + 2);
        assert_eq!(out[jeq + 1].code, e::JMP | e::JA);
        assert_eq!(to(jeq + 1), jeq + 3, "jf lands on `ret #0`");
    }

    #[test]
    fn dead_code_and_ancillary_loads() {
        // ret #0 followed by an instruction nothing reaches: it is not translated.
        let out = translate(
            &[classic(c::RET, 0, 0, 0), classic(0xffff, 0, 0, 0)],
            TARGET,
        )
        .unwrap();
        assert!(!out.iter().any(|i| i.imm == e::FN_TAIL_CALL));
        let err = translate(
            &[
                classic(c::LD | c::B | c::ABS, 0, 0, 0xffff_f000),
                classic(c::RET, 0, 0, 1),
            ],
            TARGET,
        )
        .unwrap_err();
        assert!(err.0.contains("ancillary"), "{err}");
        let err = translate(&[classic(c::JMP, 0, 0, 5)], TARGET).unwrap_err();
        assert!(err.0.contains("past the end"), "{err}");
        assert!(translate(&[], TARGET).is_err());
    }
}

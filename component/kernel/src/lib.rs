//! The hashing kernel: the engine's xxh3-128 over bytes the host lays out in this module's
//! memory, built from the engine crate's `hash` module as a core WebAssembly module with no
//! imports at all. It computes digests and nothing else, so it can reach nothing but its own
//! memory.
//!
//! The component decides what is hashed; the host reads those files (confined to their root)
//! straight into this memory, so file bytes never become host objects, and asks for digests
//! in few calls, since one call costs far more than hashing a small file:
//! - `reserve(bytes)`: the address of a buffer of at least `bytes` bytes, kept until the next
//!   `reserve` asks for more;
//! - `digests(spans, count, out)`: `count` spans at `spans`, each a little-endian `u32`
//!   address and `u32` length; the 32 hex digits of each span's digest are written at `out`,
//!   one after another;
//! - `update(address, length)` feeds the running digest of a file read in pieces;
//!   `finish(out)` writes its 32 hex digits at `out` and starts the next one.

use std::cell::RefCell;

use jobattach_engine::hash::{self, Hasher};

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RUNNING: RefCell<Hasher> = RefCell::new(Hasher::new());
}

/// The bytes at `address` in this module's memory.
///
/// # Safety
/// The host names only ranges of this module's memory, where any bytes are valid `u8`s; a
/// range past its end traps (WebAssembly checks every access), it cannot reach anything else.
unsafe fn bytes<'a>(address: u32, length: u32) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(address as usize as *const u8, length as usize) }
}

/// # Safety
/// As [`bytes`], for a range the host gave to be written.
unsafe fn digits_at<'a>(address: u32) -> &'a mut [u8; 32] {
    unsafe { &mut *(address as usize as *mut [u8; 32]) }
}

#[no_mangle]
pub extern "C" fn reserve(size: u32) -> u32 {
    BUFFER.with_borrow_mut(|b| {
        if b.len() < size as usize {
            *b = vec![0; size as usize];
        }
        b.as_mut_ptr() as usize as u32
    })
}

/// # Safety
/// `spans` and `out` name ranges of this module's memory (see [`bytes`]).
#[no_mangle]
pub unsafe extern "C" fn digests(spans: u32, count: u32, out: u32) {
    for i in 0..count {
        let span = unsafe { bytes(spans + 8 * i, 8) };
        let word = |at: usize| u32::from_le_bytes(span[at..at + 4].try_into().unwrap());
        let digest = hash::digest(unsafe { bytes(word(0), word(4)) });
        *unsafe { digits_at(out + 32 * i) } = hash::hex_digits(digest);
    }
}

/// # Safety
/// `address` and `length` name a range of this module's memory (see [`bytes`]).
#[no_mangle]
pub unsafe extern "C" fn update(address: u32, length: u32) {
    RUNNING.with_borrow_mut(|h| h.update(unsafe { bytes(address, length) }));
}

/// # Safety
/// `out` names 32 bytes of this module's memory (see [`bytes`]).
#[no_mangle]
pub unsafe extern "C" fn finish(out: u32) {
    let digest = RUNNING.with_borrow_mut(std::mem::take).finish();
    *unsafe { digits_at(out) } = hash::hex_digits(digest);
}

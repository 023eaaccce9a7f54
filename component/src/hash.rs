//! xxh3-128, the `xxh128` of Deadline Cloud manifests, as a streaming hasher.
//!
//! Built with `+simd128`, xxhash-rust uses `core::arch::wasm32` vectors for its accumulate loop.

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Bytes asked of the filesystem per read: large enough that the per-call cost of WASI is
/// negligible, small enough that memory stays constant whatever the file size.
pub const CHUNK: u64 = 1 << 20;

/// A streaming xxh3-128 hasher whose result is spelled as manifests spell it.
#[derive(Default, Clone)]
pub struct Hasher(Xxh3);

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }

    /// The digest as 32 lowercase hex digits.
    pub fn finish_hex(&self) -> String {
        hex(self.finish())
    }
}

/// The digest of bytes held whole (faster than streaming them for small inputs).
pub fn digest(bytes: &[u8]) -> u128 {
    xxh3_128(bytes)
}

/// Spells a 128-bit digest as 32 lowercase hex digits, the form used in manifests and keys.
pub fn hex(digest: u128) -> String {
    String::from_utf8(hex_digits(digest).to_vec()).expect("hex digits are ASCII")
}

/// [`hex`] as bytes, without allocating.
pub fn hex_digits(digest: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 32];
    for (i, byte) in digest.to_be_bytes().iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 15)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // Values from the reference xxHash (xxh128sum) for these inputs.
        assert_eq!(Hasher::new().finish_hex(), "99aa06d3014798d86001c324468d497f");
        let mut h = Hasher::new();
        h.update(b"abc");
        assert_eq!(h.finish_hex(), "06b05ab6733a618578af5f94892f3950");
    }

    #[test]
    fn streaming_matches_one_shot_across_chunk_boundaries() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for split in [0, 1, 16, 128, 240, 241, 1024, 4999, 5000] {
            let mut h = Hasher::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish_hex(), hex(digest(&data)), "split {split}");
            assert_eq!(h.finish_hex(), format!("{:032x}", digest(&data)));
        }
    }
}

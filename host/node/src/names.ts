// Names as the contract carries them (wit/engine.wit): a POSIX name is bytes, and each byte B
// that is not part of valid UTF-8 stands for the lone surrogate U+DC00 + B, the rule of
// Python's `surrogateescape` and of the official encoder's manifests.

/** The length of the valid UTF-8 sequence at `i`, or 0 when the byte there starts none. */
function sequenceAt(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean =>
    i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // No overlong forms, and no encoded surrogates (U+D800..U+DFFF).
    const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

// ignoreBOM keeps a leading U+FEFF: in a name it is a character, not a byte-order mark.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A name's bytes as the contract's text. */
export function nameText(name: Uint8Array): string {
  try {
    return decoder.decode(name); // valid UTF-8, the common case: no escape to apply
  } catch {
    // Escapes below.
  }
  let out = "";
  let start = 0;
  let i = 0;
  while (i < name.length) {
    const n = sequenceAt(name, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += decoder.decode(name.subarray(start, i)) + String.fromCharCode(0xdc00 + name[i]!);
    start = ++i;
  }
  return out + decoder.decode(name.subarray(start));
}

const encoder = new TextEncoder();

/** The bytes `nameText` spelled as `name`; a lone surrogate outside U+DC80..U+DCFF is refused. */
export function nameBytes(name: string): Buffer {
  if (name.isWellFormed()) return Buffer.from(encoder.encode(name));
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < name.length) {
      const next = name.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (u < 0xd800 || u > 0xdfff) continue;
    if (u < 0xdc80 || u > 0xdcff) throw new TypeError(`${JSON.stringify(name)} is not a name`);
    parts.push(encoder.encode(name.slice(start, i)), Uint8Array.of(u - 0xdc00));
    start = i + 1;
  }
  parts.push(encoder.encode(name.slice(start)));
  return Buffer.concat(parts);
}

// The hashing kernel: the engine's xxh3-128 as a core WebAssembly module with no imports
// (component/kernel), built from the engine crate's own hashing code. It computes digests and
// nothing else: given no function to call, it can reach nothing but its own memory. The host
// reads files straight into that memory (hashing.ts) and asks for many digests per call.

import * as fs from "node:fs";

/** Bytes of file content the kernel holds at once: small files laid out side by side, or one
 * piece of a large file. Calls into the kernel cost little from Node, so the buffer is small
 * enough that what was read is still in the CPU's cache when it is hashed: here 1 MiB hashed
 * 4 x 256 MiB 7% faster than 2 MiB, and 512 KiB no faster than 1 MiB beyond the noise. */
export const BUFFER = 1 << 20;
/** Files whose digests one call computes at most. */
export const SPANS = 1024;
const DIGITS = 32; // hex digits per digest

interface Exports {
  memory: WebAssembly.Memory;
  reserve(bytes: number): number;
  digests(spans: number, count: number, out: number): void;
  update(address: number, length: number): void;
  finish(out: number): void;
}

/** The kernel the package ships, copied beside the component by scripts/build.mjs. */
const KERNEL = new URL("../generated/kernel.wasm", import.meta.url);
let compiled: WebAssembly.Module | undefined;

/** The kernel compiled, once per process. */
export function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(fs.readFileSync(KERNEL));
  return compiled;
}

/** One instance of the kernel: a buffer to read into, and digests of what it holds. */
export class Kernel {
  readonly #e: Exports;
  /** Where the buffer starts in the kernel's memory; the span table and digits follow it. */
  readonly base: number;
  readonly #spans: number;
  readonly #out: number;
  #bytes: Uint8Array;
  #words: DataView;

  constructor() {
    const instance = new WebAssembly.Instance(kernelModule(), {});
    this.#e = instance.exports as unknown as Exports;
    this.base = this.#e.reserve(BUFFER + SPANS * (8 + DIGITS));
    this.#spans = this.base + BUFFER;
    this.#out = this.#spans + SPANS * 8;
    // Taken after `reserve`: growing the memory detaches the views made before.
    this.#bytes = new Uint8Array(this.#e.memory.buffer);
    this.#words = new DataView(this.#e.memory.buffer);
  }

  /** The kernel's whole memory, to read into at `base + offset`. */
  memory(): Uint8Array {
    if (this.#bytes.buffer !== this.#e.memory.buffer) {
      this.#bytes = new Uint8Array(this.#e.memory.buffer);
      this.#words = new DataView(this.#e.memory.buffer);
    }
    return this.#bytes;
  }

  /** The digests of `spans` of the buffer (offset, length, offset, length, ...), at most
   * `SPANS` of them. */
  digests(spans: readonly number[]): string[] {
    const count = spans.length / 2;
    this.memory();
    for (let i = 0; i < spans.length; i += 2) {
      this.#words.setUint32(this.#spans + 4 * i, this.base + spans[i]!, true);
      this.#words.setUint32(this.#spans + 4 * i + 4, spans[i + 1]!, true);
    }
    this.#e.digests(this.#spans, count, this.#out);
    const text = this.#text(count);
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = text.slice(i * DIGITS, (i + 1) * DIGITS);
    return out;
  }

  /** Feeds `length` bytes of the buffer from `offset` to the running digest. */
  update(offset: number, length: number): void {
    this.#e.update(this.base + offset, length);
  }

  /** The running digest; the next `update` starts another. */
  finish(): string {
    this.#e.finish(this.#out);
    return this.#text(1);
  }

  #text(count: number): string {
    return Buffer.from(this.#e.memory.buffer, this.#out, count * DIGITS).toString("latin1");
  }
}

let shared: Kernel | undefined;

/** The process's kernel (hashing runs on the calling thread, one call at a time). */
export function kernel(): Kernel {
  shared ??= new Kernel();
  return shared;
}

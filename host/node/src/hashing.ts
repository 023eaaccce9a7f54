// Hashing files: the component checks what is asked (engine.ts), the host reads, the kernel
// hashes. Each file is opened below its root by the sandbox's walk (never outside it, never
// through a symlink that leads out) and read with `fs.readSync` straight into the kernel's
// memory (kernel.ts): small files side by side, many digests per call; a large one in pieces
// of the kernel's buffer. Errors are the component's `hash-files` errors, kind and words.

import * as fs from "node:fs";

import type * as Types from "../generated/interfaces/jobattach-engine-types.js";
import { BUFFER, type Kernel, kernel, SPANS } from "./kernel.js";
import { type Base, fsError, type FsError, Opener } from "./sandbox.js";

/** What to hash: a path below the root; `[path, size]` with the size from a listing (exactly
 * that many bytes are hashed); or `[path, size, chunk]` for the digest of each `chunk` bytes. */
export type HashItem = string | [string, number] | [string, number, number];
/** One digest, or the digests of each chunk of a file. */
export type Digest = string | string[];

/** An error of the engine's kind, thrown as the component's errors are (`payload`). */
export class Failure extends Error {
  readonly payload: Types.Error;

  constructor(kind: Types.ErrorKind, message: string, path: string) {
    super(`${path}: ${message}`);
    this.payload = { kind, message, path };
  }
}

/** What a WASI error means, in the component's categories and words (its `fs_error`). */
const MEANING: Partial<Record<FsError, [Types.ErrorKind, string]>> = {
  "no-entry": ["not-found", "no such file or directory"],
  "not-permitted": ["permission-denied", "not permitted (outside the granted root?)"],
  access: ["permission-denied", "permission denied"],
  loop: ["permission-denied", "too many levels of symbolic links"],
  "is-directory": ["wrong-type", "is a directory"],
  "not-directory": ["wrong-type", "a parent is not a directory"],
};

/** `e` (thrown while `doing` on `path`) as the component words it. A name that is not UTF-8
 * was read through `host-files.read-raw`, whose errors are `io`, its code in words. */
function failure(e: unknown, doing: string, path: string, raw: boolean): Failure {
  if (e instanceof Failure) return e;
  const code = typeof e === "string" ? e : fsError(e);
  const meant = raw ? undefined : MEANING[code as FsError];
  if (meant === undefined) return new Failure("io", `${doing}: ${code}`, path);
  return new Failure(meant[0], `${doing}: ${meant[1]}`, path);
}

function shorter(path: string, got: number, end: number): Failure {
  return new Failure("io", `is shorter than listed (${got} of ${end} bytes): it changed`, path);
}

/**
 * Hashes items below one root in order, into `out`. A small file (or chunk) is read into the
 * buffer beside others and hashed with them when the buffer is full or the batch ends
 * (`flush`); a larger one is hashed piece by piece at once.
 */
export class Batch {
  readonly #opener: Opener;
  readonly #k: Kernel = kernel();
  #spans: number[] = []; // offset, length of each file laid out in the buffer
  #into: Digest[][] = []; // where each one's digest goes
  #at: number[] = [];
  #used = 0;

  constructor(root: Base) {
    this.#opener = new Opener(root);
  }

  /** Closes what the batch keeps open; digests not yet flushed are dropped. */
  close(): void {
    this.#opener.close();
  }

  /** Hashes `item` into `out[at]`, now or at the next `flush`. Throws a `Failure`. */
  hash(item: HashItem, out: Digest[], at: number): void {
    const [path, size, chunk] = typeof item === "string" ? [item, undefined, 0] : item;
    // WASI carries Unicode names only: the component read the others through read-raw,
    // which follows no symlink as the last segment and gives `io` errors.
    const raw = !path.isWellFormed();
    let fd: number;
    try {
      fd = this.#opener.open(path, !raw);
    } catch (e) {
      throw failure(e, raw ? "cannot read" : "cannot open", path, raw);
    }
    try {
      if (raw || size === undefined) checkRegular(fd, path, raw);
      if (size === undefined) this.#whole(fd, path, out, at);
      else if (!chunk) this.#span(fd, path, 0, size, out, at);
      else {
        const digests: string[] = (out[at] = []);
        for (let start = 0, i = 0; start < size; start += chunk, i++)
          this.#span(fd, path, start, Math.min(chunk, size - start), digests, i);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Hashes the files laid out in the buffer, into their places, and empties it. */
  flush(): void {
    if (this.#spans.length === 0) return;
    const digests = this.#k.digests(this.#spans);
    for (let i = 0; i < digests.length; i++) this.#into[i]![this.#at[i]!] = digests[i]!;
    this.#spans = [];
    this.#into = [];
    this.#at = [];
    this.#used = 0;
  }

  /** A file of unknown length: read whole with one byte more than its size, which shows a
   * file that grew since (then it is read again, in pieces, to its end). */
  #whole(fd: number, path: string, out: Digest[], at: number): void {
    const n = fs.fstatSync(fd).size + 1;
    if (n <= BUFFER) {
      this.#room(n);
      const got = this.#read(fd, path, this.#used, n, 0);
      if (got < n) return this.#lay(got, out, at);
    }
    this.flush();
    this.#pieces(() => {
      for (let offset = 0, got = BUFFER; got === BUFFER; offset += got) {
        got = this.#read(fd, path, 0, BUFFER, offset);
        this.#k.update(0, got);
      }
    });
    out[at] = this.#k.finish();
  }

  /** Exactly `length` bytes at `start`: a file found shorter is an error. */
  #span(fd: number, path: string, start: number, length: number, out: Digest[], at: number) {
    const end = start + length;
    if (length <= BUFFER) {
      this.#room(length);
      const got = this.#read(fd, path, this.#used, length, start);
      if (got < length) throw shorter(path, start + got, end);
      return this.#lay(length, out, at);
    }
    this.flush();
    this.#pieces(() => {
      for (let offset = start; offset < end;) {
        const want = Math.min(BUFFER, end - offset);
        const got = this.#read(fd, path, 0, want, offset);
        this.#k.update(0, got);
        offset += got;
        if (got < want) throw shorter(path, offset, end);
      }
    });
    out[at] = this.#k.finish();
  }

  /** Runs `feed`, which feeds the running digest piece by piece; if it fails, the digest is
   * dropped, so the next file starts one of its own. */
  #pieces(feed: () => void): void {
    try {
      feed();
    } catch (e) {
      this.#k.finish();
      throw e;
    }
  }

  /** Makes room for `length` more bytes laid out. */
  #room(length: number): void {
    if (length > BUFFER - this.#used || this.#spans.length === 2 * SPANS) this.flush();
  }

  /** Keeps the `length` bytes just read at the end of the buffer, to hash at `flush`. */
  #lay(length: number, out: Digest[], at: number): void {
    this.#spans.push(this.#used, length);
    this.#into.push(out);
    this.#at.push(at);
    this.#used += length;
  }

  /** Reads `length` bytes at `position` of `fd` to `offset` in the buffer, as far as the
   * file goes: how many bytes that was. */
  #read(fd: number, path: string, offset: number, length: number, position: number): number {
    const memory = this.#k.memory();
    const to = this.#k.base + offset;
    let got = 0;
    try {
      while (got < length) {
        const n = fs.readSync(fd, memory, to + got, length - got, position + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw failure(e, "cannot read", path, !path.isWellFormed());
    }
    return got;
  }
}

/** Refuses what is not a regular file, as the component does before reading one to its end
 * (and the host's read-raw before every read). */
function checkRegular(fd: number, path: string, raw: boolean): void {
  const st = fs.fstatSync(fd);
  if (st.isFile()) return;
  const why = st.isDirectory() ? "is a directory, not a regular file" : "is not a regular file";
  throw raw ? new Failure("io", `cannot read: ${why}`, path) : new Failure("wrong-type", why, path);
}

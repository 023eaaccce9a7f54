// The `wasi:filesystem` imports the component uses, implemented here rather than by the stock
// shim: synchronous calls on the calling thread, and every path resolved by the sandbox's
// walk (sandbox.ts). Only reading is offered; the component writes nothing.

import * as fs from "node:fs";

import { type Base, type FsError, fsError, Root, walk } from "./sandbox.js";

/** The roots granted for the call being made, by guest name (`/r0`, ...). */
let granted: ReadonlyMap<string, Root> = new Map();

/** Runs `fn` with `roots` granted, as the call's preopened directories. */
export function serving<T>(roots: ReadonlyMap<string, Root>, fn: () => T): T {
  const previous = granted;
  granted = roots;
  try {
    return fn();
  } finally {
    granted = previous;
  }
}

/** The granted root named `guest`, or undefined. */
export function grantedRoot(guest: string): Root | undefined {
  return granted.get(guest);
}

// One buffer for every read: jco's lowering copies it into the component's memory before the
// call returns, so nothing else sees it. The component reads at most 1 MiB at a time; a
// larger request gets 1 MiB, which it takes for a short read, not the end.
const BUFFER = 1 << 20;
const scratch = Buffer.allocUnsafe(BUFFER);

/** Reads up to `length` bytes (at most 1 MiB) at `offset` of `fd` into the shared buffer. */
export function readAt(fd: number, length: number, offset: bigint): Buffer {
  const n = fs.readSync(fd, scratch, 0, Math.min(length, BUFFER), offset);
  return scratch.subarray(0, n);
}

interface Datetime {
  seconds: bigint;
  nanoseconds: number;
}

function datetime(ns: bigint): Datetime {
  let seconds = ns / 1_000_000_000n;
  let rest = ns % 1_000_000_000n;
  if (rest < 0n) {
    seconds -= 1n;
    rest += 1_000_000_000n;
  }
  return { seconds, nanoseconds: Number(rest) };
}

function descriptorType(st: fs.BigIntStats): string {
  if (st.isFile()) return "regular-file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symbolic-link";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isBlockDevice()) return "block-device";
  if (st.isCharacterDevice()) return "character-device";
  return "unknown";
}

function descriptorStat(st: fs.BigIntStats) {
  return {
    type: descriptorType(st),
    linkCount: st.nlink,
    size: st.size,
    dataAccessTimestamp: datetime(st.atimeNs),
    dataModificationTimestamp: datetime(st.mtimeNs),
    statusChangeTimestamp: datetime(st.ctimeNs),
  };
}

/** Runs `fn`, turning what Node throws into the WASI error code the component expects. */
function wasi<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw typeof e === "string" ? e : fsError(e);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // see names.ts

interface PathFlags {
  symlinkFollow?: boolean;
}
interface OpenFlags {
  create?: boolean;
  directory?: boolean;
  exclusive?: boolean;
  truncate?: boolean;
}
interface DescriptorFlags {
  write?: boolean;
  mutateDirectory?: boolean;
}

/** An open file or directory of the component. */
export class Descriptor implements Base {
  readonly fd: number;
  readonly path: string;
  readonly #owned: boolean;

  constructor(fd: number, path: string, owned: boolean) {
    this.fd = fd;
    this.path = path;
    this.#owned = owned;
  }

  read(length: bigint, offset: bigint): [Uint8Array, boolean] {
    return wasi(() => {
      const want = length > BigInt(BUFFER) ? BUFFER : Number(length);
      const bytes = readAt(this.fd, want, offset);
      return [bytes, bytes.length < want];
    });
  }

  stat() {
    return wasi(() => descriptorStat(fs.fstatSync(this.fd, { bigint: true })));
  }

  statAt(flags: PathFlags, path: string) {
    const follow = flags.symlinkFollow === true;
    return wasi(() => {
      const found = walk(this, path, follow ? "stat" : "lstat", follow);
      if (found.kind !== "stat") throw "io" satisfies FsError;
      return descriptorStat(found.stat);
    });
  }

  openAt(flags: PathFlags, path: string, open: OpenFlags, access: DescriptorFlags): Descriptor {
    if (open.create || open.truncate || open.exclusive || access.write || access.mutateDirectory) {
      throw "read-only" satisfies FsError;
    }
    return wasi(() => {
      const found = walk(
        this,
        path,
        open.directory ? "directory" : "read",
        flags.symlinkFollow === true,
      );
      if (found.kind !== "fd") throw "io" satisfies FsError;
      return new Descriptor(found.fd, `${this.path.replace(/\/*$/, "/")}${path}`, true);
    });
  }

  readlinkAt(path: string): string {
    return wasi(() => {
      const found = walk(this, path, "readlink", false);
      if (found.kind !== "link") throw "io" satisfies FsError;
      try {
        return utf8.decode(found.text);
      } catch {
        throw "illegal-byte-sequence";
      }
    });
  }

  [Symbol.dispose](): void {
    if (this.#owned) fs.closeSync(this.fd);
  }
}

/** `wasi:filesystem/preopens`: the roots granted for this call. */
export const preopens = {
  getDirectories(): Array<[Descriptor, string]> {
    return [...granted].map(([guest, root]) => [new Descriptor(root.fd, root.path, false), guest]);
  },
};

/** `wasi:filesystem/types`. */
export const types = { Descriptor };

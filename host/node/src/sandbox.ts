// Confinement: every path the component names is resolved one segment at a time, relative to
// an open handle of the directory above it, never letting the kernel follow a symlink.
//
// Node has no `openat`. On Linux `/proc/self/fd/N/name` is one: the kernel looks `name` up in
// the directory open as N, whatever has been renamed or swapped since. Each segment is opened
// with O_NOFOLLOW through that path; a symlink met on the way is read and its text walked by
// the same rules (an absolute one, or one climbing above the root, is refused), as the
// Python host's sandbox does. A swap made while the walk runs can only change what is found
// inside the root, never lead out of it. Without `/proc` (macOS, the BSDs, Windows) the same
// walk runs over full paths: ordinary paths and symlinks that lead out are still refused,
// but a writer swapping a directory for a symlink during the walk is not (docs/node-host.md).

import * as fs from "node:fs";

import { nameBytes } from "./names.js";

const C = fs.constants;
const linux = process.platform === "linux" && fs.existsSync("/proc/self/fd");
// Opens a place without reading it (a directory searched, not listed). Linux's value on
// every architecture Node supports; Node does not export it.
const O_PATH = linux ? 0o10000000 : 0;
const O_NOFOLLOW = C.O_NOFOLLOW ?? 0;
const O_DIRECTORY = C.O_DIRECTORY ?? 0;
const O_NONBLOCK = C.O_NONBLOCK ?? 0; // a FIFO swapped in must fail, not block the thread
const O_CLOEXEC = (C as Record<string, number>)["O_CLOEXEC"] ?? 0o2000000 * Number(linux);
const MAX_LINKS = 40; // as Linux's own lookups

/** The WASI error codes the walk gives, as the component's imports name them. */
export type FsError =
  | "access"
  | "not-permitted"
  | "no-entry"
  | "not-directory"
  | "is-directory"
  | "loop"
  | "name-too-long"
  | "invalid"
  | "read-only"
  | "io";

/** `e` as a WASI error code. */
export function fsError(e: unknown): FsError {
  switch ((e as NodeJS.ErrnoException)?.code) {
    case "ENOENT":
      return "no-entry";
    case "EACCES":
      return "access";
    case "EPERM":
      return "not-permitted";
    case "ENOTDIR":
      return "not-directory";
    case "EISDIR":
      return "is-directory";
    case "ELOOP":
      return "loop";
    case "ENAMETOOLONG":
      return "name-too-long";
    case "EINVAL":
      return "invalid";
    default:
      return "io";
  }
}

/** An open directory to resolve paths from: its handle, and its full path for systems
 * without `/proc`. */
export interface Base {
  readonly fd: number;
  readonly path: string;
}

/** A directory granted to the component: its path as given and its open handle. */
export class Root implements Base {
  readonly fd: number;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
    // The root itself may be reached through symlinks: the user named it.
    this.fd = fs.openSync(path, C.O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!fs.fstatSync(this.fd).isDirectory()) {
      fs.closeSync(this.fd);
      throw Object.assign(new Error(`${path} is not a directory`), { code: "ENOTDIR" });
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** An open directory of the walk: its handle, and the full path it stands for elsewhere. */
export interface Dir {
  fd: number;
  path: Buffer;
  owned: boolean;
}

/** The name `seg` inside `dir`, as a path the kernel resolves relative to the open handle. */
export function child(dir: Dir, seg: Buffer): Buffer {
  return Buffer.concat([linux ? Buffer.from(`/proc/self/fd/${dir.fd}/`) : dir.path, seg]);
}

function segments(path: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (i > start) out.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

const DOT = 0x2e;
const isDot = (s: Buffer): boolean => s.length === 1 && s[0] === DOT;
const isDotDot = (s: Buffer): boolean => s.length === 2 && s[0] === DOT && s[1] === DOT;

/** What the final segment is opened as. */
export type Want = "read" | "directory" | "stat" | "lstat" | "readlink";

export type Found =
  | { kind: "fd"; fd: number }
  | { kind: "stat"; stat: fs.BigIntStats }
  | { kind: "link"; text: Buffer };

/**
 * Resolves `path` (relative, `/`-separated, a string in the contract's spelling or bytes)
 * below `root` and opens or inspects what it names. `follow` says whether a symlink as the
 * last segment is followed (inside the root only). Throws an `FsError`.
 */
export function walk(root: Base, path: string | Buffer, want: Want, follow: boolean): Found {
  const raw = typeof path === "string" ? nameBytes(path) : path;
  if (raw.length > 0 && raw[0] === 0x2f) throw "not-permitted" satisfies FsError;
  if (raw.includes(0)) throw "invalid" satisfies FsError;
  const stack: Dir[] = [dirOf(root)];
  const todo = segments(raw).reverse();
  let links = 0;
  try {
    if (todo.length === 0) return finish(stack[0]!, Buffer.from("."), want);
    while (todo.length > 0) {
      const seg = todo.pop()!;
      const top = stack[stack.length - 1]!;
      if (isDot(seg) && todo.length > 0) continue;
      if (isDotDot(seg)) {
        if (stack.length === 1) throw "not-permitted" satisfies FsError;
        close(stack.pop()!);
        if (todo.length === 0) todo.push(Buffer.from("."));
        continue;
      }
      let target: number | Buffer;
      if (todo.length > 0) {
        target = enter(top, seg);
      } else if (!follow) {
        return finish(top, seg, want);
      } else {
        const found = followed(top, seg, want);
        if (!Buffer.isBuffer(found)) return found;
        target = found;
      }
      if (typeof target === "number") {
        stack.push({ fd: target, path: Buffer.concat([top.path, seg, Buffer.from("/")]), owned: true });
        continue;
      }
      // A symlink: its text is walked in its place, never by the kernel.
      if (++links > MAX_LINKS) throw "loop" satisfies FsError;
      if (target.length > 0 && target[0] === 0x2f) throw "not-permitted" satisfies FsError;
      const parts = segments(target);
      if (parts.length === 0) throw "no-entry" satisfies FsError;
      todo.push(...parts.reverse());
    }
    throw "no-entry" satisfies FsError; // unreachable: the last segment returns
  } catch (e) {
    throw typeof e === "string" ? e : fsError(e);
  } finally {
    for (const d of stack) close(d);
  }
}

function close(d: Dir): void {
  if (d.owned) fs.closeSync(d.fd);
}

/** Opens the directory `seg` of `dir` to walk on, or gives the text of the symlink there. */
function enter(dir: Dir, seg: Buffer): number | Buffer {
  const where = child(dir, seg);
  try {
    return fs.openSync(where, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | (linux ? 0 : C.O_RDONLY));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOTDIR" && code !== "ELOOP") throw e;
    const link = linkText(where);
    if (link === undefined) throw "not-directory" satisfies FsError;
    return link;
  }
}

/** The text of the symlink at `where`, or undefined when it is not one. */
function linkText(where: Buffer): Buffer | undefined {
  if (!fs.lstatSync(where).isSymbolicLink()) return undefined;
  return fs.readlinkSync(where, { encoding: "buffer" });
}

/**
 * A final segment that is followed: what `finish` finds, or the text of the symlink there.
 * For reads the check is the open itself (an O_NOFOLLOW open fails on a link); for a stat,
 * an lstat, so no link is ever followed by the kernel.
 */
function followed(dir: Dir, seg: Buffer, want: Want): Found | Buffer {
  let failed: unknown = "io" satisfies FsError; // a link swapped away meanwhile
  try {
    const found = finish(dir, seg, want);
    if (found.kind !== "stat" || !found.stat.isSymbolicLink()) return found;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ELOOP" && code !== "ENOTDIR") throw e;
    failed = e;
  }
  const link = linkText(child(dir, seg));
  if (link === undefined) throw failed;
  return link;
}

function finish(dir: Dir, seg: Buffer, want: Want): Found {
  const where = child(dir, seg);
  switch (want) {
    case "lstat":
    case "stat":
      return { kind: "stat", stat: fs.lstatSync(where, { bigint: true }) };
    case "readlink":
      return { kind: "link", text: fs.readlinkSync(where, { encoding: "buffer" }) };
    case "read":
    case "directory": {
      const dirFlag = want === "directory" ? O_DIRECTORY : 0;
      const fd = fs.openSync(where, C.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | dirFlag);
      return { kind: "fd", fd };
    }
  }
}

/** The names in the open directory `dir`, as bytes. */
export function names(dir: Dir): Buffer[] {
  return fs.readdirSync(linux ? `/proc/self/fd/${dir.fd}` : dir.path, { encoding: "buffer" });
}

/** Opens the directory `seg` of `dir` to list it, never through a symlink. */
export function openDir(dir: Dir, seg: Buffer): Dir {
  const fd = fs.openSync(child(dir, seg), C.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return { fd, path: Buffer.concat([dir.path, seg, Buffer.from("/")]), owned: true };
}

/** The walk's view of a base directory it does not own. */
export function dirOf(base: Base): Dir {
  return { fd: base.fd, path: Buffer.from(base.path.replace(/\/*$/, "/")), owned: false };
}

export { close as closeDir };

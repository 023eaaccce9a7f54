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
// Every descriptor is close-on-exec already: libuv adds O_CLOEXEC to each open.
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
    this.fd = fs.openSync(path, C.O_RDONLY | O_DIRECTORY);
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

/** What the final segment is opened as ("search": a directory to walk on, not to list). */
export type Want = "read" | "directory" | "search" | "stat" | "lstat" | "readlink";

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
  const trail = new Trail(root);
  const todo = segments(raw).reverse();
  let links = 0;
  try {
    if (todo.length === 0) return finish(trail.top(), HERE, want);
    while (todo.length > 0) {
      const seg = todo.pop()!;
      if (isDot(seg) && todo.length > 0) continue;
      if (isDotDot(seg)) {
        if (trail.depth === 0) throw "not-permitted" satisfies FsError;
        trail.pop();
        if (todo.length === 0) todo.push(HERE);
        continue;
      }
      const top = trail.top();
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
        trail.push(target, seg);
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
    trail.close();
  }
}

function close(d: Dir): void {
  if (d.owned && d.fd >= 0) fs.closeSync(d.fd);
  d.fd = -1;
}

// How a directory on the way is opened: to search it, never through a symlink.
const SEARCH = O_PATH | O_DIRECTORY | O_NOFOLLOW | (linux ? 0 : C.O_RDONLY);
// Handles a trail keeps open: a tree deeper than that costs reopenings, not descriptors.
const HELD = 32;
const SLASH = Buffer.from("/");
const HERE = Buffer.from(".");

/**
 * The directories from a base down to where a walk or a listing is. At most `HELD` are kept
 * open: going deeper closes the shallowest, and one closed is opened again, when the walk
 * is back in it, by its names from the nearest open one above it, each opened as a
 * directory that is not a symlink (so a swap meanwhile is an error, never a way out).
 */
export class Trail {
  readonly #levels: { dir: Dir; name: Buffer }[];
  #held = 0;

  constructor(base: Base) {
    this.#levels = [{ dir: dirOf(base), name: HERE }];
  }

  /** How many directories below the base the trail is. */
  get depth(): number {
    return this.#levels.length - 1;
  }

  /** The deepest directory, open. */
  top(): Dir {
    const last = this.#levels.length - 1;
    if (this.#levels[last]!.dir.fd < 0) this.#reopen(last);
    return this.#levels[last]!.dir;
  }

  /** Goes down into the directory open as `fd`, named `name` in the deepest one. */
  push(fd: number, name: Buffer): void {
    const above = this.#levels[this.#levels.length - 1]!.dir;
    this.#levels.push({
      dir: { fd, path: Buffer.concat([above.path, name, SLASH]), owned: true },
      name,
    });
    this.#held++;
    this.#release();
  }

  /** Goes back up one directory (never above the base). */
  pop(): void {
    if (this.#levels.length === 1) return;
    const { dir } = this.#levels.pop()!;
    if (dir.fd >= 0) this.#held--;
    close(dir);
  }

  /** Closes every handle the trail opened. */
  close(): void {
    while (this.#levels.length > 1) this.pop();
  }

  #release(): void {
    for (let i = 1; this.#held > HELD && i < this.#levels.length; i++) {
      const { dir } = this.#levels[i]!;
      if (dir.fd < 0) continue;
      close(dir);
      this.#held--;
    }
  }

  #reopen(last: number): void {
    let open = last - 1;
    while (this.#levels[open]!.dir.fd < 0) open--; // the base is always open
    for (let i = open + 1; i <= last; i++) {
      const { dir, name } = this.#levels[i]!;
      dir.fd = fs.openSync(child(this.#levels[i - 1]!.dir, name), SEARCH);
      this.#held++;
      this.#release(); // the shallowest go first: never the one just opened
    }
  }
}

/** Opens the directory `seg` of `dir` to walk on, or gives the text of the symlink there. */
function enter(dir: Dir, seg: Buffer): number | Buffer {
  const where = child(dir, seg);
  try {
    return fs.openSync(where, SEARCH);
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
    case "search":
      return { kind: "fd", fd: fs.openSync(where, SEARCH) };
    case "read":
    case "directory": {
      const dirFlag = want === "directory" ? O_DIRECTORY : 0;
      const fd = fs.openSync(where, READ | dirFlag);
      return { kind: "fd", fd };
    }
  }
}

/**
 * Opens files below a root to read them, as `walk` does, keeping the folder walked last open:
 * the files of one folder, taken in a listing's order, cost one open each. Only a file opened
 * at once through that folder takes this way; a symlink there, or any failure, is walked again
 * from the root by `walk`, whose outcome stands.
 */
export class Opener {
  readonly #root: Base;
  #folder: Buffer | undefined; // the path naming #dir, below the root
  #dir: Dir | undefined;

  constructor(root: Base) {
    this.#root = root;
  }

  /** A descriptor of the file `path` names, read-only and non-blocking; the caller closes
   * it. `follow` as for `walk`. Throws an `FsError`. */
  open(path: string, follow: boolean): number {
    const raw = nameBytes(path);
    const cut = raw.lastIndexOf(0x2f);
    const [up, leaf] = [raw.subarray(0, Math.max(cut, 0)), raw.subarray(cut + 1)];
    if (leaf.length > 0 && !isDot(leaf) && !isDotDot(leaf) && !raw.includes(0) && raw[0] !== 0x2f) {
      try {
        return fs.openSync(child(this.#at(up), leaf), READ);
      } catch {
        // Walked from the root below: a symlink is followed there, an error given as walk's.
      }
    }
    const found = walk(this.#root, raw, "read", follow);
    if (found.kind !== "fd") throw "io" satisfies FsError;
    return found.fd;
  }

  /** Closes the folder kept open. */
  close(): void {
    if (this.#dir !== undefined) close(this.#dir);
    this.#dir = this.#folder = undefined;
  }

  /** The folder `up` names below the root, open. */
  #at(up: Buffer): Dir {
    if (up.length === 0) return dirOf(this.#root);
    if (this.#dir !== undefined && this.#folder!.equals(up)) return this.#dir;
    this.close();
    const found = walk(this.#root, up, "search", true);
    if (found.kind !== "fd") throw "io" satisfies FsError;
    const base = dirOf(this.#root).path;
    this.#folder = Buffer.from(up);
    this.#dir = { fd: found.fd, path: Buffer.concat([base, up, SLASH]), owned: true };
    return this.#dir;
  }
}

// How a file is opened to read: never through a symlink, and a FIFO fails rather than waits.
const READ = C.O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** The names in the open directory `dir`, as bytes. */
export function names(dir: Dir): Buffer[] {
  return fs.readdirSync(linux ? `/proc/self/fd/${dir.fd}` : dir.path, { encoding: "buffer" });
}

/** Opens the directory `seg` of `dir` to list it, never through a symlink. */
export function openDir(dir: Dir, seg: Buffer): number {
  return fs.openSync(child(dir, seg), SEARCH);
}

/** The walk's view of a base directory it does not own. */
export function dirOf(base: Base): Dir {
  return { fd: base.fd, path: Buffer.from(base.path.replace(/\/*$/, "/")), owned: false };
}

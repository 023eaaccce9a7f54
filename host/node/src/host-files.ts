// The `host-files` imports: a listing of a granted root in one call, and reads of files whose
// names WASI cannot carry. Both walk through open directory handles (sandbox.ts).

import * as fs from "node:fs";

import { nameText } from "./names.js";
import { child, type Dir, fsError, names, openDir, Trail, walk } from "./sandbox.js";
import { grantedRoot, readAt } from "./wasi.js";

function kind(st: fs.BigIntStats): string {
  if (st.isFile()) return "f";
  if (st.isDirectory()) return "d";
  if (st.isSymbolicLink()) return "l";
  return "o";
}

const SLASH = Buffer.from("/");

/** A listing row (wit/schemas/listing.schema.json) of the entry `seg` of `dir`. */
function row(dir: Dir, seg: Buffer, rel: Buffer): unknown[] {
  const where = child(dir, seg);
  const st = fs.lstatSync(where, { bigint: true });
  const k = kind(st);
  // Nanosecond times as strings of digits: over 2^53, more than a JSON number holds.
  const out: unknown[] = [
    nameText(rel),
    k,
    Number(st.size),
    `${st.mtimeNs}`,
    `${st.ctimeNs}`,
    (st.mode & 0o111n) !== 0n,
  ];
  if (k === "l") {
    // The link's text (the sandbox will not tell the component an absolute one), and the
    // ctime and mtime of what it leads to, as the Python host gives them: metadata only.
    try {
      out.push(nameText(fs.readlinkSync(where, { encoding: "buffer" })));
      const target = fs.statSync(where, { bigint: true });
      out.push(`${target.ctimeNs}`, `${target.mtimeNs}`);
    } catch {
      // A broken link: the text alone, or nothing.
    }
  }
  return out;
}

interface Frame {
  rel: Buffer;
  names: Buffer[];
  next: number;
}

/** Every entry below the granted root `guest`, without following symlinks. */
function listTree(guest: string): string {
  const root = grantedRoot(guest);
  if (root === undefined) throw `root ${JSON.stringify(guest)} was not granted`;
  const rows: unknown[][] = [];
  // Depth first: the trail holds the directories above, a bounded number of them open,
  // however deep or wide the tree.
  const trail = new Trail(root);
  const frames: Frame[] = [];
  let rel: Buffer = Buffer.alloc(0);
  try {
    frames.push({ rel, names: names(trail.top()), next: 0 });
    while (frames.length > 0) {
      const top = frames[frames.length - 1]!;
      if (top.next === top.names.length) {
        frames.pop();
        trail.pop();
        continue;
      }
      const seg = top.names[top.next++]!;
      rel = top.rel.length > 0 ? Buffer.concat([top.rel, SLASH, seg]) : seg;
      const dir = trail.top();
      const r = row(dir, seg, rel);
      rows.push(r);
      if (r[1] === "d") {
        trail.push(openDir(dir, seg), seg);
        frames.push({ rel, names: names(trail.top()), next: 0 });
      }
    }
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === "ENOENT" ? "vanished while it was listed" : fsError(e);
    throw `cannot list ${rel.length > 0 ? nameText(rel) : root.path}: ${why}`;
  } finally {
    trail.close();
  }
  return JSON.stringify(rows);
}

/** Up to `length` bytes at `offset` of the file `pathJson` names below `guest`; a final
 * symlink is not followed (as the Python host reads such names). */
function readRaw(guest: string, pathJson: string, offset: bigint, length: number): Uint8Array {
  const root = grantedRoot(guest);
  if (root === undefined) throw `root ${JSON.stringify(guest)} was not granted`;
  let fd: number | undefined;
  try {
    const found = walk(root, JSON.parse(pathJson) as string, "read", false);
    if (found.kind !== "fd") throw "io";
    fd = found.fd;
    // The component checks what WASI opens; what it reads through here, the host checks.
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw st.isDirectory() ? "is a directory, not a regular file" : "is not a regular file";
    return readAt(fd, length, offset);
  } catch (e) {
    throw `cannot read: ${typeof e === "string" ? e : fsError(e)}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** `jobattach:engine/host-files`. */
export const hostFiles = { listTree, readRaw };

// The hashing kernel as the Node host uses it: a core module with no imports, shipped in the
// package, whose digests are python-xxhash's (an implementation other than ours) and the
// Python host's around every boundary of the host's buffer and of xxh3 itself, whole, with
// the sizes of a listing and in chunks, for names that are not UTF-8 too; its memory stays
// the same whatever the size of what it hashes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { BUFFER, kernel, kernelModule, SPANS } from "../dist/kernel.js";
import { hashEach, hashFile, hashFiles, nameText } from "../dist/index.js";
import { bytesPath, PACKAGE, PYTHON, REPO, scratch, thrown } from "./helpers.mjs";

/** python-xxhash's digests of `items` below `root` (as hashFiles takes them), and the Python
 * host's. */
function peers(root, items) {
  const script = `
import json, os, sys, xxhash
from jobattach_host.hashing import digests
root, items = sys.argv[1], json.loads(sys.stdin.read())
def name(p): return os.path.join(os.fsencode(root), os.fsencode(p))
def one(item):
    p, size, chunk = (item, None, 0) if isinstance(item, str) else (item + [0])[:3]
    with open(name(p), "rb") as f: data = f.read() if size is None else f.read(size)
    if not chunk: return xxhash.xxh3_128_hexdigest(data)
    return [xxhash.xxh3_128_hexdigest(data[i:i + chunk]) for i in range(0, len(data), chunk)]
host = digests(root, [i if isinstance(i, str) else tuple(i) for i in items])
print(json.dumps({"xxhash": [one(i) for i in items], "host": host}))
`;
  const out = execFileSync(PYTHON, ["-c", script, root], {
    input: JSON.stringify(items),
    maxBuffer: 1 << 26,
  });
  return JSON.parse(out.toString());
}

/** `n` bytes that differ from offset to offset, so a piece hashed twice or skipped shows. */
function content(n, seed = 0) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + (i >> 9) + seed) & 0xff;
  return b;
}

test("the kernel imports nothing, and the package ships the one the Python host has", () => {
  assert.equal(WebAssembly.Module.imports(kernelModule()).length, 0);
  const shipped = fs.readFileSync(path.join(PACKAGE, "generated", "kernel.wasm"));
  const host = fs.readFileSync(path.join(REPO, "host", "jobattach_host", "kernel.wasm"));
  assert.ok(shipped.equals(host), "generated/kernel.wasm is not host/jobattach_host/kernel.wasm");
  assert.equal(WebAssembly.Module.imports(new WebAssembly.Module(shipped)).length, 0);
  const exports = WebAssembly.Module.exports(kernelModule()).map((e) => e.name);
  for (const name of ["memory", "reserve", "digests", "update", "finish"])
    assert.ok(exports.includes(name), `the kernel exports no ${name}`);
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: PACKAGE, stdio: "pipe" }),
  );
  assert.ok(
    packed[0].files.some((f) => f.path === "generated/kernel.wasm"),
    "not in the package",
  );
});

// Around the buffer (a file laid out whole, with the one byte more an unknown size reads, or
// read in pieces) and around xxh3's own boundaries (16, 128 and 240 bytes, a 1 KiB block).
const SIZES = [
  0,
  1,
  16,
  17,
  128,
  129,
  240,
  241,
  1024,
  1025,
  BUFFER - 2,
  BUFFER - 1,
  BUFFER,
  BUFFER + 1,
  2 * BUFFER,
  2 * BUFFER + 1,
];

test("digests around every boundary are python-xxhash's and the Python host's", (t) => {
  const root = scratch(t);
  const bad = Buffer.from("bad-\xff-", "latin1"); // read by read-raw's rules
  const names = [];
  for (const [i, n] of SIZES.entries()) {
    const name = Buffer.concat([i % 3 === 2 ? bad : Buffer.from("f-"), Buffer.from(`${n}`)]);
    fs.writeFileSync(bytesPath(root, name), content(n, i));
    names.push(nameText(name));
  }
  const items = [
    ...names,
    ...names.map((p, i) => [p, SIZES[i]]),
    ...names.map((p, i) => [p, SIZES[i], 0]),
    // chunks: small ones (many laid out per call) of the small files, and around the buffer
    ...[3, 1000].flatMap((chunk) =>
      names.flatMap((p, i) => (SIZES[i] <= 2048 ? [[p, SIZES[i], chunk]] : [])),
    ),
    ...[BUFFER - 1, BUFFER, BUFFER + 1].flatMap((chunk) =>
      names.map((p, i) => [p, SIZES[i], chunk]),
    ),
  ];
  const got = hashFiles(root, items);
  const want = peers(root, items);
  assert.deepEqual(got, want.xxhash);
  assert.deepEqual(got, want.host);
  // one at a time, as hashFile and hashEach take them
  assert.deepEqual(hashEach(root, names), want.xxhash.slice(0, names.length));
  assert.equal(hashFile(bytesPath(root, Buffer.from("f-0")).toString()), want.xxhash[0]);
});

test("files laid out in the buffer are hashed before a large one is read over them", (t) => {
  const root = scratch(t);
  const items = [];
  // More small files than one call takes, a large one among them, and chunked ones.
  for (let i = 0; i < SPANS + 300; i++) {
    const name = `s${i}`;
    fs.writeFileSync(path.join(root, name), content(1 + ((i * 37) % 3000), i));
    items.push(i % 2 ? name : [name, 1 + ((i * 37) % 3000)]);
    if (i === 0) fs.writeFileSync(path.join(root, "large"), content(BUFFER + 77, 9));
    // each after small files laid out: with its size, without, in chunks
    if (i === SPANS - 5) items.push(["large", BUFFER + 77]);
    if (i === SPANS - 3) items.push("large");
    if (i === SPANS + 7) items.push(["large", BUFFER + 77, 5000]);
  }
  assert.deepEqual(hashFiles(root, items), peers(root, items).xxhash);
});

test("the kernel's memory stays the same whatever the size of what it hashes", (t) => {
  const root = scratch(t);
  fs.writeFileSync(path.join(root, "small"), "x");
  hashFiles(root, ["small"]);
  const before = kernel().memory().length;
  const fd = fs.openSync(path.join(root, "large"), "w");
  for (let i = 0; i < 24; i++) fs.writeSync(fd, content(1 << 20, i));
  fs.closeSync(fd);
  const items = ["large", ["large", 24 << 20], ["large", 24 << 20, 7 << 20]];
  assert.deepEqual(hashFiles(root, items), peers(root, items).xxhash);
  assert.equal(kernel().memory().length, before);
  assert.ok(before < 4 * BUFFER, `the kernel holds ${before} bytes`);
});

test("a large file found shorter than listed fails, and leaves no digest half fed", (t) => {
  const root = scratch(t);
  fs.writeFileSync(path.join(root, "large"), content(BUFFER + 77));
  // the end named is the file's, or the chunk's that came short (as the component names it)
  for (const [item, end] of [
    [["large", 3 * BUFFER], 3 * BUFFER],
    [["large", 3 * BUFFER, BUFFER + 1], 2 * BUFFER + 2],
  ]) {
    const err = thrown(() => hashFiles(root, [item]));
    assert.deepEqual(
      [err.kind, err.path, err.reason],
      ["io", "large", `is shorter than listed (${BUFFER + 77} of ${end} bytes): it changed`],
    );
  }
  assert.deepEqual(hashFiles(root, ["large"]), peers(root, ["large"]).xxhash);
});

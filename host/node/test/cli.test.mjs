// The jobattach-engine CLI: `hash` prints what xxh128sum prints (digests from python-xxhash,
// an implementation other than ours), goes on past what it cannot hash, and fails at the end;
// `--version` names both versions; bad usage exits 2.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { snapshot, version } from "../dist/index.js";
import { cli, PACKAGE, scratch, xxh128 } from "./helpers.mjs";

function tree(t) {
  const root = path.join(scratch(t), "root");
  fs.mkdirSync(path.join(root, "sub dir"), { recursive: true });
  fs.writeFileSync(path.join(root, "a.txt"), "hello\n");
  fs.writeFileSync(path.join(root, "empty"), "");
  fs.writeFileSync(path.join(root, "sub dir", "caf\u00e9.bin"), Buffer.alloc(300_000, 7));
  fs.writeFileSync(
    path.join(root, "big.bin"),
    Buffer.from(Array.from({ length: 2_500_000 }, (_, i) => (i * 31 + 7) % 251)),
  );
  return root;
}

test("hash prints digest  path for each path, in order, as xxh128sum does", (t) => {
  const root = tree(t);
  const paths = ["sub dir/caf\u00e9.bin", "a.txt", "empty", path.join(root, "big.bin"), "a.txt"];
  const want = xxh128(paths.map((p) => path.resolve(root, p)));
  const r = cli(["hash", "--root", root, ...paths]);
  assert.equal(r.stderr, "");
  assert.equal(r.status, 0);
  assert.equal(r.stdout.toString(), paths.map((p, i) => `${want[i]}  ${p}\n`).join(""));
});

test("hash goes on past a path it cannot hash, names it on stderr, and exits 1", (t) => {
  const root = tree(t);
  const outside = path.join(path.dirname(root), "secret");
  fs.writeFileSync(outside, "secret");
  fs.symlinkSync(outside, path.join(root, "escape"));
  const paths = ["a.txt", "missing.txt", "sub dir", "escape", outside, "../secret", "empty"];
  const r = cli(["hash", "--root", root, ...paths]);
  assert.equal(r.status, 1);
  const [a, empty] = xxh128([path.join(root, "a.txt"), path.join(root, "empty")]);
  assert.equal(r.stdout.toString(), `${a}  a.txt\n${empty}  empty\n`);
  const lines = r.stderr.split("\n").slice(0, -1);
  assert.equal(lines.length, 5, r.stderr);
  ["missing.txt", "sub dir", "escape", outside, "../secret"].forEach((p, i) => {
    assert.ok(lines[i].startsWith(`jobattach-engine: ${p}: `), lines[i]);
  });
  assert.match(lines[0], /no such file/);
  assert.match(lines[1], /is a directory/);
  assert.match(lines[2], /not permitted/);
  assert.match(lines[3], /'\.\.' segment/); // outside the root given
});

test("hash of a root that does not exist fails naming it", (t) => {
  const root = path.join(scratch(t), "absent");
  const r = cli(["hash", "--root", root, "a.txt"]);
  assert.equal(r.status, 1);
  assert.deepEqual(r.stdout, Buffer.alloc(0));
  assert.equal(r.stderr, `jobattach-engine: ${root}: the root does not exist\n`);
});

test("snapshot of another format, and of a root that does not exist", (t) => {
  const root = tree(t);
  const r = cli(["snapshot", root, "--format", "v2025-12-snapshot"]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    r.stdout,
    Buffer.from(snapshot(root, { format: "v2025-12-snapshot" }).manifest.encoded, "latin1"),
  );
  const absent = cli(["snapshot", path.join(root, "absent")]);
  assert.equal(absent.status, 1);
  assert.match(absent.stderr, /the root does not exist/);
});

test("snapshot to a place it cannot write fails with one line naming it", (t) => {
  const root = tree(t);
  for (const [out, why] of [
    [path.join(root, "absent", "m.json"), "ENOENT"],
    [root, "EISDIR"],
  ]) {
    const r = cli(["snapshot", root, "-o", out]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.split("\n").length, 2, r.stderr); // one line, no stack trace
    assert.ok(r.stderr.startsWith(`jobattach-engine: cannot write ${out}: ${why}`), r.stderr);
  }
});

test("--version names the package and the engine component", () => {
  const r = cli(["--version"]);
  assert.equal(r.status, 0, r.stderr);
  const { version: pkg } = JSON.parse(fs.readFileSync(path.join(PACKAGE, "package.json"), "utf8"));
  assert.equal(
    r.stdout.toString(),
    `jobattach-engine ${pkg} (engine component ${version()}, node ${process.version})\n`,
  );
});

for (const args of [
  [],
  ["frobnicate"],
  ["hash"],
  ["hash", "--root", "."],
  ["hash", "a.txt"],
  ["hash", "--bogus", "--root", ".", "a.txt"],
  ["snapshot"],
  ["snapshot", "a", "b"],
  ["snapshot", ".", "--format", "v1999"],
  ["snapshot", ".", "-o"],
]) {
  test(`bad usage exits 2: ${JSON.stringify(args)}`, () => {
    const r = cli(args);
    assert.equal(r.status, 2);
    assert.deepEqual(r.stdout, Buffer.alloc(0));
    assert.match(r.stderr, /^jobattach-engine: /);
  });
}

// The golden vectors of the official implementation (../shared/vectors): each manifest decodes
// and encodes to its own bytes, and a snapshot of each tree, regenerated as the Python tests
// regenerate it, is that manifest byte for byte, through the API and through the CLI.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { canonicalize, snapshot } from "../dist/index.js";
import { bytesPath, cli, PYTHON, scratch, VECTORS } from "./helpers.mjs";

const NAMES = fs
  .readdirSync(VECTORS)
  .filter((n) => fs.existsSync(path.join(VECTORS, n, "manifest.json")))
  .sort();

test("every vector the Python tests run is here", () => {
  assert.deepEqual(NAMES, ["basic", "invalid-utf8", "unicode"]);
});

function vector(name) {
  const d = path.join(VECTORS, name);
  return {
    bytes: fs.readFileSync(path.join(d, "manifest.json")),
    digest: fs.readFileSync(path.join(d, "manifest.xxh128"), "latin1").trim(),
    expected: JSON.parse(fs.readFileSync(path.join(d, "expected.json"), "utf8")),
    // Times in ns as strings of digits: over 2^53, more than a JSON number holds exactly.
    tree: JSON.parse(
      fs
        .readFileSync(path.join(d, "tree.json"), "utf8")
        .replace(/("mtime_ns":\s*)(-?\d+)/g, '$1"$2"'),
    ),
  };
}

/** The vector's tree below a scratch directory, written by its gen_tree.py as tests/ does. */
function regenerate(t, name) {
  const root = path.join(scratch(t), name);
  execFileSync(PYTHON, [path.join(VECTORS, name, "gen_tree.py"), root]);
  return root;
}

/** Every regular file below `root`: name bytes (hex, `/`-separated), size, mtime in ns. */
function files(root, rel = Buffer.alloc(0), out = new Map()) {
  for (const name of fs.readdirSync(bytesPath(root, rel), { encoding: "buffer" })) {
    const sub = rel.length > 0 ? Buffer.concat([rel, Buffer.from("/"), name]) : name;
    const st = fs.lstatSync(bytesPath(root, sub), { bigint: true });
    if (st.isDirectory()) files(root, sub, out);
    else out.set(sub.toString("hex"), { size: Number(st.size), mtimeNs: st.mtimeNs });
  }
  return out;
}

for (const name of NAMES) {
  test(`${name}: decode then encode gives the manifest's bytes`, () => {
    const { bytes, digest, expected } = vector(name);
    const c = canonicalize(bytes.toString("utf8"));
    assert.equal(c.format, "v2023-03-03");
    assert.deepEqual(Buffer.from(c.encoded, "latin1"), bytes);
    assert.equal(c.hash, digest);
    const doc = JSON.parse(c.encoded);
    assert.equal(doc.totalSize, expected.totalSize);
    assert.equal(doc.paths.length, expected.path_count);
    if (expected.path_order)
      assert.deepEqual(
        doc.paths.map((p) => p.path),
        expected.path_order,
      );
  });

  test(`${name}: the regenerated tree is the one tree.json describes`, (t) => {
    const { tree } = vector(name);
    const found = files(regenerate(t, name));
    const want = new Map(
      tree.files.map((f) => [f.path_utf8_hex, { size: f.size, mtimeNs: BigInt(f.mtime_ns) }]),
    );
    assert.deepEqual(found, want);
  });

  test(`${name}: a snapshot of the tree is the manifest byte for byte`, (t) => {
    const { bytes, digest } = vector(name);
    const root = regenerate(t, name);
    const result = snapshot(root);
    assert.deepEqual(Buffer.from(result.manifest.encoded, "latin1"), bytes);
    assert.equal(result.manifest.hash, digest);
    assert.deepEqual(result.skipped, {});
    assert.equal(result.excluded, 0);
  });

  test(`${name}: the CLI's snapshot is the manifest byte for byte, to a file and to stdout`, (t) => {
    const { bytes } = vector(name);
    const root = regenerate(t, name);
    const out = path.join(scratch(t), "manifest.json");
    const toFile = cli(["snapshot", root, "-o", out]);
    assert.equal(toFile.status, 0, toFile.stderr);
    assert.deepEqual(toFile.stdout, Buffer.alloc(0));
    assert.deepEqual(fs.readFileSync(out), bytes);
    const toStdout = cli(["snapshot", root]);
    assert.equal(toStdout.status, 0, toStdout.stderr);
    assert.deepEqual(toStdout.stdout, bytes);
  });
}

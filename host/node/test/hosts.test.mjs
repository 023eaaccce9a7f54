// Both hosts give the same plans and the same manifests: trees generated from seeds (Unicode,
// control characters, names that are not UTF-8, files of several sizes, executables, symlinks
// inside, absolute, leading out, broken and to directories, empty directories) are planned
// and snapshotted through the Node host here and through the Python host in a child process.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { planSnapshot, snapshot } from "../dist/index.js";
import { bytesPath, PYTHON, scratch } from "./helpers.mjs";

const FORMATS = ["v2023-03-03", "v2025-12-snapshot"];
const SEEDS = [1, 2, 3, 4];

/** The names the trees are made of, as bytes (each gets a number after it). */
const NAMES = [
  "plain",
  "Shot.exr",
  "shot.exr",
  "caf\u00e9",
  "cafe\u0301",
  "emoji \u{1f600}",
  "\u6f22\u5b57",
  "tab\there",
  "new\nline",
  "\x01ctl\x1f",
  "del\x7f",
  Buffer.from("bad-\xff", "latin1"),
  Buffer.from("latin1-\xe9", "latin1"),
  Buffer.from("trunc-\xe2\x82", "latin1"),
  " lead",
  "trail.",
  "back\\slash",
  "a-b",
  "a.b",
  ".dot",
].map((n) => Buffer.from(n));

/** mulberry32: the same tree from the same seed, on every machine. */
function random(seed) {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const joined = (segs) => Buffer.concat(segs.flatMap((s, i) => (i > 0 ? [Buffer.from("/"), s] : [s])));

/** A tree below `root` from `seed`, beside `outside` (which holds `secret`). */
function generate(root, outside, seed) {
  const rand = random(seed);
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const used = new Set();
  const fresh = (dir) => {
    for (;;) {
      const name = Buffer.concat([pick(NAMES), Buffer.from(`${Math.floor(rand() * 100)}`)]);
      const key = joined([...dir, name]).toString("hex");
      if (used.has(key)) continue;
      used.add(key);
      return [...dir, name];
    }
  };
  const dirs = [[]];
  for (let i = 0; i < 14; i++) {
    const parent = pick(dirs);
    if (parent.length >= 4) continue;
    const dir = fresh(parent);
    fs.mkdirSync(bytesPath(root, joined(dir)));
    dirs.push(dir);
  }
  const files = [];
  for (let i = 0; i < 40; i++) {
    const file = fresh(pick(dirs));
    const size = pick([0, 1, 17, 4096, 70_000]);
    const where = bytesPath(root, joined(file));
    fs.writeFileSync(where, Buffer.from(Array.from({ length: size }, () => Math.floor(rand() * 256))));
    if (rand() < 0.2) fs.chmodSync(where, 0o755);
    files.push(file);
  }
  const up = (dir) => Buffer.from("../".repeat(dir.length));
  const links = [];
  for (let i = 0; i < 16; i++) {
    const dir = pick(dirs);
    const kind = pick(["in", "in", "abs-in", "out", "abs-out", "broken", "dir", "chain"]);
    let text;
    if (kind === "in") text = Buffer.concat([up(dir), joined(pick(files))]);
    else if (kind === "abs-in") text = bytesPath(root, joined(pick(files)));
    else if (kind === "out") text = Buffer.concat([up(dir), Buffer.from("../outside/secret")]);
    else if (kind === "abs-out") text = Buffer.from(path.join(outside, "secret"));
    else if (kind === "broken") text = Buffer.from(`nowhere${i}`);
    else if (kind === "dir") text = Buffer.concat([up(dir), joined(pick(dirs))]);
    else if (links.length > 0) text = Buffer.concat([up(dir), joined(pick(links))]);
    else continue;
    const link = fresh(dir);
    fs.symlinkSync(text.length > 0 ? text : Buffer.from("."), bytesPath(root, joined(link)));
    links.push(link);
  }
}

// The Python host's plan (the component's JSON) and manifest of each root, in each format.
const PYTHON_HOST = `
import json, sys
from jobattach import create_manifest
from jobattach_host import engine
from jobattach_host.sandbox import instance_for
from jobattach_host.snapshot import plan_options
out = []
for root in sys.argv[1:]:
    for fmt in ${JSON.stringify(FORMATS)}:
        s = instance_for(root)
        plan = engine.plan_snapshot(s, plan_options(root, s, (), (), fmt))
        result = create_manifest(root, cache=False, format=fmt)
        out.append({"plan": plan, "manifest": result.manifest.encode().decode("ascii"), "skipped": result.skipped})
print(json.dumps(out, ensure_ascii=True))
`;

/** A plan with its lists in code-point order: the plan keeps the order of the host's
 * listing, which the contract leaves to each host. */
function sorted(plan) {
  const byPath = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  const skipped = Object.fromEntries(Object.entries(plan.skipped).map(([k, v]) => [k, [...v].sort()]));
  return { ...plan, files: [...plan.files].sort(byPath), symlinks: [...plan.symlinks].sort(byPath), dirs: [...plan.dirs].sort(), skipped };
}

test("the Node host and the Python host plan and snapshot generated trees alike", (t) => {
  const base = scratch(t);
  const outside = path.join(base, "outside");
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, "secret"), "secret");
  const roots = SEEDS.map((seed) => {
    const root = path.join(base, `tree-${seed}`);
    fs.mkdirSync(root);
    generate(root, outside, seed);
    return root;
  });
  const env = { ...process.env, JOBATTACH_CACHE_DIR: path.join(base, "compile-cache") };
  const python = JSON.parse(execFileSync(PYTHON, ["-c", PYTHON_HOST, ...roots], { env, maxBuffer: 1 << 26 }));
  const reasons = new Set();
  roots.forEach((root, r) => {
    FORMATS.forEach((format, f) => {
      const theirs = python[r * FORMATS.length + f];
      const label = `${path.basename(root)} ${format}`;
      const plan = planSnapshot(root, { format });
      assert.deepEqual(sorted(plan), sorted(theirs.plan), label);
      const ours = snapshot(root, { format });
      assert.equal(ours.manifest.encoded, theirs.manifest, label);
      assert.deepEqual(sorted({ ...plan, skipped: ours.skipped }).skipped, sorted({ ...plan, skipped: theirs.skipped }).skipped, label);
      Object.keys(ours.skipped).forEach((k) => reasons.add(k));
      assert.ok(plan.files.length >= 20, label);
    });
  });
  // the trees hold what they are meant to: every reason to leave a path out, hostile names
  for (const reason of ["broken-symlink", "empty-directory", "symlink-outside-root", "symlink-to-directory"]) {
    assert.ok(reasons.has(reason), `no tree has a path skipped as ${reason}`);
  }
  const names = python.flatMap((p) => p.plan.files.map(([p]) => p));
  for (const hostile of ["\udcff", "\udce2\udc82", "\n", "\x01", "cafe\u0301", "\u{1f600}"]) {
    assert.ok(names.some((n) => n.includes(hostile)), `no planned name holds ${JSON.stringify(hostile)}`);
  }
});

// The race the stock shim loses: a writer inside the granted root swaps a directory for a
// symlink leading to an outside directory that holds files of the same names, as fast as it
// can, while the engine hashes (the host reading for the kernel, and the component through its
// WASI imports), lists and plans through that directory. Not one read may return what is
// outside; and enough reads return what is inside for the race to have run.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { call, EngineError } from "../dist/engine.js";
import { hashEach, hashFiles, planSnapshot } from "../dist/index.js";
import { bytesPath, PYTHON, scratch, xxh128Of } from "./helpers.mjs";

const CALLS = 10_000;
const LINKS = 20; // links through d/, each looked up (stat-at) by every plan
const FILES = 20; // more files in d/ (and outside), each listed by every plan
const INSIDE = "inside\n";
const OUTSIDE = "the outside file, longer\n";
const BAD = Buffer.from("bad-\xff", "latin1"); // a name WASI cannot carry: read through read-raw
const DIGEST = { inside: xxh128Of(INSIDE), outside: xxh128Of(OUTSIDE) };

// Swaps root/NAME between what it is and the prepared symlink NAME.link leading outside, by
// renames, until it is stopped (or the test process is gone).
const WRITER = `
import os, sys
parent = os.getppid()
os.chdir(sys.argv[1])
name, real, link = sys.argv[2], sys.argv[2] + ".real", sys.argv[2] + ".link"
print("ready", flush=True)
while os.getppid() == parent:
    for _ in range(1000):
        try:
            os.rename(name, real); os.rename(link, name)
            os.rename(name, link); os.rename(real, name)
        except FileNotFoundError:
            pass
`;

/** A granted root whose d/ holds `file`, `bad-\xff` and `files` more, an outside directory
 * holding the same names with other content (and a file only it has), the link to it
 * prepared, and a link `via` to d/file. */
function layout(t, files = 0) {
  const base = scratch(t);
  const [root, outside] = [path.join(base, "root"), path.join(base, "outside")];
  fs.mkdirSync(path.join(root, "d"), { recursive: true });
  fs.mkdirSync(outside);
  for (const [dir, content] of [
    [path.join(root, "d"), INSIDE],
    [outside, OUTSIDE],
  ]) {
    fs.writeFileSync(path.join(dir, "file"), content);
    fs.writeFileSync(bytesPath(dir, BAD), content);
  }
  for (let i = 0; i < files; i++) {
    fs.writeFileSync(path.join(root, "d", `file${i}`), INSIDE);
    fs.writeFileSync(path.join(outside, `file${i}`), OUTSIDE);
  }
  fs.writeFileSync(path.join(outside, "only-outside"), OUTSIDE);
  fs.symlinkSync(outside, path.join(root, "d.link"));
  fs.symlinkSync("d/file", path.join(root, "via")); // a link inside the root, through d
  fs.writeFileSync(path.join(root, "f"), INSIDE); // a file swapped for a link to one outside
  fs.symlinkSync(path.join(outside, "file"), path.join(root, "f.link"));
  return root;
}

/** Runs `fn` while a writer swaps root/`name` (d/ unless named); the writer is stopped
 * before the tree is removed. */
async function swapping(root, fn, name = "d") {
  const writer = spawn(PYTHON, ["-c", WRITER, root, name], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => writer.once("exit", resolve));
  try {
    await new Promise((resolve, reject) => {
      writer.once("error", reject);
      writer.stdout.once("data", resolve);
    });
    return fn();
  } finally {
    writer.kill("SIGKILL");
    await exited;
  }
}

/** Tallies outcomes: digests by what they are the digest of, errors by kind. */
function tally(outcomes) {
  const { inside, outside } = DIGEST;
  const counts = { inside: 0, outside: 0, other: 0, errors: {} };
  for (const o of outcomes) {
    if (o instanceof EngineError) counts.errors[o.kind] = (counts.errors[o.kind] ?? 0) + 1;
    else if (o === inside) counts.inside++;
    else if (o === outside) counts.outside++;
    else counts.other++;
  }
  return counts;
}

/** No outcome is the outside file's, and a good share are the inside file's. */
function assertConfined(counts, total) {
  assert.equal(counts.outside, 0, `read outside the root: ${JSON.stringify(counts)}`);
  assert.equal(counts.other, 0, JSON.stringify(counts));
  assert.ok(
    counts.inside >= total / 50,
    `too few reads inside for the race to count: ${JSON.stringify(counts)}`,
  );
  // and the symlink was there often enough to be refused: as a link leading out, or as no
  // folder at all (a folder opened O_DIRECTORY | O_NOFOLLOW that is a link is ENOTDIR)
  const e = counts.errors;
  const refused = (e["permission-denied"] ?? 0) + (e.io ?? 0) + (e["wrong-type"] ?? 0);
  assert.ok(refused >= total / 100, `the swap was seldom seen: ${JSON.stringify(counts)}`);
}

/** Each `fn()` of `total`, its result or the engine's error (an EngineError, or inside
 * `call` the component's error, which `call` turns into one). */
function outcomes(total, fn) {
  const out = [];
  for (let i = 0; i < total; i++) {
    try {
      out.push(fn());
    } catch (e) {
      if (e instanceof EngineError) out.push(e);
      else if (e?.payload?.kind !== undefined) out.push(new EngineError(e.payload));
      else throw e;
    }
  }
  return out;
}

test("hashEach through a directory swapped for a symlink out never reads outside", async (t) => {
  const root = layout(t);
  const counts = await swapping(root, () =>
    tally(outcomes(CALLS, () => hashEach(root, ["d/file"])[0])),
  );
  t.diagnostic(JSON.stringify(counts));
  assertConfined(counts, CALLS);
});

test("one hashEach walking the swapped directory again for each of its paths never reads outside", async (t) => {
  const root = layout(t);
  fs.mkdirSync(path.join(root, "e"));
  fs.writeFileSync(path.join(root, "e", "file"), INSIDE);
  // Files of one folder in a row share its handle: alternating folders walks d/ each time.
  const paths = Array.from({ length: CALLS }, (_, i) => (i % 2 ? "e/file" : "d/file"));
  const got = await swapping(root, () => hashEach(root, paths));
  const counts = tally(got.filter((_, i) => i % 2 === 0));
  t.diagnostic(JSON.stringify(counts));
  assertConfined(counts, CALLS / 2);
  assert.deepEqual(tally(got.filter((_, i) => i % 2 === 1)).inside, CALLS / 2);
});

test("hashFiles of a file swapped for a symlink to a file outside never reads outside", async (t) => {
  const root = layout(t);
  const counts = await swapping(
    root,
    () => tally(outcomes(CALLS, () => hashFiles(root, [["f", INSIDE.length]])[0])),
    "f",
  );
  t.diagnostic(JSON.stringify(counts));
  assertConfined(counts, CALLS);
});

/** What is hashed through the swapped directory: with and without sizes, chunked, through
 * read-raw's rules (a name that is not UTF-8) and through a link inside the root. */
const ITEMS = [
  "d/file",
  ["d/file", INSIDE.length],
  ["d/file", INSIDE.length, 0],
  "d/bad-\udcff",
  ["d/bad-\udcff", INSIDE.length],
  "via", // a symlink inside the root whose text goes through d
];

test("hashFiles, with and without sizes, of names not UTF-8 and through a link, never reads outside", async (t) => {
  const root = layout(t);
  const runs = await swapping(root, () =>
    ITEMS.map((item, i) => outcomes(i === 0 ? CALLS : CALLS / 4, () => hashFiles(root, [item])[0])),
  );
  const counts = runs.map(tally);
  counts.forEach((c, i) => t.diagnostic(`${JSON.stringify(ITEMS[i])}: ${JSON.stringify(c)}`));
  counts.forEach((c, i) => assertConfined(c, runs[i].length));
});

test("the component's own reads (hash-files through its WASI imports) never read outside", async (t) => {
  const root = layout(t);
  const runs = await swapping(root, () =>
    call([root], (e, [r0]) =>
      ITEMS.map((item) =>
        outcomes(CALLS / 4, () => JSON.parse(e.hashing.hashFiles(r0, JSON.stringify([item])))[0]),
      ),
    ),
  );
  const counts = runs.map(tally);
  counts.forEach((c, i) => t.diagnostic(`${JSON.stringify(ITEMS[i])}: ${JSON.stringify(c)}`));
  counts.forEach((c, i) => assertConfined(c, runs[i].length));
});

test("planning through the swapped directory (its listing, and links through it) finds nothing outside", async (t) => {
  const root = layout(t, FILES);
  for (let i = 0; i < LINKS; i++) fs.symlinkSync("d/file", path.join(root, `via${i}`));
  const size = Buffer.byteLength(INSIDE);
  const tallied = { listed: 0, followed: 0, failures: {} };
  await swapping(root, () => {
    for (const plan of outcomes(1000, () => planSnapshot(root))) {
      if (plan instanceof EngineError) {
        tallied.failures[plan.kind] = (tallied.failures[plan.kind] ?? 0) + 1;
        continue;
      }
      for (const [p, bytes] of plan.files) {
        assert.ok(!p.includes("only-outside"), `${p} listed from outside the root`);
        assert.equal(bytes, size, `${p} has the outside file's size: it was looked up outside`);
        if (p.startsWith("d/")) tallied.listed++;
        if (p.startsWith("via")) tallied.followed++;
      }
    }
  });
  t.diagnostic(JSON.stringify(tallied));
  assert.ok(
    tallied.listed >= 10 * FILES && tallied.followed >= 10 * LINKS,
    `the race barely ran: ${JSON.stringify(tallied)}`,
  );
});

// Nothing outside the roots granted is read, and failures are clean: the Python host's
// sandbox tests (tests/test_sandbox.py, tests/adversarial/test_names.py) against the Node
// host's own reads, for the hashing kernel (hashFiles) and for the component (its
// wasi:filesystem and host-files imports).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { call, EngineError } from "../dist/engine.js";
import { hashFile, hashFiles, nameText, planSnapshot, snapshot } from "../dist/index.js";
import { bytesPath, PACKAGE, PYTHON, scratch, thrown, xxh128, xxh128Of } from "./helpers.mjs";

/** A granted root beside an outside directory holding a secret. */
function layout(t) {
  const base = scratch(t);
  const root = path.join(base, "root");
  const outside = path.join(base, "outside");
  fs.mkdirSync(path.join(root, "sub"), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, "secret.txt"), "secret");
  fs.writeFileSync(path.join(root, "ok.txt"), "fine");
  fs.writeFileSync(path.join(root, "sub", "inner.txt"), "inner");
  return { root, outside };
}

/** The error hashing `items` below `root` gives, an EngineError. */
function refusal(root, items) {
  const err = thrown(() => hashFiles(root, items));
  assert.ok(err instanceof EngineError, err);
  return err;
}

for (const p of [
  "../outside/secret.txt",
  "sub/../../outside/secret.txt",
  "/etc/passwd",
  "a//b",
  "./ok.txt",
  "",
  "ok.txt\0",
]) {
  test(`a path that could leave the root is refused: ${JSON.stringify(p)}`, (t) => {
    const err = refusal(layout(t).root, [p]);
    assert.equal(err.kind, "invalid-input");
    assert.equal(err.path, p);
  });
}

test("a backslash or a colon is a character of a name", (t) => {
  const { root } = layout(t);
  for (const name of ["back\\slash.txt", "C:"]) fs.writeFileSync(path.join(root, name), name);
  assert.deepEqual(hashFiles(root, ["back\\slash.txt", "C:"]), [
    xxh128Of("back\\slash.txt"),
    xxh128Of("C:"),
  ]);
  assert.equal(refusal(root, ["sub\\inner.txt"]).kind, "not-found"); // not the file sub/inner.txt
});

test("a symlink to a file outside is refused", (t) => {
  const { root, outside } = layout(t);
  fs.symlinkSync(path.join(outside, "secret.txt"), path.join(root, "escape"));
  fs.symlinkSync("../outside/secret.txt", path.join(root, "escape-up"));
  for (const p of ["escape", "escape-up"])
    assert.equal(refusal(root, [p]).kind, "permission-denied");
});

test("a symlinked directory leading outside is refused", (t) => {
  const { root, outside } = layout(t);
  fs.symlinkSync("..", path.join(root, "up"));
  fs.symlinkSync(outside, path.join(root, "out"));
  fs.symlinkSync("../up", path.join(root, "sub", "upup"));
  for (const p of ["up/outside/secret.txt", "out/secret.txt", "sub/upup/outside/secret.txt"]) {
    const err = refusal(root, [p]);
    assert.equal(err.kind, "permission-denied");
    assert.match(err.message, /not permitted/);
  }
});

test("a symlink that stays inside is followed, climbing with '..' or not", (t) => {
  const { root } = layout(t);
  fs.symlinkSync("sub/inner.txt", path.join(root, "link"));
  fs.symlinkSync("../ok.txt", path.join(root, "sub", "back"));
  fs.symlinkSync("link", path.join(root, "chain"));
  fs.symlinkSync("sub", path.join(root, "dirlink"));
  const [inner, ok] = xxh128([path.join(root, "sub", "inner.txt"), path.join(root, "ok.txt")]);
  assert.deepEqual(
    hashFiles(root, ["link", "sub/back", "chain", "dirlink/inner.txt", "dirlink/back"]),
    [inner, ok, inner, inner, ok],
  );
});

test("a loop of symlinks is refused, not followed forever", (t) => {
  const { root } = layout(t);
  fs.symlinkSync("b", path.join(root, "a"));
  fs.symlinkSync("a", path.join(root, "b"));
  assert.equal(refusal(root, ["a"]).kind, "permission-denied");
});

test("a missing file and a directory have their own errors", (t) => {
  const { root } = layout(t);
  const missing = refusal(root, ["ok.txt", "nope.txt"]);
  assert.deepEqual([missing.kind, missing.path], ["not-found", "nope.txt"]);
  assert.equal(refusal(root, ["sub"]).kind, "wrong-type");
  assert.equal(refusal(root, ["ok.txt/x"]).kind, "wrong-type"); // a parent that is a file
});

test("hashFile reports the full host path", (t) => {
  const missing = path.join(scratch(t), "missing.bin");
  const err = thrown(() => hashFile(missing));
  assert.ok(err instanceof EngineError, err);
  assert.equal(err.path, missing);
  assert.ok(err.message.includes(missing), err.message);
});

test("a root that does not exist, or is not a directory, is refused", (t) => {
  const { root } = layout(t);
  const absent = refusal(path.join(root, "absent"), ["x"]);
  assert.deepEqual([absent.kind, absent.path], ["not-found", path.join(root, "absent")]);
  assert.match(absent.message, /does not exist/);
  const file = refusal(path.join(root, "ok.txt"), ["x"]);
  assert.equal(file.kind, "wrong-type");
  assert.match(file.message, /is not a directory/);
});

test("only the roots granted are visible", (t) => {
  const { root, outside } = layout(t);
  const cases = [
    [[], "/r0", "x"],
    [[root], outside, "secret.txt"],
    [[root], "/", "etc/passwd"],
    [[root], "/r1", "ok.txt"],
  ];
  for (const [dirs, guest, file] of cases) {
    const err = thrown(() => call(dirs, (e) => e.hashing.hashFile(guest, file)));
    assert.ok(err instanceof EngineError, err);
    assert.equal(err.kind, "not-found");
    assert.match(err.message, /not granted/);
  }
  assert.equal(
    call([root], (e, [r0]) => e.hashing.hashFile(r0, "ok.txt")),
    xxh128Of("fine"),
  );
});

test("a malformed batch is invalid input", (t) => {
  const err = thrown(() =>
    call([layout(t).root], (e, [r0]) => e.hashing.hashFiles(r0, '{"not": "a list"}')),
  );
  assert.ok(err instanceof EngineError, err);
  assert.equal(err.kind, "invalid-input");
  assert.match(err.message, /JSON array/);
});

// --- names as the file system holds them ----------------------------------------------

/** Names a POSIX file system holds, as bytes (tests/adversarial/test_names.py). */
const HOSTILE = [
  "back\\slash.txt",
  "dir\\with\\backslashes/inner.txt",
  "c:colon.txt",
  "tab\there.txt",
  "new\nline.txt",
  "\x01ctrl-\x1f.txt",
  "del-\x7f.txt",
  Buffer.from("bad-\xff.bin", "latin1"),
  Buffer.from("latin1-\xe9.txt", "latin1"),
  Buffer.from("truncated-\xe2\x82.txt", "latin1"),
  "caf\u00e9.txt",
  "cafe\u0301.txt",
  "Shot.exr",
  "shot.exr",
  '"quoted" <a|b> *?.txt',
  "emoji \u{1f600}.txt",
  " leading space",
  Buffer.from("deep-\xfe/x-\xfd/leaf", "latin1"),
].map((n) => Buffer.from(n));

function hostileTree(t) {
  const root = scratch(t);
  for (const name of HOSTILE) {
    const full = bytesPath(root, name);
    fs.mkdirSync(full.subarray(0, full.lastIndexOf(0x2f)), { recursive: true });
    fs.writeFileSync(full, Buffer.concat([Buffer.from("content of "), name]));
  }
  return root;
}

test("names that are not UTF-8, and control characters, are hashed as they are", (t) => {
  const root = hostileTree(t);
  const want = xxh128(HOSTILE.map((n) => bytesPath(root, n)));
  const names = HOSTILE.map(nameText);
  assert.ok(names.includes("bad-\udcff.bin") && names.includes("truncated-\udce2\udc82.txt"));
  assert.deepEqual(hashFiles(root, names), want);
  // with the sizes of a listing, and in chunks of 4 bytes (the newer format's chunkhashes)
  const sizes = HOSTILE.map((n) => fs.statSync(bytesPath(root, n)).size);
  assert.deepEqual(
    hashFiles(
      root,
      names.map((n, i) => [n, sizes[i]]),
    ),
    want,
  );
  const i = names.indexOf("bad-\udcff.bin");
  const content = fs.readFileSync(bytesPath(root, HOSTILE[i]));
  const chunks = [0, 4, 8, 12, 16]
    .filter((o) => o < content.length)
    .map((o) => xxh128Of(content.subarray(o, o + 4)));
  assert.deepEqual(hashFiles(root, [[names[i], content.length, 4]]), [chunks]);
});

test("a snapshot carries every hostile name, with its digest", (t) => {
  const root = hostileTree(t);
  const want = xxh128(HOSTILE.map((n) => bytesPath(root, n)));
  const paths = JSON.parse(snapshot(root).manifest.encoded).paths;
  const got = new Map(paths.map((p) => [p.path, p.hash]));
  assert.deepEqual(got, new Map(HOSTILE.map((n, i) => [nameText(n), want[i]])));
});

test("a name that is not UTF-8 is confined as any other: read-raw follows no link out", (t) => {
  const { root, outside } = layout(t);
  const bad = Buffer.from("bad-\xff", "latin1");
  fs.writeFileSync(bytesPath(outside, bad), "secret");
  fs.symlinkSync(bytesPath(outside, bad), bytesPath(root, bad)); // a link named so, leading out
  fs.symlinkSync(outside, path.join(root, "out"));
  fs.symlinkSync("..", path.join(root, "up"));
  const refused = [
    "bad-\udcff",
    "out/bad-\udcff",
    "up/outside/bad-\udcff",
    "sub/../bad-\udcff",
  ].map((p) => {
    const err = refusal(root, [p]);
    return `${err.kind}: ${err.reason}`;
  });
  assert.deepEqual(refused, [
    "io: cannot read: loop", // a last segment that is a symlink is not followed
    "io: cannot read: not-permitted",
    "io: cannot read: not-permitted",
    "invalid-input: path has a '..' segment",
  ]);
  fs.writeFileSync(bytesPath(path.join(root, "sub"), bad), "inside");
  fs.symlinkSync("sub", path.join(root, "in"));
  assert.deepEqual(hashFiles(root, ["in/bad-\udcff", "sub/bad-\udcff"]), [
    xxh128Of("inside"),
    xxh128Of("inside"),
  ]);
});

// --- what is not a regular file ---------------------------------------------------------

// Run in a child process, so that a read that blocks fails the test instead of hanging it.
const FIFOS = `
import * as fs from "node:fs";
import { hashFiles, planSnapshot, snapshot } from "./dist/index.js";
const [root, held] = process.argv.slice(1);
fs.openSync(held, fs.constants.O_RDWR); // a FIFO with a writer: a read would wait for data
const out = {};
for (const item of ["fifo", "held", ["fifo", 5], ["held", 5], "fifo-\\udcff", ["fifo-\\udcff", 5], "sub", "sub-\\udcff"]) {
  try { out[JSON.stringify(item)] = hashFiles(root, [item]); } catch (e) { out[JSON.stringify(item)] = \`\${e.kind}: \${e.reason}\`; }
}
for (const fifo of ["fifo", "held"]) {
  try { out["root " + fifo] = hashFiles(root + "/" + fifo, ["x"]); } catch (e) { out["root " + fifo] = e.kind; }
}
out.skipped = planSnapshot(root).skipped;
out.files = JSON.parse(snapshot(root).manifest.encoded).paths.map((p) => p.path);
console.log(JSON.stringify(out));
`;

test("a FIFO where a file or a root is named fails at once, never waits", (t) => {
  const { root } = layout(t);
  fs.mkdirSync(bytesPath(root, Buffer.from("sub-\xff", "latin1")));
  const fifos = ["fifo", "held", Buffer.from("fifo-\xff", "latin1")].map((n) =>
    bytesPath(root, n).toString("hex"),
  );
  execFileSync(PYTHON, [
    "-c",
    "import os, sys\nfor p in sys.argv[1:]: os.mkfifo(bytes.fromhex(p))",
    ...fifos,
  ]);
  const r = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", FIFOS, root, path.join(root, "held")],
    {
      cwd: PACKAGE,
      timeout: 20_000,
    },
  );
  assert.equal(r.signal, null, "hashing a FIFO hung");
  assert.equal(r.status, 0, r.stderr.toString());
  const out = JSON.parse(r.stdout.toString());
  assert.deepEqual([out["root fifo"], out["root held"]], ["wrong-type", "wrong-type"]); // FIFOs as roots
  for (const [item, got] of Object.entries(out)) {
    if (item === "skipped" || item === "files" || item.startsWith("root ")) continue;
    assert.equal(typeof got, "string", `${item} was hashed: ${got}`);
  }
  assert.equal(out['"fifo"'], "wrong-type: is not a regular file");
  assert.equal(out['"sub"'], "wrong-type: is a directory, not a regular file");
  assert.match(out['"fifo-\\udcff"'], /^io: .*is not a regular file/); // read through read-raw
  assert.match(out['"sub-\\udcff"'], /^io: .*is a directory/);
  assert.deepEqual(out.skipped, {
    "special-file": ["fifo", "fifo-\udcff", "held"],
    "empty-directory": ["sub-\udcff"],
  });
  assert.deepEqual(out.files, ["ok.txt", "sub/inner.txt"]);
});

// --- descriptors ------------------------------------------------------------------------

// Runs with at most 64 descriptors: a tree deeper and wider than that is listed, planned and
// hashed, and a symlink climbing back many levels from deep down is followed.
const DEEP = `
import { hashFiles, planSnapshot, snapshot } from "./dist/index.js";
const [root, depth] = [process.argv[1], Number(process.argv[2])];
const deep = Array(depth).fill("d").join("/");
const plan = planSnapshot(root);
const result = snapshot(root);
console.log(JSON.stringify({
  planned: plan.files.length,
  dirs: plan.skipped["empty-directory"]?.length ?? 0,
  manifest: JSON.parse(result.manifest.encoded).paths.length,
  digests: hashFiles(root, [deep + "/leaf.txt", deep + "/back", "w7/f"]),
}));
`;

test("a tree deeper and wider than the descriptor limit is listed and hashed", (t) => {
  const root = scratch(t);
  const [depth, width] = [150, 3000];
  const deep = path.join(root, ...Array(depth).fill("d"));
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(deep, "leaf.txt"), "leaf");
  // a file beside each directory of the chain: listed after it, it is listed back up there
  for (let i = 0; i < depth; i++)
    fs.writeFileSync(path.join(root, ...Array(i).fill("d"), `f${i}`), `${i}`);
  fs.mkdirSync(path.join(root, ...Array(10).fill("d"), "target"));
  fs.writeFileSync(path.join(root, ...Array(10).fill("d"), "target", "t.txt"), "target");
  fs.symlinkSync(`${"../".repeat(depth - 10)}target/t.txt`, path.join(deep, "back"));
  for (let i = 0; i < width; i++) {
    fs.mkdirSync(path.join(root, `w${i}`));
    fs.writeFileSync(path.join(root, `w${i}`, "f"), `${i}`);
  }
  fs.mkdirSync(path.join(root, "empty", "inside"), { recursive: true });
  const r = spawnSync(
    "bash",
    [
      "-c",
      'ulimit -n 64 && exec "$0" --input-type=module -e "$1" "$2" "$3"',
      process.execPath,
      DEEP,
      root,
      `${depth}`,
    ],
    {
      cwd: PACKAGE,
      timeout: 40_000,
    },
  );
  assert.equal(r.status, 0, r.stderr.toString());
  const out = JSON.parse(r.stdout.toString());
  const files = width + depth + 3; // and the leaf, the link to the target, and the target
  assert.deepEqual(out, {
    planned: files,
    dirs: 1,
    manifest: files,
    digests: [xxh128Of("leaf"), xxh128Of("target"), xxh128Of("7")],
  });
  // and more '..' than the link is deep leads out
  fs.symlinkSync("../".repeat(depth + 1) + "x", path.join(deep, "out"));
  const err = refusal(root, [`${Array(depth).fill("d").join("/")}/out`]);
  assert.equal(err.kind, "permission-denied");
});

// The package as built hashes a file as python-xxhash does (computed by the repository's
// .venv, independently of the component).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

import { hashFile, hashFiles } from "../dist/index.js";

const python = fileURLToPath(new URL("../../../.venv/bin/python", import.meta.url));

function xxhash(file) {
  assert.ok(fs.existsSync(python), `${python} is missing: run ./just setup`);
  const code =
    "import sys, xxhash; print(xxhash.xxh3_128_hexdigest(open(sys.argv[1], 'rb').read()))";
  return execFileSync(python, ["-c", code, file], { encoding: "utf8" }).trim();
}

test("a file over several read buffers hashes as python-xxhash hashes it", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobattach-smoke-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "data.bin");
  fs.writeFileSync(file, randomBytes(3 * (1 << 20) + 17));
  const expected = xxhash(file);
  assert.match(expected, /^[0-9a-f]{32}$/);
  assert.equal(hashFile(file), expected);
  assert.deepEqual(hashFiles(dir, ["data.bin"]), [expected]);
});

// What the package's tests share: where the repository, the golden vectors and the Python
// environment are, scratch directories, and digests from an implementation other than ours.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The package (host/node) and the repository it is part of. */
export const PACKAGE = fileURLToPath(new URL("..", import.meta.url));
export const REPO = path.resolve(PACKAGE, "..", "..");
export const CLI = path.join(PACKAGE, "bin", "jobattach-engine.mjs");

/** The golden vectors of the official implementation, found as tests/conftest.py finds them:
 * in ../shared beside the repository unless JOBATTACH_SHARED_DIR says otherwise. */
export const VECTORS = path.join(
  process.env.JOBATTACH_SHARED_DIR ?? path.join(REPO, "..", "shared"),
  "vectors",
);
if (!fs.existsSync(VECTORS))
  throw new Error(`the golden vectors are missing: ${VECTORS} (set JOBATTACH_SHARED_DIR)`);

/** The repository's Python environment (./just setup): python-xxhash is the independent
 * implementation of the digests the tests expect. */
export const PYTHON = path.join(REPO, ".venv", "bin", "python");
if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run ./just setup`);

/** A fresh directory, removed when the test ends. */
export function scratch(t, name = "jobattach-node-") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), name));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A path below `dir` whose name bytes are `rel` (a Buffer, `/`-separated). */
export function bytesPath(dir, rel) {
  return Buffer.concat([Buffer.from(`${dir}/`), Buffer.isBuffer(rel) ? rel : Buffer.from(rel)]);
}

/** python-xxhash's xxh3-128 of each of `files` (paths as Buffers or strings). */
export function xxh128(files) {
  const script = [
    "import sys, xxhash",
    "for line in sys.stdin.buffer.read().split(b'\\0')[:-1]:",
    "    with open(line, 'rb') as f: print(xxhash.xxh3_128_hexdigest(f.read()))",
  ].join("\n");
  const input = Buffer.concat(files.flatMap((f) => [Buffer.from(f), Buffer.from([0])]));
  return execFileSync(PYTHON, ["-c", script], { input }).toString().split("\n").slice(0, -1);
}

/** python-xxhash's xxh3-128 of `data`. */
export function xxh128Of(data) {
  const script = "import sys, xxhash; print(xxhash.xxh3_128_hexdigest(sys.stdin.buffer.read()))";
  return execFileSync(PYTHON, ["-c", script], { input: data }).toString().trim();
}

/** Runs the CLI with `args`: its status, stdout (bytes) and stderr (text). */
export function cli(args, options = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { timeout: 30_000, ...options });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** The error `fn` throws (it must throw). */
export function thrown(fn) {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, got none");
}

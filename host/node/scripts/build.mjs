// Builds the package: the component transpiled by the pinned jco into generated/ (not checked
// in) and the hashing kernel copied beside it, then the TypeScript sources into dist/, then
// the engine's version recorded for a `--version` that does not load the component.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const wasm = fileURLToPath(new URL("../../jobattach_host/jobattach.wasm", import.meta.url));
// The hashing kernel, a core module with no imports: copied beside the transpiled component.
const kernel = fileURLToPath(new URL("../../jobattach_host/kernel.wasm", import.meta.url));
const bin = (name) => `${here}node_modules/.bin/${name}`;
const run = (cmd, args) =>
  execFileSync(cmd, args, { cwd: here, stdio: ["ignore", "ignore", "inherit"] });

// Two lines of jco 1.35's bindings are rewritten. The pinned jco writes each exactly once; a
// jco that does not fails the build here rather than running wrong or slower unnoticed.
const REWRITES = [
  // Strings lifted from the component went through a TextDecoder that drops a leading
  // U+FEFF as a byte-order mark: a file named "\ufeffx" was opened as "x".
  [
    "  const TEXT_DECODER_UTF8 = new TextDecoder();",
    "  const TEXT_DECODER_UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });",
  ],
  // process.env.JCO_DEBUG (a call into the C++ environment) was read several times on every
  // import call, a tenth to a fifth of the time of hashing small files: now once, at load.
  [
    "  const _debugLog = (...args) => {\n    if (!globalThis?.process?.env?.JCO_DEBUG) { return; }\n    console.debug(...args);\n  };",
    "  const _debugLog = globalThis?.process?.env?.JCO_DEBUG ? (...args) => console.debug(...args) : () => {};",
  ],
];

function rewrite(file) {
  let text = fs.readFileSync(file, "utf8");
  for (const [from, to] of REWRITES) {
    if (text.split(from).length !== 2)
      throw new Error(`${file}: jco no longer writes ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  fs.writeFileSync(file, text);
}

for (const file of [wasm, kernel]) {
  if (!fs.existsSync(file)) {
    console.error(`${file} is missing: build the component first (./just build)`);
    process.exit(1);
  }
}
fs.rmSync(`${here}generated`, { recursive: true, force: true });
fs.rmSync(`${here}dist`, { recursive: true, force: true });
// Synchronous instantiation: every call, and every filesystem call it makes, stays on the
// caller's thread. No Node compatibility layer: the host's imports are ours (src/wasi.ts).
run(bin("jco"), [
  "transpile",
  wasm,
  "--out-dir",
  "generated",
  "--name",
  "jobattach",
  "--instantiation",
  "sync",
  "--no-nodejs-compat",
  "--quiet",
  "--valid-lifting-optimization",
]);
rewrite(`${here}generated/jobattach.js`);
fs.copyFileSync(kernel, `${here}generated/kernel.wasm`);
run(bin("tsc"), ["-p", "."]);
const { version } = await import(`${here}dist/engine.js`);
fs.writeFileSync(`${here}dist/engine-version.json`, JSON.stringify({ engine: version() }) + "\n");

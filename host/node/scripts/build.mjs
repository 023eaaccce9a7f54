// Builds the package: the component transpiled by the pinned jco into generated/ (not checked
// in), then the TypeScript sources into dist/, then the engine's version recorded for a
// `--version` that does not load the component.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const wasm = fileURLToPath(new URL("../../jobattach_host/jobattach.wasm", import.meta.url));
const bin = (name) => `${here}node_modules/.bin/${name}`;
const run = (cmd, args) =>
  execFileSync(cmd, args, { cwd: here, stdio: ["ignore", "ignore", "inherit"] });

if (!fs.existsSync(wasm)) {
  console.error(`${wasm} is missing: build the component first (./just build)`);
  process.exit(1);
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
quietDebugLog(`${here}generated/jobattach.js`);
run(bin("tsc"), ["-p", "."]);
const { version } = await import(`${here}dist/engine.js`);
fs.writeFileSync(`${here}dist/engine-version.json`, JSON.stringify({ engine: version() }) + "\n");

// jco 1.35's bindings read process.env.JCO_DEBUG (a call into the C++ environment) several
// times on every import call: a tenth to a fifth of the time of hashing small files. The
// variable is read once, at load, instead. The pinned jco writes this exact text; a jco that
// does not fails the build here rather than running slower unnoticed.
function quietDebugLog(file) {
  const slow =
    "  const _debugLog = (...args) => {\n    if (!globalThis?.process?.env?.JCO_DEBUG) { return; }\n    console.debug(...args);\n  };";
  const fast =
    "  const _debugLog = globalThis?.process?.env?.JCO_DEBUG ? (...args) => console.debug(...args) : () => {};";
  const text = fs.readFileSync(file, "utf8");
  if (text.split(slow).length !== 2)
    throw new Error(`${file}: jco's _debugLog is not the one this build rewrites`);
  fs.writeFileSync(file, text.replace(slow, fast));
}

// The package's TypeScript types as a user's project sees them: a consumer importing
// "@jobattach/engine" type-checks under strict settings, and a wrong use does not.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { PACKAGE, scratch } from "./helpers.mjs";

const TSC = path.join(PACKAGE, "node_modules", "typescript", "bin", "tsc");

const GOOD = `
import { decode, EngineError, hashFiles, snapshot, type Digest, type ManifestEntry } from "@jobattach/engine";

const r = snapshot("/tmp", { format: "v2025-12-snapshot", exclude: ["*.tmp"] });
const text: string = r.manifest.encoded;
const files: ManifestEntry[] = decode(text).files;
const digests: Digest[] = hashFiles("/tmp", ["a", ["b", 3], ["c", 4, 2]]);
const kind: "invalid-input" | "not-found" | "permission-denied" | "wrong-type" | "io" | undefined =
  new Error() instanceof EngineError ? "io" : undefined;
console.log(files.length, digests.length, kind);
`;

const BAD = `
import { snapshot } from "@jobattach/engine";
snapshot("/tmp", { format: "v2024" });
`;

function check(t, source) {
  const dir = scratch(t);
  fs.mkdirSync(path.join(dir, "node_modules", "@jobattach"), { recursive: true });
  fs.symlinkSync(PACKAGE, path.join(dir, "node_modules", "@jobattach", "engine"));
  fs.writeFileSync(path.join(dir, "package.json"), '{"type": "module"}\n');
  fs.writeFileSync(path.join(dir, "consumer.ts"), source);
  const options = ["--noEmit", "--strict", "--module", "nodenext", "--target", "es2022"];
  const args = [
    TSC,
    ...options,
    "--types",
    "node",
    "--typeRoots",
    path.join(PACKAGE, "node_modules", "@types"),
    "consumer.ts",
  ];
  return spawnSync(process.execPath, args, { cwd: dir, encoding: "utf8" });
}

test("a strict TypeScript project type-checks against the package's types", (t) => {
  const r = check(t, GOOD);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("a manifest format the engine does not know is a type error", (t) => {
  const r = check(t, BAD);
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /v2024/);
});

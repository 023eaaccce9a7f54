#!/usr/bin/env node
// jobattach-engine: the engine from the command line, through the Node host.
// `--version` reads two small files and never loads the component, so it starts at once.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

const USAGE = `usage: jobattach-engine snapshot ROOT [-o FILE] [--format FORMAT] [--include GLOB]... [--exclude GLOB]...
       jobattach-engine hash --root DIR PATH...
       jobattach-engine --version

snapshot  writes the manifest of ROOT (default format v2023-03-03, or v2025-12-snapshot),
          byte for byte what the official encoder writes, to FILE or stdout
hash      prints "digest  path" for each PATH below DIR (relative to DIR, or absolute inside
          it), granting the engine only DIR; a path that cannot be hashed gets an error line
          on stderr, and the status is 1 at the end`;

const FORMATS = ["v2023-03-03", "v2025-12-snapshot"];

function fail(message, status = 2) {
  process.stderr.write(`jobattach-engine: ${message}\n`);
  process.exit(status);
}

function version() {
  const read = (rel) => JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), "utf8"));
  const engine = read("../dist/engine-version.json").engine;
  return `jobattach-engine ${read("../package.json").version} (engine component ${engine}, node ${process.version})`;
}

async function snapshot(args) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      format: { type: "string", default: "v2023-03-03" },
      include: { type: "string", multiple: true, default: [] },
      exclude: { type: "string", multiple: true, default: [] },
    },
  });
  if (positionals.length !== 1) fail("snapshot takes one ROOT\n" + USAGE);
  if (!FORMATS.includes(values.format)) fail(`--format must be one of ${FORMATS.join(", ")}`);
  const { snapshot } = await import("../dist/index.js");
  const result = snapshot(positionals[0], {
    format: values.format,
    include: values.include,
    exclude: values.exclude,
  });
  const bytes = Buffer.from(result.manifest.encoded, "latin1"); // ASCII: names are escaped
  if (values.output === undefined) process.stdout.write(bytes);
  else write(values.output, bytes);
}

function write(file, bytes) {
  try {
    fs.writeFileSync(file, bytes);
  } catch (e) {
    fail(
      `cannot write ${file}: ${e.code === undefined ? e.message : e.message.replace(/,.*/, "")}`,
      1,
    );
  }
}

async function hash(args) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { root: { type: "string" } },
  });
  if (values.root === undefined) fail("hash needs --root DIR\n" + USAGE);
  if (positionals.length === 0) fail("hash takes at least one PATH\n" + USAGE);
  const root = path.resolve(values.root);
  const rel = positionals.map((p) =>
    path.isAbsolute(p) ? path.relative(root, path.resolve(p)) : p,
  );
  const { hashEach } = await import("../dist/index.js");
  let failed = false;
  hashEach(root, rel).forEach((digest, i) => {
    if (typeof digest === "string") {
      process.stdout.write(`${digest}  ${positionals[i]}\n`);
    } else {
      failed = true;
      process.stderr.write(`jobattach-engine: ${positionals[i]}: ${digest.reason}\n`);
    }
  });
  if (failed) process.exitCode = 1;
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === "--version" || command === "-V") console.log(version());
  else if (command === "--help" || command === "-h") console.log(USAGE);
  else if (command === "snapshot") await snapshot(rest);
  else if (command === "hash") await hash(rest);
  else fail(command === undefined ? USAGE : `unknown command ${JSON.stringify(command)}\n${USAGE}`);
} catch (e) {
  if (e?.name === "EngineError") fail(e.message, 1);
  if (e?.code?.startsWith?.("ERR_PARSE_ARGS")) fail(`${e.message}\n${USAGE}`);
  throw e;
}

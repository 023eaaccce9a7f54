// The contract cases any host runs (tests/conformance/), through this host's component exports.
// As tests/test_conformance.py does for the Python host, each case's `function` maps to a
// call: arguments are the WIT's by name (records as objects with the WIT's field names,
// options as null or the value, bulk data as the JSON it holds), and the outcome is compared
// with `expected`, or the error's kind with `error`. jco names fields in camelCase, gives
// u64 as BigInt and options as undefined.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { call, EngineError } from "../dist/engine.js";
import { REPO, scratch, thrown } from "./helpers.mjs";

const CASES = path.join(REPO, "tests", "conformance");
const U64 = new Set([
  "startUs",
  "lastModifiedUs",
  "completeBeforeUs",
  "lookbackUs",
  "rootLength",
  "pathMax",
  "nameMax",
]);

const camel = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
const kebab = (name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** A WIT record as jco takes it, from its fields by WIT name. */
function record(fields) {
  return Object.fromEntries(
    Object.entries(fields).map(([k, v]) => {
      const name = camel(k);
      const value = v === null ? undefined : U64.has(name) && typeof v === "number" ? BigInt(v) : v;
      return [name, value];
    }),
  );
}

/** A record jco gave back, with the WIT's field names. */
const fields = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [kebab(k), v]));

/** Bulk data as the contract carries it: ASCII JSON, so that a name that is not UTF-8 (the
 * lone surrogate U+DC00+B for the byte B) travels as its `\udcXX` escape (as
 * jobattach_host.engine.bulk writes it). */
function bulk(value) {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const object = (o) =>
  o === undefined ? null : { key: o.key, metadata: o.metadata.map((kv) => [...kv]) };
const some = (v) => (v === undefined ? null : v);

/** Each function of the cases, as a call of the component's exports `e`; `tmp` is an empty
 * directory, granted where a root is needed. */
const CALLS = {
  "sync.session-root": (a) => call([], (e) => e.sync.sessionRoot(a["root-path"])),
  "sync.layout": (a) => call([], (e) => fields(e.sync.layout(a["root-prefix"]))),
  "sync.output-manifest": (a) => call([], (e) => object(e.sync.outputManifest(record(a.request)))),
  "sync.outputs-prefix": (a) => call([], (e) => e.sync.outputsPrefix(record(a.request))),
  "sync.select-outputs": (a) => call([], (e) => e.sync.selectOutputs(a.listing.map(record))),
  "sync.queue-outputs-prefix": (a) =>
    call([], (e) => e.sync.queueOutputsPrefix(a["root-prefix"], a["farm-id"], a["queue-id"])),
  "sync.queue-outputs": (a) => {
    const r = a.request;
    const since = record({ ...r.since, done: r.since.done.map(record) });
    const request = record({ ...r, listing: r.listing.map(record), since });
    // Back to the cases' form: WIT names, integers as numbers.
    const plain = (o) =>
      Object.fromEntries(
        Object.entries(o).map(([k, v]) => [kebab(k), typeof v === "bigint" ? Number(v) : v]),
      );
    return call([], (e) => {
      const plan = e.sync.queueOutputs(request);
      return {
        batches: plan.batches.map((b) => ({ ...plain(b), outputs: b.outputs.map(plain) })),
        after: { ...plain(plan.after), done: plan.after.done.map(plain) },
      };
    });
  },
  "sync.manifest-root": (a) => call([], (e) => some(e.sync.manifestRoot(a.metadata))),
  "sync.map-path": (a) =>
    call([], (e) => some(e.sync.mapPath(a.rules.map(record), a.path, a.separator))),
  "sync.plan-mirror": (a) => {
    // The fields the cases leave out take jobattach_host.engine.MirrorRequest's defaults.
    const r = {
      "dry-run": false,
      "source-name": "the source",
      "dest-name": "the destination",
      ...a.request,
    };
    const request = record({ ...r, source: bulk(r.source), dest: bulk(r.dest) });
    return call([], (e) => JSON.parse(e.sync.planMirror(request)));
  },
  "sync.refused-entries": (a) => {
    const entries = typeof a.entries === "string" ? a.entries : bulk(a.entries);
    return call([], (e) => JSON.parse(e.sync.refusedEntries(record(a.destination), entries)));
  },
  "submit.group": (a) => {
    const r = a.request;
    const paths = {
      inputs: r.paths.inputs ?? [],
      outputs: r.paths.outputs ?? [],
      references: r.paths.references ?? [],
    };
    const request = record({ ...r, paths: bulk(paths), locations: r.locations.map(record) });
    return call([], (e) => JSON.parse(e.submit.group(request)));
  },
  "submit.describe": (a) => {
    const request = record({ ...a.request, roots: a.request.roots.map(record) });
    return call([], (e) => {
      const d = e.submit.describe(request);
      return { manifests: d.manifests.map(object), attachments: JSON.parse(d.attachments) };
    });
  },
  "manifest.canonicalize": (a) =>
    call([], (e) => {
      const c = e.manifest.canonicalize(a.data);
      return { format: c.format, encoded: c.encoded, hash: c.hash };
    }),
  "snapshot.plan-listed": (a, tmp) =>
    call([tmp], (e, [r0]) =>
      JSON.parse(e.snapshot.planListed(r0, bulk(a.listing), record(a.options))),
    ),
};

const cases = fs
  .readdirSync(CASES)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .flatMap((f) =>
    JSON.parse(fs.readFileSync(path.join(CASES, f), "utf8")).map((c) => ({ file: f, ...c })),
  );

test("every case names a function this runner knows", () => {
  const names = new Set(cases.map((c) => c.function));
  assert.deepEqual(
    [...names].filter((n) => !(n in CALLS)),
    [],
  );
  assert.ok(names.size >= 10, `only ${names.size} functions`);
});

for (const c of cases) {
  test(`${path.basename(c.file, ".json")}:${c.name}`, (t) => {
    const run = () => CALLS[c.function](c.arguments, scratch(t));
    if ("error" in c) {
      const err = thrown(run);
      assert.ok(err instanceof EngineError, err);
      assert.equal(err.kind, c.error, err.message);
    } else {
      assert.deepEqual(run(), c.expected);
    }
  });
}

// --- the download plan (tests/conformance/download/cases.json, as tests/test_download_plan.py)

const DOWNLOAD = JSON.parse(fs.readFileSync(path.join(CASES, "download", "cases.json"), "utf8"));

function destinations(c) {
  return c.destinations.map((d) => ({
    manifest: d.manifest,
    found: bulk(d.found),
    digests: d.digests === null || d.digests === undefined ? undefined : bulk(d.digests),
    shown: bulk(d.shown), // a path need not be Unicode: it crosses by the escape
  }));
}

const plan = (dests, policy) => call([], (e) => e.download.plan(dests, policy));

test("the download cases are all here", () => {
  assert.deepEqual(
    [DOWNLOAD.plans.length, DOWNLOAD.output_patterns.length, DOWNLOAD.internal_names.length],
    [7, 5, 6],
  );
});

for (const c of DOWNLOAD.plans) {
  test(`download.plan: ${c.name}`, () => {
    const dests = destinations(c);
    const blank = dests.map((d) => ({ ...d, digests: undefined }));
    const first = plan(blank, c.policy);
    if (c.hash.some((rows) => rows.length > 0)) {
      // digests decide somewhere: asked for first
      assert.equal(first.tag, "hash");
      assert.deepEqual(
        first.val.map((rows) => JSON.parse(rows)),
        c.hash,
      );
    } else if (!("error" in c)) {
      assert.deepEqual(first, plan(dests, c.policy)); // nothing to hash: planned at once
    }
    if ("error" in c) {
      const err = thrown(() => plan(dests, c.policy));
      assert.ok(err instanceof EngineError, err);
      assert.equal(err.kind, "invalid-input");
      assert.ok(err.reason.startsWith(c.error), err.reason);
      return;
    }
    const outcome = plan(dests, c.policy);
    assert.equal(outcome.tag, "planned");
    const { plan: want, ...counters } = c.expect;
    const got = Object.fromEntries(
      Object.keys(counters).map((k) => [k, Number(outcome.val[camel(k.replaceAll("_", "-"))])]),
    );
    assert.deepEqual(got, counters);
    assert.deepEqual(JSON.parse(outcome.val.plan), want);
  });
}

test("download.plan is refused when digests do not match what it hashes", () => {
  const [c] = DOWNLOAD.plans.filter((p) => p.policy === "skip" && p.hash[0].length > 0);
  const [dest] = destinations(c);
  const short = { ...dest, digests: bulk(JSON.parse(dest.digests).slice(0, 1)) };
  const err = thrown(() => plan([short], "skip"));
  assert.ok(err instanceof EngineError, err);
  assert.match(err.reason, /1 digests for the 2 files/);
});

for (const c of DOWNLOAD.output_patterns) {
  test(`download.output-patterns: ${JSON.stringify(c.directories)} (${c.format})`, () => {
    assert.deepEqual(
      some(call([], (e) => e.download.outputPatterns(c.directories, c.format))),
      c.expect,
    );
  });
}

test("download.output-patterns: a directory not named in UTF-8 gives patterns", () => {
  // a lone surrogate crosses a WIT string as U+FFFD, as the snapshot's patterns read it
  assert.deepEqual(
    call([], (e) => e.download.outputPatterns(["out-\udcff"], "posix")),
    ["out-\ufffd/**"],
  );
});

test("download.internal-kinds and internal-name: names are made and recognised by the component", () => {
  const names = DOWNLOAD.internal_names;
  const kinds = (ns) => call([], (e) => e.download.internalKinds(ns).map(some));
  assert.deepEqual(
    kinds(names.map((n) => n.name)),
    names.map((n) => n.kind),
  );
  const made = (kind) => call([], (e) => e.download.internalName(kind, randomBytes(8)));
  const [staging, temporary] = [made("staging"), made("temporary")];
  assert.deepEqual(kinds([staging, temporary]), ["staging", "temporary"]);
  assert.notEqual(staging, made("staging")); // random each time
  const err = thrown(() =>
    call([], (e) => e.download.internalName("staging", Buffer.from("short"))),
  );
  assert.ok(err instanceof EngineError, err);
  assert.match(err.message, /8 random bytes/);
});

// The component, instantiated once per process, and the one place that calls it. Each export
// gets a typed function; bulk data that crosses as JSON (wit/schemas/) is parsed here.

import * as fs from "node:fs";
import * as path from "node:path";

import { instantiate, type Root as Exports } from "../generated/jobattach.js";
import type * as Download from "../generated/interfaces/jobattach-engine-download.js";
import type * as Manifest from "../generated/interfaces/jobattach-engine-manifest.js";
import type * as Snapshot from "../generated/interfaces/jobattach-engine-snapshot.js";
import type * as Submit from "../generated/interfaces/jobattach-engine-submit.js";
import type * as Sync from "../generated/interfaces/jobattach-engine-sync.js";
import type * as Types from "../generated/interfaces/jobattach-engine-types.js";
import { Batch, type Digest, type HashItem } from "./hashing.js";
import { hostFiles } from "./host-files.js";
import { Root } from "./sandbox.js";
import { grantedRoot, preopens, serving, types } from "./wasi.js";

export type ErrorKind = Types.ErrorKind;
export type ManifestFormat = Types.ManifestFormat;
export type PathStyle = Types.PathStyle;
export type ManifestObject = Types.ManifestObject;
export type Canonical = Manifest.Canonical;
export type SnapshotOptions = Snapshot.Options;
export type GroupRequest = Submit.GroupRequest;
export type Submission = Submit.Submission;
export type Description = Submit.Description;
export type ObjectLayout = Sync.ObjectLayout;
export type OutputManifestRequest = Sync.OutputManifestRequest;
export type JobOutputs = Sync.JobOutputs;
export type ListedObject = Sync.ListedObject;
export type MirrorRequest = Sync.MirrorRequest;
export type Destination = Sync.Destination;
export type PathMappingRule = Sync.PathMappingRule;
export type DownloadDestination = Download.Destination;
export type ConflictPolicy = Download.ConflictPolicy;
export type InternalKind = Download.InternalKind;

/** An error of the engine: its category, a sentence for people, and the path it concerns. */
export class EngineError extends Error {
  readonly kind: ErrorKind;
  readonly path: string | undefined;
  /** The sentence without the path. */
  readonly reason: string;

  constructor(e: Types.Error) {
    super(e.path === undefined ? e.message : `${e.path}: ${e.message}`);
    this.name = "EngineError";
    this.kind = e.kind;
    this.path = e.path;
    this.reason = e.message;
  }
}

const generated = new URL("../generated/", import.meta.url);
let exports: Exports | undefined;

function component(): Exports {
  exports ??= instantiate(
    (name) => new WebAssembly.Module(fs.readFileSync(new URL(name, generated))),
    {
      "jobattach:engine/host-files": hostFiles,
      "wasi:filesystem/preopens": preopens,
      "wasi:filesystem/types": types,
      "wasi:clocks/wall-clock": {},
    } as unknown as Parameters<typeof instantiate>[1],
  );
  return exports;
}

/** Calls the component with `dirs` granted as `/r0`, `/r1`, ...; its errors become
 * `EngineError`s. */
export function call<T>(dirs: readonly string[], fn: (e: Exports, roots: string[]) => T): T {
  const e = component();
  const opened: Root[] = [];
  try {
    for (const d of dirs) opened.push(grant(d));
    const roots = opened.map((_, i) => `/r${i}`);
    return serving(new Map(opened.map((r, i) => [roots[i]!, r])), () => fn(e, roots));
  } catch (err) {
    const payload = (err as { payload?: Types.Error }).payload;
    if (payload !== undefined && typeof payload === "object" && "kind" in payload) {
      throw new EngineError(payload);
    }
    throw err;
  } finally {
    for (const r of opened) r.close();
  }
}

function grant(dir: string): Root {
  try {
    return new Root(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const [kind, why]: [ErrorKind, string] =
      code === "ENOENT"
        ? ["not-found", "does not exist"]
        : code === "ENOTDIR"
          ? ["wrong-type", "is not a directory"]
          : ["permission-denied", `cannot be opened (${code ?? String(err)})`];
    throw new EngineError({ kind, message: `the root ${why}`, path: dir });
  }
}

// --- info -------------------------------------------------------------------------------

/** The component's version. */
export function version(): string {
  return call([], (e) => e.info.version());
}

// --- hashing ----------------------------------------------------------------------------

export type { Digest, HashItem } from "./hashing.js";

/** xxh3-128 of the file at `file` (its directory is granted), 32 lowercase hex digits. */
export function hashFile(file: string): string {
  const full = path.resolve(file);
  const name = path.basename(full);
  try {
    return hashFiles(path.dirname(full), [name])[0] as string;
  } catch (err) {
    // Named by the path the caller gave, not by its name in the directory granted for it.
    if (!(err instanceof EngineError) || err.path !== name) throw err;
    throw new EngineError({ kind: err.kind, message: err.reason, path: full });
  }
}

/** Digests of `items` below `root`, in their order; the first that cannot be hashed stops
 * them. The component checks the items first (paths by the relative-path rules), unless
 * `planned`: the items come from its own snapshot plan. */
export function hashFiles(
  root: string,
  items: readonly HashItem[],
  { planned = false }: { planned?: boolean } = {},
): Digest[] {
  return call([root], (e, [r0]) => {
    if (!planned) e.hashing.checkItems(JSON.stringify(items));
    const out = new Array<Digest>(items.length);
    const batch = new Batch(grantedRoot(r0!)!);
    try {
      items.forEach((item, i) => batch.hash(item, out, i));
      batch.flush();
    } finally {
      batch.close();
    }
    return out;
  });
}

/** The digest of each of `paths` below `root`, or the error that stopped it: one failure
 * does not stop the others. */
export function hashEach(root: string, paths: readonly string[]): (string | EngineError)[] {
  return call([root], (e, [r0]) => {
    const out = new Array<string | EngineError>(paths.length);
    const failed = (i: number, err: unknown): void => {
      const payload = (err as { payload?: Types.Error }).payload;
      if (payload === undefined) throw err;
      out[i] = new EngineError(payload);
    };
    // All checked at once, and one by one only when one of them is refused.
    let checked = true;
    try {
      e.hashing.checkItems(JSON.stringify(paths));
    } catch {
      checked = false;
    }
    const batch = new Batch(grantedRoot(r0!)!);
    try {
      paths.forEach((p, i) => {
        try {
          if (!checked) e.hashing.checkItems(JSON.stringify([p]));
          batch.hash(p, out as Digest[], i);
        } catch (err) {
          failed(i, err);
        }
      });
      batch.flush();
    } finally {
      batch.close();
    }
    return out;
  });
}

// --- manifest ---------------------------------------------------------------------------

/** A manifest in canonical form: its format, the exact bytes the reference encoder writes,
 * and its hash. */
export function canonicalize(text: string): Canonical {
  return call([], (e) => e.manifest.canonicalize(text));
}

/** A manifest of `format` from entries in `Canonical.entries`' JSON
 * (wit/schemas/manifest-entries.schema.json). */
export function build(format: ManifestFormat, entries: string): Canonical {
  return call([], (e) => e.manifest.build(format, entries));
}

export function convert(text: string, format: ManifestFormat): Canonical {
  return call([], (e) => e.manifest.convert(text, format));
}

/** What changed from v2023-03-03 manifest `old` to `new` of the same root
 * (wit/schemas/manifest-diff.schema.json); a new mtime alone is no change. */
export function diff(old: string, new_: string): ManifestDiff {
  return call([], (e) => JSON.parse(e.manifest.diff(old, new_)) as ManifestDiff);
}

export function merge(manifests: readonly string[]): Canonical {
  return call([], (e) => e.manifest.merge([...manifests]));
}

/** The files of `current` that are outputs against the job's `inputs`. */
export function outputs(inputs: string, current: string): Canonical {
  return call([], (e) => e.manifest.outputs(inputs, current));
}

/** A manifest entry (wit/schemas/manifest-entries.schema.json). */
export interface ManifestEntry {
  path: string;
  hash?: string;
  chunkhashes?: string[];
  symlink?: string;
  size?: number;
  mtime?: number;
  runnable?: boolean;
  deleted?: boolean;
}

/** A manifest's entries: its parent's hash (a diff manifest), directories, and files. */
export interface ManifestEntries {
  parent: string | null;
  dirs: [string, boolean][];
  files: ManifestEntry[];
}

/** A decoded manifest: the canonical form and its entries. */
export interface DecodedManifest extends Canonical, ManifestEntries {}

/** Decodes and validates a manifest of either format. */
export function decode(text: string): DecodedManifest {
  const c = canonicalize(text);
  const entries: ManifestEntries = c.entries
    ? (JSON.parse(c.entries) as ManifestEntries)
    : {
        parent: null,
        dirs: [],
        files: (JSON.parse(c.encoded) as { paths: ManifestEntry[] }).paths,
      };
  return { ...c, ...entries };
}

/** Encodes entries as a manifest of `format`: the exact bytes the reference encoder writes. */
export function encode(
  format: ManifestFormat,
  entries: Partial<ManifestEntries> & Pick<ManifestEntries, "files">,
): Canonical {
  return build(
    format,
    JSON.stringify({
      parent: entries.parent ?? null,
      dirs: entries.dirs ?? [],
      files: entries.files,
    }),
  );
}

/** An entry of a diff, as v2023-03-03 manifests hold them. */
export interface DiffEntry {
  path: string;
  hash: string | null;
  size: number;
  mtime: number;
}

/** wit/schemas/manifest-diff.schema.json. */
export interface ManifestDiff {
  added: DiffEntry[];
  modified: { old: DiffEntry; new: DiffEntry }[];
  deleted: DiffEntry[];
  unchanged: number;
}

// --- snapshot ---------------------------------------------------------------------------

/** A file a manifest will hold: path, size, mtime in µs, mtime and ctime in ns (strings of
 * digits), runnable, chunk size (0 for one digest), and where its content is read when not
 * at its path. */
export type PlannedFile = [string, number, number, string, string, boolean, number, string | null];

/** The snapshot plan (wit/schemas/snapshot-plan.schema.json). */
export interface SnapshotPlan {
  files: PlannedFile[];
  symlinks: [string, string][];
  dirs: string[];
  skipped: Record<string, string[]>;
  excluded: number;
}

/** Where absolute symlinks into `root` may point: the root as given, and resolved. */
function hostRoots(root: string): string[] {
  if (path.sep !== "/") return [];
  return [...new Set([path.resolve(root), fs.realpathSync(root)])].sort();
}

function options(root: string, o: Partial<SnapshotOptions>): SnapshotOptions {
  return {
    include: o.include ?? [],
    exclude: o.exclude ?? [],
    format: o.format,
    hostRoots: o.hostRoots ?? hostRoots(root),
  };
}

/** Lists `root` and applies the snapshot rules, or to `listing` (wit/schemas/listing.schema.json)
 * when given. */
export function planSnapshot(
  root: string,
  o: Partial<SnapshotOptions> = {},
  listing?: string,
): SnapshotPlan {
  return call([root], (e, [r0]) => {
    const opts = options(root, o);
    const text =
      listing === undefined
        ? e.snapshot.plan(r0!, opts)
        : e.snapshot.planListed(r0!, listing, opts);
    return JSON.parse(text) as SnapshotPlan;
  });
}

/** What changed in `root` since `manifest`, as `diff` gives it. */
export function diffTree(
  root: string,
  manifest: string,
  o: Partial<SnapshotOptions> = {},
  byHash = false,
): ManifestDiff {
  return call(
    [root],
    (e, [r0]) =>
      JSON.parse(e.snapshot.diff(r0!, manifest, options(root, o), byHash)) as ManifestDiff,
  );
}

// --- submit -----------------------------------------------------------------------------

/** A job's paths (wit/schemas/group-paths.schema.json): inputs with what each is, outputs
 * and references, absolute. */
export interface JobPaths {
  inputs: [string, "file" | "directory" | "missing" | "too-long"][];
  outputs: string[];
  references: string[];
}

/** `submit.group`'s request, its paths typed. */
export interface GroupPathsRequest extends Omit<GroupRequest, "paths"> {
  paths: JobPaths;
}

/** A job's asset roots (wit/schemas/groups.schema.json). */
export interface Groups {
  groups: {
    root: string;
    location: string | null;
    inputs: string[];
    outputs: string[];
    references: string[];
  }[];
  missing: string[];
  skipped_shared: number;
}

/** `submit.group`: a job's paths grouped into asset roots, by location. */
export function group(request: GroupPathsRequest): Groups {
  return call(
    [],
    (e) =>
      JSON.parse(e.submit.group({ ...request, paths: JSON.stringify(request.paths) })) as Groups,
  );
}

/** `submit.describe`: the manifest objects of a submission and the job's `attachments`. */
export function describe(request: Submission): {
  manifests: (ManifestObject | undefined)[];
  attachments: unknown;
} {
  return call([], (e) => {
    const d = e.submit.describe(request);
    return { manifests: d.manifests, attachments: JSON.parse(d.attachments) as unknown };
  });
}

// --- sync (the worker's rules) ----------------------------------------------------------

/** The folder the official worker gives `rootPath` in a session directory. */
export function sessionRoot(rootPath: string): string {
  return call([], (e) => e.sync.sessionRoot(rootPath));
}

export function layout(rootPrefix: string): ObjectLayout {
  return call([], (e) => e.sync.layout(rootPrefix));
}

export function outputManifest(request: OutputManifestRequest): ManifestObject {
  return call([], (e) => e.sync.outputManifest(request));
}

export function outputsPrefix(request: JobOutputs): string {
  return call([], (e) => e.sync.outputsPrefix(request));
}

export function selectOutputs(listing: readonly ListedObject[]): string[] {
  return call([], (e) => e.sync.selectOutputs([...listing]));
}

export function manifestRoot(metadata: readonly [string, string][]): string | undefined {
  return call([], (e) => e.sync.manifestRoot([...metadata]));
}

/** wit/schemas/mirror-plan.schema.json. */
export interface MirrorPlan {
  copy: string[];
  unchanged: string[];
  compare: string[];
  delete: string[];
  unsupported: string[];
  excluded: number;
}

export function planMirror(request: MirrorRequest): MirrorPlan {
  return call([], (e) => JSON.parse(e.sync.planMirror(request)) as MirrorPlan);
}

/** `[path, reason]` of each of `entries` that `destination` cannot hold. */
export function refusedEntries(destination: Destination, entries: string): [string, string][] {
  return call(
    [],
    (e) => JSON.parse(e.sync.refusedEntries(destination, entries)) as [string, string][],
  );
}

export function mapPath(
  rules: readonly PathMappingRule[],
  p: string,
  separator: string,
): string | undefined {
  return call([], (e) => e.sync.mapPath([...rules], p, separator));
}

// --- download ---------------------------------------------------------------------------

/** The download plan (wit/schemas/download-plan.schema.json): per destination, each content
 * to download once (digest, size) and each place to put it (path, digest, mtime, whether a
 * copy, whether beside a kept file under its copy name). */
export interface DownloadPlanBody {
  conflicts: { overwritten?: string[]; skipped?: string[]; copied?: string[] };
  destinations: {
    contents: [string, number][];
    places: [string, string, number, boolean, boolean][];
  }[];
}

export type DownloadResult =
  | { tag: "hash"; val: string[] }
  | { tag: "planned"; val: Omit<Download.DownloadPlan, "plan"> & { plan: DownloadPlanBody } };

/** `download.plan`: either the local files to hash first, or the plan. */
export function downloadPlan(
  destinations: readonly DownloadDestination[],
  policy: ConflictPolicy,
): DownloadResult {
  return call([], (e) => {
    const out = e.download.plan([...destinations], policy);
    if (out.tag === "hash") return out;
    return {
      tag: "planned",
      val: { ...out.val, plan: JSON.parse(out.val.plan) as DownloadPlanBody },
    };
  });
}

export function outputPatterns(
  directories: readonly string[],
  style: PathStyle,
): string[] | undefined {
  return call([], (e) => e.download.outputPatterns([...directories], style));
}

export function internalName(kind: InternalKind, random: Uint8Array): string {
  return call([], (e) => e.download.internalName(kind, random));
}

export function internalKinds(names: readonly string[]): (InternalKind | undefined)[] {
  return call([], (e) => e.download.internalKinds([...names]));
}

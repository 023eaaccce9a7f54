// Snapshots: a manifest of a directory, byte for byte what the official encoder writes. The
// component plans what goes in, the kernel hashes it (hashing.ts); this module only batches
// and assembles.

import {
  type Canonical,
  type Digest,
  encode,
  hashFiles,
  type ManifestEntry,
  type ManifestFormat,
  planSnapshot,
  type SnapshotPlan,
} from "./engine.js";

export interface SnapshotOptions {
  /** `v2023-03-03` (the default), or `v2025-12-snapshot`. */
  format?: ManifestFormat;
  /** Glob patterns of files to keep, and to drop. */
  include?: string[];
  exclude?: string[];
  /** Called after each batch with the files and bytes hashed so far. */
  progress?: (files: number, bytes: number, totalFiles: number, totalBytes: number) => void;
}

export interface SnapshotResult {
  manifest: Canonical;
  /** Paths left out, by reason (`symlink-outside-root`, `empty-directory`, ...). */
  skipped: Record<string, string[]>;
  /** Files dropped by the include and exclude patterns. */
  excluded: number;
}

// Files per hashing call: a batch keeps progress flowing.
const BATCH = 2048;

/** A manifest of every regular file below `root`, dotfiles included. */
export function snapshot(root: string, o: SnapshotOptions = {}): SnapshotResult {
  const format = o.format ?? "v2023-03-03";
  const plan = planSnapshot(root, { include: o.include, exclude: o.exclude, format });
  const digests = hashPlan(root, plan, o.progress);
  const files = plan.files.map(([path, size, mtime, , , runnable], i): ManifestEntry => {
    const d = digests[i]!;
    return {
      path,
      size,
      mtime,
      ...(Array.isArray(d) ? { chunkhashes: d } : { hash: d }),
      ...(runnable ? { runnable } : {}),
    };
  });
  const links = plan.symlinks.map(([path, symlink]): ManifestEntry => ({ path, symlink }));
  const dirs = plan.dirs.map((d): [string, boolean] => [d, false]);
  return {
    manifest: encode(format, { dirs, files: [...files, ...links] }),
    skipped: plan.skipped,
    excluded: plan.excluded,
  };
}

function hashPlan(
  root: string,
  plan: SnapshotPlan,
  progress: SnapshotOptions["progress"],
): Digest[] {
  const total = plan.files.reduce((n, f) => n + f[1], 0);
  const out: Digest[] = [];
  let bytes = 0;
  for (let start = 0; start < plan.files.length; start += BATCH) {
    const batch = plan.files.slice(start, start + BATCH);
    out.push(
      ...hashFiles(
        root,
        batch.map(([path, size, , , , , chunk, source]) => [source ?? path, size, chunk]),
        { planned: true },
      ),
    );
    bytes += batch.reduce((n, f) => n + f[1], 0);
    progress?.(out.length, bytes, plan.files.length, total);
  }
  return out;
}

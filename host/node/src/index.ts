// @jobattach/engine: the jobattach engine from Node, through the same component as every host.
export * from "./engine.js";
export {
  snapshot,
  type SnapshotOptions as SnapshotRequest,
  type SnapshotResult,
} from "./snapshot.js";
export { nameBytes, nameText } from "./names.js";

/**
 * What `_node_termination_test_workers.mjs` runs under Node, bundled into
 * one file: sabre's heap and map, and the owned-keys workers and the
 * newcomer's check of `_hashmap_test_workers.ts`.
 *
 * @module
 */

export { HashMap, SharedHeap } from "../mod.ts";
export { ownedKeys, verifyAndRewrite, verifyArgsAfter } from "./_hashmap_test_workers.ts";
export { heapKernel } from "../memory/_heap_hooks.ts";

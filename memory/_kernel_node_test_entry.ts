/**
 * What `_kernel_node_test_workers.mjs` runs under Node, bundled into one
 * file: the heap, and the hook that gives its kernel.
 *
 * @module
 */

export { SharedHeap } from "./mod.ts";
export { heapKernel } from "./_heap_hooks.ts";

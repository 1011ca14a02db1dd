/**
 * sabre: concurrency primitives and concurrent data structures that live in
 * one `SharedArrayBuffer` and are used at the same time from many workers.
 *
 * Everything is built on {@linkcode SharedHeap}, a growable shared arena.
 * Create one, send `heap.handle` to your workers with `postMessage`, and
 * attach it there with `SharedHeap.attach(handle)`.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create({ maxBytes: 64 << 20 });
 * const counter = heap.allocateZeroed(4);
 * Atomics.add(heap.i32, counter >> 2, 1);
 * heap.setRoot("counter", heap.handleOf("app.Counter", 1, counter));
 * // in any worker holding the heap (ensure() maps what other workers grew
 * // the heap to since this worker last looked):
 * const found = heap.root("counter");
 * if (found === undefined) throw new Error("no counter published");
 * heap.ensure(found.offset + 4);
 * console.assert(Atomics.load(heap.i32, found.offset >> 2) === 1);
 * ```
 *
 * @module
 */

export * from "./memory/mod.ts";
export * from "./latch/mod.ts";
export * from "./seqlock/mod.ts";
export * from "./hashmap/mod.ts";
export * from "./btree/mod.ts";
export * from "./stm/mod.ts";

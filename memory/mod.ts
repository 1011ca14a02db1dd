/**
 * The shared memory that every sabre structure stands on.
 *
 * - {@linkcode SharedHeap}: one growable `SharedArrayBuffer` with an allocator
 *   (size classes over per-worker pages, a buddy pool of 64 KiB pages behind
 *   them), a registry of worker slots, epoch-based reclamation and named roots.
 * - Codecs (`codec("string")`, ...): how keys and values are checked and laid
 *   out in shared memory.
 * - Typed errors shared by every module.
 *
 * Memory reached through a shared structure may be unlinked by one worker
 * while another still reads it. Such memory is `retire`d, not freed: it is
 * reused only after every worker that was pinned at that moment has unpinned.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "@sabre/sabre/memory";
 *
 * const heap = SharedHeap.create({ maxBytes: 64 << 20 });
 * // Send heap.handle to workers; there: SharedHeap.attach(handle).
 * const node = heap.allocate(32);
 * heap.i32[node >> 2] = 7;
 * {
 *   using _pinned = heap.pin();
 *   console.assert(heap.i32[node >> 2] === 7);
 * }
 * heap.retire(node); // freed once no pinned reader can reach it
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./heap.ts";
export * from "./codec.ts";
export * from "./placement.ts";
export * from "./faults.ts";

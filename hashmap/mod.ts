/**
 * A concurrent hash map in shared memory: {@linkcode HashMap}.
 *
 * Reads never block and write nothing shared but the reader's epoch slot;
 * writers use CAS on the key's slot and never take a global lock; the table
 * grows and shrinks online, with writers helping to migrate it. Replaced
 * entries, and removed values of over 64 bytes, are reclaimed through the
 * heap's epochs; a removed key keeps a small entry in its slot (with its
 * value, up to 64 bytes) until the key is set again or the table is resized.
 *
 * @example
 * ```ts
 * import { HashMap } from "@sabre/sabre/hashmap";
 * import { SharedHeap } from "@sabre/sabre/memory";
 *
 * const heap = SharedHeap.create();
 * const index = HashMap.create(heap, { key: "string", value: "i32" });
 * index.set("a", 1);
 * console.assert(index.get("a") === 1 && index.size === 1);
 * ```
 *
 * @module
 */

export { HashMap, type HashMapHandle, type HashMapOptions } from "./hashmap.ts";

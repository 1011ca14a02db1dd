/**
 * Size classes of the small-object allocator. Internal.
 *
 * The smallest class is 8 bytes, for two-word records such as a hash map
 * entry of an int key and an int value; its blocks are 8-byte aligned. The
 * others are multiples of 16 bytes, so their blocks are 16-byte aligned. Every
 * block can be read through Float64Array and BigInt64Array views. From 16 to
 * 128 bytes classes step by 16; above, four classes per doubling keep
 * internal waste under 25%.
 * A class is served from page blocks of 2^order pages holding at least 8 blocks.
 *
 * @module
 */

import { PAGE_BYTES } from "./_layout.ts";

/** Largest request served by size classes; larger ones take whole page blocks. */
export const SMALL_MAX = 32768;

function buildClasses(): number[] {
  const sizes: number[] = [8];
  for (let s = 16; s <= 128; s += 16) sizes.push(s);
  for (let base = 128; base < SMALL_MAX; base *= 2) {
    const step = base / 4;
    for (let s = base + step; s <= base * 2; s += step) sizes.push(s);
  }
  return sizes;
}

/** Block size of each class. */
export const CLASS_SIZE: Int32Array = Int32Array.from(buildClasses());
export const CLASS_COUNT = CLASS_SIZE.length;

/** Buddy order of the page blocks of each class. */
export const CLASS_ORDER: Int32Array = CLASS_SIZE.map((size) => {
  let order = 0;
  while ((PAGE_BYTES << order) / size < 8) order++;
  return order;
});

/** Class of sizes 1..1024, indexed by (size + 7) >> 3. */
export const CLASS_BY_8: Uint8Array = new Uint8Array(1024 / 8 + 1);
/** Class of sizes 1025..SMALL_MAX, indexed by (size + 255) >> 8. */
export const CLASS_BY_256: Uint8Array = new Uint8Array(SMALL_MAX / 256 + 1);

function smallestClassFor(size: number): number {
  let c = 0;
  while (CLASS_SIZE[c] < size) c++;
  return c;
}
for (let i = 1; i < CLASS_BY_8.length; i++) CLASS_BY_8[i] = smallestClassFor(i * 8);
for (let i = 1; i < CLASS_BY_256.length; i++) CLASS_BY_256[i] = smallestClassFor(i * 256);

/** Class index for a request of 1..SMALL_MAX bytes. */
export function classOf(size: number): number {
  return size <= 1024 ? CLASS_BY_8[(size + 7) >> 3] : CLASS_BY_256[(size + 255) >> 8];
}

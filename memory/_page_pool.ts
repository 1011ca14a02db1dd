/**
 * The global page pool: a binary buddy allocator over 64 KiB pages, and the
 * growth of the buffer behind it. Internal.
 *
 * Every pool operation runs under one futex lock in the header. Pool
 * operations are rare (one per page block of small objects, one per large
 * block), so the lock is not on any hot path.
 *
 * Invariants, all under the lock:
 * - A free block of order k starts at a page index aligned to 2^k, its head
 *   descriptor reads K_FREE with order k, and it sits in list H_POOL_HEADS+k.
 * - Pages inside a free block other than its head read K_NONE, so a stale
 *   descriptor can never pass for a free buddy.
 * - The buddy of block p of order k is p ^ 2^k. Because blocks are aligned,
 *   the buddy region is either one whole block or the start of smaller ones:
 *   its first descriptor is always a block head, never the middle of a block.
 *
 * Memory order: descriptors and list links are plain words guarded by the
 * lock; the lock's Atomics give the happens-before edges between holders.
 * H_COMMITTED_PAGES is published with Atomics.store after the new pages are
 * carved, so a reader that sees the new count also sees the new buffer length.
 *
 * @module
 */

import {
  D_NEXT,
  D_PREV,
  D_STATE,
  DESC_WORDS,
  descState,
  H_COMMITTED_PAGES,
  H_FREE_PAGES,
  H_GROW_COUNT,
  H_MAX_PAGES,
  H_POOL_HEADS,
  H_POOL_LOCK,
  K_FREE,
  K_NONE,
  MAX_ORDER,
  PAGE_BYTES,
} from "./_layout.ts";
import { crashPoint } from "./faults.ts";

const pause: () => void = typeof (Atomics as { pause?: () => void }).pause === "function"
  ? (Atomics as unknown as { pause: () => void }).pause
  : () => {};

/**
 * Takes the pool lock. The lock word holds `(slot + 1) << 1 | waiters`, so the
 * holder is known from the same CAS that acquired it: a holder that dies can
 * be recognised and the pool recovered (see recoverPool). Spins briefly, then
 * parks; a worker that had to wait acquires with the waiters bit set, so an
 * unlock never misses a sleeper (the 3-state futex argument). Before it
 * parks it calls `beforePark`, which ends the worker's read pins: like every
 * blocking wait in sabre, it must not hold back reclamation while asleep.
 */
export function lockPool(i32: Int32Array, ownerSlot: number, beforePark: () => void): void {
  const mine = (ownerSlot + 1) << 1;
  if (Atomics.compareExchange(i32, H_POOL_LOCK, 0, mine) === 0) return;
  for (let spin = 0; spin < 64; spin++) {
    pause();
    if (
      Atomics.load(i32, H_POOL_LOCK) === 0 &&
      Atomics.compareExchange(i32, H_POOL_LOCK, 0, mine) === 0
    ) return;
  }
  for (;;) {
    const seen = Atomics.load(i32, H_POOL_LOCK);
    if (seen === 0) {
      if (Atomics.compareExchange(i32, H_POOL_LOCK, 0, mine | 1) === 0) return;
      continue;
    }
    if ((seen & 1) === 0 && Atomics.compareExchange(i32, H_POOL_LOCK, seen, seen | 1) !== seen) {
      continue;
    }
    beforePark();
    Atomics.wait(i32, H_POOL_LOCK, seen | 1);
  }
}

export function unlockPool(i32: Int32Array): void {
  if ((Atomics.exchange(i32, H_POOL_LOCK, 0) & 1) !== 0) Atomics.notify(i32, H_POOL_LOCK, 1);
}

/** Wakes every worker parked in lockPool. */
export function wakePoolWaiters(i32: Int32Array): void {
  Atomics.notify(i32, H_POOL_LOCK);
}

/** Slot of the pool lock's holder, or -1 when free. */
export function poolLockHolder(i32: Int32Array): number {
  return (Atomics.load(i32, H_POOL_LOCK) >> 1) - 1;
}

/**
 * Repairs the pool after its lock holder died mid-operation, then releases
 * the lock. Every pool operation keeps each free block's head descriptor
 * reading K_FREE and every page it has taken out of a list reading something
 * else, so rebuilding the lists from K_FREE heads gives a consistent pool. A
 * block the dead worker had unlinked but not yet handed out is leaked, never
 * handed out twice. Must be called while the dead worker still "holds" the
 * lock, so no live worker is inside the pool.
 */
export function recoverPool(i32: Int32Array, desc: number): void {
  for (let k = 0; k <= MAX_ORDER; k++) i32[H_POOL_HEADS + k] = 0;
  i32[H_FREE_PAGES] = 0;
  const committed = Atomics.load(i32, H_COMMITTED_PAGES);
  for (let page = 0; page < committed; page++) {
    const d = desc + page * DESC_WORDS;
    const state = i32[d + D_STATE];
    if ((state & 15) !== K_FREE) continue;
    const order = (state >>> 4) & 31;
    if ((page & ((1 << order) - 1)) !== 0 || page + (1 << order) > committed) {
      i32[d + D_STATE] = descState(K_NONE, 0, 0);
      continue;
    }
    pushFree(i32, desc, page, order);
    i32[H_FREE_PAGES] += 1 << order;
  }
  if ((Atomics.exchange(i32, H_POOL_LOCK, 0) & 1) !== 0) {
    Atomics.notify(i32, H_POOL_LOCK);
  }
}

function pushFree(i32: Int32Array, desc: number, page: number, order: number): void {
  const d = desc + page * DESC_WORDS;
  const head = i32[H_POOL_HEADS + order];
  i32[d + D_STATE] = descState(K_FREE, order, 0);
  i32[d + D_NEXT] = head;
  i32[d + D_PREV] = 0;
  if (head !== 0) i32[desc + head * DESC_WORDS + D_PREV] = page;
  i32[H_POOL_HEADS + order] = page;
}

function unlinkFree(i32: Int32Array, desc: number, page: number, order: number): void {
  const d = desc + page * DESC_WORDS;
  const next = i32[d + D_NEXT];
  const prev = i32[d + D_PREV];
  if (prev !== 0) i32[desc + prev * DESC_WORDS + D_NEXT] = next;
  else i32[H_POOL_HEADS + order] = next;
  if (next !== 0) i32[desc + next * DESC_WORDS + D_PREV] = prev;
  i32[d + D_STATE] = descState(K_NONE, 0, 0);
}

/**
 * Returns block `page` of `order` to the pool, merging it with free buddies.
 * Caller holds the lock.
 */
export function freeBlock(i32: Int32Array, desc: number, page: number, order: number): void {
  i32[H_FREE_PAGES] += 1 << order;
  const committed = i32[H_COMMITTED_PAGES];
  while (order < MAX_ORDER) {
    const buddy = page ^ (1 << order);
    if (buddy + (1 << order) > committed) break;
    if (i32[desc + buddy * DESC_WORDS + D_STATE] !== descState(K_FREE, order, 0)) break;
    unlinkFree(i32, desc, buddy, order);
    crashPoint("pool.merge");
    // The higher half of the merged block becomes an interior page.
    i32[desc + Math.max(page, buddy) * DESC_WORDS + D_STATE] = descState(K_NONE, 0, 0);
    page = Math.min(page, buddy);
    order++;
  }
  pushFree(i32, desc, page, order);
}

/** Adds pages [from, to) to the pool. Caller holds the lock. */
export function carve(i32: Int32Array, desc: number, from: number, to: number): void {
  let page = from;
  while (page < to) {
    let order = Math.min(MAX_ORDER, 31 - Math.clz32(page & -page));
    while (page + (1 << order) > to) order--;
    // freeBlock reads H_COMMITTED_PAGES to bound merges; carving only ever
    // merges with blocks below `page`, which are committed already.
    freeBlock(i32, desc, page, order);
    page += 1 << order;
  }
}

/**
 * Takes a block of `order` pages from the pool, splitting a larger one when
 * needed. Returns its head page index, or 0 when no block of that order is
 * free (the caller then grows the heap). Caller holds the lock.
 */
export function takeBlock(i32: Int32Array, desc: number, order: number): number {
  let k = order;
  while (k <= MAX_ORDER && i32[H_POOL_HEADS + k] === 0) k++;
  if (k > MAX_ORDER) return 0;
  const page = i32[H_POOL_HEADS + k];
  unlinkFree(i32, desc, page, k);
  while (k > order) {
    k--;
    crashPoint("pool.split");
    pushFree(i32, desc, page + (1 << k), k);
  }
  i32[H_FREE_PAGES] -= 1 << order;
  return page;
}

/**
 * Grows the buffer so that a block of `order` can be carved, doubling at
 * least, capped at the heap's maximum. Returns false when the heap is at its
 * maximum already. Caller holds the lock.
 */
export function growFor(
  sab: SharedArrayBuffer,
  i32: Int32Array,
  desc: number,
  order: number,
): boolean {
  const committed = i32[H_COMMITTED_PAGES];
  const maxPages = i32[H_MAX_PAGES];
  if (committed >= maxPages) return false;
  const size = 1 << order;
  const alignedEnd = Math.ceil(committed / size) * size + size;
  const target = Math.min(maxPages, Math.max(committed * 2, alignedEnd));
  try {
    sab.grow(target * PAGE_BYTES);
  } catch {
    return false; // the system refused the memory: report exhaustion
  }
  carveCommitted(i32, desc, committed, target);
  return true;
}

function carveCommitted(i32: Int32Array, desc: number, from: number, to: number): void {
  // Publish the page count before carving so that merges may reach the new
  // pages; the lock keeps other pool users out until carving is done.
  Atomics.store(i32, H_COMMITTED_PAGES, to);
  crashPoint("pool.grow");
  carve(i32, desc, from, to);
  Atomics.add(i32, H_GROW_COUNT, 1);
}

/**
 * Byte and word layout of a SharedHeap. Internal: every number here is part of
 * the on-heap format, so a change that moves a field must bump LAYOUT_VERSION.
 *
 * The heap is a sequence of 64 KiB pages. The first `metaPages` pages hold the
 * metadata below; every later page belongs to exactly one block of the page
 * pool (a binary buddy system), whose state lives in an out-of-band page
 * descriptor so that a large block keeps all of its bytes for data.
 *
 * ```
 * byte 0          header (HEADER_WORDS Int32 words, fields H_*)
 * slotsOffset     worker slots, maxWorkers x SLOT_BYTES (fields S_*)
 * rootsOffset     named roots, ROOT_COUNT x ROOT_BYTES (fields R_*)
 * descOffset      page descriptors, maxPages x DESC_BYTES (fields D_*)
 * metaPages*PAGE  first pool page
 * ```
 *
 * @module
 */

/** "SABR" in ASCII, as a little-endian Int32. */
export const MAGIC = 0x52424153;
/** Version of the on-heap layout this build writes and reads. */
export const LAYOUT_VERSION = 5;
/** Kind string carried by heap handles. */
export const HEAP_KIND = "sabre.SharedHeap";

export const PAGE_SHIFT = 16;
export const PAGE_BYTES = 1 << PAGE_SHIFT;
/** Largest heap: pointers are positive Int32 byte offsets. */
export const MAX_HEAP_BYTES = 2 ** 31;
/** Buddy orders 0..MAX_ORDER; a block of order k spans 2^k pages. */
export const MAX_ORDER = 15;

// ---- header words (Int32 indexes from byte 0) ----
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_UID_LO = 2;
export const H_UID_HI = 3;
export const H_MAX_PAGES = 4;
export const H_MAX_WORKERS = 5;
export const H_META_PAGES = 6;
/** Pages covered by the buffer and carved into the pool. Atomics only. */
export const H_COMMITTED_PAGES = 7;
export const H_GROW_COUNT = 8;
/** Pages sitting free in the pool. Written under the pool lock. */
export const H_FREE_PAGES = 9;
export const H_SLOTS_OFFSET = 10;
export const H_ROOTS_OFFSET = 11;
export const H_DESC_OFFSET = 12;
/** One past the highest slot index ever joined; bounds registry scans. */
export const H_SLOT_HIGH = 13;
export const H_SMALL_PAGES = 14;
export const H_LARGE_PAGES = 15;
/** Pool lock futex word: 0 free, else (holder slot + 1) << 1 | waiters. Own cache line. */
export const H_POOL_LOCK = 16;
/** Heads of the pool's free lists, one per order (page index, 0 = empty). */
export const H_POOL_HEADS = 32;
/** Global epoch. Never 0. Own cache line: every pin loads it. */
export const H_EPOCH = 48;
/** Treiber stack of retire bags left by workers that closed. */
export const H_ORPHANS = 64;
/** Retired blocks waiting in orphan bags (for statistics). Atomics only. */
export const H_ORPHANED_BLOCKS = 65;
/** Small pages marked ABANDONED (left by a closed or evicted worker). Atomics only. */
export const H_ABANDONED_PAGES = 66;
/**
 * First pool page that no block has ever included: every page from it up
 * still holds the zeros the buffer grew with. Raised under the pool lock by
 * every page block taken, never lowered.
 */
export const H_FRESH_PAGE = 67;
export const HEADER_WORDS = 128;

// ---- worker slot words (from slotsOffset + slot * SLOT_BYTES) ----
export const SLOT_BYTES = 512;
/** Pinned epoch, 0 when not pinned. Own cache line: written at every pin. */
export const S_EPOCH = 0;
/**
 * 1 while this worker's pin may last past an operation: a read pin (see
 * kernelForRead in _heap_hooks.ts) or a pin() of its own, as opposed to the pins
 * that sabre's operations take (pinForOperation). Meaningful only while
 * S_EPOCH is nonzero: the owner updates it lazily, at its next outermost
 * pin, and stores only a change. Owner-written; others read it only to
 * decide whether waiting for this worker's pin can help (see heap.ts,
 * #waitForReclamation).
 */
export const S_LONG_PIN = 1;
/**
 * Words 2 to 11: the key of this worker's next kernel string get, written by
 * the worker alone just before the call (see kernel.wat's
 * hashmapGetKeyInSlot), in the cache line its pins write anyway.
 */
export const S_KERNEL_KEY = 2;
/** Words of S_KERNEL_KEY: hash, length, and 32 bytes of key. */
export const KERNEL_KEY_WORDS = 10;
/** (generation << 1) | active. Joining and leaving each add one. */
export const S_STATE = 16;
/** Owner-written live counters (wrapping Int32; sums over slots are exact). */
export const S_LIVE_BLOCKS = 17;
export const S_LIVE_BYTES = 18;
export const S_RETIRED = 19;
/**
 * Byte offsets of the first and last retire bags of this slot's chain (0:
 * none). Owner-only while the slot is held; on eviction the evicting worker
 * takes the chain with an exchange of S_RETIRE_HEAD (see heap.ts, "Retire
 * bags").
 */
export const S_RETIRE_HEAD = 20;
export const S_RETIRE_TAIL = 21;

// ---- retire bags (Int32 words from the bag's byte offset >> 2) ----
/** Byte offset of the next bag of the chain, 0 at its end. */
export const B_NEXT = 0;
/** Entries written: each is counted only after its two words are. */
export const B_END = 1;
/** Entries taken for freeing: each is counted before its block is freed. */
export const B_START = 2;
/** Entries the bag has room for. */
export const B_CAPACITY = 3;
/** First entry: (retire epoch, block) pairs. */
export const B_ENTRIES = 4;
/** Entries of one bag: with its four words, a 512-byte block. */
export const BAG_ENTRIES = 62;
export const BAG_BYTES = (B_ENTRIES + 2 * BAG_ENTRIES) * 4;
/** Head page of this slot's queue of pages with free room, per size class. */
export const S_CLASS_QUEUES = 32;
/** Head page of this slot's list of full pages, per size class. */
export const S_FULL_QUEUES = 80;

// ---- named roots ----
export const ROOT_COUNT = 64;
export const ROOT_BYTES = 128;
/** Sequence word: odd while a writer updates the entry. */
export const R_SEQ = 0;
export const R_USED = 1;
export const R_OFFSET = 2;
export const R_VERSION = 3;
export const R_NAME_LEN = 4;
export const R_KIND_LEN = 5;
export const R_NAME = 6;
export const ROOT_NAME_MAX = 64;
export const R_KIND = R_NAME + ROOT_NAME_MAX / 4;
export const ROOT_KIND_MAX = 40;

// ---- page descriptors (8 Int32 words each) ----
export const DESC_WORDS = 8;
export const DESC_BYTES = DESC_WORDS * 4;
/** kind | order << 4 | sizeClass << 9 */
export const D_STATE = 0;
/** Owner slot of a small or large block; head page of an interior page. */
export const D_OWNER = 1;
/** Remote free list of a small page: CAS push by other workers, exchange by owner. */
export const D_REMOTE = 2;
/** Local free list of a small page; owner only. */
export const D_LOCAL = 3;
/** Blocks counted as in use in a small page; owner only. */
export const D_USED = 4;
/**
 * Small page: byte offset of the first never-used block, plus IN_FULL_LIST
 * while the page sits on its owner's full list. Large: block bytes.
 */
export const D_BUMP = 5;
/** Flag in D_BUMP of a small page on its owner's full list. */
export const IN_FULL_LIST = 1 << 30;
/** Links of the pool free list or of the owner's class queue (page indexes). */
export const D_NEXT = 6;
export const D_PREV = 7;

export const K_NONE = 0;
export const K_FREE = 1;
export const K_SMALL = 2;
export const K_LARGE = 3;
export const K_INTERIOR = 4;
export const K_META = 5;

export function descState(kind: number, order: number, sizeClass: number): number {
  return kind | (order << 4) | (sizeClass << 9);
}
export function stateKind(state: number): number {
  return state & 15;
}
export function stateOrder(state: number): number {
  return (state >>> 4) & 31;
}
export function stateClass(state: number): number {
  return state >>> 9;
}

/** Bytes of metadata for a heap of `maxPages` pages and `maxWorkers` slots. */
export function metadataBytes(maxPages: number, maxWorkers: number): number {
  return HEADER_WORDS * 4 + maxWorkers * SLOT_BYTES + ROOT_COUNT * ROOT_BYTES +
    maxPages * DESC_BYTES;
}

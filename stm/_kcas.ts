/**
 * The engine under Loc, Xt and Op: the STM domain header of a heap, value
 * cells, commit descriptors, the multi-word CAS that installs and decides
 * them, and the wait/notify table for blocking transactions. Internal; the
 * module doc of `stm/mod.ts` explains the algorithm and why it is sound.
 *
 * ## Shared memory and its memory-model patterns
 *
 * - **Domain header** (one per heap, under the root `"sabre.stm"`): tag and
 *   version (b); the stamp id counter, the commit counter, the waiting count
 *   and the bucket words `[seq, waiters]` are (a), the last three each on
 *   its own cache line.
 * - **Loc block** (16 bytes): tag, kind and domain written before the tag's
 *   Atomics store, (b); word 2, the loc word, is (a): a cell pointer, or a
 *   descriptor entry pointer with bit 0 set.
 * - **Cell** (16 bytes): f64 value, stamp (stamp id, sequence). Filled with plain
 *   writes, published by the CAS that puts it (or an entry naming it) into a
 *   loc word, never changed while published, retired through epochs: (b).
 * - **Descriptor** (its own block): word 0 status (a); the rest (count,
 *   owner, entries of `[loc, expected cell, expected stamp x2, new cell,
 *   descriptor, flags, 0]`) is written before the first install CAS
 *   publishes it, (b). Only its owner retires it, after its cleanup. The
 *   expected stamp is written for F_CHECK entries only (the one reader is
 *   #checkEntry); elsewhere, in a recycled descriptor, it is stale.
 * - **Pools** (worker-local JS memory): retired cells and descriptors wait
 *   there until the epoch proves them unreachable, then are rewritten in
 *   place for a new commit (plain writes, then publication: (b) again)
 *   instead of being freed and allocated. A worker that dies leaks them.
 *
 * @module
 */

import {
  crashPoint,
  describeValue,
  faultInjection,
  HandleError,
  HeapExhaustedError,
  type SharedHeap,
  tagOf,
} from "../memory/mod.ts";
import { parkAsync, parkSync, pause } from "../latch/mod.ts";
import { epochBefore, epochsBetween } from "../memory/_epochs.ts";

// ------------------------------------------------------------------ layout

/** Root name of a heap's STM domain. */
export const ROOT_NAME = "sabre.stm";
/** Kind of the domain's root handle. */
export const DOMAIN_KIND = "sabre.stm.Domain";
/** Layout version of every STM block of this build. */
export const STM_VERSION = 1;
const DOMAIN_TAG = tagOf("STMD");
/** Tag word of a Loc block. */
export const LOC_TAG = tagOf("SLOC");

const H_TAG = 0;
const H_VERSION = 1;
/** Stamp ids handed out, one per Domain object (zero in a new header). */
const H_STAMP_IDS = 2;
/**
 * The domain's shared reserve: slots holding a cell (SHARED_CELLS of them)
 * or a capacity-8 descriptor (SHARED_DESCS), or 0. Blocks in them were
 * never published or are ripe; a worker takes one with a CAS to 0 and
 * puts a ripe one back with a CAS from 0 (see #takeShared).
 */
const H_SHARED = 3;
const SHARED_CELLS = 8;
const SHARED_DESCS = 4;
/** Empty slots of the shared reserve: a hint for workers that may refill them (see #stamp). */
const H_SHARED_EMPTY = H_SHARED + SHARED_CELLS + SHARED_DESCS;
/** Commit counter (index in `Domain.words`): bumped before every status change to AFTER. */
export const H_COUNTER = 16;
/** Workers registered as waiting, in any bucket. */
export const H_WAITING = 32;
const H_BUCKETS = 48;
const BUCKET_WORDS = 16;
const BUCKET_COUNT = 64;
/** The bucket of waiters whose read set spans several buckets. */
const MULTI = BUCKET_COUNT;
const B_SEQ = 0;
const B_WAITERS = 1;
const HEADER_BYTES = (H_BUCKETS + (BUCKET_COUNT + 1) * BUCKET_WORDS) * 4;

/** Loc block words. */
export const L_TAG = 0;
export const L_KIND = 1;
export const L_WORD = 2;
export const L_DOMAIN = 3;
export const LOC_BYTES = 16;

/** Cell: f64 value at byte 0, stamp id at word 2, stamp sequence at word 3. */
const CELL_BYTES = 16;
const C_SLOT = 2;
const C_SEQ = 3;

/** Descriptor header words. */
const D_STATUS = 0;
const D_COUNT = 1;
const D_OWNER = 2;
/** Read-only entries that decide must validate (F_CHECK). */
const D_CHECKS = 3;
const D_HEADER = 16;
/** Entry words. */
const E_LOC = 0;
const E_EXP = 1;
const E_EXP_SLOT = 2;
const E_EXP_SEQ = 3;
const E_NEW = 4;
const E_DESC = 5;
const E_FLAGS = 6;
const ENTRY_BYTES = 32;

/** Status: the owner is still installing; others may only abort it. */
export const INSTALLING = 0;
/** Status: the commit succeeded; entries resolve to their new cells. */
export const AFTER = 1;
/** Status: the commit failed; entries resolve to their expected cells. */
export const BEFORE = 2;
/** Status: every entry is installed; anyone may decide it. */
export const INSTALLED = 3;

/** Entry flags. */
const F_WRITE = 0;
/** A read-only entry installed like a write (lock-free mode). */
const F_LOCK = 1;
/** A read-only entry only validated (obstruction-free mode). */
const F_CHECK = 2;

/** Spin steps before a committer aborts a descriptor whose owner is still installing. */
const ABORT_SPIN = 200;

/** Slots of a block pool's ring (a power of 2). */
const POOL_SLOTS = 512;
const POOL_MASK = POOL_SLOTS - 1;
/** Blocks put into a domain's pools between two epoch stamps. */
const STAMP_EVERY = 64;
/**
 * Blocks of each size that a domain keeps allocated for a full heap: enough
 * cells and descriptors for a few commits of up to 8 writes, so that a
 * transaction that frees memory (a take, a clear, a destroy) can commit
 * when the heap has no room left.
 */
const RESERVE_CELLS = 16;
const RESERVE_DESCS = 4;
/**
 * How long (ms) a transaction that found the heap full waits, unpinned, for
 * retired blocks to be freed before it tries once more.
 */
const FULL_HEAP_WAIT_MS = 5;

/** Index of the descriptor pool for `n` entries (capacity 1, 2, 4 or 8), or -1. */
function descPool(n: number): number {
  return n <= 2 ? n - 1 : n <= 4 ? 2 : n <= 8 ? 3 : -1;
}

/**
 * Dead blocks of one size that this worker unlinked, oldest first: a ring
 * in the worker's own JS memory. The first `stamped` of them carry an epoch
 * loaded (by `advanceEpoch`) after they were unlinked; a block may be
 * reused once an epoch loaded later is 2 past its own, the rule by which
 * the heap frees retired blocks, so that no pinned worker can still read it.
 */
class Pool {
  readonly ptrs = new Int32Array(POOL_SLOTS);
  readonly epochs = new Int32Array(POOL_SLOTS);
  head = 0;
  count = 0;
  stamped = 0;
  /** Block size, for allocations when no block is ready. */
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }
}

/**
 * Blocks of one size allocated ahead and never published, for when the
 * heap is full (`ptrs[0..count)`); freed only when the worker leaves the
 * heap.
 */
class Reserve {
  readonly ptrs: Int32Array;
  count = 0;
  readonly size: number;

  constructor(size: number, slots: number) {
    this.size = size;
    this.ptrs = new Int32Array(slots);
  }
}

function stampPool(pool: Pool, e: number): void {
  for (let j = pool.stamped; j < pool.count; j++) pool.epochs[(pool.head + j) & POOL_MASK] = e;
  pool.stamped = pool.count;
}

/**
 * Empties `pool` into `heap` (`e`: an epoch loaded now) but for its `keep`
 * newest blocks; returns how many blocks it freed.
 */
function flushPool(heap: SharedHeap, pool: Pool, e: number, keep: number): number {
  let freed = 0;
  while (pool.count > keep) {
    const at = pool.head;
    const ptr = pool.ptrs[at];
    const safe = pool.stamped !== 0 && epochsBetween(pool.epochs[at], e) >= 2;
    pool.head = (at + 1) & POOL_MASK;
    pool.count--;
    if (pool.stamped !== 0) pool.stamped--;
    if (safe) {
      heap.free(ptr);
      freed++;
    } else {
      heap.retire(ptr);
    }
  }
  return freed;
}

/** Longest log that orderByAddress sorts by insertion. */
const INSERTION_SORT_MAX = 32;

/**
 * Fills `order[0..n)` with the indexes of `addrs[0..n)` in ascending address
 * order, the order in which a commit installs its entries (so that helpers
 * never wait on each other in a cycle). Insertion sort for short logs; a
 * long one (a hash table's rehash logs every bucket) is sorted in
 * O(n log n): a commit of 40,000 increments in descending address order
 * took 1.87 s with insertion sort and 39 ms with this.
 */
export function orderByAddress(
  n: number,
  addrs: ArrayLike<number>,
  order: Int32Array | number[],
): void {
  if (n === 2) {
    const first = addrs[0] < addrs[1] ? 0 : 1;
    order[0] = first;
    order[1] = 1 - first;
    return;
  }
  if (n > INSERTION_SORT_MAX) {
    const sorted = new Int32Array(n);
    for (let i = 0; i < n; i++) sorted[i] = i;
    sorted.sort((p, q) => addrs[p] - addrs[q]);
    for (let i = 0; i < n; i++) order[i] = sorted[i];
    return;
  }
  for (let i = 0; i < n; i++) {
    const a = addrs[i];
    let j = i;
    while (j > 0 && addrs[order[j - 1]] > a) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
}

/** Value kinds of a Loc. */
export type LocKind = "f64" | "i32" | "ref";
/** Kind codes stored in a Loc block. */
export const KIND_CODES: Record<LocKind, number> = { f64: 1, i32: 2, ref: 3 };
/** Kind names by code. */
export const KIND_NAMES: readonly LocKind[] = ["f64", "f64", "i32", "ref"];

/** How a commit treats entries it only read. */
export type CommitMode = "obstruction-free" | "lock-free";

/**
 * Per-realm stamp sequence: with the Domain's stamp id it makes cell stamps
 * unique. (The slot would not do: a new worker that takes over a slot
 * starts its sequence again, and its pool reuses cells at the Loc they came
 * from, so a reused cell could carry the very stamp a dead owner's read-only
 * entry expects.)
 */
let stampSeq = 0;

function bucketOf(addr: number): number {
  return Math.imul(addr >>> 4, 0x9e3779b1) >>> 26;
}

/**
 * After a transaction or a Loc write found the heap of `domain` full
 * (`error`), with the attempt ended and unpinned: waits briefly
 * (FULL_HEAP_WAIT_MS) for the epoch to free what was retired before, tops
 * up the reserves, and answers whether that freed or refilled anything, so
 * that one more attempt is worth it. Inside the caller's own pin (a
 * transaction run from inside `heap.pin()`) nothing can be freed: false at
 * once.
 */
export function recoverFromFullHeap(domain: Domain | undefined, error: unknown): boolean {
  if (!(error instanceof HeapExhaustedError) || domain === undefined) return false;
  const heap = domain.heap;
  if (heap.isPinned) return false;
  const freed = heap["awaitReclamation"](2, FULL_HEAP_WAIT_MS);
  // The reserve first: the retry may fill the room again with its own data.
  const refilled = domain.refillReserves(true);
  return freed > 0 || refilled;
}

/**
 * Fills the shared reserve of a new domain header at `hdr` (zeroed, not yet
 * published), as far as the heap has room: plain writes, published with
 * the header. The blocks are never freed while the domain is used, as the
 * domain is not.
 */
function fillSharedReserve(heap: SharedHeap, hdr: number): void {
  const first = (hdr >> 2) + H_SHARED;
  let filled = 0;
  for (; filled < SHARED_CELLS + SHARED_DESCS; filled++) {
    let ptr: number;
    try {
      ptr = heap.allocate(filled < SHARED_CELLS ? CELL_BYTES : D_HEADER + 8 * ENTRY_BYTES);
    } catch (e) {
      if (e instanceof HeapExhaustedError) break;
      throw e;
    }
    heap.i32[first + filled] = ptr;
  }
  heap.i32[(hdr >> 2) + H_SHARED_EMPTY] = SHARED_CELLS + SHARED_DESCS - filled;
}

/** Frees the shared reserve of a domain header that was never published. */
function freeSharedReserve(heap: SharedHeap, hdr: number): void {
  for (let k = 0; k < SHARED_CELLS + SHARED_DESCS; k++) {
    const ptr = heap.i32[(hdr >> 2) + H_SHARED + k];
    if (ptr !== 0) heap.free(ptr);
  }
}

/** Domains of this realm: the root domain per heap, and every attached one. */
const rootDomains = new WeakMap<SharedHeap, Domain>();
const attachedDomains = new WeakMap<SharedHeap, Map<number, Domain>>();

/**
 * The STM state of one heap: its header words and the operations on cells,
 * loc words and descriptors.
 */
export class Domain {
  /** The heap. */
  readonly heap: SharedHeap;
  /** Byte offset of the header. */
  readonly hdr: number;
  /** Int32 index of the commit counter. */
  readonly counter: number;
  readonly #waiting: number;
  readonly #buckets: number;
  /** Fixed view of the header's words (stays valid when the heap grows). */
  readonly words: Int32Array;
  /** This worker's dead cells, reused instead of freed and allocated again. */
  readonly #cells = new Pool(CELL_BYTES);
  /** This worker's dead descriptors, by capacity 1, 2, 4, 8 entries. */
  readonly #descs = [1, 2, 4, 8].map((k) => new Pool(D_HEADER + k * ENTRY_BYTES));
  /**
   * Cells, and descriptors of capacity 8 (which serve any commit of up to 8
   * entries), kept for a full heap once this worker has committed here.
   */
  readonly #reserves = [
    new Reserve(CELL_BYTES, RESERVE_CELLS),
    new Reserve(D_HEADER + 8 * ENTRY_BYTES, RESERVE_DESCS),
  ];
  /** Whether a reserve is not full and this worker commits here (refilled at the next stamp). */
  #reserveShort = false;
  /** Whether this worker has taken a block from the heap for a commit here. */
  #committing = false;
  /** Set when #take handed out a reserved descriptor (see #reserveDescPool). */
  #gaveReserveDesc = false;
  /** Cells and descriptors taken from the shared reserve and not yet put back. */
  readonly #sharedDebt = [0, 0];
  /** The last epoch stamped on pool entries. */
  #epoch = 0;
  /** Blocks put into the pools since the last stamp. */
  #unstamped = 0;
  /** Word 2 of the cells this object makes: no other Domain object, in any worker, has it. */
  readonly #stampId: number;

  private constructor(heap: SharedHeap, hdr: number) {
    this.heap = heap;
    this.hdr = hdr;
    this.counter = (hdr >> 2) + H_COUNTER;
    this.#waiting = (hdr >> 2) + H_WAITING;
    this.#buckets = (hdr >> 2) + H_BUCKETS;
    this.words = new Int32Array(heap.sab, hdr, HEADER_BYTES >> 2);
    this.#stampId = (Atomics.add(this.words, H_STAMP_IDS, 1) + 1) | 0;
    // collect() and close() take the pooled blocks back; close() the reserves too.
    heap["addReclaimer"]((closing: boolean) => this.#flush(closing));
  }

  /** The domain of `heap`, created and published under the root on first use. */
  static of(heap: SharedHeap): Domain {
    const cached = rootDomains.get(heap);
    if (cached !== undefined) return cached;
    let handle = heap.root(ROOT_NAME);
    if (handle === undefined) {
      const hdr = heap.allocateZeroed(HEADER_BYTES);
      fillSharedReserve(heap, hdr);
      const i32 = heap.i32;
      i32[(hdr >> 2) + H_VERSION] = STM_VERSION;
      Atomics.store(i32, (hdr >> 2) + H_TAG, DOMAIN_TAG);
      crashPoint("stm.domain.create");
      // Workers that race here all agree on the first header published; the
      // losers free theirs, which no other worker has seen.
      handle = heap.setRootIfAbsent(ROOT_NAME, {
        kind: DOMAIN_KIND,
        version: STM_VERSION,
        sab: heap.sab,
        offset: hdr,
      });
      if (handle.offset !== hdr) {
        freeSharedReserve(heap, hdr);
        heap.free(hdr);
      }
    }
    if (handle.kind !== DOMAIN_KIND) {
      throw new HandleError(
        `Cannot use STM in this heap as its root "${ROOT_NAME}" holds another kind: current value is ${
          describeValue(handle.kind)
        }`,
      );
    }
    const domain = Domain.at(heap, handle.offset);
    rootDomains.set(heap, domain);
    return domain;
  }

  /** The domain whose header is at `hdr`, checking its tag. */
  static at(heap: SharedHeap, hdr: number): Domain {
    let map = attachedDomains.get(heap);
    if (map === undefined) attachedDomains.set(heap, map = new Map());
    let domain = map.get(hdr);
    if (domain !== undefined) return domain;
    heap.ensure(hdr + HEADER_BYTES);
    const tag = Atomics.load(heap.i32, (hdr >> 2) + H_TAG);
    if (tag !== DOMAIN_TAG || hdr % 16 !== 0) {
      throw new HandleError(
        `Cannot use STM domain as the memory at offset ${hdr} holds no STM domain (tag ${
          tag >>> 0
        })`,
      );
    }
    domain = new Domain(heap, hdr);
    map.set(hdr, domain);
    return domain;
  }

  // ------------------------------------------------------------------ cells

  /**
   * A new cell holding `value`, not yet published; on a full heap it may
   * come from the reserve when `reserve` (see #takeOnFullHeap).
   */
  newCell(value: number, reserve = false): number {
    const heap = this.heap;
    const cell = this.#take(this.#cells, reserve);
    const i = cell >> 2;
    heap.f64[cell >> 3] = value;
    const i32 = heap.i32;
    i32[i + C_SLOT] = this.#stampId;
    i32[i + C_SEQ] = stampSeq = (stampSeq + 1) | 0;
    return cell;
  }

  /** The value of a published cell (pattern (b): plain read after an Atomics load). */
  valueOf(cell: number): number {
    const heap = this.heap;
    if (cell + CELL_BYTES > heap.mappedBytes) heap.ensure(cell + CELL_BYTES);
    return heap.f64[cell >> 3];
  }

  /**
   * The cell that holds the logical value of the loc word at Int32 index
   * `w`, helping to decide a descriptor that is fully installed (so that a
   * reader never returns a value that a pending decision could contradict).
   * The caller is pinned.
   */
  resolve(w: number): number {
    const heap = this.heap;
    for (;;) {
      const p = Atomics.load(heap.i32, w);
      if ((p & 1) === 0) return p;
      const e = p - 1;
      if (e + ENTRY_BYTES > heap.mappedBytes) heap.ensure(e + ENTRY_BYTES);
      const i32 = heap.i32;
      const d = i32[(e >> 2) + E_DESC];
      if (d + D_HEADER > heap.mappedBytes) heap.ensure(d + D_HEADER);
      const status = Atomics.load(heap.i32, d >> 2);
      if (status === AFTER) return heap.i32[(e >> 2) + E_NEW];
      if (status !== INSTALLED) return heap.i32[(e >> 2) + E_EXP];
      this.decide(d);
    }
  }

  // ------------------------------------------------------------ descriptors

  /**
   * Decides a descriptor whose entries are all installed: validates its
   * read-only entries, bumps the commit counter, and CASes the status to
   * AFTER (or BEFORE when a read-only entry changed). Anyone may run it, any
   * number of times; exactly one status CAS wins, and its winner notifies
   * waiters. Returns the final status. Owners whose descriptor has nothing
   * to validate (`casOne`, and `commit` without read-only entries) skip to
   * #switchToAfter.
   */
  decide(d: number): number {
    const heap = this.heap;
    let i32 = heap.i32;
    const s = d >> 2;
    const n = i32[s + D_COUNT];
    const end = d + D_HEADER + n * ENTRY_BYTES;
    if (end > heap.mappedBytes) {
      heap.ensure(end);
      i32 = heap.i32;
    }
    let ok = true;
    let checked = false;
    for (let k = 0; k < n && ok && i32[s + D_CHECKS] !== 0; k++) {
      const e = (d + D_HEADER + k * ENTRY_BYTES) >> 2;
      if (i32[e + E_FLAGS] !== F_CHECK) continue;
      ok = this.#checkEntry(e);
      checked = true;
      i32 = heap.i32;
    }
    if (checked && ok) crashPoint("stm.validated");
    if (!ok) {
      Atomics.compareExchange(heap.i32, s + D_STATUS, INSTALLED, BEFORE);
      return Atomics.load(heap.i32, s + D_STATUS);
    }
    return this.#switchToAfter(heap.i32, d);
  }

  /**
   * The decision of an installed descriptor `d` whose read-only entries
   * passed validation (or that has none): bumps the commit counter, then
   * CASes the status INSTALLED → AFTER, and the winner notifies waiters.
   * Returns the final status: AFTER, or what another decider set.
   */
  #switchToAfter(i32: Int32Array, d: number): number {
    // The counter moves before any value does: see the opacity argument.
    Atomics.add(this.words, H_COUNTER, 1);
    const status = Atomics.compareExchange(i32, (d >> 2) + D_STATUS, INSTALLED, AFTER);
    if (status !== INSTALLED) return status;
    // A winner that dies here never notifies: its waiters find the change
    // at their next recheck (see RECHECK_MS in xt.ts).
    if (faultInjection.hook !== undefined) crashPoint("stm.committed");
    this.#notifyDesc(d);
    return AFTER;
  }

  /** Whether the read-only entry at Int32 index `e` still holds its expected cell. */
  #checkEntry(e: number): boolean {
    const heap = this.heap;
    const locAddr = heap.i32[e + E_LOC];
    // Another worker's Loc may lie past our views.
    if (locAddr + LOC_BYTES > heap.mappedBytes) heap.ensure(locAddr + LOC_BYTES);
    const i32 = heap.i32;
    const w = (locAddr >> 2) + L_WORD;
    const expected = i32[e + E_EXP];
    const p = Atomics.load(i32, w);
    let cell = p;
    if ((p & 1) !== 0) {
      const other = p - 1;
      if (other + ENTRY_BYTES > heap.mappedBytes) heap.ensure(other + ENTRY_BYTES);
      const v = heap.i32;
      const d2 = v[(other >> 2) + E_DESC];
      if (d2 + D_HEADER > heap.mappedBytes) heap.ensure(d2 + D_HEADER);
      const status = Atomics.load(heap.i32, d2 >> 2);
      // Undecided writer on a location we only read: a conflict (this is
      // what makes read-only entries obstruction-free, not lock-free).
      if (status === INSTALLING || status === INSTALLED) return false;
      cell = heap.i32[(other >> 2) + (status === AFTER ? E_NEW : E_EXP)];
    }
    if (cell !== expected) return false;
    // A dead owner's expected cell may have been freed and reused: the
    // stamp tells a reused block from the one that was read.
    if (cell + CELL_BYTES > heap.mappedBytes) heap.ensure(cell + CELL_BYTES);
    const v = heap.i32;
    return v[(cell >> 2) + C_SLOT] === heap.i32[e + E_EXP_SLOT] &&
      v[(cell >> 2) + C_SEQ] === v[e + E_EXP_SEQ];
  }

  /**
   * Clears a loc word that holds the entry `p` (bit 0 set) of another
   * descriptor, helping or aborting that descriptor first. Returns after
   * one step; the caller re-reads the word.
   */
  #clearOther(w: number, p: number): void {
    const heap = this.heap;
    const other = p - 1;
    if (other + ENTRY_BYTES > heap.mappedBytes) heap.ensure(other + ENTRY_BYTES);
    const d2 = heap.i32[(other >> 2) + E_DESC];
    if (d2 + D_HEADER > heap.mappedBytes) heap.ensure(d2 + D_HEADER);
    let status = Atomics.load(heap.i32, d2 >> 2);
    if (status === INSTALLING) {
      // Its owner is installing: give it a moment, then abort it. A dead
      // owner is aborted the same way.
      for (let spin = 0; spin < ABORT_SPIN && status === INSTALLING; spin++) {
        pause();
        status = Atomics.load(heap.i32, d2 >> 2);
      }
      if (status === INSTALLING) {
        Atomics.compareExchange(heap.i32, d2 >> 2, INSTALLING, BEFORE);
        status = Atomics.load(heap.i32, d2 >> 2);
      }
    }
    if (status === INSTALLED) status = this.decide(d2);
    if (status === AFTER || status === BEFORE) {
      const final = heap.i32[(other >> 2) + (status === AFTER ? E_NEW : E_EXP)];
      Atomics.compareExchange(heap.i32, w, p, final);
    }
  }

  /**
   * Single-location commit: replaces `expected` (the cell the caller
   * resolved, while pinned) in the loc word at index `w` by a new cell
   * holding `value`. Returns false, having published nothing, when the
   * word no longer holds `expected`. The caller is pinned. `reserve`: as
   * for `commit`.
   */
  casOne(locAddr: number, expected: number, value: number, reserve: boolean): boolean {
    const heap = this.heap;
    const w = (locAddr >> 2) + L_WORD;
    const cell = this.newCell(value, reserve);
    let d: number;
    let dPool = this.#descs[0];
    try {
      d = this.#take(dPool, reserve);
      if (this.#gaveReserveDesc) dPool = this.#reserveDescPool();
    } catch (e) {
      this.#untake(this.#cells, cell); // never published
      throw e;
    }
    let i32 = heap.i32;
    const s = d >> 2;
    i32[s + D_STATUS] = INSTALLED; // one entry: installed by the CAS that publishes it
    i32[s + D_COUNT] = 1;
    i32[s + D_OWNER] = heap.slot;
    i32[s + D_CHECKS] = 0;
    const e = s + (D_HEADER >> 2);
    i32[e + E_LOC] = locAddr;
    i32[e + E_EXP] = expected;
    i32[e + E_NEW] = cell;
    i32[e + E_DESC] = d;
    i32[e + E_FLAGS] = F_WRITE;
    const tagged = (d + D_HEADER) | 1;
    for (;;) {
      const p = Atomics.compareExchange(i32, w, expected, tagged);
      if (p === expected) break;
      if ((p & 1) !== 0) {
        // Another commit holds it: finish it, and look again.
        this.#clearOther(w, p);
        i32 = heap.i32;
        if (Atomics.load(i32, w) === expected) continue;
      }
      // Never published: reusable at once.
      this.#untake(dPool, d);
      this.#untake(this.#cells, cell);
      return false;
    }
    // (The check inline: a call per crash point is measurable here.)
    if (faultInjection.hook !== undefined) crashPoint("stm.single.installed");
    // One write entry, nothing to validate: a helper that decided first can
    // only have set AFTER too.
    const status = this.#switchToAfter(i32, d);
    Atomics.compareExchange(i32, w, tagged, status === AFTER ? cell : expected);
    // No loc word names d or the dead cell any more.
    this.#put(this.#cells, status === AFTER ? expected : cell);
    this.#put(dPool, d);
    return status === AFTER;
  }

  /**
   * Multi-location commit of `n` entries given in `order` (indexes sorted by
   * loc address): `addrs[i]` the Loc block, `cells[i]` the cell read,
   * `values[i]` the value to write, `writes[i]` whether entry i writes.
   * Read-only entries are validated (obstruction-free mode) or installed
   * unchanged (lock-free mode). Returns whether it committed. Pinned caller.
   */
  commit(
    n: number,
    order: ArrayLike<number>,
    addrs: ArrayLike<number>,
    cells: ArrayLike<number>,
    values: ArrayLike<number>,
    writes: ArrayLike<boolean>,
    mode: CommitMode,
    reserve: boolean,
  ): boolean {
    const heap = this.heap;
    const c = descPool(n);
    let dPool = c >= 0 ? this.#descs[c] : undefined;
    const d = dPool !== undefined
      ? this.#take(dPool, reserve)
      : heap.allocate(D_HEADER + n * ENTRY_BYTES);
    if (this.#gaveReserveDesc) dPool = this.#reserveDescPool();
    const s = d >> 2;
    const e0 = s + (D_HEADER >> 2);
    const EW = ENTRY_BYTES >> 2;
    // New cells first: taking one may allocate, and so remap the views.
    let made = 0;
    try {
      for (; made < n; made++) {
        const i = order[made];
        if (!writes[i]) continue;
        const cell = this.newCell(values[i], reserve);
        heap.i32[e0 + made * EW + E_NEW] = cell;
      }
    } catch (e) {
      // A full heap: nothing was published; give back what was taken.
      for (let k = 0; k < made; k++) {
        if (writes[order[k]]) this.#untake(this.#cells, heap.i32[e0 + k * EW + E_NEW]);
      }
      if (dPool !== undefined) this.#untake(dPool, d);
      else heap.free(d);
      throw e;
    }
    let i32 = heap.i32;
    i32[s + D_STATUS] = INSTALLING;
    i32[s + D_COUNT] = n;
    i32[s + D_OWNER] = heap.slot;
    const readFlag = mode === "lock-free" ? F_LOCK : F_CHECK;
    let checks = 0;
    for (let k = 0; k < n; k++) {
      const i = order[k];
      const e = e0 + k * EW;
      const expected = cells[i];
      i32[e + E_LOC] = addrs[i];
      i32[e + E_EXP] = expected;
      i32[e + E_DESC] = d;
      if (writes[i]) {
        // (The expected stamp only serves #checkEntry, on F_CHECK entries.)
        i32[e + E_FLAGS] = F_WRITE;
      } else {
        if (readFlag === F_CHECK) {
          i32[e + E_EXP_SLOT] = i32[(expected >> 2) + C_SLOT];
          i32[e + E_EXP_SEQ] = i32[(expected >> 2) + C_SEQ];
          checks++;
        }
        i32[e + E_NEW] = expected;
        i32[e + E_FLAGS] = readFlag;
      }
    }
    i32[s + D_CHECKS] = checks;
    // Install in address order (no cycles of helping), then decide.
    let installed = 0;
    for (let k = 0; k < n; k++) {
      const e = e0 + k * EW;
      installed = k + 1;
      if (i32[e + E_FLAGS] === F_CHECK) continue;
      const w = (i32[e + E_LOC] >> 2) + L_WORD;
      const expected = i32[e + E_EXP];
      const tagged = (e << 2) | 1;
      let p = Atomics.compareExchange(i32, w, expected, tagged);
      while (p !== expected && (p & 1) !== 0) {
        this.#clearOther(w, p);
        i32 = heap.i32;
        p = Atomics.compareExchange(i32, w, expected, tagged);
      }
      if (p !== expected) {
        // The location changed: fail.
        Atomics.compareExchange(i32, s + D_STATUS, INSTALLING, BEFORE);
        break;
      }
      // (Crash point checks inline: a call per crash point is measurable here.)
      if (faultInjection.hook !== undefined) crashPoint("stm.install");
    }
    // Someone may have aborted us while we were installing: then this CAS
    // fails and we clean up what we installed.
    let status = Atomics.compareExchange(i32, s + D_STATUS, INSTALLING, INSTALLED);
    if (status === INSTALLING) {
      if (faultInjection.hook !== undefined) crashPoint("stm.installed");
      // Without read-only entries there is nothing to validate (and no
      // helper can decide BEFORE either).
      status = checks !== 0 ? this.decide(d) : this.#switchToAfter(i32, d);
    }
    if (faultInjection.hook !== undefined) crashPoint("stm.decided");
    // Clean up: replace our entries by the cells they resolve to. Nobody
    // but us installs our entries, so after this no loc word names d.
    const after = status === AFTER;
    i32 = heap.i32;
    for (let k = 0; k < installed; k++) {
      const e = e0 + k * EW;
      if (i32[e + E_FLAGS] === F_CHECK) continue;
      const w = (i32[e + E_LOC] >> 2) + L_WORD;
      Atomics.compareExchange(i32, w, (e << 2) | 1, i32[e + (after ? E_NEW : E_EXP)]);
      if (k === 0 && faultInjection.hook !== undefined) crashPoint("stm.cleanup");
    }
    // AFTER: the replaced cells die. BEFORE: the new ones. And d: no loc
    // word names it any more.
    const cellPool = this.#cells;
    for (let k = 0; k < n; k++) {
      const e = e0 + k * EW;
      if (i32[e + E_FLAGS] !== F_WRITE) continue;
      this.#put(cellPool, i32[e + (after ? E_EXP : E_NEW)]);
      i32 = heap.i32;
    }
    if (dPool !== undefined) this.#put(dPool, d);
    else heap.retire(d);
    return after;
  }

  // ------------------------------------------------------------ block pools

  /**
   * A block of `pool`'s size: the oldest pooled one when the epoch proves
   * that no pinned worker can still read it (rewriting it with plain writes
   * before a new publication is then pattern (b) again), else a new one.
   */
  #take(pool: Pool, reserve: boolean): number {
    const ripe = this.#takeRipe(pool);
    if (ripe !== 0) return ripe;
    if (!this.#committing) {
      // The first block this worker takes here: the reserve goes first.
      this.#committing = true;
      this.refillReserves();
    }
    try {
      return this.heap.allocate(pool.size);
    } catch (e) {
      return this.#takeOnFullHeap(pool, e, reserve);
    }
  }

  /** The oldest pooled block of `pool` when it is ripe (see #take), else 0. */
  #takeRipe(pool: Pool): number {
    if (pool.stamped === 0) return 0;
    const at = pool.head;
    if (epochsBetween(pool.epochs[at], this.#epoch) < 2) return 0;
    pool.head = (at + 1) & POOL_MASK;
    pool.count--;
    pool.stamped--;
    const ptr = pool.ptrs[at];
    // Another worker's block may lie past our views.
    if (ptr + pool.size > this.heap.mappedBytes) this.heap.ensure(ptr + pool.size);
    return ptr;
  }

  /**
   * #take after the heap refused an allocation (`error`): stamps the pools
   * with a newer epoch, which may ripen the oldest pooled block, else, for
   * a commit that may (`reserve`), hands out a reserved block. The caller
   * is pinned, so the epoch can move at most once here; the transaction's
   * caller waits for more, unpinned (recoverFromFullHeap).
   *
   * The reserves serve commits that allocate nothing beyond their cells
   * and descriptor (Loc writes, `Op.atomically`), transactions that free
   * memory (the takes, removes and clears of stm/data, which call
   * `xt["allowReserve"]()`), and any transaction's retry after a recovery
   * (which refilled them). No commit drains them for good: each gives back
   * as many cells and descriptors as it takes, into the pools, which
   * #flush keeps until they refill the reserves. The restriction keeps
   * them for commits that would otherwise never run.
   */
  #takeOnFullHeap(pool: Pool, error: unknown, reserve: boolean): number {
    if (!(error instanceof HeapExhaustedError)) throw error;
    this.#stampPools();
    let ripe = this.#takeRipe(pool);
    if (ripe !== 0) return ripe;
    if (!reserve) throw error;
    const isCell = pool === this.#cells;
    if (!isCell) {
      // A ripe descriptor of capacity 8 serves as well; back to its pool after.
      ripe = this.#takeRipe(this.#descs[this.#descs.length - 1]);
      if (ripe !== 0) {
        this.#gaveReserveDesc = true;
        return ripe;
      }
    }
    // A descriptor of capacity 8 serves every pool (put back into this
    // one after the commit, larger than its size but never read past it).
    const kind = isCell ? 0 : 1;
    const kept = this.#reserves[kind];
    let ptr = 0;
    if (kept.count !== 0) ptr = kept.ptrs[--kept.count];
    // A worker that never committed here before the heap filled has no
    // reserve of its own: the domain's shared one serves it, and it puts
    // ripe blocks back there first (#refillFromPools).
    else ptr = this.#takeShared(kind);
    if (ptr === 0) throw error;
    if (ptr + kept.size > this.heap.mappedBytes) this.heap.ensure(ptr + kept.size);
    this.#reserveShort = true;
    if (!isCell) this.#gaveReserveDesc = true;
    return ptr;
  }

  /** A block of `kind` (0 cells, 1 descriptors) from the shared reserve, or 0. */
  #takeShared(kind: number): number {
    const i32 = this.heap.i32;
    const first = (this.hdr >> 2) + H_SHARED + (kind === 0 ? 0 : SHARED_CELLS);
    const end = first + (kind === 0 ? SHARED_CELLS : SHARED_DESCS);
    for (let w = first; w < end; w++) {
      const ptr = Atomics.load(i32, w);
      // The CAS orders the plain writes of the worker that put it (before
      // its CAS) before ours.
      if (ptr !== 0 && Atomics.compareExchange(i32, w, ptr, 0) === ptr) {
        Atomics.add(i32, (this.hdr >> 2) + H_SHARED_EMPTY, 1);
        this.#sharedDebt[kind]++;
        return ptr;
      }
    }
    return 0;
  }

  /**
   * Puts `ptr`, a ripe block of `kind`, into a free slot of the shared
   * reserve; false when every slot is full.
   */
  #putShared(kind: number, ptr: number): boolean {
    const i32 = this.heap.i32;
    const first = (this.hdr >> 2) + H_SHARED + (kind === 0 ? 0 : SHARED_CELLS);
    const end = first + (kind === 0 ? SHARED_CELLS : SHARED_DESCS);
    for (let w = first; w < end; w++) {
      if (Atomics.load(i32, w) === 0 && Atomics.compareExchange(i32, w, 0, ptr) === 0) {
        Atomics.sub(i32, (this.hdr >> 2) + H_SHARED_EMPTY, 1);
        return true;
      }
    }
    return false;
  }

  /**
   * The pool a descriptor from the reserve goes back to once its commit is
   * done (the capacity-8 one, whatever the commit's size, so that the
   * reserve refills from it); clears the flag that #takeOnFullHeap set.
   */
  #reserveDescPool(): Pool {
    this.#gaveReserveDesc = false;
    return this.#descs[this.#descs.length - 1];
  }

  /**
   * Tops up the reserves: with ripe pooled blocks (descriptors from the
   * capacity-8 pool; the pools stamped first when `stamp`), else as far as
   * the heap has room. Returns whether it added any block.
   */
  refillReserves(stamp = false): boolean {
    if (stamp) this.#stampPools();
    let added = this.#refillFromPools();
    // Debts are paid from ripe blocks only (allocating is as good, but the
    // heap may have no room); until then the next stamp tries again.
    this.#reserveShort = this.#sharedDebt[0] + this.#sharedDebt[1] !== 0;
    const heap = this.heap;
    const reserves = this.#reserves;
    for (let r = 0; r < reserves.length; r++) {
      const reserve = reserves[r];
      while (reserve.count < reserve.ptrs.length) {
        let ptr: number;
        try {
          ptr = heap.allocate(reserve.size);
        } catch (e) {
          if (!(e instanceof HeapExhaustedError)) throw e;
          this.#reserveShort = true;
          return added;
        }
        reserve.ptrs[reserve.count++] = ptr;
        added = true;
      }
    }
    return added;
  }

  /**
   * Pays back the shared reserve, then tops up this worker's, with ripe
   * pooled blocks only; returns whether it added any.
   */
  #refillFromPools(): boolean {
    let added = false;
    const reserves = this.#reserves;
    const debt = this.#sharedDebt;
    for (let r = 0; r < reserves.length; r++) {
      const reserve = reserves[r];
      const pool = r === 0 ? this.#cells : this.#descs[this.#descs.length - 1];
      while (debt[r] > 0) {
        const moved = this.#ripeToShared(r, pool);
        if (moved === 0) break;
        // Slots full already (another worker paid): nothing is owed.
        debt[r] = moved < 0 ? 0 : debt[r] - 1;
        if (moved > 0) added = true;
      }
      while (reserve.count < reserve.ptrs.length) {
        const ptr = this.#takeRipe(pool);
        if (ptr === 0) break;
        reserve.ptrs[reserve.count++] = ptr;
        added = true;
      }
    }
    return added;
  }

  /** Gives back a block that `#take` returned and that was never published. */
  #untake(pool: Pool, ptr: number): void {
    if (pool.count === POOL_SLOTS) {
      this.heap.free(ptr);
      return;
    }
    const at = pool.head = (pool.head - 1) & POOL_MASK;
    pool.ptrs[at] = ptr;
    pool.epochs[at] = epochBefore(this.#epoch, 2); // reusable at once
    pool.count++;
    pool.stamped++;
  }

  /**
   * Retires `ptr`, a block of `pool`'s size that no loc word names any more
   * (unlinked before this call, so any later epoch load may stamp it), into
   * the pool (into the heap when the pool is full).
   */
  #put(pool: Pool, ptr: number): void {
    if (pool.count === POOL_SLOTS) {
      this.heap.retire(ptr);
      return;
    }
    pool.ptrs[(pool.head + pool.count) & POOL_MASK] = ptr;
    pool.count++;
    if (++this.#unstamped >= STAMP_EVERY) this.#stamp();
  }

  /**
   * Stamps every unstamped pool entry with the epoch loaded now (after they
   * were all unlinked), trying to advance it first.
   */
  #stamp(): void {
    this.#stampPools();
    if (this.#reserveShort) this.refillReserves();
    else if (Atomics.load(this.words, H_SHARED_EMPTY) > 0) this.#topUpShared();
  }

  /**
   * Puts ripe pooled blocks into the shared reserve's empty slots (left by
   * borrowers that closed or died before they paid back), from a worker
   * whose own reserve is full.
   */
  #topUpShared(): void {
    for (let kind = 0; kind < 2; kind++) {
      const pool = kind === 0 ? this.#cells : this.#descs[this.#descs.length - 1];
      while (this.#ripeToShared(kind, pool) > 0);
    }
  }

  /**
   * Moves the oldest ripe block of `pool` into an empty slot of the shared
   * reserve (`kind` 0 cells, 1 descriptors): 1 when it did, 0 when no block
   * is ripe, -1 when every slot is full (the block stays pooled).
   */
  #ripeToShared(kind: number, pool: Pool): number {
    const ptr = this.#takeRipe(pool);
    if (ptr === 0) return 0;
    if (this.#putShared(kind, ptr)) return 1;
    this.#untake(pool, ptr);
    return -1;
  }

  /** #stamp without refilling the reserves. */
  #stampPools(): void {
    this.#unstamped = 0;
    const e = this.heap["advanceEpoch"]();
    this.#epoch = e;
    stampPool(this.#cells, e);
    const descs = this.#descs;
    for (let c = 0; c < descs.length; c++) stampPool(descs[c], e);
  }

  /**
   * The heap's reclaimer: frees the pooled blocks that are safe, retires
   * the others; and, when this worker leaves the heap (`closing`), frees
   * the reserves, which no other worker has seen.
   */
  #flush(closing: boolean): number {
    const heap = this.heap;
    this.#stampPools();
    const e = this.#epoch;
    // While this worker commits here, the blocks its reserve lacks (and
    // those it owes the shared one) stay pooled (the newest; the ripe ones
    // go into the reserves first), or the reserve would never refill: its
    // descriptors and cells come back into these pools after their
    // commits, and once freed the heap may give their pages to other sizes.
    const reserves = this.#reserves;
    const debt = this.#sharedDebt;
    let keepCells = 0;
    let keepDescs = 0;
    if (this.#committing) this.#refillFromPools();
    if (!closing && this.#committing) {
      keepCells = reserves[0].ptrs.length - reserves[0].count + debt[0];
      keepDescs = reserves[1].ptrs.length - reserves[1].count + debt[1];
    }
    let freed = flushPool(heap, this.#cells, e, keepCells);
    const descs = this.#descs;
    const last = descs.length - 1;
    for (let c = 0; c < descs.length; c++) {
      freed += flushPool(heap, descs[c], e, c === last ? keepDescs : 0);
    }
    if (closing) {
      // The reserve, never published, fills the shared one's free slots
      // (paying what is owed, or more); the rest is freed.
      for (let r = 0; r < reserves.length; r++) {
        const reserve = reserves[r];
        while (reserve.count > 0) {
          const ptr = reserve.ptrs[--reserve.count];
          if (!this.#putShared(r, ptr)) heap.free(ptr);
        }
        debt[r] = 0;
      }
      this.#reserveShort = this.#committing;
    }
    return freed;
  }

  // ------------------------------------------------------- waiting, waking

  #notifyDesc(d: number): void {
    if (Atomics.load(this.words, H_WAITING) === 0) return;
    const heap = this.heap;
    const i32 = heap.i32;
    const s = d >> 2;
    const n = i32[s + D_COUNT];
    for (let k = 0; k < n; k++) {
      const e = s + (D_HEADER >> 2) + k * (ENTRY_BYTES >> 2);
      if (i32[e + E_FLAGS] === F_WRITE) this.#wake(bucketOf(i32[e + E_LOC]));
    }
    this.#wake(MULTI);
  }

  #wake(bucket: number): void {
    const b = H_BUCKETS + bucket * BUCKET_WORDS;
    if (Atomics.load(this.words, b + B_WAITERS) === 0) return;
    Atomics.add(this.words, b + B_SEQ, 1);
    Atomics.notify(this.words, b + B_SEQ);
  }

  /**
   * Registers as a waiter for the locs `addrs[0..n)` and checks that each
   * still resolves to `cells[i]`. Returns the bucket word to park on and the
   * sequence seen, or -1 when something already changed (then nothing stays
   * registered). Pinned caller; it must unpin before parking, then call
   * `unregister`.
   */
  register(n: number, addrs: ArrayLike<number>, cells: ArrayLike<number>): number {
    let bucket = n === 0 ? MULTI : bucketOf(addrs[0]);
    for (let i = 1; i < n && bucket !== MULTI; i++) {
      if (bucketOf(addrs[i]) !== bucket) bucket = MULTI;
    }
    const b = H_BUCKETS + bucket * BUCKET_WORDS;
    Atomics.add(this.words, H_WAITING, 1);
    Atomics.add(this.words, b + B_WAITERS, 1);
    this.seen = Atomics.load(this.words, b + B_SEQ);
    for (let i = 0; i < n; i++) {
      if (this.resolve((addrs[i] >> 2) + L_WORD) !== cells[i]) {
        this.unregister(b);
        return -1;
      }
    }
    return b;
  }

  /** The sequence value that `register` saw. */
  seen = 0;

  /** Parks on bucket word `b` (from `register`) until woken or `deadline`. */
  parkSync(b: number, seen: number, deadline: number): boolean {
    return parkSync(this.words, b + B_SEQ, seen, deadline);
  }

  /** Async twin of parkSync. */
  parkAsync(b: number, seen: number, deadline: number): Promise<boolean> {
    return parkAsync(this.words, b + B_SEQ, seen, deadline);
  }

  /** Undoes `register`. */
  unregister(b: number): void {
    Atomics.sub(this.words, b + B_WAITERS, 1);
    Atomics.sub(this.words, H_WAITING, 1);
  }
}

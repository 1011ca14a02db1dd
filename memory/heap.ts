/**
 * SharedHeap: one growable SharedArrayBuffer that every sabre structure
 * allocates from, with its worker registry, epoch-based reclamation and named
 * roots.
 *
 * ## Which memory-model pattern each field follows
 *
 * (Patterns as in the design guide: (a) all-atomic, (b) immutable after an
 * Atomics publication, plus (c) owner-only: written and read by one worker.)
 *
 * - Header constants (magic, version, uid, sizes, offsets): written once before
 *   the buffer is shared, pattern (b).
 * - H_COMMITTED_PAGES, H_EPOCH, H_ORPHANS, H_SLOT_HIGH, slot S_EPOCH and
 *   S_STATE, descriptor D_REMOTE: (a).
 * - Pool free lists and descriptors of free blocks: plain, under the pool lock.
 * - Small-page fields D_LOCAL, D_USED, D_BUMP, queue links, slot class queues
 *   and live counters: (c), owner slot only. Statistics read the counters with
 *   Atomics.load and accept a stale value.
 * - Slot S_KERNEL_KEY words: (c), written by their worker just before its
 *   kernel call reads them; no other worker reads them.
 * - Retire bags and slot S_RETIRE_HEAD, S_RETIRE_TAIL, S_RETIRED: (c) while
 *   the slot is held. They change hands with the slot (join's CAS on
 *   S_STATE), through an eviction (after the owner has stopped; the chain is
 *   taken with an exchange), or through the orphan stack H_ORPHANS, (b): a
 *   chain's words are written before the CAS that pushes it and read after
 *   the exchange that takes it.
 * - Descriptor D_STATE/D_OWNER of an allocated block: written under the pool
 *   lock before the block is handed out, and the block reaches any other worker
 *   only through a later Atomics publication, so (b) for everyone who frees it.
 *   D_OWNER later changes only by Atomics (abandon, adopt). free() still reads
 *   it plainly, to compare it with its own slot: the value equal to a worker's
 *   slot is only ever written by that worker (page init, adoption), and a
 *   slot reused after eviction is joined through a CAS that follows the
 *   evictor's ABANDONED store, so the comparison cannot be fooled. free()
 *   also reads D_BUMP plainly, only as a bounds check: it only grows while the
 *   page is owned, and the block's allocation happens-before the free.
 * - Free-list links inside freed blocks: written before the CAS that publishes
 *   the block on a remote list, read after the exchange that takes it, (b).
 * - Named roots: (a), under a per-entry sequence word.
 *
 * ## Crash behaviour
 *
 * Owner-only updates count a block as used before unlinking it and as free
 * after linking it, so a worker terminated in between leaks at most that block
 * and never lets two owners share one. A worker may also die holding the
 * pool lock (held for a few hundred
 * nanoseconds per 64 KiB page): evictWorker sees it in the lock word,
 * rebuilds the pool's free lists from the descriptors and releases the lock,
 * leaking at most the block that was in flight (or, if it died while growing
 * the buffer, the pages it had not yet carved into the pool).
 *
 * What a worker retired and has not freed lies in its slot's chain of retire
 * bags, in the heap. An entry is counted in its bag after it is written, and
 * passed over before its block is freed, so a death leaks at most the block
 * in flight; eviction hands the chain to the other workers.
 *
 * @module
 */

import {
  B_CAPACITY,
  B_END,
  B_ENTRIES,
  B_NEXT,
  B_START,
  BAG_BYTES,
  BAG_ENTRIES,
  D_BUMP,
  D_LOCAL,
  D_NEXT,
  D_OWNER,
  D_PREV,
  D_REMOTE,
  D_STATE,
  D_USED,
  DESC_WORDS,
  descState,
  H_ABANDONED_PAGES,
  H_COMMITTED_PAGES,
  H_DESC_OFFSET,
  H_EPOCH,
  H_FREE_PAGES,
  H_FRESH_PAGE,
  H_GROW_COUNT,
  H_LARGE_PAGES,
  H_MAGIC,
  H_MAX_PAGES,
  H_MAX_WORKERS,
  H_META_PAGES,
  H_ORPHANED_BLOCKS,
  H_ORPHANS,
  H_ROOTS_OFFSET,
  H_SLOT_HIGH,
  H_SLOTS_OFFSET,
  H_SMALL_PAGES,
  H_UID_HI,
  H_UID_LO,
  H_VERSION,
  HEAP_KIND,
  IN_FULL_LIST,
  K_INTERIOR,
  K_LARGE,
  K_META,
  K_SMALL,
  KERNEL_KEY_WORDS,
  LAYOUT_VERSION,
  MAGIC,
  MAX_HEAP_BYTES,
  MAX_ORDER,
  metadataBytes,
  PAGE_BYTES,
  PAGE_SHIFT,
  R_KIND,
  R_KIND_LEN,
  R_NAME,
  R_NAME_LEN,
  R_OFFSET,
  R_SEQ,
  R_USED,
  R_VERSION,
  ROOT_BYTES,
  ROOT_COUNT,
  ROOT_KIND_MAX,
  ROOT_NAME_MAX,
  S_CLASS_QUEUES,
  S_EPOCH,
  S_FULL_QUEUES,
  S_KERNEL_KEY,
  S_LIVE_BLOCKS,
  S_LIVE_BYTES,
  S_LONG_PIN,
  S_RETIRE_HEAD,
  S_RETIRE_TAIL,
  S_RETIRED,
  S_STATE,
  SLOT_BYTES,
  stateClass,
  stateKind,
  stateOrder,
} from "./_layout.ts";
import { CLASS_COUNT, CLASS_ORDER, CLASS_SIZE, classOf, SMALL_MAX } from "./_size_classes.ts";
import {
  carve,
  freeBlock,
  growFor,
  lockPool,
  poolLockHolder,
  recoverPool,
  takeBlock,
  unlockPool,
  wakePoolWaiters,
} from "./_page_pool.ts";
import {
  describeValue,
  HandleError,
  HeapExhaustedError,
  SabreError,
  WorkerLimitError,
} from "./errors.ts";
import { crashPoint } from "./faults.ts";
import { createKernelMemory, instantiateKernel, type Kernel } from "./_kernel.ts";
import { instantiateStringKernel, type StringKernel } from "./_string_kernel.ts";
import { installHeapHooks } from "./_heap_hooks.ts";
import { epochsBetween, nextEpoch } from "./_epochs.ts";
import { checkOptionFields } from "./_options.ts";

/**
 * A plain object that names a shared object: `postMessage` sends it as it is,
 * and the structure's `attach()` rebuilds the object in the receiving worker.
 *
 * @example
 * ```ts
 * import { type SharedHandle, SharedHeap } from "@sabre/sabre";
 * const heap = SharedHeap.create();
 * const handle: SharedHandle = heap.handle;
 * console.assert(handle.kind === "sabre.SharedHeap");
 * ```
 */
export interface SharedHandle<K extends string = string> {
  /** What the handle names, such as `"sabre.SharedHeap"` or `"sabre.Mutex"`. */
  readonly kind: K;
  /** Layout version of the object; `attach()` refuses versions newer than it knows. */
  readonly version: number;
  /** The heap's buffer. */
  readonly sab: SharedArrayBuffer;
  /** Byte offset of the object inside the heap (0 for the heap itself). */
  readonly offset: number;
  /**
   * The shared WebAssembly memory behind `sab`, where the heap has one: it
   * lets the receiving worker run sabre's WebAssembly fast paths. A handle
   * without it still attaches, and the structures then use their JavaScript
   * paths in that worker until a handle with it arrives.
   */
  readonly memory?: WebAssembly.Memory;
}

/**
 * Handle of a {@linkcode SharedHeap}.
 *
 * @example
 * ```ts
 * import { type SharedHeapHandle, SharedHeap } from "@sabre/sabre";
 * const handle: SharedHeapHandle = SharedHeap.create().handle;
 * console.assert(SharedHeap.attach(handle).handle.offset === 0);
 * ```
 */
export type SharedHeapHandle = SharedHandle<"sabre.SharedHeap">;

/**
 * Options of {@linkcode SharedHeap.create}.
 *
 * @example
 * ```ts
 * import { type SharedHeapOptions, SharedHeap } from "@sabre/sabre";
 * const options: SharedHeapOptions = { initialBytes: 1 << 20, maxBytes: 64 << 20, maxWorkers: 16 };
 * console.assert(SharedHeap.create(options).stats().maxWorkers === 16);
 * ```
 */
export interface SharedHeapOptions {
  /** Bytes the buffer starts with; a multiple of 65536. Default: 1 MiB, or the metadata plus 4 pages if larger. */
  initialBytes?: number;
  /** Bytes the buffer may grow to; a multiple of 65536, at most 2 GiB. Default 256 MiB. */
  maxBytes?: number;
  /** Worker slots in the registry, 1 to 1024. Default 64. */
  maxWorkers?: number;
}

/**
 * A snapshot of heap usage from {@linkcode SharedHeap.stats}. Counters written
 * by other workers may be a moment stale; after all workers are done they are
 * exact.
 *
 * @example
 * ```ts
 * import { type HeapStats, SharedHeap } from "@sabre/sabre";
 * const stats: HeapStats = SharedHeap.create().stats();
 * console.assert(stats.liveBlocks === 0);
 * ```
 */
export interface HeapStats {
  /** Current length of the buffer. */
  heapBytes: number;
  /** The most the buffer may grow to. */
  maxBytes: number;
  /** Bytes reserved for the header, registry, roots and page descriptors. */
  metadataBytes: number;
  /** Bytes in free page blocks of the pool. */
  freeBytes: number;
  /** Bytes in page blocks that hold small blocks (used or not). */
  smallPageBytes: number;
  /** Bytes in large blocks (requests over 32 KiB, rounded to a power of two pages). */
  largeBytes: number;
  /** Blocks allocated and not yet freed. */
  liveBlocks: number;
  /** Bytes of those blocks, counted at their size-class size. */
  liveBytes: number;
  /** Blocks retired and not yet freed by reclamation (orphan bags included). */
  retiredBlocks: number;
  /** Times the buffer has grown. */
  growCount: number;
  /** Workers joined now. */
  workers: number;
  /** Size of the registry. */
  maxWorkers: number;
  /** The global epoch. */
  epoch: number;
}

/**
 * Guard of a pinned epoch, from {@linkcode SharedHeap.pin}. Dispose it, or
 * call `unpin()`, to leave the critical section.
 *
 * Pins nest, and so that pinning allocates nothing, every `pin()` of a heap
 * in one worker returns the same guard object: each call of `unpin()` ends
 * one level of nesting, whichever `pin()` it came from. End each pin once.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "@sabre/sabre";
 * const heap = SharedHeap.create();
 * {
 *   using _guard = heap.pin();
 *   // memory reached from here may be retired by others but is not reused
 * }
 * ```
 */
export interface EpochGuard extends Disposable {
  /**
   * Leaves the pinned section (the same as disposing the guard).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const guard = heap.pin();
   * console.assert(heap.isPinned);
   * guard.unpin();
   * console.assert(!heap.isPinned);
   * ```
   */
  unpin(): void;
}

const textEncoder = new TextEncoder();
const KIB64 = 65536;
const DEFAULT_MAX_BYTES = 256 << 20;
const DEFAULT_INITIAL_BYTES = 1 << 20;
const DEFAULT_MAX_WORKERS = 64;
/** D_OWNER of a small page whose owner left with blocks still in use. */
const ABANDONED = -1;
/** ownerId(): the low bits hold slot + 1 (maxWorkers is at most 1024). */
const OWNER_SLOT_BITS = 11;
/** ownerId(): the slot's join count, modulo 2^20, above the slot bits. */
const OWNER_JOINS_MASK = 0xfffff;
/** Pins between two loads of the global epoch (see pin()). */
const EPOCH_REFRESH = 16;
/** Retired blocks between two collection attempts. */
const COLLECT_EVERY = 64;
/**
 * Retired bytes between two collection attempts, at most: large blocks
 * (a B+ tree's leaves) fill a small heap long before 64 of them are retired.
 * A heap's limit is the smaller of this and 1/32 of its maxBytes.
 */
const COLLECT_EVERY_BYTES = 256 << 10;
/** The descriptor states of small blocks of 1 KiB or more are at least this. */
const KIB_CLASS_STATE = descState(K_SMALL, 0, classOf(1024));
/**
 * Retired blocks a worker may hold before retire() waits for reclamation
 * (see #waitForReclamation).
 */
const RETIRED_BACKLOG = 1024;
/** That wait: its spin, then its one sleep, in milliseconds. */
const BACKLOG_SPIN_MS = 0.05;
const BACKLOG_SLEEP_MS = 0.5;
/** Cores (1 where the runtime does not tell); see setCoreCount. */
let cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
  ?.hardwareConcurrency ?? 1;

/**
 * Sets the number of cores that this thread's heaps assume when they decide
 * whether waiting for reclamation can help (see #waitForReclamation), and
 * returns the previous one. For tests, which must not depend on the
 * machine's core count.
 *
 * @example
 * ```ts
 * import { setCoreCount } from "./heap.ts";
 * const previous = setCoreCount(1);
 * setCoreCount(previous);
 * ```
 */
export function setCoreCount(count: number): number {
  const previous = cores;
  cores = count;
  return previous;
}
/** A word nobody notifies, to sleep on. */
const sleepWord = new Int32Array(new SharedArrayBuffer(4));
/** Sleeps `ms` milliseconds; false where this thread may not block. */
function sleep(ms: number): boolean {
  try {
    Atomics.wait(sleepWord, 0, 0, ms);
    return true;
  } catch {
    return false; // a browser's main thread
  }
}
/** Bytes of the block that holds a retire bag (its size class). */
const BAG_BLOCK_BYTES = CLASS_SIZE[classOf(BAG_BYTES)];

/**
 * Heaps of this realm whose kernel may keep a read pin (see
 * kernelForRead in _heap_hooks.ts), for releaseReadPins. Each is listed once.
 */
const readPinnedHeaps: SharedHeap[] = [];
/**
 * What ends the pins that structures keep across their callers' code (a
 * HashMap iteration between two of its yields), each registered once per
 * task by endAtTaskEnd; releaseReadPins runs them and empties the list.
 */
const taskPinEnds: (() => void)[] = [];
/** Whether a microtask to release the read pins is queued. */
let readPinReleaseQueued = false;

/** Ends this realm's read pins at the end of the task that took them. */
function releaseReadPinsAtTaskEnd(): void {
  readPinReleaseQueued = false;
  SharedHeap.releaseReadPins();
}

function queueReadPinRelease(): void {
  if (!readPinReleaseQueued) {
    readPinReleaseQueued = true;
    queueMicrotask(releaseReadPinsAtTaskEnd);
  }
}

/**
 * Ends this realm's kernel read pins before the worker parks on the page
 * pool's lock. No caller of allocate or free relies on a read pin: the read
 * pin covers the kernel's gets, which allocate nothing. The pins of
 * taskPinEnds stay: ending one reads the structure, which must not happen
 * in the middle of an allocation.
 */
function releaseReadPinsBeforePark(): void {
  SharedHeap["releaseKernelReadPins"]();
}

/**
 * Heaps attached in this realm, by heap uid, so that attach() is idempotent.
 * Weak, so that a heap nobody references can be collected.
 */
const realmHeaps = new Map<string, WeakRef<SharedHeap>>();

/** What the finalizer needs to release the slot of a heap dropped without close(). */
interface SlotLease {
  i32: Int32Array;
  uid: string;
  slotBase: number;
  state: number;
}

/** Root names that sabre keeps for itself, such as the STM's "sabre.stm". */
const RESERVED_ROOT_PREFIX = "sabre.";

/** Throws for `name` when it is reserved: a user's change to it would break a sabre structure. */
function refuseReservedRoot(name: string, action: string): void {
  if (typeof name === "string" && name.startsWith(RESERVED_ROOT_PREFIX)) {
    throw new TypeError(
      `Cannot ${action} root ${
        describeValue(name)
      } as names beginning with "${RESERVED_ROOT_PREFIX}" ` +
        "belong to sabre's own structures",
    );
  }
}

/**
 * Releases the registry slot of a heap that became unreachable while joined,
 * so that a dropped heap never blocks epochs or holds a slot forever.
 */
const slotFinalizer = new FinalizationRegistry<SlotLease>((lease) => {
  const ref = realmHeaps.get(lease.uid);
  if (ref !== undefined && ref.deref() === undefined) realmHeaps.delete(lease.uid);
  if (lease.slotBase < 0) return;
  Atomics.store(lease.i32, lease.slotBase + S_EPOCH, 0);
  Atomics.compareExchange(lease.i32, lease.slotBase + S_STATE, lease.state, lease.state + 1);
});

function checkSizeOption(what: string, value: unknown, min: number): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot create SharedHeap as '${what}' must be a number: current value is ${
        describeValue(value)
      }`,
    );
  }
  if (!Number.isInteger(value) || value % KIB64 !== 0) {
    throw new RangeError(
      `Cannot create SharedHeap as '${what}' must be a multiple of 65536: current value is ${value}`,
    );
  }
  if (value < min || value > MAX_HEAP_BYTES) {
    throw new RangeError(
      `Cannot create SharedHeap as '${what}' must be between ${min} and ${MAX_HEAP_BYTES}: current value is ${value}`,
    );
  }
  return value;
}

function heapUid(i32: Int32Array): string {
  return `${(i32[H_UID_HI] >>> 0).toString(16)}:${(i32[H_UID_LO] >>> 0).toString(16)}`;
}

function encodeRootString(what: string, value: unknown, max: number): Uint8Array {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot use root ${what} as it is not a string: current value is ${describeValue(value)}`,
    );
  }
  const bytes = textEncoder.encode(value);
  if (bytes.length === 0 || bytes.length > max) {
    throw new RangeError(
      `Cannot use root ${what} as its UTF-8 length must be 1 to ${max} bytes: current value is ${
        describeValue(value)
      } (${bytes.length} bytes)`,
    );
  }
  return bytes;
}

/**
 * A growable shared arena that every sabre structure lives in.
 *
 * One heap is one growable `SharedArrayBuffer`. It hands out blocks with
 * `allocate`/`free` (size classes with per-worker pages, then a buddy pool of
 * 64 KiB pages, growing the buffer by doubling up to `maxBytes`), keeps a
 * registry of worker slots, reclaims memory that concurrent readers may still
 * see through epochs (`pin`, `retire`, `collect`), and names structures
 * through roots so that any worker can find them.
 *
 * Create it once, then send `heap.handle` to each worker and call
 * `SharedHeap.attach(handle)` there. A worker joins the registry on first use
 * and leaves with `close()`.
 *
 * Pointers are byte offsets into the buffer; 0 is null. Blocks are 16-byte
 * aligned, except those of 8 bytes or less, which are 8-byte aligned. Read
 * and write them through the views (`i32`, `u8`, `f64`, ...), after
 * `ensure(ptr + size)` when the pointer came from another worker, since a
 * view created before the last growth does not cover the new pages.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create({ maxBytes: 64 << 20 });
 * const ptr = heap.allocate(64);
 * heap.i32[ptr >> 2] = 42;
 * console.assert(heap.i32[ptr >> 2] === 42);
 * heap.free(ptr);
 *
 * // In a worker: const heap = SharedHeap.attach(handleFromPostMessage);
 * const same = SharedHeap.attach(heap.handle);
 * console.assert(same === heap);
 * ```
 */
export class SharedHeap implements Disposable {
  /**
   * The buffer: the same one in every worker attached to this heap.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ initialBytes: 1 << 20 });
   * console.assert(heap.sab === heap.handle.sab && heap.sab.byteLength === 1 << 20);
   * ```
   */
  readonly sab: SharedArrayBuffer;
  /**
   * Int32 view over the mapped part of the buffer. Refreshed by `ensure`.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const counter = heap.allocateZeroed(4);
   * Atomics.add(heap.i32, counter >> 2, 5);
   * console.assert(Atomics.load(heap.i32, counter >> 2) === 5);
   * ```
   */
  readonly i32!: Int32Array;
  /**
   * Uint32 view over the mapped part of the buffer.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const word = heap.allocate(4);
   * heap.i32[word >> 2] = -1;
   * console.assert(heap.u32[word >> 2] === 0xffffffff);
   * ```
   */
  readonly u32!: Uint32Array;
  /**
   * Uint8 view over the mapped part of the buffer.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(3);
   * heap.u8.set([1, 2, 3], ptr);
   * console.assert(heap.u8.subarray(ptr, ptr + 3).join() === "1,2,3");
   * ```
   */
  readonly u8!: Uint8Array;
  /**
   * Uint16 view over the mapped part of the buffer.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(4);
   * heap.u16[(ptr >> 1) + 1] = 500;
   * console.assert(heap.u16[(ptr >> 1) + 1] === 500);
   * ```
   */
  readonly u16!: Uint16Array;
  /**
   * Float64 view over the mapped part of the buffer (reads may tear if raced).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(8); // blocks are at least 8-byte aligned
   * heap.f64[ptr >> 3] = 0.1 + 0.2;
   * console.assert(heap.f64[ptr >> 3] === 0.1 + 0.2);
   * ```
   */
  readonly f64!: Float64Array;
  /**
   * BigInt64 view over the mapped part of the buffer (Atomics-capable).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const total = heap.allocateZeroed(8);
   * Atomics.add(heap.i64, total >> 3, 1n << 40n);
   * console.assert(Atomics.load(heap.i64, total >> 3) === 1n << 40n);
   * ```
   */
  readonly i64!: BigInt64Array;
  /**
   * Bytes covered by the views of this worker: at least up to the end of
   * every block it allocated; `ensure` extends them.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ initialBytes: 1 << 20 });
   * console.assert(heap.mappedBytes === 1 << 20);
   * heap.allocate(2 << 20); // grows the buffer
   * console.assert(heap.mappedBytes === heap.sab.byteLength && heap.mappedBytes > 1 << 20);
   * ```
   */
  readonly mappedBytes!: number;
  /**
   * The heap's `maxBytes`: the most its buffer may grow to.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ maxBytes: 16 << 20 });
   * console.assert(heap.maxBytes === 16 << 20 && heap.sab.byteLength <= heap.maxBytes);
   * ```
   */
  readonly maxBytes: number;
  /**
   * The registry's size: how many workers may be joined at once.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ maxWorkers: 8 });
   * console.assert(heap.maxWorkers === 8 && heap.join() < 8);
   * ```
   */
  readonly maxWorkers: number;
  #memory: WebAssembly.Memory | null;
  #kernel: Kernel | null = null;
  // Beside the kernel where the runtime has WebAssembly GC and the js-string
  // builtins (see _string_kernel.ts).
  #stringKernel: StringKernel | null = null;
  // This worker's S_KERNEL_KEY words once it has joined; until then, and
  // after close(), words of its own (the kernel then answers SLOW anyway).
  #kernelKeyWords: Int32Array<ArrayBufferLike> = new Int32Array(KERNEL_KEY_WORDS);

  readonly #uid: string;
  readonly #descBase: number; // Int32 index of descriptor 0
  readonly #slotsBase: number; // Int32 index of slot 0
  readonly #rootsBase: number; // Int32 index of root 0
  #slot = -1;
  #slotBase = -1; // Int32 index of this worker's slot
  #closed = false;
  #lease: SlotLease | undefined;
  #pinDepth = 0;
  // Whether the kernel's gets may keep a read pin (kernelForRead). Only
  // while #pinDepth is 0: pin() ends it first.
  #readPinArmed = false;
  // This worker's S_LONG_PIN as last stored. The word is only meaningful
  // while pinned, so it changes lazily: pin() and a read pin set it, an
  // outermost pinForOperation clears it, and each stores only when the value
  // differs, so that runs of pin() (or of operations) store nothing.
  #longPinShown = false;
  // Whether this heap is in readPinnedHeaps.
  #readPinListed = false;
  #cachedEpoch = 0;
  #pinsUntilRefresh = 0;
  // Whether the last page block this worker took had never been used
  // (see H_FRESH_PAGE): allocateZeroed then skips the fill.
  #tookFreshPages = false;
  readonly #guard: EpochGuard;
  // Blocks this worker retired and has not freed: those in its slot's bag
  // chain, plus the spill (see #spill).
  #retiredCount = 0;
  // Retired blocks for which no bag could be allocated (heap exhausted),
  // FIFO with the epoch at retirement. Lost if the worker dies.
  #spillPtr = new Int32Array(0);
  #spillEpoch = new Int32Array(0);
  #spillHead = 0;
  #spillCount = 0;
  // #chainEnd's second answer: the entries of the chain it walked.
  #chainEntries = 0;
  #collectAt = COLLECT_EVERY;
  /** Bytes retired since the last collection attempt, and their limit. */
  #retiredBytesSinceCollect = 0;
  #collectEveryBytes = 0;
  // The backlog past which retire() waits for reclamation.
  #backlogLimit = RETIRED_BACKLOG;
  // Waits in a row that did not see the epoch move.
  #failedWaits = 0;
  // Those waits, for tests (read as heap["reclamationWaits"]).
  private reclamationWaits = 0;
  // Caches of retired blocks kept outside this heap's lists (see addReclaimer).
  readonly #reclaimers: ((closing: boolean) => number)[] = [];

  private constructor(sab: SharedArrayBuffer, memory: WebAssembly.Memory | null) {
    this.sab = sab;
    this.#memory = memory;
    if (memory !== null) this.#instantiateKernels(memory);
    this.#mapViews(sab.byteLength);
    const i32 = this.i32;
    this.maxBytes = i32[H_MAX_PAGES] * PAGE_BYTES;
    this.#collectEveryBytes = Math.min(COLLECT_EVERY_BYTES, this.maxBytes / 32);
    this.maxWorkers = i32[H_MAX_WORKERS];
    this.#uid = heapUid(i32);
    this.#descBase = i32[H_DESC_OFFSET] >> 2;
    this.#slotsBase = i32[H_SLOTS_OFFSET] >> 2;
    this.#rootsBase = i32[H_ROOTS_OFFSET] >> 2;
    const unpin = () => this.unpin();
    this.#guard = { unpin, [Symbol.dispose]: unpin };
  }

  /**
   * Creates a heap. Throws `RangeError` or `TypeError` naming the option when
   * an option is invalid.
   *
   * Keep the structures that one worker reads in one heap where you can:
   * once a worker has read a map of a second heap, its reads of large maps
   * in the first took 1.3 to 1.7 times as long (see the README).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 256 << 20, maxWorkers: 64 });
   * console.assert(heap.stats().heapBytes === 1 << 20);
   * ```
   */
  static create(options: SharedHeapOptions = {}): SharedHeap {
    checkOptionFields(options, ["initialBytes", "maxBytes", "maxWorkers"], "create SharedHeap");
    const maxWorkers = options.maxWorkers === undefined ? DEFAULT_MAX_WORKERS : options.maxWorkers;
    if (typeof maxWorkers !== "number") {
      throw new TypeError(
        `Cannot create SharedHeap as 'maxWorkers' must be a number: current value is ${
          describeValue(maxWorkers)
        }`,
      );
    }
    if (!Number.isInteger(maxWorkers) || maxWorkers < 1 || maxWorkers > 1024) {
      throw new RangeError(
        `Cannot create SharedHeap as 'maxWorkers' must be an integer from 1 to 1024: current value is ${maxWorkers}`,
      );
    }
    const maxBytes = checkSizeOption(
      "maxBytes",
      options.maxBytes === undefined ? DEFAULT_MAX_BYTES : options.maxBytes,
      KIB64,
    );
    const maxPages = maxBytes / PAGE_BYTES;
    const metaPages = Math.ceil(metadataBytes(maxPages, maxWorkers) / PAGE_BYTES);
    const minBytes = (metaPages + 1) * PAGE_BYTES;
    if (minBytes > maxBytes) {
      throw new RangeError(
        `Cannot create SharedHeap as 'maxBytes' must be at least ${minBytes} to hold the metadata of ${maxWorkers} workers: current value is ${maxBytes}`,
      );
    }
    const initialBytes = options.initialBytes === undefined
      ? Math.min(maxBytes, Math.max(DEFAULT_INITIAL_BYTES, (metaPages + 4) * PAGE_BYTES))
      : checkSizeOption("initialBytes", options.initialBytes, KIB64);
    if (initialBytes > maxBytes) {
      throw new RangeError(
        `Cannot create SharedHeap as 'initialBytes' must not exceed 'maxBytes' (${maxBytes}): current value is ${initialBytes}`,
      );
    }
    if (initialBytes < minBytes) {
      throw new RangeError(
        `Cannot create SharedHeap as 'initialBytes' must be at least ${minBytes} to hold the metadata and one page: current value is ${initialBytes}`,
      );
    }
    const backing = createKernelMemory(initialBytes, maxBytes);
    const sab = backing?.sab ?? new SharedArrayBuffer(initialBytes, { maxByteLength: maxBytes });
    const i32 = new Int32Array(sab);
    const uid = new Uint32Array(2);
    crypto.getRandomValues(uid);
    const slotsOffset = 512;
    const rootsOffset = slotsOffset + maxWorkers * SLOT_BYTES;
    const descOffset = rootsOffset + ROOT_COUNT * ROOT_BYTES;
    i32[H_VERSION] = LAYOUT_VERSION;
    i32[H_UID_LO] = uid[0] | 0;
    i32[H_UID_HI] = uid[1] | 0;
    i32[H_MAX_PAGES] = maxPages;
    i32[H_MAX_WORKERS] = maxWorkers;
    i32[H_META_PAGES] = metaPages;
    i32[H_SLOTS_OFFSET] = slotsOffset;
    i32[H_ROOTS_OFFSET] = rootsOffset;
    i32[H_DESC_OFFSET] = descOffset;
    i32[H_EPOCH] = 1;
    i32[H_FRESH_PAGE] = metaPages;
    const desc = descOffset >> 2;
    for (let page = 0; page < metaPages; page++) {
      i32[desc + page * DESC_WORDS + D_STATE] = descState(K_META, 0, 0);
    }
    const pages = initialBytes / PAGE_BYTES;
    i32[H_COMMITTED_PAGES] = pages;
    carve(i32, desc, metaPages, pages);
    // The magic goes last: a half-initialized buffer never passes attach().
    Atomics.store(i32, H_MAGIC, MAGIC);
    const heap = new SharedHeap(sab, backing?.memory ?? null);
    realmHeaps.set(heap.#uid, new WeakRef(heap));
    return heap;
  }

  /**
   * Returns this realm's heap for a handle received from another worker,
   * attaching it on first use. Throws {@linkcode HandleError} when the
   * handle is not a valid heap handle.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const again = SharedHeap.attach(structuredClone(heap.handle));
   * console.assert(again === heap);
   * ```
   */
  static attach(handle: SharedHeapHandle): SharedHeap {
    return SharedHeap.fromHandle(handle, HEAP_KIND, LAYOUT_VERSION, "SharedHeap");
  }

  /**
   * Validates a structure's handle and returns the heap it lives in. For
   * structure implementers: `attach()` of every sabre structure calls it.
   * The handle's version must equal `supportedVersion` (a layout is read by
   * exactly one version), and so must the heap's layout version. Throws
   * {@linkcode HandleError} naming what is wrong.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const handle = heap.handleOf("my.Thing", 1, 0);
   * console.assert(SharedHeap.fromHandle(handle, "my.Thing", 1, "Thing") === heap);
   * ```
   */
  static fromHandle(
    handle: SharedHandle,
    kind: string,
    supportedVersion: number,
    what: string,
  ): SharedHeap {
    const fail = (reason: string, value: unknown): never => {
      throw new HandleError(
        `Cannot attach ${what} as ${reason}: current value is ${describeValue(value)}`,
      );
    };
    if (typeof handle !== "object" || handle === null) fail("the handle is not an object", handle);
    for (const field of ["kind", "version", "sab", "offset"] as const) {
      if (!(field in handle)) {
        fail(`the handle has no '${field}' field (truncated handle?)`, handle);
      }
    }
    if (handle.kind !== kind) fail(`the handle's kind is not "${kind}"`, handle.kind);
    if (!Number.isInteger(handle.version) || handle.version < 1) {
      fail("the handle's version is not a positive integer", handle.version);
    }
    // Layouts are read by exactly one version: no build converts an older one.
    if (handle.version !== supportedVersion) {
      fail(
        `the handle was made by ${
          handle.version > supportedVersion ? "a newer" : "an older"
        } sabre (this build reads ${what} version ${supportedVersion} only)`,
        handle.version,
      );
    }
    const sab = handle.sab;
    if (!(sab instanceof SharedArrayBuffer)) {
      fail("the handle's 'sab' is not a SharedArrayBuffer", sab);
    }
    if (!sab.growable) fail("the handle's buffer is not a growable sabre heap", sab);
    if (sab.byteLength < PAGE_BYTES) {
      fail("the buffer is too small to be a sabre heap", sab.byteLength);
    }
    const header = new Int32Array(sab, 0, 16);
    if (Atomics.load(header, H_MAGIC) !== MAGIC) {
      fail("the buffer is not a sabre heap (bad magic number)", header[H_MAGIC] >>> 0);
    }
    const version = Atomics.load(header, H_VERSION);
    if (version !== LAYOUT_VERSION) {
      fail(
        `the heap was made by ${version > LAYOUT_VERSION ? "a newer" : "an older"} sabre ` +
          `(heap layout version ${version}, this build reads ${LAYOUT_VERSION} only)`,
        version,
      );
    }
    if (!Number.isInteger(handle.offset) || handle.offset < 0 || handle.offset >= sab.byteLength) {
      fail("the handle's offset is outside the heap", handle.offset);
    }
    const uid = heapUid(header);
    const memory = handle.memory;
    if (memory !== undefined) {
      if (!(memory instanceof WebAssembly.Memory)) {
        fail("the handle's 'memory' is not a WebAssembly.Memory", memory);
      }
      const buffer = memory.buffer;
      if (
        !(buffer instanceof SharedArrayBuffer) || buffer.byteLength < 64 ||
        heapUid(new Int32Array(buffer, 0, 16)) !== uid
      ) fail("the handle's 'memory' is not the memory of its heap", memory);
    }
    let heap = realmHeaps.get(uid)?.deref();
    if (heap === undefined) {
      heap = new SharedHeap(sab, memory ?? null);
      realmHeaps.set(uid, new WeakRef(heap));
    } else if (heap.#memory === null && memory !== undefined) {
      // Attached earlier from a handle without the memory: take it now.
      heap.#memory = memory;
      heap.#instantiateKernels(memory);
      if (heap.#slotBase >= 0) heap.#tellKernels(heap.#slotBase);
    }
    return heap;
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * // worker.postMessage(heap.handle);
   * console.assert(heap.handle.sab === heap.sab);
   * ```
   */
  get handle(): SharedHeapHandle {
    return this.handleOf(HEAP_KIND, LAYOUT_VERSION, 0);
  }

  /**
   * A handle naming the object of kind `kind` at byte `offset` of this heap,
   * with the heap's WebAssembly memory where it has one. For structure
   * implementers: every sabre structure's `handle` is made here.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const handle = heap.handleOf("my.Thing", 1, 0);
   * console.assert(SharedHeap.fromHandle(handle, "my.Thing", 1, "Thing") === heap);
   * ```
   */
  handleOf<K extends string>(kind: K, version: number, offset: number): SharedHandle<K> {
    const memory = this.#memory;
    // The memory before the buffer: Node 26 cannot deserialize a buffer of
    // a WebAssembly.Memory (from toResizableBuffer) met before its memory,
    // and a worker whose workerData holds one never starts.
    return memory === null
      ? { kind, version, sab: this.sab, offset }
      : { kind, version, memory, sab: this.sab, offset };
  }

  /**
   * The shared WebAssembly memory behind `sab`, or null where this runtime
   * gave the heap a plain growable SharedArrayBuffer (or this worker attached
   * it from a handle without the memory).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(heap.memory === null || heap.memory.buffer.byteLength > 0);
   * ```
   */
  get memory(): WebAssembly.Memory | null {
    return this.#memory;
  }

  // The hooks of memory/_heap_hooks.ts, where each is described.

  #stringKernelForRead(): StringKernel | null {
    if (!this.#readPinArmed && this.#pinDepth === 0) this.#armReadPin();
    return this.#stringKernel;
  }

  #instantiateKernels(memory: WebAssembly.Memory): void {
    this.#kernel = instantiateKernel(memory);
    this.#stringKernel = this.#kernel === null
      ? null
      : instantiateStringKernel(memory, this.#kernel);
  }

  /** Tells the kernels where this worker's slot words are (slotBase -1: none). */
  #tellKernels(slotBase: number): void {
    this.#kernel?.setPinWord(slotBase < 0 ? 0 : (slotBase + S_EPOCH) << 2);
    this.#stringKernel?.setKeyAt(slotBase < 0 ? 0 : (slotBase + S_KERNEL_KEY) << 2);
  }

  #kernelTrapped(error: unknown): void {
    // The instance's idea of the memory's size lags another worker's grow()
    // until V8 tells it; the function stopped between its pin and unpin.
    this.#kernelUnpin();
    if (!(error instanceof WebAssembly.RuntimeError)) throw error;
  }

  #kernelUnpin(): void {
    // An SC store, as unpin()'s: the reads of the pinned memory that came
    // before it are ordered before any free that sees it. A read pin stays
    // until releaseReadPins.
    if (this.#pinDepth === 0 && this.#slotBase >= 0 && !this.#readPinArmed) {
      Atomics.store(this.i32, this.#slotBase + S_EPOCH, 0);
    }
  }

  #kernelForRead(): Kernel | null {
    if (!this.#readPinArmed && this.#pinDepth === 0) this.#armReadPin();
    return this.#kernel;
  }

  #armReadPin(): void {
    const kernel = this.#kernel;
    if (kernel === null) return;
    this.#readPinArmed = true;
    if (this.#slotBase >= 0) this.#showLongPin(true);
    kernel.allowReadPins();
    if (!this.#readPinListed) {
      this.#readPinListed = true;
      readPinnedHeaps.push(this);
    }
    queueReadPinRelease();
  }

  /**
   * Ends the kernel's read pin: with `unpin`, the epoch word goes back to 0
   * (an SC store, ordered after the reads it covered); without, pin() is
   * about to store its own epoch there.
   */
  #endReadPin(unpin: boolean): void {
    this.#readPinArmed = false;
    this.#kernel!.endReadPins(unpin ? 1 : 0);
  }

  /**
   * Stores S_LONG_PIN where it differs from what this worker last stored
   * there. An SC store, though the word is advisory (it decides only whether
   * another worker's retire sleeps, never whether a block is freed), so any
   * order against the epoch word would be safe.
   */
  #showLongPin(long: boolean): void {
    if (this.#longPinShown === long) return;
    this.#longPinShown = long;
    Atomics.store(this.i32, this.#slotBase + S_LONG_PIN, long ? 1 : 0);
  }

  /**
   * Ends the read pins that gets (`HashMap.get` and `has`, `Loc.get`) leave
   * in this worker, in every heap of this realm: a run of gets in one task
   * pins once, and the pin follows the global epoch as they go. It also
   * ends the pins of unfinished HashMap iterations, which resume where
   * they were at their next step.
   * sabre calls it at the end of each task that read, and before each of
   * its blocking waits. Call it before blocking or computing for long
   * outside sabre right after reads (an `Atomics.wait` of your own, a long
   * synchronous loop that reads nothing), so that this worker does not
   * hold back the reclamation of memory that other workers retire
   * meanwhile. Cheap, and harmless where nothing is pinned.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const map = HashMap.create(heap, { key: "i32", value: "i32" });
   * map.set(1, 2);
   * console.assert(map.get(1) === 2);
   * SharedHeap.releaseReadPins(); // about to block outside sabre
   * ```
   */
  static releaseReadPins(): void {
    SharedHeap.releaseKernelReadPins();
    if (taskPinEnds.length === 0) return;
    // Taken off the list first, and each one run even if one before it
    // threw (none should), so that no pin is left behind.
    const ends = taskPinEnds.splice(0);
    let failure: unknown = undefined;
    let failed = false;
    for (let i = 0; i < ends.length; i++) {
      try {
        ends[i]();
      } catch (e) {
        if (!failed) failure = e;
        failed = true;
      }
    }
    if (failed) throw failure;
  }

  /** The kernels' read pins only (see releaseReadPinsBeforePark). */
  private static releaseKernelReadPins(): void {
    const heaps = readPinnedHeaps;
    for (let i = 0; i < heaps.length; i++) {
      const heap = heaps[i];
      heap.#readPinListed = false;
      if (heap.#readPinArmed) heap.#endReadPin(true);
    }
    heaps.length = 0;
  }

  #epochWordAt(): number {
    if (this.#slotBase < 0) this.join();
    return (this.#slotBase + S_EPOCH) << 2;
  }

  static {
    installHeapHooks({
      heapKernel: (heap) => heap.#kernel,
      kernelForRead: (heap) => heap.#kernelForRead(),
      stringKernelForRead: (heap) => heap.#stringKernelForRead(),
      kernelTrapped: (heap, error) => heap.#kernelTrapped(error),
      kernelUnpin: (heap) => heap.#kernelUnpin(),
      kernelKeyWords: (heap) => heap.#kernelKeyWords,
      epochWordAt: (heap) => heap.#epochWordAt(),
      endAtTaskEnd: (end) => {
        taskPinEnds.push(end);
        queueReadPinRelease();
      },
    });
    // console.log of a heap, or of a structure that holds one, shows a line
    // rather than its seven views of the whole buffer.
    const describe = function (this: SharedHeap): string {
      const bytes = this.sab.byteLength;
      return `SharedHeap { id: "${this.#uid}", bytes: ${bytes}, maxBytes: ${this.maxBytes}, kernel: ${
        this.#kernel !== null
      }${this.#closed ? ", closed" : ""} }`;
    };
    for (const key of ["Deno.customInspect", "nodejs.util.inspect.custom"]) {
      Object.defineProperty(SharedHeap.prototype, Symbol.for(key), { value: describe });
    }
  }

  /**
   * Identity of the heap, the same in every worker. Two handles name the same
   * heap exactly when their heaps' ids are equal.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(SharedHeap.attach(heap.handle).id === heap.id);
   * ```
   */
  get id(): string {
    return this.#uid;
  }

  // ------------------------------------------------------------------ views

  /**
   * Makes sure this worker's views cover byte offsets below `end`. Call it
   * before reading through a pointer that another worker allocated: the heap
   * may have grown since this worker's views were made. One comparison when
   * nothing changed.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(16);
   * heap.ensure(ptr + 16);
   * heap.i32[ptr >> 2] = 1;
   * ```
   */
  ensure(end: number): void {
    if (end > this.mappedBytes) this.#remap(end);
  }

  #remap(end: number): void {
    const bytes = this.sab.byteLength;
    if (!(end <= bytes)) {
      throw new RangeError(
        `Cannot access heap memory as the offset lies past the heap's ${bytes} bytes: current value is ${end}`,
      );
    }
    this.#mapViews(bytes);
  }

  /**
   * Points every view at the first `bytes` bytes of the buffer. The caller
   * reads the length once and passes it: another worker may grow the buffer
   * between two reads, and views of different lengths under one
   * `mappedBytes` make in-range offsets read `undefined`.
   */
  #mapViews(bytes: number): void {
    const self = this as {
      i32: Int32Array;
      u32: Uint32Array;
      u8: Uint8Array;
      u16: Uint16Array;
      f64: Float64Array;
      i64: BigInt64Array;
      mappedBytes: number;
    };
    self.i32 = new Int32Array(this.sab, 0, bytes >> 2);
    self.u32 = new Uint32Array(this.sab, 0, bytes >> 2);
    self.u8 = new Uint8Array(this.sab, 0, bytes);
    self.u16 = new Uint16Array(this.sab, 0, bytes >> 1);
    self.f64 = new Float64Array(this.sab, 0, bytes >> 3);
    self.i64 = new BigInt64Array(this.sab, 0, bytes >> 3);
    self.mappedBytes = bytes;
  }

  // --------------------------------------------------------------- registry

  /**
   * This worker's registry slot, joining on first use.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(heap.join() === heap.slot);
   * ```
   */
  get slot(): number {
    return this.#slot >= 0 ? this.#slot : this.join();
  }

  /**
   * A positive int32 that names this worker's current stay in the registry:
   * its slot and how many times that slot was joined before. For lock words
   * of sabre's structures that must outlive a holder that dies: store the id
   * in the word, and let others take the word over once
   * {@linkcode SharedHeap.ownerLeft} says its holder has gone. Joins the
   * registry on first use.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const id = heap.ownerId();
   * console.assert(id > 0 && !heap.ownerLeft(id));
   * ```
   */
  ownerId(): number {
    const slot = this.slot;
    const state = this.#lease!.state;
    // Slot + 1 (at most 1024) in the low 11 bits, the join count (state >>> 1)
    // in the 20 bits above: the word stays positive, and 0 stays "no holder".
    return (((state >>> 1) & OWNER_JOINS_MASK) << OWNER_SLOT_BITS) | (slot + 1);
  }

  /**
   * Whether the worker that got `id` from {@linkcode SharedHeap.ownerId}
   * has left the registry since: it closed the heap, was evicted with
   * `evictWorker`, or dropped the heap unclosed. A worker still joined never
   * has left; after about a million rejoins of one slot an old id may read
   * as present again (the holder then looks alive: never unsafe).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const id = heap.ownerId();
   * heap.close();
   * console.assert(SharedHeap.attach(heap.handle).ownerLeft(id));
   * ```
   */
  ownerLeft(id: number): boolean {
    const slot = (id & ((1 << OWNER_SLOT_BITS) - 1)) - 1;
    if (
      !Number.isInteger(id) || id <= 0 || id > 0x7fffffff || slot < 0 || slot >= this.maxWorkers
    ) {
      throw new RangeError(
        `Cannot check owner as 'id' must be a value that ownerId() returned: current value is ${
          describeValue(id)
        }`,
      );
    }
    const state = Atomics.load(this.i32, this.#slotsBase + slot * (SLOT_BYTES >> 2) + S_STATE);
    return (state & 1) === 0 || ((state >>> 1) & OWNER_JOINS_MASK) !== id >>> OWNER_SLOT_BITS;
  }

  /**
   * Joins the registry now (normally done on first use) and returns the slot.
   * A slot left by a closed or evicted worker is reused, and the partly used
   * pages that departed workers left behind are adopted, so that their free
   * room serves allocations again. (A heap dropped without `close()` leaves
   * its pages with its slot for the next worker that takes it.) Throws
   * {@linkcode WorkerLimitError} when all slots are taken.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ maxWorkers: 4 });
   * console.assert(heap.join() < 4);
   * ```
   */
  join(): number {
    if (this.#slot >= 0) return this.#slot;
    if (this.#closed) {
      throw new SabreError("Cannot use SharedHeap as it was closed in this worker");
    }
    const i32 = this.i32;
    for (let slot = 0; slot < this.maxWorkers; slot++) {
      const state = this.#slotsBase + slot * (SLOT_BYTES >> 2) + S_STATE;
      const seen = Atomics.load(i32, state);
      if ((seen & 1) === 0 && Atomics.compareExchange(i32, state, seen, seen + 1) === seen) {
        this.#slot = slot;
        this.#slotBase = this.#slotsBase + slot * (SLOT_BYTES >> 2);
        // A read pin armed before the join, or a dead owner's flag.
        Atomics.store(i32, this.#slotBase + S_LONG_PIN, this.#readPinArmed ? 1 : 0);
        this.#longPinShown = this.#readPinArmed;
        this.#tellKernels(this.#slotBase);
        this.#kernelKeyWords = new Int32Array(
          this.sab,
          (this.#slotBase + S_KERNEL_KEY) << 2,
          KERNEL_KEY_WORDS,
        );
        this.#lease = { i32, uid: this.#uid, slotBase: this.#slotBase, state: seen + 1 };
        slotFinalizer.register(this, this.#lease, this);
        this.#inheritChain();
        if (Atomics.load(i32, H_ABANDONED_PAGES) > 0) this.#adoptAbandoned();
        let high = Atomics.load(i32, H_SLOT_HIGH);
        while (high < slot + 1) {
          const was = Atomics.compareExchange(i32, H_SLOT_HIGH, high, slot + 1);
          if (was === high) break;
          high = was;
        }
        return slot;
      }
    }
    throw new WorkerLimitError(this.maxWorkers);
  }

  /**
   * Leaves the registry: frees what this worker's epoch allows, hands its
   * other retired blocks to the workers that stay, returns its empty pages to
   * the pool and releases its slot. Afterwards this instance throws on use.
   * Idempotent. Throws when called while an epoch is pinned.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.free(heap.allocate(32));
   * heap.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    if (this.#pinDepth > 0) {
      throw new SabreError(
        `Cannot close SharedHeap as this worker has ${this.#pinDepth} pinned epoch guard(s)`,
      );
    }
    if (this.#readPinArmed) this.#endReadPin(true);
    if (this.#slot >= 0) this.#runReclaimers(true);
    this.#closed = true;
    if (realmHeaps.get(this.#uid)?.deref() === this) realmHeaps.delete(this.#uid);
    if (this.#slot < 0) return;
    slotFinalizer.unregister(this);
    this.#collect();
    this.#orphanRetired();
    this.#abandonPages(this.#slotBase, this.#slot);
    const i32 = this.i32;
    Atomics.store(i32, this.#slotBase + S_EPOCH, 0);
    Atomics.add(i32, this.#slotBase + S_STATE, 1);
    this.#slot = -1;
    this.#slotBase = -1;
    this.#tellKernels(-1);
    this.#kernelKeyWords = new Int32Array(KERNEL_KEY_WORDS);
  }

  /**
   * Same as {@linkcode SharedHeap.close}, for `using`.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * {
   *   using _joined = heap;
   *   heap.free(heap.allocate(16));
   *   console.assert(heap.stats().workers === 1);
   * }
   * // this worker has left the registry
   * console.assert(SharedHeap.attach(heap.handle).stats().workers === 0);
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Releases the slot of a worker that was terminated without closing, so
   * that epochs advance again and the slot can be reused. Call it from the
   * worker that terminated it, once that worker has surely stopped. Blocks
   * that worker had retired but not yet freed pass to the other workers,
   * whose next collections free them (a block it was retiring or freeing at
   * that moment leaks); its partly used pages pass to the next worker that
   * joins the heap (or frees into them).
   * Never call it for a live worker: two workers would share one slot.
   *
   * When has it stopped? Node's `worker.terminate()` returns a promise that
   * settles once the thread has stopped: evict after it. Deno's
   * `Worker.terminate()` (2.9.6) returns at once and does not interrupt
   * running code: a worker busy in a synchronous loop goes on until it
   * returns to its event loop. So in Deno, evict only a worker that was
   * idle (awaiting a message, say) when it was terminated, or one whose
   * progress you can watch stop (a counter it bumps, say).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * // const slot = slotReportedByTheWorker; worker.terminate();
   * // heap.evictWorker(slot);
   * console.assert(typeof heap.evictWorker === "function");
   * ```
   */
  evictWorker(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.maxWorkers) {
      throw new RangeError(
        `Cannot evict worker as 'slot' must be an integer from 0 to ${
          this.maxWorkers - 1
        }: current value is ${describeValue(slot)}`,
      );
    }
    if (slot === this.#slot) {
      throw new RangeError(
        `Cannot evict worker as slot ${slot} belongs to the calling worker: use close() instead`,
      );
    }
    const i32 = this.i32;
    const base = this.#slotsBase + slot * (SLOT_BYTES >> 2);
    const state = Atomics.load(i32, base + S_STATE);
    if ((state & 1) === 0) return;
    Atomics.store(i32, base + S_EPOCH, 0);
    if (poolLockHolder(i32) === slot) {
      // It died inside a pool operation: rebuild the pool, release the lock.
      this.#recoverRoots();
      recoverPool(i32, this.#descBase);
    } else {
      // It may have died in unlockPool between its exchange and its notify
      // (a Node termination can land on the notify call), leaving waiters
      // asleep on a free lock: wake them all. A needless wake-up only makes
      // a waiter look at the lock again.
      wakePoolWaiters(i32);
    }
    // Its pages pass to whoever frees into them or joins next (or to the
    // pool). We act as the dead slot, which nobody else uses until we
    // release it below, so the caller need not have joined.
    this.#abandonPages(base, slot);
    // What it retired and had not freed goes to the orphan stack, for any
    // worker's next collection (a block it was retiring or freeing at that
    // moment leaks).
    this.#orphanChain(base);
    Atomics.compareExchange(this.i32, base + S_STATE, state, state + 1);
  }

  // ------------------------------------------------------------- allocation

  /**
   * Allocates a block of at least `size` bytes and returns its offset. The
   * block is 16-byte aligned (8-byte aligned for 8 bytes or less), and its
   * contents are unspecified (see `allocateZeroed`). Any worker may free it.
   * Throws {@linkcode HeapExhaustedError} when the heap cannot grow enough;
   * the heap stays usable.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(100);
   * heap.f64[ptr >> 3] = 1.5;
   * heap.free(ptr);
   * ```
   */
  allocate(size: number): number {
    if (!(size > 0 && size <= SMALL_MAX && (size | 0) === size)) return this.#allocateOther(size);
    const cls = classOf(size);
    let slotBase = this.#slotBase;
    if (slotBase < 0) {
      this.join();
      slotBase = this.#slotBase;
    }
    const i32 = this.i32;
    const page = i32[slotBase + S_CLASS_QUEUES + cls];
    if (page !== 0) {
      const d = this.#descBase + page * DESC_WORDS;
      const block = i32[d + D_LOCAL];
      if (block !== 0) {
        i32[d + D_USED]++; // counted before unlinking: a crash here only leaks
        i32[d + D_LOCAL] = i32[block >> 2];
        i32[slotBase + S_LIVE_BLOCKS]++;
        i32[slotBase + S_LIVE_BYTES] += CLASS_SIZE[cls];
        return block;
      }
    }
    return this.#allocateSlow(cls);
  }

  /**
   * Allocates like `allocate` and fills the block with zeros.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocateZeroed(64);
   * console.assert(heap.i32[ptr >> 2] === 0);
   * ```
   */
  allocateZeroed(size: number): number {
    this.#tookFreshPages = false;
    const ptr = this.allocate(size);
    // A large block made only of pages that no block has used yet still
    // holds the zeros its buffer grew with: a new hash table of 16 MiB
    // skips a fill of several milliseconds.
    if (!(this.#tookFreshPages && size > SMALL_MAX)) this.u8.fill(0, ptr, ptr + size);
    return ptr;
  }

  /**
   * Size in bytes of the block at `ptr` (its size class or page block size),
   * at least what was requested.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(heap.blockSize(heap.allocate(100)) === 112);
   * ```
   */
  blockSize(ptr: number): number {
    const d = this.#headDescriptor(ptr, "blockSize");
    const state = this.i32[d + D_STATE];
    return stateKind(state) === K_SMALL
      ? CLASS_SIZE[stateClass(state)]
      : PAGE_BYTES * 2 ** stateOrder(state);
  }

  #allocateOther(size: number): number {
    if (typeof size !== "number") {
      throw new TypeError(
        `Cannot allocate as 'size' must be a number: current value is ${describeValue(size)}`,
      );
    }
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `Cannot allocate as 'size' must be a positive integer: current value is ${size}`,
      );
    }
    if (size > this.maxBytes) {
      throw new HeapExhaustedError(size, this.maxBytes, "the request is larger than the heap");
    }
    if (this.#slot < 0) this.join();
    const pages = Math.ceil(size / PAGE_BYTES);
    const order = 32 - Math.clz32(pages - 1);
    if (order > MAX_ORDER) throw new HeapExhaustedError(size, this.maxBytes);
    let page: number;
    try {
      page = this.#takePages(order, size, H_LARGE_PAGES);
    } catch (e) {
      if (!this.#mayCollectForRoom(e)) throw e;
      this.#collectForRoom();
      page = this.#takePages(order, size, H_LARGE_PAGES);
    }
    const i32 = this.i32;
    const d = this.#descBase + page * DESC_WORDS;
    const bytes = PAGE_BYTES * 2 ** order;
    i32[d + D_OWNER] = this.#slot;
    i32[d + D_BUMP] = bytes;
    i32[d + D_STATE] = descState(K_LARGE, order, 0);
    i32[this.#slotBase + S_LIVE_BLOCKS]++;
    i32[this.#slotBase + S_LIVE_BYTES] += bytes;
    return page * PAGE_BYTES;
  }

  /**
   * Whether an allocation that found the heap full (`error`) may collect
   * this worker's retired blocks and its empty pages, and try once more:
   * not during such a collection (whose allocations then fail as they
   * are), nor for a retire bag (its caller is between two steps of
   * the retire list, and spills the block when no bag can be had).
   */
  #mayCollectForRoom(error: unknown): boolean {
    return error instanceof HeapExhaustedError && !this.#collectingForRoom;
  }

  /**
   * A collection for an allocation that found the heap full. Blocks that
   * this worker retired two epochs back go back to their pages, and pages
   * left empty to the pool; the caller then tries once more. Without it, a
   * writer that retires large blocks (a B+ tree rewrites a whole leaf on
   * each write) could fill the heap between two of retire()'s periodic
   * collections while most of it waited to be freed.
   */
  #collectForRoom(): void {
    this.#collectingForRoom = true;
    try {
      this.#collect();
      this.#releaseEmptyPages();
    } finally {
      this.#collectingForRoom = false;
    }
  }

  /**
   * Takes the blocks that other workers freed into page `page` (descriptor
   * `d`), and moves it from the class's `full` queue to its `available` one.
   */
  #reviveFullPage(d: number, page: number, full: number, available: number): void {
    this.#collectRemote(d);
    this.#unlinkQueue(full, page);
    this.i32[d + D_BUMP] &= ~IN_FULL_LIST;
    this.#pushQueue(available, page);
  }

  /**
   * Gives back to the pool every page of this worker's class queues that
   * holds no live block, the classes' current pages included (kept
   * otherwise, so that a class whose last block comes and goes does not
   * take and return a page each time). A worker that used many size
   * classes, as a B+ tree's growing leaves do, may hold a page of each.
   */
  #releaseEmptyPages(): void {
    const i32 = this.i32;
    const slotBase = this.#slotBase;
    for (let cls = 0; cls < CLASS_COUNT; cls++) {
      const available = slotBase + S_CLASS_QUEUES + cls;
      const full = slotBase + S_FULL_QUEUES + cls;
      for (let page = i32[full]; page !== 0;) {
        const d = this.#descBase + page * DESC_WORDS;
        const next = i32[d + D_NEXT];
        // Others freed into it: it has room again.
        if (Atomics.load(i32, d + D_REMOTE) !== 0) this.#reviveFullPage(d, page, full, available);
        page = next;
      }
      for (let page = i32[available]; page !== 0;) {
        const d = this.#descBase + page * DESC_WORDS;
        const next = i32[d + D_NEXT];
        this.#collectRemote(d);
        if (i32[d + D_USED] === 0) {
          this.#unlinkQueue(available, page);
          this.#returnPages(page, CLASS_ORDER[cls], H_SMALL_PAGES);
        }
        page = next;
      }
    }
  }

  #collectingForRoom = false;

  /** Takes a page block from the pool, growing the heap when needed. */
  #takePages(order: number, requested: number, counter: number): number {
    const i32 = this.i32;
    const desc = this.#descBase;
    lockPool(i32, this.#slot, releaseReadPinsBeforePark);
    let page = 0;
    try {
      page = takeBlock(i32, desc, order);
      while (page === 0) {
        if (!growFor(this.sab, i32, desc, order)) break;
        page = takeBlock(i32, desc, order);
      }
      if (page !== 0) {
        // Plain words under the pool lock, like the pool's own.
        const fresh = i32[H_FRESH_PAGE];
        this.#tookFreshPages = page >= fresh;
        if (page + (1 << order) > fresh) i32[H_FRESH_PAGE] = page + (1 << order);
        i32[counter] += 1 << order;
      }
    } finally {
      unlockPool(i32);
    }
    if (page === 0) throw new HeapExhaustedError(requested, this.maxBytes);
    this.ensure((page + 2 ** order) * PAGE_BYTES);
    return page;
  }

  #returnPages(page: number, order: number, counter: number, actingSlot = this.#slot): void {
    const i32 = this.i32;
    lockPool(i32, actingSlot, releaseReadPinsBeforePark);
    try {
      i32[counter] -= 1 << order;
      freeBlock(i32, this.#descBase, page, order);
    } finally {
      unlockPool(i32);
    }
  }

  /** Moves blocks freed by other workers onto the local list. Owner only. */
  #collectRemote(d: number): void {
    const i32 = this.i32;
    if (Atomics.load(i32, d + D_REMOTE) === 0) return; // a load is cheaper than an exchange
    let block = Atomics.exchange(i32, d + D_REMOTE, 0);
    if (block === 0) return;
    crashPoint("heap.remote.take");
    let count = 1;
    const first = block;
    // The caller owns the page and has it mapped; a list never holds more
    // blocks than the page, so a longer walk means corruption, not a cycle
    // to spin on forever.
    const limit = (PAGE_BYTES << CLASS_ORDER[stateClass(i32[d + D_STATE])]) >> 3;
    while (i32[block >> 2] !== 0) {
      block = i32[block >> 2];
      if (++count > limit) {
        throw new SabreError(
          `Cannot collect freed blocks as the remote list of page ${
            (d - this.#descBase) / DESC_WORDS
          } is corrupt`,
        );
      }
    }
    i32[block >> 2] = i32[d + D_LOCAL];
    i32[d + D_LOCAL] = first;
    i32[d + D_USED] -= count;
  }

  /**
   * Local list empty: refill from remote frees, bump space, another page of
   * the class, a full page that others freed into, or the pool. Pages found
   * full move to the class's full list, so later walks skip them; a free
   * into a full page brings it back (see free()). Amortized O(1).
   */
  #allocateSlow(cls: number, collected = false): number {
    let found = this.#pageWithRoom(cls);
    if (found === 0) {
      try {
        found = this.#takePages(CLASS_ORDER[cls], CLASS_SIZE[cls], H_SMALL_PAGES);
      } catch (e) {
        if (!this.#mayCollectForRoom(e)) throw e;
        if (!collected) {
          this.#collectForRoom();
          return this.#allocateSlow(cls, true);
        }
        return this.#allocateFromLargerClass(cls, e);
      }
      crashPoint("heap.page.take");
      this.#initSmallPage(found, cls);
      this.#pushQueue(this.#slotBase + S_CLASS_QUEUES + cls, found);
    }
    return this.#takeBlock(found, cls);
  }

  /**
   * A page of class `cls` of this worker with a block to give: its local or
   * remote free list, or bump space. Pages found full move to the class's
   * full queue on the way; a full page that others freed into comes back.
   * Moves the page found to the front of the queue; 0 when there is none.
   */
  #pageWithRoom(cls: number): number {
    const i32 = this.i32;
    const available = this.#slotBase + S_CLASS_QUEUES + cls;
    const full = this.#slotBase + S_FULL_QUEUES + cls;
    const size = CLASS_SIZE[cls];
    const span = PAGE_BYTES << CLASS_ORDER[cls];
    for (let page = i32[available]; page !== 0;) {
      const d = this.#descBase + page * DESC_WORDS;
      this.#collectRemote(d);
      if (i32[d + D_LOCAL] !== 0 || i32[d + D_BUMP] + size <= span) {
        if (i32[available] !== page) {
          // A page deeper in the queue: move it to the front.
          this.#unlinkQueue(available, page);
          this.#pushQueue(available, page);
        }
        return page;
      }
      const next = i32[d + D_NEXT];
      this.#unlinkQueue(available, page);
      this.#pushQueue(full, page);
      i32[d + D_BUMP] |= IN_FULL_LIST;
      page = next;
    }
    // Before taking a new page: full pages that other workers freed into.
    for (let page = i32[full]; page !== 0;) {
      const d = this.#descBase + page * DESC_WORDS;
      const next = i32[d + D_NEXT];
      if (Atomics.load(i32, d + D_REMOTE) !== 0) {
        this.#reviveFullPage(d, page, full, available);
        return page;
      }
      page = next;
    }
    return 0;
  }

  /**
   * The last resort of a small allocation on a full heap, after a
   * collection: a free block of a larger class that this worker's pages
   * hold. Without it, free room stranded in other classes' pages failed
   * writes that shrink what they rewrite: a B+ tree whose leaves had
   * filled a heap could not delete its keys, as each delete copies a leaf
   * a little smaller than the one it replaces, into a class that had no
   * page left. The block is freed into its own class like any other.
   */
  #allocateFromLargerClass(cls: number, error: unknown): number {
    for (let larger = cls + 1; larger < CLASS_COUNT; larger++) {
      const found = this.#pageWithRoom(larger);
      if (found !== 0) return this.#takeBlock(found, larger);
    }
    throw error;
  }

  /** Takes a block from page `found` of class `cls`, which has room. */
  #takeBlock(found: number, cls: number): number {
    const i32 = this.i32;
    const size = CLASS_SIZE[cls];
    const d = this.#descBase + found * DESC_WORDS;
    let block = i32[d + D_LOCAL];
    i32[d + D_USED]++;
    if (block !== 0) {
      i32[d + D_LOCAL] = i32[block >> 2];
    } else {
      block = (found << PAGE_SHIFT) + i32[d + D_BUMP];
      i32[d + D_BUMP] += size;
    }
    i32[this.#slotBase + S_LIVE_BLOCKS]++;
    i32[this.#slotBase + S_LIVE_BYTES] += size;
    return block;
  }

  #initSmallPage(page: number, cls: number): void {
    const i32 = this.i32;
    const order = CLASS_ORDER[cls];
    const d = this.#descBase + page * DESC_WORDS;
    i32[d + D_OWNER] = this.#slot;
    Atomics.store(i32, d + D_REMOTE, 0);
    i32[d + D_LOCAL] = 0;
    i32[d + D_USED] = 0;
    i32[d + D_BUMP] = 0;
    i32[d + D_NEXT] = 0;
    i32[d + D_PREV] = 0;
    for (let p = 1; p < 1 << order; p++) {
      const interior = this.#descBase + (page + p) * DESC_WORDS;
      i32[interior + D_STATE] = descState(K_INTERIOR, 0, 0);
      i32[interior + D_OWNER] = page;
    }
    i32[d + D_STATE] = descState(K_SMALL, order, cls);
  }

  #pushQueue(queue: number, page: number): void {
    const i32 = this.i32;
    const d = this.#descBase + page * DESC_WORDS;
    const head = i32[queue];
    i32[d + D_NEXT] = head;
    i32[d + D_PREV] = 0;
    if (head !== 0) i32[this.#descBase + head * DESC_WORDS + D_PREV] = page;
    i32[queue] = page;
  }

  /** Links `page` right after the head of `queue` (or as the head of an empty one). */
  #insertSecond(queue: number, page: number): void {
    const i32 = this.i32;
    const head = i32[queue];
    if (head === 0) {
      this.#pushQueue(queue, page);
      return;
    }
    const hd = this.#descBase + head * DESC_WORDS;
    const d = this.#descBase + page * DESC_WORDS;
    const next = i32[hd + D_NEXT];
    i32[d + D_PREV] = head;
    i32[d + D_NEXT] = next;
    if (next !== 0) i32[this.#descBase + next * DESC_WORDS + D_PREV] = page;
    i32[hd + D_NEXT] = page;
  }

  #unlinkQueue(queue: number, page: number): void {
    const i32 = this.i32;
    const d = this.#descBase + page * DESC_WORDS;
    const next = i32[d + D_NEXT];
    const prev = i32[d + D_PREV];
    if (prev !== 0) i32[this.#descBase + prev * DESC_WORDS + D_NEXT] = next;
    else i32[queue] = next;
    if (next !== 0) i32[this.#descBase + next * DESC_WORDS + D_PREV] = prev;
    i32[d + D_NEXT] = 0;
    i32[d + D_PREV] = 0;
  }

  /** Descriptor index of the block head for `ptr`; throws on a bad pointer. */
  #headDescriptor(ptr: number, what: string): number {
    if (!((ptr | 0) === ptr && ptr >= PAGE_BYTES && ptr < this.maxBytes)) {
      throw new RangeError(
        `Cannot ${what} as 'ptr' is not a block of this heap: current value is ${
          describeValue(ptr)
        }`,
      );
    }
    const page = this.#headPage(ptr);
    const d = this.#descBase + page * DESC_WORDS;
    const i32 = this.i32;
    const state = i32[d + D_STATE];
    const kind = stateKind(state);
    const start = page << PAGE_SHIFT;
    const bad = kind === K_SMALL
      ? (ptr - start) % CLASS_SIZE[stateClass(state)] !== 0 ||
        ptr - start >= (i32[d + D_BUMP] & ~IN_FULL_LIST)
      : kind !== K_LARGE || ptr !== start;
    if (bad) {
      throw new RangeError(
        `Cannot ${what} as 'ptr' is not the start of an allocated block: current value is ${ptr}`,
      );
    }
    return d;
  }

  /**
   * The first page of the page block that holds `ptr`, a pointer in range,
   * unchecked: #headDescriptor checks it, and retire() does before a block
   * enters the retired list, so collection frees without checking it again.
   */
  #headPage(ptr: number): number {
    if (ptr >= this.mappedBytes) this.ensure(ptr + 1);
    const page = ptr >>> PAGE_SHIFT;
    const d = this.#descBase + page * DESC_WORDS;
    return stateKind(this.i32[d + D_STATE]) === K_INTERIOR ? this.i32[d + D_OWNER] : page;
  }

  /**
   * Frees a block from `allocate`. Any worker may free any block. Memory that
   * concurrent readers may still reach must go through `retire` instead.
   * Throws `RangeError` for a pointer that is not the start of a block
   * (freeing a block twice is not detected).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.free(heap.allocate(48));
   * console.assert(heap.stats().liveBlocks === 0);
   * ```
   */
  free(ptr: number): void {
    if (this.#slotBase < 0) this.join();
    this.#freeBlock(ptr, this.#headDescriptor(ptr, "free"));
  }

  /** free() of a checked block `ptr` whose head descriptor is `d`, once joined. */
  #freeBlock(ptr: number, d: number): void {
    const slotBase = this.#slotBase;
    const i32 = this.i32;
    const state = i32[d + D_STATE];
    if (stateKind(state) === K_LARGE) {
      const order = stateOrder(state);
      i32[slotBase + S_LIVE_BLOCKS]--;
      i32[slotBase + S_LIVE_BYTES] -= PAGE_BYTES * 2 ** order;
      this.#returnPages(ptr >>> PAGE_SHIFT, order, H_LARGE_PAGES);
      return;
    }
    const cls = stateClass(state);
    i32[slotBase + S_LIVE_BLOCKS]--;
    i32[slotBase + S_LIVE_BYTES] -= CLASS_SIZE[cls];
    if (i32[d + D_OWNER] === this.#slot) {
      i32[ptr >> 2] = i32[d + D_LOCAL];
      i32[d + D_LOCAL] = ptr;
      // Linked before uncounted: a crash here only leaks.
      if (--i32[d + D_USED] === 0) {
        this.#maybeReleasePage(d, cls);
      } else if ((i32[d + D_BUMP] & IN_FULL_LIST) !== 0) {
        // It has room again: next in line after the current page (not the
        // current page itself, which is never released when it drains).
        const page = (d - this.#descBase) / DESC_WORDS;
        this.#unlinkQueue(slotBase + S_FULL_QUEUES + cls, page);
        i32[d + D_BUMP] &= ~IN_FULL_LIST;
        this.#insertSecond(slotBase + S_CLASS_QUEUES + cls, page);
      }
      return;
    }
    // Pattern (b): the link is written before the CAS that publishes it.
    let head = Atomics.load(i32, d + D_REMOTE);
    for (;;) {
      i32[ptr >> 2] = head;
      crashPoint("heap.remote.push");
      const seen = Atomics.compareExchange(i32, d + D_REMOTE, head, ptr);
      if (seen === head) break;
      head = seen;
    }
    // Its owner left: take the page over, so its blocks are not stranded.
    if (Atomics.load(i32, d + D_OWNER) === ABANDONED) this.#adopt(d, this.#slot, true);
  }

  /** An owned page became empty: give it back unless it is the class's current page. */
  #maybeReleasePage(d: number, cls: number): void {
    const i32 = this.i32;
    const inFull = (i32[d + D_BUMP] & IN_FULL_LIST) !== 0;
    const queue = this.#slotBase + (inFull ? S_FULL_QUEUES : S_CLASS_QUEUES) + cls;
    const page = (d - this.#descBase) / DESC_WORDS;
    if (!inFull && i32[queue] === page) return;
    this.#unlinkQueue(queue, page);
    this.#returnPages(page, CLASS_ORDER[cls], H_SMALL_PAGES);
  }

  /**
   * Empties the class queues of slot `slotBase`: pages with no live block go
   * back to the pool, the others are marked ABANDONED for whoever frees into
   * them next. Runs on close (our own slot) and on eviction (a dead slot's,
   * whose owner-only fields nobody else touches any more).
   */
  #abandonPages(slotBase: number, ownerSlot: number): void {
    const i32 = this.i32;
    const maxPages = this.maxBytes / PAGE_BYTES;
    for (let list = 0; list < 2 * CLASS_COUNT; list++) {
      const cls = list % CLASS_COUNT;
      const queue = slotBase + (list < CLASS_COUNT ? S_CLASS_QUEUES : S_FULL_QUEUES) + cls;
      let page = i32[queue];
      // Bounded walk: a worker that died mid-update may have left a bad link.
      for (let steps = 0; page > 0 && page < maxPages && steps < maxPages; steps++) {
        const d = this.#descBase + page * DESC_WORDS;
        const next = i32[d + D_NEXT];
        i32[d + D_NEXT] = 0;
        i32[d + D_PREV] = 0;
        i32[d + D_BUMP] &= ~IN_FULL_LIST;
        Atomics.store(i32, d + D_OWNER, ABANDONED);
        Atomics.add(i32, H_ABANDONED_PAGES, 1);
        this.#adopt(d, ownerSlot, false);
        page = next;
      }
      i32[queue] = 0;
    }
  }

  /**
   * Tries to take an ABANDONED page. Pattern (a) on D_OWNER: a remote freer
   * pushes its block, then loads the owner; an abandoning owner stores
   * ABANDONED, then (here) loads the remote list. With SC Atomics one of them
   * sees the other, so no block is left on a page nobody owns. The winner of
   * the CAS collects the remote list; an empty page goes back to the pool, a
   * used one joins our queue (or is abandoned again when we are closing).
   */
  #adopt(d: number, ownerSlot: number, keep: boolean): void {
    const page = (d - this.#descBase) / DESC_WORDS;
    for (;;) {
      if (Atomics.compareExchange(this.i32, d + D_OWNER, ABANDONED, ownerSlot) !== ABANDONED) {
        return;
      }
      Atomics.sub(this.i32, H_ABANDONED_PAGES, 1);
      // Ours now, so its class (written before it was abandoned, pattern b)
      // stays put. An evicting, freeing or joining worker may not have
      // mapped the page yet.
      const cls = stateClass(this.i32[d + D_STATE]);
      this.ensure((page + 2 ** CLASS_ORDER[cls]) * PAGE_BYTES);
      const i32 = this.i32;
      this.#collectRemote(d);
      if (i32[d + D_USED] === 0) {
        this.#returnPages(page, CLASS_ORDER[cls], H_SMALL_PAGES, ownerSlot);
        return;
      }
      if (keep) {
        i32[d + D_BUMP] &= ~IN_FULL_LIST;
        this.#pushQueue(this.#slotBase + S_CLASS_QUEUES + cls, page);
        return;
      }
      Atomics.store(i32, d + D_OWNER, ABANDONED);
      Atomics.add(i32, H_ABANDONED_PAGES, 1);
      if (Atomics.load(i32, d + D_REMOTE) === 0) return;
    }
  }

  /**
   * Adopts every small page that departed workers left with blocks in use
   * (see #abandonPages), so that their free room serves allocations again
   * instead of waiting for someone to free into them. Runs on join when the
   * header counts any; the CAS in #adopt decides each page, so racing
   * joiners and freers share them out.
   */
  #adoptAbandoned(): void {
    const committed = Atomics.load(this.i32, H_COMMITTED_PAGES);
    this.ensure((this.#descBase + committed * DESC_WORDS) * 4);
    for (let page = this.i32[H_META_PAGES]; page < committed; page++) {
      if (Atomics.load(this.i32, H_ABANDONED_PAGES) <= 0) return;
      const d = this.#descBase + page * DESC_WORDS;
      // A hint only (the owner of a page just taken from the pool writes
      // D_OWNER plainly): the CAS in #adopt decides.
      if (Atomics.load(this.i32, d + D_OWNER) === ABANDONED) this.#adopt(d, this.#slot, true);
    }
  }

  // ----------------------------------------------------------------- epochs

  /**
   * Pins the current epoch: until the guard is disposed, no block retired
   * from now on (by any worker) is reused, so pointers read from shared
   * structures stay valid. Pins nest; only the outermost one touches shared
   * memory. The guard object is reused, so pinning does not allocate.
   *
   * A pin taken here may last (a batch of reads, say): other workers'
   * `retire` never waits for it to end. sabre's own operations pin with
   * {@linkcode SharedHeap.pinForOperation} instead.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * {
   *   using _guard = heap.pin();
   *   console.assert(heap.isPinned);
   * }
   * console.assert(!heap.isPinned);
   * ```
   */
  pin(): EpochGuard {
    if (this.#pinDepth !== 0) return this.pinForOperation();
    return this.#pinOutermost(true);
  }

  /**
   * Pins as {@linkcode SharedHeap.pin} does, for one short operation of a
   * structure: for structure implementers. Where more workers are pinned
   * than there are cores, another worker's `retire` may sleep briefly while
   * such a pin holds back the reclamation of what it retired, so that this
   * worker, likely preempted in the middle of its operation, gets a core to
   * finish it on. End it with `unpin()`.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.pinForOperation();
   * try {
   *   console.assert(heap.isPinned);
   * } finally {
   *   heap.unpin();
   * }
   * ```
   */
  pinForOperation(): EpochGuard {
    if (this.#pinDepth !== 0) {
      this.#pinDepth++;
      return this.#guard;
    }
    return this.#pinOutermost(false);
  }

  /** The outermost pin; `long` for pin(), which may last (S_LONG_PIN). */
  #pinOutermost(long: boolean): EpochGuard {
    // The read pin's word is this pin's from here: the store below moves
    // it, which is safe between two operations (see #endReadPin).
    if (this.#readPinArmed) this.#endReadPin(false);
    let slotBase = this.#slotBase;
    if (slotBase < 0) {
      this.join();
      slotBase = this.#slotBase;
    }
    this.#pinDepth = 1;
    this.#showLongPin(long);
    // Safety holds for any epoch value this worker loaded earlier: a block
    // freed while we are pinned at e was retired at r <= e - 1 or before
    // the advance that our store follows, so it was unlinked before we
    // read anything. The load only serves liveness (the epoch advances
    // when every pinned slot shows the current one), so it is refreshed
    // every EPOCH_REFRESH pins instead of every time.
    const i32 = this.i32;
    if (--this.#pinsUntilRefresh <= 0) {
      this.#pinsUntilRefresh = EPOCH_REFRESH;
      this.#cachedEpoch = Atomics.load(i32, H_EPOCH);
    }
    Atomics.store(i32, slotBase + S_EPOCH, this.#cachedEpoch);
    return this.#guard;
  }

  /**
   * Leaves the innermost pinned section. Prefer disposing the guard.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.pin();
   * heap.unpin();
   * ```
   */
  unpin(): void {
    if (this.#pinDepth <= 0) {
      throw new SabreError("Cannot unpin SharedHeap as no epoch is pinned in this worker");
    }
    if (--this.#pinDepth === 0) {
      Atomics.store(this.i32, this.#slotBase + S_EPOCH, 0);
    }
  }

  /**
   * Whether this worker has a pinned epoch.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * console.assert(!SharedHeap.create().isPinned);
   * ```
   */
  get isPinned(): boolean {
    return this.#pinDepth > 0;
  }

  /**
   * Frees `ptr` once no worker pinned now can still read it: after every
   * worker that is pinned at this moment has unpinned. Call it after unlinking
   * the block from every shared structure. Collection runs every 64 retires,
   * or on `collect()`. When this worker holds over 1024 retired blocks that
   * another worker's operation pin keeps from being freed, and more workers
   * are pinned than there are cores, it may sleep about half a millisecond
   * here first, so that the other worker gets a core to finish on (never for
   * a `pin()` or a read pin; see {@linkcode SharedHeap.pinForOperation}).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const node = heap.allocate(32);
   * heap.retire(node);
   * heap.collect();
   * heap.collect();
   * console.assert(heap.stats().retiredBlocks === 0);
   * ```
   */
  retire(ptr: number): void {
    const d = this.#headDescriptor(ptr, "retire");
    let slotBase = this.#slotBase;
    if (slotBase < 0) {
      this.join();
      slotBase = this.#slotBase;
    }
    const epoch = Atomics.load(this.i32, H_EPOCH);
    if (!this.#pushBagEntry(ptr, epoch)) this.#spill(ptr, epoch);
    this.#retiredCount++;
    this.i32[slotBase + S_RETIRED]++;
    // Bytes are counted for blocks of 1 KiB or more only: 64 smaller ones
    // hold less than 64 KiB, and most retires (HashMap entries) stay here.
    const state = this.i32[d + D_STATE];
    if (
      this.#retiredCount >= this.#collectAt || state >= KIB_CLASS_STATE ||
      stateKind(state) === K_LARGE
    ) {
      this.#afterRetire(state);
    }
  }

  /** retire()'s less frequent part: the byte count, and the collection. */
  #afterRetire(state: number): void {
    // Only small blocks have states this high (see descState).
    if (state >= KIB_CLASS_STATE) this.#retiredBytesSinceCollect += CLASS_SIZE[stateClass(state)];
    else if (stateKind(state) === K_LARGE) {
      this.#retiredBytesSinceCollect += PAGE_BYTES * 2 ** stateOrder(state);
    }
    if (
      this.#retiredCount >= this.#collectAt ||
      this.#retiredBytesSinceCollect >= this.#collectEveryBytes
    ) {
      this.#retiredBytesSinceCollect = 0;
      this.#collect();
      if (this.#retiredCount > this.#backlogLimit) this.#waitForReclamation();
      this.#collectAt = this.#retiredCount + COLLECT_EVERY;
    }
  }

  /**
   * Backpressure. Every block retired while a worker stays pinned at an
   * older epoch waits for that worker to unpin. With more pinned workers
   * than cores, that is most often a worker that lost its core in the
   * middle of an operation, and the others retire thousands of blocks each
   * while it waits for a time slice. A short sleep hands it this core: it
   * finishes its operation and unpins, and the epoch moves on (this
   * worker's own pin then holds back the rest until its operation ends).
   * Where every pinned worker can have a core, nothing waits. Nor does
   * anything wait for a pin that may last (S_LONG_PIN: read pins, pin()):
   * workers that read in pinned runs hold one nearly all the time, so with
   * more of them than cores one nearly always holds the epoch back, and
   * sleeping would only slow the writer. When one sleep is not enough twice
   * in a row, the worker that holds the epoch back is waiting for another
   * core or waits pinned: the limit doubles, so that such a pin costs a few
   * waits as the backlog grows rather than one per collection, and a wait
   * that helps brings it back.
   */
  #waitForReclamation(): void {
    const i32 = this.i32;
    const epoch = Atomics.load(i32, H_EPOCH);
    if (!this.#heldBackByOthers(epoch)) return;
    this.reclamationWaits++;
    // A worker that has its core unpins within microseconds: spin first.
    const spinEnd = performance.now() + BACKLOG_SPIN_MS;
    let moved: boolean;
    do {
      this.#tryAdvance();
      moved = Atomics.load(i32, H_EPOCH) !== epoch;
    } while (!moved && performance.now() < spinEnd);
    if (!moved && sleep(BACKLOG_SLEEP_MS)) {
      this.#tryAdvance();
      moved = Atomics.load(i32, H_EPOCH) !== epoch;
    }
    if (!moved) {
      if (++this.#failedWaits >= 2) {
        this.#failedWaits = 0;
        this.#backlogLimit *= 2;
      }
      return;
    }
    this.#failedWaits = 0;
    this.#backlogLimit = RETIRED_BACKLOG;
    this.#collect();
  }

  /**
   * Whether another worker's operation pin holds `epoch` back while
   * this worker's own does not (it then would the moment the other one
   * left), and more workers are pinned, this one included, than there are
   * cores: otherwise each may have a core, and sleeping gives nobody one.
   */
  #heldBackByOthers(epoch: number): boolean {
    const i32 = this.i32;
    const own = Atomics.load(i32, this.#slotBase + S_EPOCH);
    if (own !== 0 && own !== epoch) return false;
    const high = Atomics.load(i32, H_SLOT_HIGH);
    const stride = SLOT_BYTES >> 2;
    let pinnedWorkers = own === 0 ? 1 : 0; // this one runs
    let heldBack = false;
    for (let slot = 0; slot < high; slot++) {
      const base = this.#slotsBase + slot * stride;
      const pinned = Atomics.load(i32, base + S_EPOCH);
      if (pinned === 0) continue;
      pinnedWorkers++;
      if (pinned !== epoch && Atomics.load(i32, base + S_LONG_PIN) === 0) heldBack = true;
    }
    return heldBack && pinnedWorkers > cores;
  }

  /**
   * Writes an entry into this worker's tail bag, appending a bag when it is
   * full; false when the heap has no room for one.
   */
  #pushBagEntry(ptr: number, epoch: number): boolean {
    let i32 = this.i32;
    let bag = i32[this.#slotBase + S_RETIRE_TAIL] >> 2;
    if (bag === 0 || i32[bag + B_END] === i32[bag + B_CAPACITY]) {
      bag = this.#appendBag();
      if (bag === 0) return false;
      i32 = this.i32; // the bag's allocation may have grown the heap
    }
    const end = i32[bag + B_END];
    const at = bag + B_ENTRIES + 2 * end;
    i32[at] = epoch;
    i32[at + 1] = ptr;
    // Counted after its words: a worker that dies in between leaks the
    // block, and its evictor never reads a stale entry.
    i32[bag + B_END] = end + 1;
    return true;
  }

  /**
   * Allocates a bag and appends it to this worker's chain; returns its Int32
   * index, or 0 when the heap is exhausted.
   */
  #appendBag(): number {
    let bag: number;
    const collecting = this.#collectingForRoom;
    this.#collectingForRoom = true; // see #mayCollectForRoom
    try {
      bag = this.allocate(BAG_BYTES);
    } catch (e) {
      if (e instanceof HeapExhaustedError) return 0;
      throw e;
    } finally {
      this.#collectingForRoom = collecting;
    }
    const i32 = this.i32;
    const slotBase = this.#slotBase;
    // Bags are the heap's own bookkeeping: not counted as live (#freeBag
    // counts them back just before freeing them).
    i32[slotBase + S_LIVE_BLOCKS]--;
    i32[slotBase + S_LIVE_BYTES] -= BAG_BLOCK_BYTES;
    const w = bag >> 2;
    i32[w + B_NEXT] = 0;
    i32[w + B_END] = 0;
    i32[w + B_START] = 0;
    i32[w + B_CAPACITY] = BAG_ENTRIES;
    // Linked into the chain before it is named the tail: a worker that dies
    // in between leaves a chain that its evictor walks whole from the head.
    const tail = i32[slotBase + S_RETIRE_TAIL];
    if (tail === 0) i32[slotBase + S_RETIRE_HEAD] = bag;
    else i32[(tail >> 2) + B_NEXT] = bag;
    crashPoint("heap.retire.bag");
    i32[slotBase + S_RETIRE_TAIL] = bag;
    return w;
  }

  /** Keeps a retired block in JavaScript memory when no bag can be had. */
  #spill(ptr: number, epoch: number): void {
    if (this.#spillCount === this.#spillPtr.length) {
      const n = this.#spillCount;
      const ptrs = new Int32Array(Math.max(64, n * 2));
      const epochs = new Int32Array(ptrs.length);
      for (let i = 0; i < n; i++) {
        const j = (this.#spillHead + i) % n;
        ptrs[i] = this.#spillPtr[j];
        epochs[i] = this.#spillEpoch[j];
      }
      this.#spillPtr = ptrs;
      this.#spillEpoch = epochs;
      this.#spillHead = 0;
    }
    const at = (this.#spillHead + this.#spillCount) % this.#spillPtr.length;
    this.#spillPtr[at] = ptr;
    this.#spillEpoch[at] = epoch;
    this.#spillCount++;
  }

  /**
   * Tries to advance the global epoch, then frees this worker's retired
   * blocks that no pinned worker can reach any more. Returns how many blocks
   * it freed. A block retired at epoch e is freed once the epoch reaches
   * e + 2: every worker pinned when it was retired has unpinned by then.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.retire(heap.allocate(16));
   * let freed = 0;
   * for (let i = 0; i < 3; i++) freed += heap.collect();
   * console.assert(freed === 1);
   * ```
   */
  collect(): number {
    if (this.#slotBase < 0) {
      if (this.#closed) return 0;
      this.join();
    }
    const freed = this.#runReclaimers();
    return freed + this.#collect();
  }

  /** collect() without the reclaimers: the periodic one of retire(). */
  #collect(): number {
    this.#pinsUntilRefresh = 0; // the next pin shows the newest epoch
    this.#adoptOrphans();
    this.#tryAdvance();
    const epoch = Atomics.load(this.i32, H_EPOCH);
    return this.#collectBags(epoch) + this.#collectSpill(epoch);
  }

  /**
   * Frees the blocks of this worker's bag chain retired two epochs before
   * `epoch` or earlier, oldest first, and the bags it drains.
   */
  #collectBags(epoch: number): number {
    const slotBase = this.#slotBase;
    let i32 = this.i32;
    let freed = 0;
    for (;;) {
      const bag = i32[slotBase + S_RETIRE_HEAD];
      if (bag === 0) return freed;
      const w = bag >> 2;
      const end = i32[w + B_END];
      for (let start = i32[w + B_START]; start < end; start++) {
        const at = w + B_ENTRIES + 2 * start;
        if (epochsBetween(i32[at], epoch) < 2) return freed;
        const ptr = i32[at + 1];
        // Taken before it is freed: a worker that dies in between leaks the
        // block rather than leaving it for its evictor to free again.
        i32[w + B_START] = start + 1;
        this.#retiredCount--;
        i32[slotBase + S_RETIRED]--;
        crashPoint("heap.collect.take");
        // Checked by retire().
        this.#freeBlock(ptr, this.#descBase + this.#headPage(ptr) * DESC_WORDS);
        i32 = this.i32;
        freed++;
      }
      // Drained: unlinked, then freed (a death in between leaks the bag). The
      // tail goes too, so that a worker with nothing retired holds no bag.
      const next = i32[w + B_NEXT];
      i32[slotBase + S_RETIRE_HEAD] = next;
      if (next === 0) i32[slotBase + S_RETIRE_TAIL] = 0;
      this.#freeBag(bag);
      i32 = this.i32;
    }
  }

  /** Frees a drained bag (see #appendBag for its counting). */
  #freeBag(bag: number): void {
    const d = this.#descBase + this.#headPage(bag) * DESC_WORDS;
    const i32 = this.i32;
    i32[this.#slotBase + S_LIVE_BLOCKS]++;
    i32[this.#slotBase + S_LIVE_BYTES] += BAG_BLOCK_BYTES;
    this.#freeBlock(bag, d);
  }

  /** #collectBags for the spill. */
  #collectSpill(epoch: number): number {
    let freed = 0;
    while (this.#spillCount > 0) {
      const at = this.#spillHead;
      if (epochsBetween(this.#spillEpoch[at], epoch) < 2) break;
      this.#spillHead = (at + 1) % this.#spillPtr.length;
      this.#spillCount--;
      this.#retiredCount--;
      this.i32[this.#slotBase + S_RETIRED]--;
      const ptr = this.#spillPtr[at];
      this.#freeBlock(ptr, this.#descBase + this.#headPage(ptr) * DESC_WORDS);
      freed++;
    }
    return freed;
  }

  /**
   * Internal, for the STM's block pools (called as `heap["addReclaimer"]`):
   * registers `fn`, which `collect()` and `close()` run first, so that a
   * cache of retired blocks kept outside the heap's lists goes back to the
   * heap (freed, or retired here) whenever the heap is asked to reclaim.
   * `fn` returns how many blocks it freed; `closing` is true when this
   * worker leaves the heap (close()), when blocks kept ahead for a full
   * heap must go too.
   */
  private addReclaimer(fn: (closing: boolean) => number): void {
    this.#reclaimers.push(fn);
  }

  #runReclaimers(closing = false): number {
    const reclaimers = this.#reclaimers;
    let freed = 0;
    for (let i = 0; i < reclaimers.length; i++) freed += reclaimers[i](closing);
    return freed;
  }

  /**
   * Internal, for the STM's block pools (called as `heap["advanceEpoch"]`):
   * tries to advance the global epoch and returns it, loaded afterwards. A
   * block unlinked before a call that returned e is unreachable for every
   * pinned worker once a later call returns e + 2 or more (the rule of
   * collect()); it may then be reused in place instead of freed.
   */
  private advanceEpoch(): number {
    if (this.#slotBase < 0) this.join();
    this.#pinsUntilRefresh = 0; // the next pin shows the newest epoch
    this.#tryAdvance();
    return Atomics.load(this.i32, H_EPOCH);
  }

  /**
   * Internal, for structures that free their own memory on a full heap
   * (called as `heap["awaitReclamation"](advances, budgetMs)`), unpinned:
   * collects until the epoch has advanced `advances` times from now, so
   * that what was unlinked before the call is freed (retired blocks) or may
   * be reused (advanceEpoch's rule). Where another worker's pin holds the
   * epoch back, it sleeps briefly between tries, which hands that worker a
   * core, for at most `budgetMs` in all. Returns how many blocks it freed.
   */
  private awaitReclamation(advances: number, budgetMs: number): number {
    if (this.#slotBase < 0) {
      if (this.#closed) return 0;
      this.join();
    }
    const start = Atomics.load(this.i32, H_EPOCH);
    const deadline = performance.now() + budgetMs;
    let freed = this.#runReclaimers();
    let seen = start;
    for (;;) {
      // Checked before the collection, so that the last one collects at an
      // epoch at least `advances` past the start.
      const reached = epochsBetween(start, seen) >= advances;
      freed += this.#collect();
      if (reached) return freed;
      const now = Atomics.load(this.i32, H_EPOCH);
      // Sleep only where the epoch did not move.
      if (now === seen && (performance.now() >= deadline || !sleep(BACKLOG_SLEEP_MS))) {
        return freed;
      }
      seen = now;
    }
  }

  /**
   * Internal, for structures that keep a pointer across pins (called as
   * `heap["epochNow"]()`): the global epoch. Something that was still
   * reachable after a load that returned e is retired at e or later, so
   * it is not freed while the epoch, read again pinned, is still e.
   */
  private epochNow(): number {
    return Atomics.load(this.i32, H_EPOCH);
  }

  /** Advances the epoch when every pinned worker has seen the current one. */
  #tryAdvance(): void {
    // This worker's own read pin would hold the epoch back too.
    if (this.#readPinArmed) this.#endReadPin(true);
    const i32 = this.i32;
    const epoch = Atomics.load(i32, H_EPOCH);
    const high = Atomics.load(i32, H_SLOT_HIGH);
    const stride = SLOT_BYTES >> 2;
    for (let slot = 0; slot < high; slot++) {
      const pinned = Atomics.load(i32, this.#slotsBase + slot * stride + S_EPOCH);
      if (pinned !== 0 && pinned !== epoch) return;
    }
    Atomics.compareExchange(i32, H_EPOCH, epoch, nextEpoch(epoch));
  }

  /**
   * On close: moves the spill into bags (as far as the heap has room; the
   * rest leaks rather than failing close()), then the whole chain onto the
   * shared orphan stack.
   */
  #orphanRetired(): void {
    while (this.#spillCount > 0) {
      const at = this.#spillHead;
      if (!this.#pushBagEntry(this.#spillPtr[at], this.#spillEpoch[at])) break;
      this.#spillHead = (at + 1) % this.#spillPtr.length;
      this.#spillCount--;
    }
    this.#orphanChain(this.#slotBase);
    this.#retiredCount = 0;
  }

  /**
   * Takes the bag chain of the slot at Int32 index `slotBase` (this worker's
   * on close, a dead one's on eviction) and pushes it whole onto the orphan
   * stack, for any worker's next collection to adopt. The chain is taken
   * with an exchange, so that two evictions of one slot cannot both push
   * it. The slot's counter of retired blocks goes to the orphans' one (with
   * any spilled blocks of a dead worker, which are lost: statistics then
   * count them as retired for good).
   */
  #orphanChain(slotBase: number): void {
    const chain = Atomics.exchange(this.i32, slotBase + S_RETIRE_HEAD, 0);
    this.i32[slotBase + S_RETIRE_TAIL] = 0;
    // The slot's own count, not the chain's: bags that a worker died while
    // adopting are still counted as orphans.
    const count = Atomics.exchange(this.i32, slotBase + S_RETIRED, 0);
    Atomics.add(this.i32, H_ORPHANED_BLOCKS, count);
    if (chain === 0) return;
    const last = this.#chainEnd(chain);
    if (last === 0) return;
    const i32 = this.i32; // as #chainEnd left the views
    let head = Atomics.load(i32, H_ORPHANS);
    for (;;) {
      // Pattern (b): the chain's words were written before this CAS
      // publishes it, and are read after the exchange that takes it.
      i32[(last >> 2) + B_NEXT] = head;
      const seen = Atomics.compareExchange(i32, H_ORPHANS, head, chain);
      if (seen === head) break;
      head = seen;
    }
  }

  /**
   * The last bag of the chain from byte offset `chain` (0: no bag there),
   * leaving the entries not yet freed of the whole chain in #chainEntries,
   * and mapping bags that lie past this worker's views. Bounded, and stops
   * at a link that is no bag offset: a chain is only ever linked to
   * initialized bags, but a worker that died may have left a word half done
   * that no test has thought of. The chain then ends at the last bag.
   */
  #chainEnd(chain: number): number {
    const maxBags = this.maxBytes / BAG_BYTES;
    let entries = 0;
    let last = 0;
    for (let bag = chain, steps = 0; steps < maxBags; steps++) {
      if (!(bag >= PAGE_BYTES && bag <= this.maxBytes - BAG_BYTES && (bag & 15) === 0)) break;
      if (bag + BAG_BYTES > this.mappedBytes) this.ensure(bag + BAG_BYTES);
      const w = bag >> 2;
      entries += this.i32[w + B_END] - this.i32[w + B_START];
      last = bag;
      bag = this.i32[w + B_NEXT];
      if (bag === 0) break;
    }
    if (last !== 0) this.i32[(last >> 2) + B_NEXT] = 0;
    this.#chainEntries = entries;
    return last;
  }

  /**
   * Takes the whole orphan stack and links it after this worker's chain.
   * The link is the first store after the exchange, so a worker that dies
   * from then on leaves the adopted bags to its evictor.
   */
  #adoptOrphans(): void {
    if (Atomics.load(this.i32, H_ORPHANS) === 0) return;
    const chain = Atomics.exchange(this.i32, H_ORPHANS, 0);
    if (chain === 0) return;
    const slotBase = this.#slotBase;
    const tail = this.i32[slotBase + S_RETIRE_TAIL];
    const link = tail === 0 ? slotBase + S_RETIRE_HEAD : (tail >> 2) + B_NEXT;
    this.i32[link] = chain;
    crashPoint("heap.orphans.adopt");
    const last = this.#chainEnd(chain);
    const count = this.#chainEntries;
    const i32 = this.i32;
    if (last === 0) {
      i32[link] = 0; // no bag at all there
      return;
    }
    i32[slotBase + S_RETIRE_TAIL] = last;
    i32[slotBase + S_RETIRED] += count;
    Atomics.sub(i32, H_ORPHANED_BLOCKS, count);
    this.#retiredCount += count;
  }

  /**
   * On join: a chain that a heap dropped without close() left in this slot
   * is this worker's now. Finds its tail and counts its entries.
   */
  #inheritChain(): void {
    const slotBase = this.#slotBase;
    const chain = this.i32[slotBase + S_RETIRE_HEAD];
    const last = chain === 0 ? 0 : this.#chainEnd(chain);
    const count = last === 0 ? 0 : this.#chainEntries;
    const i32 = this.i32;
    if (last === 0) i32[slotBase + S_RETIRE_HEAD] = 0;
    i32[slotBase + S_RETIRE_TAIL] = last;
    i32[slotBase + S_RETIRED] = count;
    this.#retiredCount = count;
    this.#collectAt = count + COLLECT_EVERY;
  }

  // ------------------------------------------------------------------ roots

  /** After a pool-lock holder died: drops a root entry it left half written. */
  #recoverRoots(): void {
    const i32 = this.i32;
    for (let r = 0; r < ROOT_COUNT; r++) {
      const entry = this.#rootsBase + r * (ROOT_BYTES >> 2);
      const seq = Atomics.load(i32, entry + R_SEQ);
      if ((seq & 1) === 0) continue;
      Atomics.store(i32, entry + R_USED, 0);
      Atomics.store(i32, entry + R_SEQ, seq + 1);
    }
  }

  /**
   * Publishes a structure under `name` (1 to 64 UTF-8 bytes) so that any
   * worker holding the heap can find it with `root(name)`. Replaces an
   * earlier root of the same name. The handle must belong to this heap.
   * Names beginning with `sabre.` are sabre's own (the STM keeps its state
   * under one): replacing one throws `TypeError`.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const block = heap.allocate(64);
   * heap.setRoot("config", heap.handleOf("app.Config", 1, block));
   * console.assert(heap.root("config")?.offset === block);
   * ```
   */
  setRoot(name: string, handle: SharedHandle): void {
    refuseReservedRoot(name, "replace");
    this.#writeRoot(name, handle, false);
  }

  /**
   * Publishes `handle` under `name` unless a root of that name exists, as one
   * atomic step, and returns the handle under `name` afterwards: `handle`
   * itself when it was published, or the earlier root. Use it when several
   * workers may create the same structure at once: exactly one of them wins,
   * and the others learn which structure to adopt (and may free their own,
   * which no other worker saw).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const first = heap.allocate(64);
   * const second = heap.allocate(64);
   * const handle = (offset: number) => heap.handleOf("app.Config", 1, offset);
   * console.assert(heap.setRootIfAbsent("config", handle(first)).offset === first);
   * const winner = heap.setRootIfAbsent("config", handle(second));
   * console.assert(winner.offset === first); // the earlier root stays
   * heap.free(second);
   * ```
   */
  setRootIfAbsent<K extends string = string>(
    name: string,
    handle: SharedHandle<K>,
  ): SharedHandle<K> {
    return this.#writeRoot(name, handle, true) ?? handle;
  }

  /**
   * setRoot and setRootIfAbsent: checks the handle, then writes the entry
   * under the pool lock. With `ifAbsent`, an existing entry is returned
   * instead of replaced (the check and the write share one lock hold).
   */
  #writeRoot<K extends string>(
    name: string,
    handle: SharedHandle<K>,
    ifAbsent: boolean,
  ): SharedHandle<K> | undefined {
    const nameBytes = encodeRootString("name", name, ROOT_NAME_MAX);
    if (typeof handle !== "object" || handle === null) {
      throw new TypeError(
        `Cannot set root "${name}" as 'handle' is not an object: current value is ${
          describeValue(handle)
        }`,
      );
    }
    const kindBytes = encodeRootString("kind", handle.kind, ROOT_KIND_MAX);
    if (!(handle.sab instanceof SharedArrayBuffer)) {
      throw new TypeError(
        `Cannot set root "${name}" as the handle's 'sab' is not a SharedArrayBuffer: current value is ${
          describeValue(handle.sab)
        }`,
      );
    }
    if (
      handle.sab.byteLength < PAGE_BYTES ||
      heapUid(new Int32Array(handle.sab, 0, 16)) !== this.#uid
    ) {
      throw new RangeError(`Cannot set root "${name}" as the handle belongs to another heap`);
    }
    if (!Number.isInteger(handle.offset) || handle.offset < 0 || handle.offset >= this.maxBytes) {
      throw new RangeError(
        `Cannot set root "${name}" as the handle's offset is outside the heap: current value is ${
          describeValue(handle.offset)
        }`,
      );
    }
    if (!Number.isInteger(handle.version) || handle.version < 1) {
      throw new RangeError(
        `Cannot set root "${name}" as the handle's version is not a positive integer: current value is ${
          describeValue(handle.version)
        }`,
      );
    }
    const i32 = this.i32;
    if (this.#slot < 0) this.join();
    lockPool(i32, this.#slot, releaseReadPinsBeforePark);
    try {
      let entry = this.#findRoot(nameBytes);
      if (entry >= 0 && ifAbsent) {
        // Under the pool lock no writer changes the entry, so one read holds.
        return this.#readRoot<K>(entry);
      }
      if (entry < 0) {
        for (let r = 0; r < ROOT_COUNT && entry < 0; r++) {
          const e = this.#rootsBase + r * (ROOT_BYTES >> 2);
          if (Atomics.load(i32, e + R_USED) === 0) entry = e;
        }
      }
      if (entry < 0) {
        throw new RangeError(
          `Cannot set root "${name}" as all ${ROOT_COUNT} root entries are used`,
        );
      }
      const seq = Atomics.load(i32, entry + R_SEQ);
      Atomics.store(i32, entry + R_SEQ, seq + 1);
      Atomics.store(i32, entry + R_OFFSET, handle.offset);
      Atomics.store(i32, entry + R_VERSION, handle.version);
      Atomics.store(i32, entry + R_NAME_LEN, nameBytes.length);
      Atomics.store(i32, entry + R_KIND_LEN, kindBytes.length);
      crashPoint("heap.root.write");
      storeBytes(i32, entry + R_NAME, nameBytes, ROOT_NAME_MAX);
      storeBytes(i32, entry + R_KIND, kindBytes, ROOT_KIND_MAX);
      Atomics.store(i32, entry + R_USED, 1);
      Atomics.store(i32, entry + R_SEQ, seq + 2);
      return undefined;
    } finally {
      unlockPool(i32);
    }
  }

  /**
   * The handle published under `name`, or `undefined`.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(heap.root("missing") === undefined);
   * ```
   */
  root<K extends string = string>(name: string): SharedHandle<K> | undefined {
    const nameBytes = encodeRootString("name", name, ROOT_NAME_MAX);
    const i32 = this.i32;
    for (;;) {
      const entry = this.#findRoot(nameBytes);
      if (entry < 0) return undefined;
      const seq = Atomics.load(i32, entry + R_SEQ);
      if ((seq & 1) !== 0) continue;
      const handle = this.#readRoot<K>(entry);
      if (Atomics.load(i32, entry + R_SEQ) !== seq) continue;
      return handle;
    }
  }

  /** The handle in root entry `entry` (callers validate it by R_SEQ or hold the pool lock). */
  #readRoot<K extends string>(entry: number): SharedHandle<K> {
    const i32 = this.i32;
    const offset = Atomics.load(i32, entry + R_OFFSET);
    const version = Atomics.load(i32, entry + R_VERSION);
    const kind = new TextDecoder().decode(
      loadBytes(i32, entry + R_KIND, Atomics.load(i32, entry + R_KIND_LEN)),
    );
    return this.handleOf(kind as K, version, offset);
  }

  /**
   * Removes the root `name`; returns whether it existed. The structure itself
   * is not freed. Throws `TypeError` for sabre's own roots (names beginning
   * with `sabre.`).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.setRoot("x", { ...heap.handle, kind: "app.X" });
   * console.assert(heap.deleteRoot("x") && !heap.deleteRoot("x"));
   * ```
   */
  deleteRoot(name: string): boolean {
    const nameBytes = encodeRootString("name", name, ROOT_NAME_MAX);
    refuseReservedRoot(name, "delete");
    const i32 = this.i32;
    if (this.#slot < 0) this.join();
    lockPool(i32, this.#slot, releaseReadPinsBeforePark);
    try {
      const entry = this.#findRoot(nameBytes);
      if (entry < 0) return false;
      const seq = Atomics.load(i32, entry + R_SEQ);
      Atomics.store(i32, entry + R_SEQ, seq + 1);
      Atomics.store(i32, entry + R_USED, 0);
      Atomics.store(i32, entry + R_NAME_LEN, 0);
      Atomics.store(i32, entry + R_SEQ, seq + 2);
      return true;
    } finally {
      unlockPool(i32);
    }
  }

  /**
   * Names of all roots, but for sabre's own (names beginning with `sabre.`,
   * which also count toward the 64).
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * heap.setRoot("a", { ...heap.handle, kind: "app.A" });
   * console.assert(heap.rootNames().includes("a"));
   * ```
   */
  rootNames(): string[] {
    const names: string[] = [];
    const i32 = this.i32;
    const decoder = new TextDecoder();
    for (let r = 0; r < ROOT_COUNT; r++) {
      const entry = this.#rootsBase + r * (ROOT_BYTES >> 2);
      for (;;) {
        const seq = Atomics.load(i32, entry + R_SEQ);
        if ((seq & 1) !== 0) continue;
        const used = Atomics.load(i32, entry + R_USED);
        const bytes = loadBytes(i32, entry + R_NAME, Atomics.load(i32, entry + R_NAME_LEN));
        if (Atomics.load(i32, entry + R_SEQ) !== seq) continue;
        if (used) {
          const name = decoder.decode(bytes);
          if (!name.startsWith(RESERVED_ROOT_PREFIX)) names.push(name);
        }
        break;
      }
    }
    return names;
  }

  /** Index of the used entry whose name equals `name`, or -1. All-atomic reads. */
  #findRoot(name: Uint8Array): number {
    const i32 = this.i32;
    for (let r = 0; r < ROOT_COUNT; r++) {
      const entry = this.#rootsBase + r * (ROOT_BYTES >> 2);
      for (;;) {
        const seq = Atomics.load(i32, entry + R_SEQ);
        if ((seq & 1) !== 0) continue;
        const match = Atomics.load(i32, entry + R_USED) === 1 &&
          Atomics.load(i32, entry + R_NAME_LEN) === name.length &&
          bytesEqual(i32, entry + R_NAME, name);
        if (Atomics.load(i32, entry + R_SEQ) !== seq) continue;
        if (match) return entry;
        break;
      }
    }
    return -1;
  }

  // ------------------------------------------------------------------ stats

  /**
   * Usage counters of the whole heap, summed over all workers.
   *
   * @example
   * ```ts
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ptr = heap.allocate(64);
   * console.assert(heap.stats().liveBytes === 64);
   * heap.free(ptr);
   * console.assert(heap.stats().liveBytes === 0);
   * ```
   */
  stats(): HeapStats {
    const i32 = this.i32;
    let liveBlocks = 0;
    let liveBytes = 0;
    let retired = 0;
    let workers = 0;
    const stride = SLOT_BYTES >> 2;
    for (let slot = 0; slot < this.maxWorkers; slot++) {
      const base = this.#slotsBase + slot * stride;
      liveBlocks = (liveBlocks + Atomics.load(i32, base + S_LIVE_BLOCKS)) | 0;
      liveBytes = (liveBytes + Atomics.load(i32, base + S_LIVE_BYTES)) | 0;
      retired = (retired + Atomics.load(i32, base + S_RETIRED)) | 0;
      if ((Atomics.load(i32, base + S_STATE) & 1) === 1) workers++;
    }
    return {
      heapBytes: this.sab.byteLength,
      maxBytes: this.maxBytes,
      metadataBytes: i32[H_META_PAGES] * PAGE_BYTES,
      freeBytes: Atomics.load(i32, H_FREE_PAGES) * PAGE_BYTES,
      smallPageBytes: Atomics.load(i32, H_SMALL_PAGES) * PAGE_BYTES,
      largeBytes: Atomics.load(i32, H_LARGE_PAGES) * PAGE_BYTES,
      liveBlocks,
      liveBytes,
      retiredBlocks: (retired + Atomics.load(i32, H_ORPHANED_BLOCKS)) | 0,
      growCount: Atomics.load(i32, H_GROW_COUNT),
      workers,
      maxWorkers: this.maxWorkers,
      epoch: Atomics.load(i32, H_EPOCH),
    };
  }
}

function storeBytes(i32: Int32Array, at: number, bytes: Uint8Array, max: number): void {
  for (let w = 0; w < max / 4; w++) {
    let word = 0;
    for (let b = 0; b < 4; b++) word |= (bytes[w * 4 + b] ?? 0) << (b * 8);
    Atomics.store(i32, at + w, word);
  }
}

function loadBytes(i32: Int32Array, at: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = (Atomics.load(i32, at + (i >> 2)) >>> ((i & 3) * 8)) & 255;
  }
  return out;
}

function bytesEqual(i32: Int32Array, at: number, bytes: Uint8Array): boolean {
  for (let w = 0; w < Math.ceil(bytes.length / 4); w++) {
    let word = 0;
    for (let b = 0; b < 4; b++) word |= (bytes[w * 4 + b] ?? 0) << (b * 8);
    if (Atomics.load(i32, at + w) !== word) return false;
  }
  return true;
}

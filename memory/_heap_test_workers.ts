/**
 * Worker bodies for the multi-worker SharedHeap tests (heap_workers_test.ts).
 * Each export runs inside a worker started by the testing harness.
 *
 * @module
 */

import type { WorkerContext } from "../testing/harness.ts";
import { SharedHeap, type SharedHeapHandle } from "./heap.ts";
import { faultInjection } from "./faults.ts";
import { H_POOL_LOCK, H_SLOTS_OFFSET, S_EPOCH, S_STATE, SLOT_BYTES } from "./_layout.ts";
import { epochWordAt, heapKernel, kernelForRead } from "./_heap_hooks.ts";

function heapOf(ctx: WorkerContext<unknown>): SharedHeap {
  if (ctx.heap === undefined) throw new Error("this worker needs a heap");
  return ctx.heap;
}

/** Pattern word for a block: which worker wrote it and its sequence number. */
function pattern(worker: number, seq: number): number {
  return (Math.imul(worker + 1, 0x9e3779b1) ^ Math.imul(seq, 0x85ebca6b)) | 0;
}

function fill(heap: SharedHeap, ptr: number, size: number, word: number): void {
  const i32 = heap.i32;
  i32[ptr >> 2] = size;
  for (let w = (ptr >> 2) + 1; w < (ptr + size) >> 2; w++) i32[w] = word;
}

function check(heap: SharedHeap, ptr: number, size: number, word: number, who: string): void {
  heap.ensure(ptr + size);
  const i32 = heap.i32;
  if (i32[ptr >> 2] !== size) {
    throw new Error(`${who}: block ${ptr} size word ${i32[ptr >> 2]} != ${size}`);
  }
  for (let w = (ptr >> 2) + 1; w < (ptr + size) >> 2; w++) {
    if (i32[w] !== word) {
      throw new Error(`${who}: block ${ptr}+${w * 4 - ptr} holds ${i32[w]}, expected ${word}`);
    }
  }
}

export interface ChurnArgs {
  ops: number;
  /** Shared Int32Array buffer used to hand blocks to other workers. */
  handoff: SharedArrayBuffer;
  /**
   * Worker 0 dies at the `after`-th visit of crash point `site` (it posts
   * "dying" and hangs until the parent stops it). The others then skip the
   * closing barriers, which a dead worker would break.
   */
  dieAt?: { site: string; after: number };
  /** With dieAt: word 0 becomes 1 when worker 0 dies. */
  died?: SharedArrayBuffer;
}

/**
 * Random allocations and frees of mixed sizes. Every live block holds the
 * worker's pattern and is checked before it is freed. One block in eight is
 * handed to a random other worker through a shared exchange slot, so frees
 * from a foreign worker (the remote free path) are exercised too.
 */
export function churn(ctx: WorkerContext<ChurnArgs>): { allocations: number; remote: number } {
  const heap = heapOf(ctx);
  const { ops, dieAt } = ctx.args;
  const handoff = new Int32Array(ctx.args.handoff);
  if (dieAt !== undefined && ctx.index === 0) {
    let visits = 0;
    faultInjection.hook = (site) => {
      if (site === dieAt.site && ++visits === dieAt.after) {
        if (ctx.args.died !== undefined) Atomics.store(new Int32Array(ctx.args.died), 0, 1);
        ctx.post("dying");
        ctx.hang();
      }
    };
  }
  // Slots are private to a (receiver, sender) pair: only that sender fills
  // them, only that receiver empties them.
  const perPair = handoff.length / 3 / (ctx.workers * ctx.workers);
  const live: Array<[number, number, number]> = [];
  let seq = 0;
  let allocations = 0;
  let remote = 0;
  const takeHandoff = () => {
    // Entries are (ptr, size, word) triples; ptr is claimed with an exchange.
    const base = ctx.index * ctx.workers * perPair;
    for (let s = 0; s < ctx.workers * perPair; s++) {
      const at = (base + s) * 3;
      if (Atomics.load(handoff, at) === 0) continue;
      const size = Atomics.load(handoff, at + 1);
      const word = Atomics.load(handoff, at + 2);
      const ptr = Atomics.exchange(handoff, at, 0);
      check(heap, ptr, size, word, `worker ${ctx.index} (handed block)`);
      heap.free(ptr);
      remote++;
    }
  };
  const step = (i: number): void => {
    const r = ctx.random();
    if (live.length === 0 || (r < 0.55 && live.length < 600)) {
      const kind = ctx.random();
      const size = kind < 0.9
        ? 16 + Math.floor(ctx.random() * 2000) * 4
        : kind < 0.995
        ? 8192 + Math.floor(ctx.random() * 6000) * 4
        : 40000 + Math.floor(ctx.random() * 40000) * 4;
      const ptr = heap.allocate(size);
      const word = pattern(ctx.index, seq++);
      fill(heap, ptr, size, word);
      live.push([ptr, size, word]);
      allocations++;
    } else {
      const at = Math.floor(ctx.random() * live.length);
      const [ptr, size, word] = live[at];
      live[at] = live[live.length - 1];
      live.pop();
      check(heap, ptr, size, word, `worker ${ctx.index}`);
      const target = Math.floor(ctx.random() * ctx.workers);
      if (target !== ctx.index && ctx.random() < 0.125) {
        // Hand it over: the size and word go first, the pointer publishes them.
        const pair = (target * ctx.workers + ctx.index) * perPair;
        const slot = (pair + Math.floor(ctx.random() * perPair)) * 3;
        if (Atomics.load(handoff, slot) === 0) {
          Atomics.store(handoff, slot + 1, size);
          Atomics.store(handoff, slot + 2, word);
          Atomics.store(handoff, slot, ptr);
          return;
        }
      }
      heap.free(ptr);
    }
    if ((i & 63) === 0) takeHandoff();
  };
  for (let i = 0; i < ops; i++) step(i);
  for (const [ptr, size, word] of live) {
    check(heap, ptr, size, word, `worker ${ctx.index} (final)`);
    heap.free(ptr);
  }
  if (dieAt !== undefined) {
    if (ctx.index === 0) {
      // The other worker may have done every growth this churn needed; keep
      // large blocks until this worker must grow the heap itself.
      if (dieAt.site === "pool.grow") { for (;;) heap.allocate(256 * 1024); }
      // Other sites need the other worker's frees of our blocks (handed to
      // it), which it keeps making until we die: churn on.
      for (let i = ops;; i++) step(i);
    }
    // Keep freeing what worker 0 hands over until it has died, however fast
    // our own share went.
    const died = ctx.args.died === undefined ? undefined : new Int32Array(ctx.args.died);
    while (died !== undefined && Atomics.load(died, 0) === 0) {
      takeHandoff();
      Atomics.wait(died, 0, 0, 1);
    }
    takeHandoff();
    return { allocations, remote };
  }
  ctx.barrier.wait();
  takeHandoff(); // blocks handed to us after our last look
  ctx.barrier.wait();
  return { allocations, remote };
}

export interface EpochArgs {
  /** Int32 flags: [0] block pointer, [1] reader pinned, [2] reuse seen while pinned, [3] reader done. */
  shared: SharedArrayBuffer;
  slowMs: number;
}

/**
 * Worker 0 retires a block while worker 1, a deliberately slow reader, is
 * pinned and keeps checking the block's contents. Worker 0 tries hard to get
 * the block back (collect, allocate the same size class) and records whether
 * it ever did while the reader was pinned. After the reader unpins, the block
 * must come back.
 */
export function epochReaderWriter(ctx: WorkerContext<EpochArgs>): string {
  const heap = heapOf(ctx);
  const flags = new Int32Array(ctx.args.shared);
  const SIZE = 48;
  const MAGIC = 0x5eed;
  if (ctx.index === 0) {
    const ptr = heap.allocate(SIZE);
    for (let w = 0; w < SIZE / 4; w++) heap.i32[(ptr >> 2) + w] = MAGIC;
    Atomics.store(flags, 0, ptr);
  }
  ctx.barrier.wait(); // block published
  if (ctx.index === 1) {
    heap.pin();
    Atomics.store(flags, 1, 1);
  }
  ctx.barrier.wait(); // reader pinned
  if (ctx.index === 1) {
    const ptr = Atomics.load(flags, 0);
    const until = performance.now() + ctx.args.slowMs;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    let checks = 0;
    while (performance.now() < until) {
      heap.ensure(ptr + SIZE);
      for (let w = 0; w < SIZE / 4; w++) {
        // Atomics: the writer side may (wrongly) reuse and write the block.
        if (Atomics.load(heap.i32, (ptr >> 2) + w) !== MAGIC) {
          throw new Error(`pinned reader saw the retired block overwritten after ${checks} checks`);
        }
      }
      checks++;
      Atomics.wait(nap, 0, 0, 1); // slow: sleep 1 ms between looks
    }
    Atomics.store(flags, 1, 0);
    heap.unpin();
    ctx.barrier.wait(); // reader unpinned
    return `reader checked ${checks} times`;
  }
  // Writer.
  const ptr = Atomics.load(flags, 0);
  heap.retire(ptr);
  let rounds = 0;
  while (Atomics.load(flags, 1) === 1) {
    heap.collect();
    const got: number[] = [];
    for (let i = 0; i < 64; i++) {
      const p = heap.allocate(SIZE);
      if (p === ptr && Atomics.load(flags, 1) === 1) Atomics.store(flags, 2, 1);
      for (let w = 0; w < SIZE / 4; w++) Atomics.store(heap.i32, (p >> 2) + w, -1);
      got.push(p);
    }
    for (const p of got) heap.free(p);
    rounds++;
  }
  ctx.barrier.wait(); // reader unpinned
  if (Atomics.load(flags, 2) !== 0) throw new Error("retired block reused while reader pinned");
  // Nobody is pinned now: a few collections must free it...
  for (let attempt = 0; attempt < 4 && heap.stats().retiredBlocks > 0; attempt++) heap.collect();
  if (heap.stats().retiredBlocks !== 0) throw new Error("retired block not freed after unpin");
  // ...and allocation hands it out again once the pages before it are used.
  const got: number[] = [];
  let reused = false;
  for (let i = 0; i < 20_000 && !reused; i++) {
    const p = heap.allocate(SIZE);
    got.push(p);
    reused = p === ptr;
  }
  for (const p of got) heap.free(p);
  if (!reused) throw new Error("retired block not reused after the reader unpinned");
  return `writer ran ${rounds} rounds`;
}

/** Joins, reports, then waits until the parent releases it via the flag. */
export function holdSlot(ctx: WorkerContext<{ flag: SharedArrayBuffer }>): number {
  const heap = heapOf(ctx);
  const flag = new Int32Array(ctx.args.flag);
  Atomics.add(flag, 1, 1);
  Atomics.notify(flag, 1);
  while (Atomics.load(flag, 0) === 0) Atomics.wait(flag, 0, 0, 50);
  return heap.slot;
}

/**
 * Allocates and frees forever, posting progress (a checkpoint), until the
 * parent stops it.
 */
export function churnForever(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  const live: number[] = [];
  for (let i = 0;; i++) {
    if (live.length < 300 && ctx.random() < 0.6) {
      live.push(heap.allocate(16 + Math.floor(ctx.random() * 3000)));
    } else if (live.length > 0) {
      heap.free(live.splice(Math.floor(ctx.random() * live.length), 1)[0]);
    }
    if (i % 5000 === 0) ctx.post(i);
  }
}

/** Takes the pool lock by hand and never releases it, as a worker killed inside the pool would. */
export function dieHoldingPoolLock(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  const mine = (heap.slot + 1) << 1;
  while (Atomics.compareExchange(heap.i32, H_POOL_LOCK, 0, mine) !== 0) {
    Atomics.wait(heap.i32, H_POOL_LOCK, Atomics.load(heap.i32, H_POOL_LOCK), 1);
  }
  ctx.post("holding");
  ctx.hang();
}

/**
 * Takes the pool lock by hand, waits until a waiter has parked on it, then
 * releases it without waking anyone and stops: as a worker killed between
 * unlockPool's exchange and its notify would (a Node termination can land
 * there, on the notify call).
 */
export function dieReleasingPoolLock(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  const mine = (heap.slot + 1) << 1;
  while (Atomics.compareExchange(heap.i32, H_POOL_LOCK, 0, mine) !== 0) {
    Atomics.wait(heap.i32, H_POOL_LOCK, Atomics.load(heap.i32, H_POOL_LOCK), 1);
  }
  ctx.post("holding");
  // A waiter sets the waiters bit just before it parks.
  while ((Atomics.load(heap.i32, H_POOL_LOCK) & 1) === 0) {
    Atomics.wait(heap.i32, H_POOL_LOCK, mine, 1);
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // let the other park too
  Atomics.exchange(heap.i32, H_POOL_LOCK, 0);
  ctx.post("released");
  ctx.hang();
}

/** Sets a root and dies in the middle of writing it (holding the pool lock). */
export function dieSettingRoot(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  faultInjection.hook = (site) => {
    if (site === "heap.root.write") {
      ctx.post("dying");
      ctx.hang();
    }
  };
  heap.setRoot("doomed", { kind: "test.Doomed", version: 1, sab: heap.sab, offset: 64 });
  throw new Error("crash point heap.root.write was never reached");
}

export interface ReadPinParkArgs {
  /** Int32 words: [0] the reader has joined, [1] go, [2] release the pool lock. */
  readonly flags: SharedArrayBuffer;
  /** Byte address of a word that points at an 8-byte cell, for locGet. */
  readonly word: number;
}

/**
 * Takes the pool lock by hand once the reader has joined, and releases it
 * the way unlockPool does when told to.
 */
export function holdPoolLockUntilTold(ctx: WorkerContext<ReadPinParkArgs>): string {
  const heap = heapOf(ctx);
  const flags = new Int32Array(ctx.args.flags);
  const mine = (heap.slot + 1) << 1;
  while (Atomics.compareExchange(heap.i32, H_POOL_LOCK, 0, mine) !== 0) {
    Atomics.wait(heap.i32, H_POOL_LOCK, Atomics.load(heap.i32, H_POOL_LOCK), 1);
  }
  ctx.post("holding");
  while (Atomics.load(flags, 2) === 0) {
    ctx.checkpoint();
    Atomics.wait(flags, 2, 0, 20);
  }
  if ((Atomics.exchange(heap.i32, H_POOL_LOCK, 0) & 1) !== 0) Atomics.notify(heap.i32, H_POOL_LOCK);
  return "released";
}

/**
 * Joins, waits for the go, reads through the kernel (which leaves a read pin:
 * its epoch word keeps the epoch), posts that word's Int32 index, then needs
 * a page from the pool, whose lock another worker holds.
 */
export function readThenAllocateLarge(ctx: WorkerContext<ReadPinParkArgs>): number {
  const heap = heapOf(ctx);
  const flags = new Int32Array(ctx.args.flags);
  const epochWord = epochWordAt(heap) >> 2; // joins
  Atomics.store(flags, 0, 1);
  while (Atomics.load(flags, 1) === 0) {
    ctx.checkpoint();
    Atomics.wait(flags, 1, 0, 20);
  }
  const kernel = kernelForRead(heap);
  if (kernel === null) throw new Error("this reader needs the kernel");
  const value = kernel.locGet(ctx.args.word);
  if (Atomics.load(heap.i32, epochWord) === 0) throw new Error("the read left no read pin");
  ctx.post(epochWord);
  const ptr = heap.allocate(100_000);
  heap.free(ptr);
  return value;
}

/** Needs fresh pages from the pool (large blocks), so it blocks while the pool lock is held. */
export function allocateLarge(ctx: WorkerContext<{ count: number }>): number {
  const heap = heapOf(ctx);
  let total = 0;
  for (let i = 0; i < ctx.args.count; i++) {
    const ptr = heap.allocate(100_000);
    heap.i32[ptr >> 2] = i;
    total += heap.i32[ptr >> 2];
    heap.free(ptr);
  }
  return total;
}

/**
 * Grows the heap, then retires small blocks while the parent keeps an epoch
 * pinned (so none can be freed) and closes: its retired blocks go to an orphan
 * bag allocated far past the parent's views, which the parent must adopt.
 */
export function retireAfterGrowth(ctx: WorkerContext<{ blocks: number }>): number {
  const heap = heapOf(ctx);
  for (let i = 0; i < 8; i++) heap.allocate(1 << 20); // kept: the heap stays grown
  // Fill pages of the orphan bag's size class, so the bag lands in a page
  // taken late, far past the parent's views.
  for (let i = 0; i < 400; i++) heap.allocate(2040);
  for (let i = 0; i < ctx.args.blocks; i++) heap.retire(heap.allocate(64));
  return heap.stats().retiredBlocks;
}

/** retireBlocks and retireThenDie. */
export interface RetireArgs {
  /** 48-byte blocks to allocate and retire at once. */
  blocks: number;
  /** retireThenDie: the crash point to die at, else it dies idle once done. */
  site?: string;
  /** The visit of `site` to die at (from 1). */
  hit?: number;
}

/** Retires blocks and returns the heap's retired count (the harness then closes the heap). */
export function retireBlocks(ctx: WorkerContext<RetireArgs>): number {
  const heap = heapOf(ctx);
  for (let i = 0; i < ctx.args.blocks; i++) heap.retire(heap.allocate(48));
  return heap.stats().retiredBlocks;
}

/**
 * Retires blocks and dies without closing the heap: at the `hit`-th visit of
 * crash point `site`, posting "dying", or, with no site, idle after posting
 * the heap's retired count.
 */
export function retireThenDie(ctx: WorkerContext<RetireArgs>): never {
  const heap = heapOf(ctx);
  const { blocks, site, hit = 1 } = ctx.args;
  let visits = 0;
  if (site !== undefined) {
    faultInjection.hook = (at) => {
      if (at === site && ++visits === hit) {
        ctx.post("dying");
        ctx.hang();
      }
    };
  }
  for (let i = 0; i < blocks; i++) heap.retire(heap.allocate(48));
  if (site !== undefined) throw new Error(`crash point ${site} was never reached`);
  ctx.post(heap.stats().retiredBlocks);
  ctx.hang();
}

/**
 * Retires blocks, then lets go of its slot as the heap's FinalizationRegistry
 * callback does for a heap dropped without close() (its epoch word cleared,
 * the slot released, the retired blocks' bags left in the slot), posts
 * [slot, retired count] and stops, never touching the heap again.
 */
export function retireThenDrop(ctx: WorkerContext<RetireArgs>): never {
  const heap = heapOf(ctx);
  for (let i = 0; i < ctx.args.blocks; i++) heap.retire(heap.allocate(48));
  const retired = heap.stats().retiredBlocks;
  const slot = heap.slot;
  const i32 = heap.i32;
  const base = (i32[H_SLOTS_OFFSET] >> 2) + slot * (SLOT_BYTES >> 2);
  const state = Atomics.load(i32, base + S_STATE);
  Atomics.store(i32, base + S_EPOCH, 0);
  Atomics.compareExchange(i32, base + S_STATE, state, state + 1);
  ctx.post([slot, retired]);
  ctx.hang();
}

/** Joins the heap and collects until nothing it holds is retired: [slot, blocks it inherited]. */
export function joinAndCollect(ctx: WorkerContext<unknown>): number[] {
  const heap = heapOf(ctx);
  heap.join();
  const inherited = heap.stats().retiredBlocks;
  for (let i = 0; i < 4; i++) heap.collect();
  return [heap.slot, inherited];
}

/** kernelAfterGrowth: where the parent publishes a word to read. */
export interface KernelGrowthArgs {
  /** Byte address of [flag, address of a location word, workers attached]. */
  mailbox: number;
}

/**
 * Waits until the parent publishes the address of a word that points at an
 * f64 cell in memory the heap gained after this worker attached, then reads
 * it through the kernel, with its views still the old ones.
 */
export function kernelAfterGrowth(
  ctx: WorkerContext<KernelGrowthArgs>,
): { kernel: boolean; value: number; staleViews: boolean; pinned: boolean } {
  const heap = heapOf(ctx);
  heap.join(); // the kernel pins only a worker that has joined
  const kernel = heapKernel(heap);
  const box = ctx.args.mailbox >> 2;
  Atomics.add(heap.i32, box + 2, 1); // attached: the parent may grow the heap now
  while (Atomics.load(heap.i32, box) === 0) Atomics.wait(heap.i32, box, 0, 50);
  const word = Atomics.load(heap.i32, box + 1);
  const staleViews = heap.mappedBytes <= word;
  const value = kernel === null ? NaN : kernel.locGet(word);
  return { kernel: kernel !== null, value, staleViews, pinned: heap.isPinned };
}

/**
 * Attaches a heap from a handle without its memory, then from one with it:
 * whether the heap had a kernel after each.
 */
export function kernelUpgrade(
  ctx: WorkerContext<{ bare: SharedHeapHandle; full: SharedHeapHandle }>,
): [boolean, boolean] {
  const heap = SharedHeap.attach(ctx.args.bare);
  const before = heapKernel(heap) !== null;
  if (SharedHeap.attach(ctx.args.full) !== heap) throw new Error("attached a second instance");
  return [before, heapKernel(heap) !== null];
}

export interface HoldPinArgs {
  /** Int32 words: [0] pinned, [1] let go. */
  readonly flags: SharedArrayBuffer;
  /**
   * heap.pin(), heap.pinForOperation(), the read pin a kernel get leaves, or
   * pinForOperation() right after a pin() and a read pin have come and gone
   * (their S_LONG_PIN must not stay on the operation).
   */
  readonly kind: "pin" | "operation" | "read" | "operation after long pins";
  /** Byte address of a word that points at an 8-byte cell, for locGet. */
  readonly word: number;
}

/**
 * Pins (as `kind` says), says so, and
 * stays pinned in the same task until told to let go, so that the epoch
 * cannot move on past the one after its pin meanwhile.
 */
export function holdPinUntilTold(ctx: WorkerContext<HoldPinArgs>): string {
  const heap = heapOf(ctx);
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.args.kind === "pin") {
    heap.pin();
  } else if (ctx.args.kind === "operation") {
    heap.pinForOperation();
  } else if (ctx.args.kind === "operation after long pins") {
    heap.pin();
    heap.unpin();
    kernelForRead(heap)?.locGet(ctx.args.word);
    heap.pinForOperation();
  } else {
    heap.join(); // the kernel pins only a worker that has joined
    const kernel = kernelForRead(heap);
    if (kernel === null) throw new Error("a read pin needs the kernel");
    kernel.locGet(ctx.args.word);
  }
  Atomics.store(flags, 0, 1);
  while (Atomics.load(flags, 1) === 0) {
    ctx.checkpoint();
    Atomics.wait(flags, 1, 0, 20);
  }
  if (ctx.args.kind !== "read") heap.unpin();
  return "let go";
}

/**
 * The structures of kcas's tour, written only on the public Loc/Xt/Op/Retry
 * API and SharedHeap blocks, for `tour_test.ts`, plus the worker bodies of
 * its concurrent scenarios.
 *
 * Memory: nodes are immutable heap blocks (pattern (b): filled before the
 * commit that publishes their address through a `"ref"` Loc) or blocks
 * naming Locs. What an attempt allocates goes through a `Mem` of its
 * commit (`atomically`): each new attempt, and a commit that throws, frees
 * what the abandoned attempt allocated (it was never published). Removed
 * nodes are retired through epochs from `postCommit` actions.
 *
 * @module
 */

import { Loc, type LocHandle, Retry, Xt } from "./mod.ts";
import type { SharedHeap } from "../memory/mod.ts";
import type { WorkerContext } from "../testing/harness.ts";

// ------------------------------------------------------------ allocation

/** What one commit's current attempt allocated. */
export class Mem {
  readonly heap: SharedHeap;
  #blocks: number[] = [];
  #locs: Loc[] = [];

  constructor(heap: SharedHeap) {
    this.heap = heap;
  }

  alloc(bytes: number): number {
    const p = this.heap.allocate(bytes);
    this.#blocks.push(p);
    return p;
  }

  loc(value: number, kind: "f64" | "ref" = "ref"): Loc {
    const loc = Loc.make(this.heap, value, { kind });
    this.#locs.push(loc);
    return loc;
  }

  /** Frees everything of the abandoned attempt (never published). */
  abandon(): void {
    for (const p of this.#blocks) this.heap.free(p);
    for (const l of this.#locs) l.free();
    this.#blocks = [];
    this.#locs = [];
  }
}

/** `Xt.commit` with a `Mem` whose allocations are freed with abandoned attempts. */
export function atomically<T>(
  heap: SharedHeap,
  tx: (xt: Xt, mem: Mem) => T,
  options?: { timeoutMs?: number },
): T {
  const mem = new Mem(heap);
  try {
    return Xt.commit((xt) => {
      mem.abandon();
      return tx(xt, mem);
    }, options);
  } catch (e) {
    mem.abandon();
    throw e;
  }
}

function ensure(heap: SharedHeap, p: number, bytes: number): void {
  if (p + bytes > heap.mappedBytes) heap.ensure(p + bytes);
}

function retireAfter(xt: Xt, heap: SharedHeap, p: number): void {
  xt.postCommit(() => heap.retire(p));
}

// ------------------------------------------- immutable lists [value, next]

export function cons(mem: Mem, value: number, next: number): number {
  const p = mem.alloc(16);
  mem.heap.f64[p >> 3] = value;
  mem.heap.i32[(p >> 2) + 2] = next;
  return p;
}

export function hd(heap: SharedHeap, p: number): number {
  ensure(heap, p, 16);
  return heap.f64[p >> 3];
}

export function tl(heap: SharedHeap, p: number): number {
  ensure(heap, p, 16);
  return heap.i32[(p >> 2) + 2];
}

/** The list reversed into new nodes; the old ones retire after the commit. */
function rev(xt: Xt, mem: Mem, list: number): number {
  let out = 0;
  for (let p = list; p !== 0; p = tl(mem.heap, p)) {
    out = cons(mem, hd(mem.heap, p), out);
    retireAfter(xt, mem.heap, p);
  }
  return out;
}

// ------------------------------------------------------------- the stack

/** A lock-free stack: one Loc holding a list. */
export function stack(heap: SharedHeap): Loc {
  return Loc.make(heap, 0, { kind: "ref" });
}

export function push(xt: Xt, mem: Mem, s: Loc, value: number): void {
  xt.modify(s, (list) => cons(mem, value, list));
}

export function tryPop(xt: Xt, s: Loc): number | undefined {
  const list = xt.get(s);
  if (list === 0) return undefined; // read-only: empty pops do not interfere
  const heap = s.heap;
  xt.set(s, tl(heap, list));
  retireAfter(xt, heap, list);
  return hd(heap, list);
}

export function pop(xt: Xt, s: Loc): number {
  return tryPop(xt, s) ?? Retry.later();
}

// ------------------------------------------------------ two-stack queue

export interface TwoStackQueue {
  readonly front: Loc;
  readonly back: Loc;
}

export function queue(heap: SharedHeap): TwoStackQueue {
  return { front: stack(heap), back: stack(heap) };
}

export function enqueue(xt: Xt, mem: Mem, q: { back: Loc }, value: number): void {
  xt.modify(q.back, (list) => cons(mem, value, list));
}

/** Takes the head of `list` (new nodes, made in this attempt) and makes the rest `front`. */
function takeReversed(xt: Xt, mem: Mem, front: Loc, list: number): number | undefined {
  if (list === 0) return undefined;
  const r = rev(xt, mem, list);
  const heap = mem.heap;
  if (tl(heap, r) !== 0) xt.set(front, tl(heap, r));
  retireAfter(xt, heap, r);
  return hd(heap, r);
}

export function tryDequeue(xt: Xt, mem: Mem, q: TwoStackQueue): number | undefined {
  const heap = mem.heap;
  const f = xt.update(q.front, (list) => (list === 0 ? 0 : tl(heap, list)));
  if (f !== 0) {
    retireAfter(xt, heap, f);
    return hd(heap, f);
  }
  return takeReversed(xt, mem, q.front, xt.exchange(q.back, 0));
}

export function dequeue(xt: Xt, mem: Mem, q: TwoStackQueue): number {
  return tryDequeue(xt, mem, q) ?? Retry.later();
}

// ---------------------------------------------------- three-stack queue

export interface ThreeStackQueue {
  readonly back: Loc;
  readonly middle: Loc;
  readonly front: Loc;
}

export function queue3(heap: SharedHeap): ThreeStackQueue {
  return { back: stack(heap), middle: stack(heap), front: stack(heap) };
}

/** The quick adversarial commit: back to an empty middle. Changes no contents. */
function backToMiddle(q: ThreeStackQueue): void {
  Xt.commit((xt) => {
    const back = xt.get(q.back);
    if (back === 0 || xt.get(q.middle) !== 0) return;
    xt.set(q.middle, back);
    xt.set(q.back, 0);
  });
}

export function tryDequeue3(xt: Xt, mem: Mem, q: ThreeStackQueue): number | undefined {
  const heap = mem.heap;
  const f = xt.update(q.front, (list) => (list === 0 ? 0 : tl(heap, list)));
  if (f !== 0) {
    retireAfter(xt, heap, f);
    return hd(heap, f);
  }
  if (!xt.isInLog(q.middle) && !xt.isInLog(q.back)) backToMiddle(q);
  const middle = xt.exchange(q.middle, 0);
  if (middle !== 0) return takeReversed(xt, mem, q.front, middle);
  return takeReversed(xt, mem, q.front, xt.exchange(q.back, 0));
}

// ---------------------------------------------------------- leftist heap

/** Node: `[f64 value, left Loc, npl Loc, right Loc]`, the Locs' addresses. */
const L_BYTES = 24;

function lLoc(heap: SharedHeap, n: number, field: number): Loc {
  ensure(heap, n, L_BYTES);
  return Loc.fromAddress(heap, heap.i32[(n >> 2) + 2 + field]);
}
const LEFT = 0;
const NPL = 1;
const RIGHT = 2;

export function leftist(heap: SharedHeap): Loc {
  return Loc.make(heap, 0, { kind: "ref" });
}

function nplOf(xt: Xt, heap: SharedHeap, h: number): number {
  return h === 0 ? 0 : xt.get(lLoc(heap, h, NPL));
}

function lValue(heap: SharedHeap, n: number): number {
  ensure(heap, n, L_BYTES);
  return heap.f64[n >> 3];
}

export type Lt = (a: number, b: number) => boolean;

function merge(xt: Xt, heap: SharedHeap, lt: Lt, a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  const [h1, h2] = lt(lValue(heap, a), lValue(heap, b)) ? [a, b] : [b, a];
  const left = lLoc(heap, h1, LEFT);
  const right = lLoc(heap, h1, RIGHT);
  const l = xt.get(left);
  if (l === 0) {
    xt.set(left, h2);
  } else {
    const r = merge(xt, heap, lt, xt.get(right), h2);
    const lNpl = nplOf(xt, heap, l);
    const rNpl = nplOf(xt, heap, r);
    if (lNpl < rNpl) {
      xt.set(left, r);
      xt.set(right, l);
      xt.set(lLoc(heap, h1, NPL), lNpl + 1);
    } else {
      xt.set(right, r);
      xt.set(lLoc(heap, h1, NPL), rNpl + 1);
    }
  }
  return h1;
}

export function insert(xt: Xt, mem: Mem, lt: Lt, h: Loc, value: number): void {
  const n = mem.alloc(L_BYTES);
  const heap = mem.heap;
  heap.f64[n >> 3] = value;
  heap.i32[(n >> 2) + 2 + LEFT] = mem.loc(0).address;
  heap.i32[(n >> 2) + 2 + NPL] = mem.loc(1, "f64").address;
  heap.i32[(n >> 2) + 2 + RIGHT] = mem.loc(0).address;
  xt.set(h, merge(xt, heap, lt, n, xt.get(h)));
}

export function deleteMin(xt: Xt, lt: Lt, h: Loc): number | undefined {
  const heap = h.heap;
  const n = xt.get(h);
  if (n === 0) return undefined;
  const locs = [lLoc(heap, n, LEFT), lLoc(heap, n, NPL), lLoc(heap, n, RIGHT)];
  xt.set(h, merge(xt, heap, lt, xt.get(locs[LEFT]), xt.get(locs[RIGHT])));
  xt.postCommit(() => {
    for (const l of locs) l.free();
    heap.retire(n);
  });
  return lValue(heap, n);
}

export function removeAll(xt: Xt, lt: Lt, h: Loc): number[] {
  const out: number[] = [];
  for (let x = deleteMin(xt, lt, h); x !== undefined; x = deleteMin(xt, lt, h)) out.push(x);
  return out;
}

// ------------------------------------------------- Michael-Scott queue

/**
 * `head` and `tail` hold the address of a "next" Loc: 0 (Nil) or a node
 * `[f64 value, i32 next Loc]`. `tail` is updated outside transactions
 * (single-location CAS) and may lag.
 *
 * Manual reclamation needs one change to the tour's algorithm: a dequeue
 * that takes the node out of the Loc that `tail` names moves `tail` on in
 * the same transaction, so `tail` never names a retired Loc. With it, the
 * post-commit fix walks `tail` to the true end while pinned, and every Loc
 * it reads was reachable when it read `tail`.
 */
export interface MsQueue {
  readonly head: Loc;
  readonly tail: Loc;
}

export function msQueue(heap: SharedHeap): MsQueue {
  const next = Loc.make(heap, 0, { kind: "ref" });
  return {
    head: Loc.make(heap, next.address, { kind: "ref" }),
    tail: Loc.make(heap, next.address, { kind: "ref" }),
  };
}

export function msHandles(q: MsQueue): [LocHandle, LocHandle] {
  return [q.head.handle, q.tail.handle];
}

export function msAttach([head, tail]: [LocHandle, LocHandle]): MsQueue {
  return { head: Loc.attach(head), tail: Loc.attach(tail) };
}

function msNext(heap: SharedHeap, node: number): number {
  ensure(heap, node, 16);
  return heap.i32[(node >> 2) + 2];
}

export function msTryDequeue(xt: Xt, q: MsQueue): number | undefined {
  const heap = q.head.heap;
  const oldHead = Loc.fromAddress(heap, xt.get(q.head));
  // Logged, not `oldHead.get()`: skipping the log here allows write skew.
  const node = xt.get(oldHead);
  if (node === 0) return undefined;
  const next = msNext(heap, node);
  xt.set(q.head, next);
  if (xt.get(q.tail) === oldHead.address) xt.set(q.tail, next);
  xt.postCommit(() => {
    oldHead.free();
    heap.retire(node);
  });
  return hd(heap, node);
}

export function msEnqueue(xt: Xt, mem: Mem, q: MsQueue, value: number): void {
  const heap = mem.heap;
  // `tail` is read outside the log, before the attempt's first logged
  // access pins the heap: without this pin, the Loc it names could be
  // dequeued, retired and freed between that read and the use.
  using _pin = heap.pin();
  const newTail = mem.loc(0);
  const node = mem.alloc(16);
  heap.f64[node >> 3] = value;
  heap.i32[(node >> 2) + 2] = newTail.address;
  let last = Loc.fromAddress(heap, q.tail.get());
  for (;;) {
    const seen = xt.compareAndSwap(last, 0, node);
    if (seen === 0) break;
    last = Loc.fromAddress(heap, msNext(heap, seen));
  }
  xt.postCommit(() => fixTail(q));
}

/** Moves `tail` to the true end, helping others' lagging enqueues too. */
function fixTail(q: MsQueue): void {
  const heap = q.tail.heap;
  using _pin = heap.pin();
  for (;;) {
    const t = q.tail.get();
    const node = Loc.fromAddress(heap, t).get();
    if (node === 0) return;
    q.tail.compareAndSet(t, msNext(heap, node));
  }
}

// ------------------------------------------------ rehashable hash table

/**
 * The tour's hash table: `size`, `data` (a block `[capacity, bucket Loc
 * addresses...]`), buckets holding immutable association lists of
 * `[f64 key, i32 value Loc, i32 next]`, and `pending` (0, or the capacity
 * of a rehash that mutators cooperate to do).
 */
export interface RehashTable {
  readonly pending: Loc;
  readonly size: Loc;
  readonly data: Loc;
}

const A_BYTES = 16;

function makeBuckets(heap: SharedHeap, capacity: number, mkLoc: () => Loc, block: number): Loc[] {
  const locs = Array.from({ length: capacity }, mkLoc);
  heap.i32[block >> 2] = capacity;
  for (let i = 0; i < capacity; i++) heap.i32[(block >> 2) + 1 + i] = locs[i].address;
  return locs;
}

export function rehashTable(heap: SharedHeap): RehashTable {
  const block = heap.allocate(4 + 4 * 4);
  makeBuckets(heap, 4, () => Loc.make(heap, 0, { kind: "ref" }), block);
  return {
    pending: Loc.make(heap, 0, { kind: "i32" }),
    size: Loc.make(heap, 0, { kind: "i32" }),
    data: Loc.make(heap, block, { kind: "ref" }),
  };
}

function capacityOf(heap: SharedHeap, block: number): number {
  ensure(heap, block, 4);
  const capacity = heap.i32[block >> 2];
  ensure(heap, block, 4 + 4 * capacity);
  return capacity;
}

function bucketAt(heap: SharedHeap, block: number, i: number): Loc {
  return Loc.fromAddress(heap, heap.i32[(block >> 2) + 1 + i]);
}

function hashKey(key: number, capacity: number): number {
  return (Math.imul(key | 0, 0x9e3779b1) >>> 0) % capacity;
}

function access(xt: Xt, t: RehashTable, key: number): Loc {
  const heap = t.data.heap;
  const block = xt.get(t.data);
  return bucketAt(heap, block, hashKey(key, capacityOf(heap, block)));
}

function aKey(heap: SharedHeap, p: number): number {
  ensure(heap, p, A_BYTES);
  return heap.f64[p >> 3];
}

function aValueLoc(heap: SharedHeap, p: number): number {
  ensure(heap, p, A_BYTES);
  return heap.i32[(p >> 2) + 2];
}

function aNext(heap: SharedHeap, p: number): number {
  ensure(heap, p, A_BYTES);
  return heap.i32[(p >> 2) + 3];
}

function assoc(mem: Mem, key: number, valueLoc: number, next: number): number {
  const p = mem.alloc(A_BYTES);
  mem.heap.f64[p >> 3] = key;
  mem.heap.i32[(p >> 2) + 2] = valueLoc;
  mem.heap.i32[(p >> 2) + 3] = next;
  return p;
}

export function find(xt: Xt, t: RehashTable, key: number): number | undefined {
  const heap = t.data.heap;
  for (let p = xt.get(access(xt, t, key)); p !== 0; p = aNext(heap, p)) {
    if (aKey(heap, p) === key) return xt.get(Loc.fromAddress(heap, aValueLoc(heap, p)));
  }
  return undefined;
}

function rehash(xt: Xt, mem: Mem, t: RehashTable, capacity: number): void {
  const heap = mem.heap;
  const block = mem.alloc(4 + 4 * capacity);
  const fresh = makeBuckets(heap, capacity, () => mem.loc(0), block);
  const old = xt.exchange(t.data, block);
  const oldCapacity = capacityOf(heap, old);
  const oldLocs: Loc[] = [];
  for (let i = 0; i < oldCapacity; i++) {
    const loc = bucketAt(heap, old, i);
    oldLocs.push(loc);
    for (let p = xt.get(loc); p !== 0; p = aNext(heap, p)) {
      const key = aKey(heap, p);
      xt.modify(fresh[hashKey(key, capacity)], (list) => assoc(mem, key, aValueLoc(heap, p), list));
      retireAfter(xt, heap, p);
    }
  }
  xt.postCommit(() => {
    for (const l of oldLocs) l.free();
    heap.retire(old);
  });
}

function prepareRehash(xt: Xt, t: RehashTable, delta: number): void {
  const heap = t.data.heap;
  const tx = (x: Xt): void => {
    if (x.get(t.pending) !== 0) return;
    const size = Math.max(1, x.get(t.size) + delta);
    const capacity = capacityOf(heap, x.get(t.data));
    if (capacity < size * 4) x.set(t.pending, capacity * 2);
    else if (size * 8 < capacity) x.set(t.pending, capacity / 2);
  };
  if (xt.isInLog(t.pending)) tx(xt);
  else Xt.commit(tx);
}

function maybeRehash(xt: Xt, mem: Mem, t: RehashTable, delta: number): void {
  prepareRehash(xt, t, delta);
  const capacity = xt.get(t.pending);
  if (capacity === 0) return;
  xt.set(t.pending, 0);
  rehash(xt, mem, t, capacity);
}

export function replace(xt: Xt, mem: Mem, t: RehashTable, key: number, value: number): void {
  maybeRehash(xt, mem, t, 1);
  const heap = mem.heap;
  const bucket = access(xt, t, key);
  const list = xt.get(bucket);
  for (let p = list; p !== 0; p = aNext(heap, p)) {
    if (aKey(heap, p) === key) {
      xt.set(Loc.fromAddress(heap, aValueLoc(heap, p)), value);
      return;
    }
  }
  xt.set(bucket, assoc(mem, key, mem.loc(value, "f64").address, list));
  xt.incr(t.size);
}

export function remove(xt: Xt, mem: Mem, t: RehashTable, key: number): void {
  maybeRehash(xt, mem, t, -1);
  const heap = mem.heap;
  const bucket = access(xt, t, key);
  const before: number[] = [];
  for (let p = xt.get(bucket); p !== 0; p = aNext(heap, p)) {
    if (aKey(heap, p) !== key) {
      before.push(p);
      continue;
    }
    let rest = aNext(heap, p);
    for (let i = before.length - 1; i >= 0; i--) {
      const q = before[i];
      rest = assoc(mem, aKey(heap, q), aValueLoc(heap, q), rest);
      retireAfter(xt, heap, q);
    }
    xt.set(bucket, rest);
    xt.decr(t.size);
    const valueLoc = Loc.fromAddress(heap, aValueLoc(heap, p));
    xt.postCommit(() => {
      valueLoc.free();
      heap.retire(p);
    });
    return;
  }
}

export function tableCapacity(t: RehashTable): number {
  return Xt.commit((xt) => capacityOf(t.data.heap, xt.get(t.data)));
}

// ------------------------------------------------------- worker bodies

export interface PopDequeueArgs {
  readonly stack: LocHandle;
  readonly front: LocHandle;
  readonly back: LocHandle;
}

/** The tour's blocked worker: pops and dequeues in one transaction. */
export function popAndDequeue(ctx: WorkerContext<PopDequeueArgs>): string {
  const heap = ctx.heap!;
  const s = Loc.attach(ctx.args.stack);
  const q = { front: Loc.attach(ctx.args.front), back: Loc.attach(ctx.args.back) };
  ctx.post("started");
  const [popped, dequeued] = atomically(
    heap,
    (xt, mem) => [pop(xt, s), dequeue(xt, mem, q)],
    { timeoutMs: 20_000 },
  );
  return `I popped ${popped} and dequeued ${dequeued}!`;
}

export interface QueueWorkArgs {
  readonly kind: "ms" | "three";
  readonly locs: LocHandle[];
  readonly producers: number;
  readonly perProducer: number;
}

/**
 * Producers enqueue `index * 1e6 + i`; consumers dequeue their share
 * (blocking) and check each producer's order. Returns what was taken.
 */
export function queueWork(ctx: WorkerContext<QueueWorkArgs>): number[] {
  const heap = ctx.heap!;
  const locs = ctx.args.locs.map((h) => Loc.attach(h));
  const { producers, perProducer } = ctx.args;
  const ms = ctx.args.kind === "ms" ? { head: locs[0], tail: locs[1] } : undefined;
  const q3 = { back: locs[0], middle: locs[1], front: locs[2] };
  if (ctx.index < producers) {
    for (let i = 0; i < perProducer; i++) {
      const v = ctx.index * 1e6 + i;
      atomically(heap, (xt, mem) => {
        if (ms !== undefined) msEnqueue(xt, mem, ms, v);
        else enqueue(xt, mem, q3, v);
      });
      if ((i & 63) === 0) ctx.checkpoint();
    }
    return [];
  }
  const consumers = ctx.workers - producers;
  const c = ctx.index - producers;
  const total = producers * perProducer;
  const share = Math.floor(total / consumers) + (c < total % consumers ? 1 : 0);
  const last = new Array<number>(producers).fill(-1);
  const taken: number[] = [];
  for (let i = 0; i < share; i++) {
    const v = atomically(
      heap,
      (xt, mem) =>
        (ms !== undefined ? msTryDequeue(xt, ms) : tryDequeue3(xt, mem, q3)) ?? Retry.later(),
      { timeoutMs: 20_000 },
    );
    const p = Math.floor(v / 1e6);
    if (v % 1e6 <= last[p]) throw new Error(`producer ${p}: ${v} after ${last[p]}`);
    last[p] = v % 1e6;
    taken.push(v);
  }
  return taken;
}

/** Dequeues everything, one commit each. */
export function msDequeueAll(q: MsQueue): number[] {
  const out: number[] = [];
  for (;;) {
    const v = Xt.commit((xt) => msTryDequeue(xt, q));
    if (v === undefined) return out;
    out.push(v);
  }
}

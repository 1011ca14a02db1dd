/**
 * Memory allocated inside transaction attempts, given back when the attempt
 * does not commit. Internal to stm/data.
 *
 * A transaction may run many times, and an attempt that fails, blocks,
 * throws, or is rolled back (`Xt.first`, `rollback`) must not leak what it
 * allocated. Xt has no abort hook, so the attempt records its allocations in
 * the log itself: each (worker, heap, Xt object) has a private **marker**
 * Loc, and every allocation reads the marker (`prev`), writes a fresh id to
 * it, and remembers `(id, prev, block)`. A rollback undoes the marker write
 * together with the rest, so after the attempt ends the marker's committed
 * value names the last allocation that took effect, and following `prev`
 * from it walks exactly the allocations of the committed attempt that were
 * not rolled back. Everything else tracked was never published and is freed
 * at once.
 *
 * An attempt is known to have ended when the next allocation through the
 * same Xt object finds the marker absent from its log (a new attempt, or
 * the earlier allocations were rolled back), or when a direct form's
 * `Xt.commit` returns or throws (`commitTracked`). Until then at most one
 * attempt's allocations per Xt object wait, so leaks are bounded.
 *
 * Only the allocating worker ever writes its markers, so `marker.get()` is
 * stable while it settles. A worker that dies leaks its pending blocks.
 *
 * @module
 */

import { HeapExhaustedError, type SharedHeap, TimeoutError } from "../../memory/mod.ts";
import { type CommitOptions, Loc, type Tx, Xt } from "../mod.ts";

interface Pending {
  readonly marker: Loc;
  readonly ids: number[];
  readonly prevs: number[];
  /** A heap block (number) or a Loc made in the attempt. */
  readonly items: (number | Loc)[];
}

const states = new WeakMap<SharedHeap, WeakMap<Xt, Pending>>();
let nextId = 0;

function stateOf(heap: SharedHeap, xt: Xt, create: boolean): Pending | undefined {
  let byXt = states.get(heap);
  if (byXt === undefined) {
    if (!create) return undefined;
    states.set(heap, byXt = new WeakMap());
  }
  let st = byXt.get(xt);
  if (st === undefined && create) {
    st = { marker: Loc.make(heap, 0), ids: [], prevs: [], items: [] };
    byXt.set(xt, st);
  }
  return st;
}

/** Frees what the ended attempts of `st` allocated and did not publish. */
function settle(heap: SharedHeap, st: Pending): void {
  const n = st.ids.length;
  if (n === 0) return;
  const keep = new Uint8Array(n);
  // Ids grow, so the chain from the committed value visits indexes downwards.
  let want = st.marker.get();
  for (let i = n - 1; i >= 0; i--) {
    if (st.ids[i] === want) {
      keep[i] = 1;
      want = st.prevs[i];
    }
  }
  for (let i = 0; i < n; i++) {
    if (keep[i] === 1) continue;
    const item = st.items[i];
    if (typeof item === "number") heap.free(item);
    else item.free();
  }
  st.ids.length = 0;
  st.prevs.length = 0;
  st.items.length = 0;
}

function track(heap: SharedHeap, xt: Xt, item: number | Loc): void {
  const st = stateOf(heap, xt, true)!;
  if (!xt.isInLog(st.marker)) settle(heap, st);
  const prev = xt.get(st.marker);
  const id = ++nextId;
  xt.set(st.marker, id);
  st.ids.push(id);
  st.prevs.push(prev);
  st.items.push(item);
}

/**
 * Allocates `size` bytes for the current attempt of `xt`: the block must be
 * linked into shared state by the attempt's writes; it is freed when the
 * attempt does not commit (or the allocation is rolled back).
 */
export function allocIn(heap: SharedHeap, xt: Xt, size: number): number {
  const block = heap.allocate(size);
  try {
    track(heap, xt, block);
  } catch (e) {
    heap.free(block);
    throw e;
  }
  return block;
}

/** Like `allocIn`, for a new Loc. */
export function makeLocIn(heap: SharedHeap, xt: Xt, value: number, kind: "f64" | "ref"): Loc {
  const loc = Loc.make(heap, value, { kind });
  try {
    track(heap, xt, loc);
  } catch (e) {
    loc.free();
    throw e;
  }
  return loc;
}

/**
 * `Xt.commit(tx, options)`, then settles what its attempts allocated with
 * `allocIn`/`makeLocIn`, whatever the outcome.
 */
export function commitTracked<T>(heap: SharedHeap, tx: Tx<T>, options?: CommitOptions): T {
  let used: Xt | undefined;
  try {
    return Xt.commit((xt) => {
      used = xt;
      return tx(xt);
    }, options);
  } finally {
    if (used !== undefined) {
      const st = stateOf(heap, used, false);
      if (st !== undefined) settle(heap, st);
    }
  }
}

/** The async twin of `commitTracked`. */
export async function commitTrackedAsync<T>(
  heap: SharedHeap,
  tx: Tx<T>,
  options?: CommitOptions,
): Promise<T> {
  const used = new Set<Xt>();
  try {
    return await Xt.commitAsync((xt) => {
      used.add(xt);
      return tx(xt);
    }, options);
  } finally {
    for (const xt of used) {
      const st = stateOf(heap, xt, false);
      if (st !== undefined) settle(heap, st);
    }
  }
}

/** Retires `block` once `xt`'s attempt has committed. */
export function retireAfter(heap: SharedHeap, xt: Xt, block: number): void {
  xt.postCommit(() => heap.retire(block));
}

// ------------------------------------------------------- immutable nodes

/**
 * An immutable list node: `[f64 value, i32 next, i32 count]` (16 bytes),
 * `count` being the length of the list it starts. Filled before the commit
 * that publishes it, never changed, retired through epochs: pattern (b).
 */
export const NODE_BYTES = 16;

/** The value of node `p` (the caller is pinned, as inside a transaction). */
export function nodeValue(heap: SharedHeap, p: number): number {
  if (p + NODE_BYTES > heap.mappedBytes) heap.ensure(p + NODE_BYTES);
  return heap.f64[p >> 3];
}

/** The next node of node `p`. */
export function nodeNext(heap: SharedHeap, p: number): number {
  if (p + NODE_BYTES > heap.mappedBytes) heap.ensure(p + NODE_BYTES);
  return heap.i32[(p >> 2) + 2];
}

/** The length of the list that node `p` starts (0 for null). */
export function nodeCount(heap: SharedHeap, p: number): number {
  if (p === 0) return 0;
  if (p + NODE_BYTES > heap.mappedBytes) heap.ensure(p + NODE_BYTES);
  return heap.i32[(p >> 2) + 3];
}

/** A new node `value :: next`, allocated for `xt`'s attempt. */
export function cons(heap: SharedHeap, xt: Xt, value: number, next: number): number {
  return fillNode(heap, allocIn(heap, xt, NODE_BYTES), value, next);
}

/** Writes node `value :: next` into the unpublished block `p`; returns `p`. */
export function fillNode(heap: SharedHeap, p: number, value: number, next: number): number {
  const count = nodeCount(heap, next) + 1;
  heap.f64[p >> 3] = value;
  const i32 = heap.i32;
  i32[(p >> 2) + 2] = next;
  i32[(p >> 2) + 3] = count;
  return p;
}

/**
 * Up to `wanted` node blocks for `xt`'s attempt (see allocIn): fewer where
 * the heap runs out of room, so that a transaction that frees memory can
 * still do part of its work on a full heap.
 */
export function allocNodesIn(heap: SharedHeap, xt: Xt, wanted: number): number[] {
  const blocks: number[] = [];
  try {
    while (blocks.length < wanted) blocks.push(allocIn(heap, xt, NODE_BYTES));
  } catch (e) {
    if (!(e instanceof HeapExhaustedError)) throw e;
  }
  return blocks;
}

/**
 * Marks `xt`'s attempt as one that frees memory (a take, a remove, a
 * clear), so that its commit may use the cells and descriptors that each
 * worker keeps for a full heap. Not for one that adds data (see
 * `Xt.allowReserve`).
 */
export function freesMemory(xt: Xt): void {
  xt["allowReserve"]();
}

/**
 * Runs a blocking call's commit, and renames a `TimeoutError` from it, and
 * its refusal of the options passed through, after the call (`what`, such
 * as "call Queue.take"): the commit's own say only "commit transaction".
 */
export function timingOutAs<T>(what: string, commit: () => T): T {
  try {
    return commit();
  } catch (e) {
    throw renamedCommitError(e, what);
  }
}

/** The async twin of `timingOutAs`. */
export async function timingOutAsAsync<T>(what: string, commit: () => Promise<T>): Promise<T> {
  try {
    return await commit();
  } catch (e) {
    throw renamedCommitError(e, what);
  }
}

/** How the commit's errors about its options begin. */
const COMMIT_OPTION_ERROR = "Cannot commit transaction as '";

/**
 * An error of the commit behind `what` ("call Queue.take"), renamed for it:
 * a timeout, and a refusal of the options that the caller passed through.
 */
function renamedCommitError(error: unknown, what: string): unknown {
  if (error instanceof TimeoutError) return new TimeoutError(what, error.timeoutMs);
  if (
    (error instanceof TypeError || error instanceof RangeError) &&
    error.message.startsWith(COMMIT_OPTION_ERROR)
  ) {
    const rest = error.message.slice(COMMIT_OPTION_ERROR.length - 1);
    return new (error.constructor as ErrorConstructor)(`Cannot ${what} as ${rest}`);
  }
  return error;
}

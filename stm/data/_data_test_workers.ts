/**
 * Worker bodies for the multi-worker stm/data tests (data_workers_test.ts).
 *
 * @module
 */

import {
  Accumulator,
  type AccumulatorHandle,
  Dllist,
  type DllistHandle,
  type DllistNode,
  Hashtbl,
  type HashtblHandle,
  Mvar,
  type MvarHandle,
  Queue,
  type QueueHandle,
  Stack,
  type StackHandle,
} from "./mod.ts";
import { Loc, type LocHandle, Retry, Xt } from "../mod.ts";
import type { WorkerContext } from "../../testing/harness.ts";
import { HeapExhaustedError } from "../../memory/mod.ts";

export interface PhilosopherArgs {
  readonly forks: readonly MvarHandle[];
  readonly eaten: readonly LocHandle[];
  readonly minRounds: number;
}

/**
 * The dining philosophers of kcas's tour: philosopher i takes forks i and
 * i + 1 in one transaction (waiting until both are free), eats, puts them
 * back, and goes on until everyone has eaten `minRounds` times.
 */
export function philosopher(ctx: WorkerContext<PhilosopherArgs>): number {
  const forks = ctx.args.forks.map((h) => Mvar.attach(h));
  const eaten = ctx.args.eaten.map((h) => Loc.attach(h));
  const n = forks.length;
  const left = forks[ctx.index];
  const right = forks[(ctx.index + 1) % n];
  let meals = 0;
  while (eaten.some((e) => e.get() < ctx.args.minRounds)) {
    const [l, r] = Xt.commit((xt) => [left.xtTake(xt), right.xtTake(xt)], { timeoutMs: 20_000 });
    if (l !== ctx.index || r !== (ctx.index + 1) % n) throw new Error(`wrong forks ${l}, ${r}`);
    eaten[ctx.index].incr();
    meals++;
    left.put(l);
    right.put(r);
    if ((meals & 31) === 0) ctx.checkpoint();
  }
  return meals;
}

export interface PipelineArgs {
  readonly queue: QueueHandle;
  readonly sum: AccumulatorHandle;
  readonly producers: number;
  readonly perProducer: number;
}

/**
 * Producers add 1..perProducer to a small bounded queue (waiting while it
 * is full); consumers take (waiting while empty, sync or async by index)
 * and add what they take to a shared Accumulator.
 */
export async function pipeline(ctx: WorkerContext<PipelineArgs>): Promise<number> {
  const queue = Queue.attach(ctx.args.queue);
  const sum = Accumulator.attach(ctx.args.sum);
  const { producers, perProducer } = ctx.args;
  if (ctx.index < producers) {
    for (let i = 1; i <= perProducer; i++) {
      if (i % 2 === 0) queue.add(i, { timeoutMs: 20_000 });
      else await queue.addAsync(i, { timeoutMs: 20_000 });
    }
    return perProducer;
  }
  const consumers = ctx.workers - producers;
  const c = ctx.index - producers;
  const total = producers * perProducer;
  const share = Math.floor(total / consumers) + (c < total % consumers ? 1 : 0);
  for (let i = 0; i < share; i++) {
    const v = c % 2 === 0
      ? queue.take({ timeoutMs: 20_000 })
      : await queue.takeAsync({ timeoutMs: 20_000 });
    sum.add(v);
  }
  return share;
}

// ------------------------------------------------- node-based structures

export interface QueueArgs {
  readonly queue: QueueHandle;
  readonly producers: number;
  readonly perProducer: number;
}

/**
 * Producers add `index * 1e6 + i` to an unbounded queue; consumers take a
 * fixed share (sync or async by index) and check that each producer's
 * numbers arrive in order. Returns what a consumer took.
 */
export async function unboundedQueue(ctx: WorkerContext<QueueArgs>): Promise<number[]> {
  const queue = Queue.attach(ctx.args.queue);
  const { producers, perProducer } = ctx.args;
  if (ctx.index < producers) {
    for (let i = 0; i < perProducer; i++) {
      if (i % 3 === 0) Xt.commit((xt) => queue.xtAdd(xt, ctx.index * 1e6 + i));
      else queue.add(ctx.index * 1e6 + i);
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
    const v = c % 2 === 0
      ? queue.take({ timeoutMs: 20_000 })
      : await queue.takeAsync({ timeoutMs: 20_000 });
    const p = Math.floor(v / 1e6);
    if (v % 1e6 <= last[p]) throw new Error(`producer ${p}: ${v} after ${last[p]}`);
    last[p] = v % 1e6;
    taken.push(v);
  }
  return taken;
}

export interface StackArgs {
  readonly stack: StackHandle;
  readonly perWorker: number;
}

/** Pushes `index * 1e6 + i` and pops at random; returns what it popped. */
export function unboundedStack(ctx: WorkerContext<StackArgs>): number[] {
  const stack = Stack.attach(ctx.args.stack);
  const popped: number[] = [];
  for (let i = 0; i < ctx.args.perWorker; i++) {
    stack.push(ctx.index * 1e6 + i);
    if (ctx.random() < 0.4) {
      const v = stack.tryPop();
      if (v !== undefined) popped.push(v);
    }
    if (ctx.random() < 0.1) {
      // Two pops at once, or none.
      const pair = Xt.commit((xt) => {
        if (stack.xtLength(xt) < 2) return [];
        return [stack.xtPop(xt), stack.xtPop(xt)];
      });
      popped.push(...pair);
    }
    if ((i & 63) === 0) ctx.checkpoint();
  }
  return popped;
}

export interface HashtblArgs {
  readonly table: HashtblHandle;
  readonly keys: number;
  readonly rounds: number;
}

/**
 * Sets and removes the keys it owns (`k % workers === index`) at random,
 * reading other keys meanwhile; returns its own keys' final contents.
 */
export function hashtblOwner(ctx: WorkerContext<HashtblArgs>): [number, number][] {
  const table = Hashtbl.attach(ctx.args.table);
  const model = new Map<number, number>();
  const own = (r: number) => {
    const k = r * ctx.workers + ctx.index;
    return k;
  };
  const perWorker = Math.ceil(ctx.args.keys / ctx.workers);
  for (let round = 0; round < ctx.args.rounds; round++) {
    const key = own(ctx.randomInt(perWorker));
    const roll = ctx.random();
    // Grow phases and shrink phases, so that the table rehashes both ways.
    const removing = Math.floor(round / 200) % 2 === 1;
    if (roll < (removing ? 0.2 : 0.7)) {
      const value = round;
      table.set(key, value);
      model.set(key, value);
    } else if (roll < 0.95) {
      const had = model.get(key);
      if (table.remove(key) !== had) throw new Error(`remove ${key}: expected ${had}`);
      model.delete(key);
    } else {
      // Two own keys at once, plus a read of someone else's.
      const other = own(ctx.randomInt(perWorker));
      Xt.commit((xt) => {
        table.xtSet(xt, key, -1);
        table.xtSet(xt, other, -2);
        table.xtGet(xt, key + 1);
      });
      model.set(key, -1);
      model.set(other, -2);
    }
    if (table.get(key) !== model.get(key)) throw new Error(`get ${key}`);
    if ((round & 63) === 0) ctx.checkpoint();
  }
  return [...model];
}

export interface DllistArgs {
  readonly list: DllistHandle;
  readonly rounds: number;
}

/**
 * Adds nodes to a shared list and moves and removes only its own nodes;
 * returns the values of its nodes still in the list.
 */
export function dllistOwner(ctx: WorkerContext<DllistArgs>): number[] {
  const list = Dllist.attach(ctx.args.list);
  const mine: DllistNode[] = [];
  let next = 0;
  for (let round = 0; round < ctx.args.rounds; round++) {
    const roll = ctx.random();
    if (mine.length === 0 || roll < 0.35) {
      const value = ctx.index * 1e6 + next++;
      mine.push(roll < 0.17 ? list.addFirst(value) : list.addLast(value));
    } else {
      const i = ctx.randomInt(mine.length);
      const node = mine[i];
      if (roll < 0.6) {
        list.remove(node);
        mine.splice(i, 1);
      } else if (roll < 0.8) {
        list.moveFirst(node);
      } else if (roll < 0.95) {
        list.moveLast(node);
      } else if (mine.length >= 2) {
        // Swap the ends of two own nodes, atomically.
        const other = mine[(i + 1) % mine.length];
        Xt.commit((xt) => {
          list.xtMoveFirst(xt, other);
          list.xtMoveLast(xt, node);
        });
      }
    }
    if ((round & 63) === 0) ctx.checkpoint();
  }
  return mine.map((n) => n.value);
}

export interface DllistRaceArgs {
  readonly list: DllistHandle;
  /** Addresses of the nodes every worker races on. */
  readonly shared: number[];
  readonly rounds: number;
}

export interface DllistRaceReport {
  /** Values of the nodes this worker removed (remove returned true, or taken). */
  readonly removed: number[];
  /** Values this worker added. */
  readonly added: number[];
  /** Operations through handles of removed nodes that returned true (must be 0). */
  readonly staleHits: number;
}

/**
 * Every worker removes and moves the same shared nodes, adds its own (which
 * reuse the memory of removed ones) and keeps using handles of nodes that
 * others removed: those must only ever get `false`.
 */
export function dllistRace(ctx: WorkerContext<DllistRaceArgs>): DllistRaceReport {
  const list = Dllist.attach(ctx.args.list);
  const handles = ctx.args.shared.map((a) => list.nodeAt(a));
  const removed: number[] = [];
  const added: number[] = [];
  const dead: DllistNode[] = [];
  let staleHits = 0;
  let next = 0;
  ctx.barrier.wait();
  for (let round = 0; round < ctx.args.rounds; round++) {
    const roll = ctx.random();
    if (roll < 0.2) {
      const value = (ctx.index + 1) * 1e6 + next++;
      handles.push(roll < 0.1 ? list.addFirst(value) : list.addLast(value));
      added.push(value);
    } else if (roll < 0.3) {
      const value = list.tryTakeFirst();
      if (value !== undefined) removed.push(value);
    } else if (roll < 0.4 && dead.length > 0) {
      const stale = dead[ctx.randomInt(dead.length)];
      if (list.remove(stale) || list.moveLast(stale)) staleHits++;
    } else if (handles.length > 0) {
      const i = ctx.randomInt(handles.length);
      const node = handles[i];
      const r = ctx.random();
      if (r < 0.5) {
        if (list.remove(node)) removed.push(node.value);
        // Removed now, by this worker or another: the handle is stale from here.
        handles[i] = handles[handles.length - 1];
        handles.pop();
        dead.push(node);
      } else if (r < 0.75) {
        list.moveFirst(node);
      } else {
        list.moveLast(node);
      }
    }
    if ((round & 63) === 0) ctx.checkpoint();
  }
  return { removed, added, staleHits };
}

export interface DllistHandoffArgs {
  readonly list: DllistHandle;
  /** Batches the producer (worker 0) adds; the consumer (worker 1) takes them all. */
  readonly batches: number;
  readonly batch: number;
}

/**
 * Worker 0 adds `batch` values, waits until worker 1 has taken them all,
 * and again, `batches` times: the list never holds more than `batch`
 * nodes, but every removal happens in another worker than every insert.
 */
export function dllistHandoff(ctx: WorkerContext<DllistHandoffArgs>): number {
  const list = Dllist.attach(ctx.args.list);
  const { batches, batch } = ctx.args;
  ctx.barrier.wait();
  let sum = 0;
  for (let b = 0; b < batches; b++) {
    if (ctx.index === 0) {
      for (let i = 0; i < batch; i++) list.addLast(b * batch + i);
      Xt.commit((xt) => {
        if (!list.xtIsEmpty(xt)) Retry.later();
      }, { timeoutMs: 20_000 });
    } else {
      for (let i = 0; i < batch; i++) sum += list.takeFirst({ timeoutMs: 20_000 });
    }
    if ((b & 15) === 0) ctx.checkpoint();
  }
  return sum;
}

export interface AddArgs {
  readonly sum: AccumulatorHandle;
  readonly delta: number;
}

/** Adds `delta` to the accumulator, in this worker's own shard. */
export function addToAccumulator(ctx: WorkerContext<AddArgs>): number {
  Accumulator.attach(ctx.args.sum).add(ctx.args.delta);
  return ctx.heap!.slot;
}

export interface ClearRaceArgs {
  readonly queue: QueueHandle;
  readonly stack: StackHandle;
  readonly table: HashtblHandle;
  readonly rounds: number;
}

/** What one worker of `clearRace` did. */
export interface ClearRaceReport {
  /** Numbers it added to the queue, pushed and set as table keys (all distinct). */
  readonly added: number[];
  readonly taken: number[];
  readonly popped: number[];
  readonly removed: number[];
  /** Queue and stack lengths at each of its clears, summed. */
  readonly queueCleared: number;
  readonly stackCleared: number;
  /** Table keys that its clears removed. */
  readonly tableCleared: number[];
}

/**
 * Adds distinct numbers to a queue, a stack and a table, takes and removes
 * some, and now and then clears all three, each clear in a transaction that
 * also records what it removed.
 */
export function clearRace(ctx: WorkerContext<ClearRaceArgs>): ClearRaceReport {
  const queue = Queue.attach(ctx.args.queue);
  const stack = Stack.attach(ctx.args.stack);
  const table = Hashtbl.attach(ctx.args.table);
  const report = {
    added: [] as number[],
    taken: [] as number[],
    popped: [] as number[],
    removed: [] as number[],
    queueCleared: 0,
    stackCleared: 0,
    tableCleared: [] as number[],
  };
  for (let i = 0; i < ctx.args.rounds; i++) {
    const v = ctx.index * 1e6 + i;
    queue.add(v);
    stack.push(v);
    table.set(v, i);
    report.added.push(v);
    const roll = ctx.random();
    if (roll < 0.3) {
      const t = queue.tryTake();
      if (t !== undefined) report.taken.push(t);
      const p = stack.tryPop();
      if (p !== undefined) report.popped.push(p);
      const k = (ctx.randomInt(ctx.workers)) * 1e6 + ctx.randomInt(i + 1);
      if (table.remove(k) !== undefined) report.removed.push(k);
    } else if (roll < 0.33) {
      const [q, s, keys] = Xt.commit((xt) => {
        const q = queue.xtLength(xt);
        const s = stack.xtLength(xt);
        const keys = table.xtEntries(xt).map(([k]) => k);
        queue.xtClear(xt);
        stack.xtClear(xt);
        table.xtClear(xt);
        return [q, s, keys] as const;
      });
      report.queueCleared += q;
      report.stackCleared += s;
      report.tableCleared.push(...keys);
    } else if (roll < 0.36) {
      // Each on its own.
      report.queueCleared += Xt.commit((xt) => {
        const n = queue.xtLength(xt);
        queue.xtClear(xt);
        return n;
      });
      report.stackCleared += Xt.commit((xt) => {
        const n = stack.xtLength(xt);
        stack.xtClear(xt);
        return n;
      });
    }
    if ((i & 63) === 0) ctx.checkpoint();
  }
  return report;
}

export interface FullHeapQueueArgs {
  readonly queue: QueueHandle;
  readonly producers: number;
}

/** What a fullHeapQueue worker did. */
export interface FullHeapQueueReport {
  /** How many numbers it added before the heap refused one (producers). */
  readonly added: number;
  /** What it took, in order. */
  readonly taken: number[];
  /**
   * Takes that threw HeapExhaustedError, then tried again after 1 ms: a
   * worker that never allocated in the full heap has no room of its own
   * until the others' takes free some.
   */
  readonly refused: number;
}

/**
 * Producers (the first `producers` workers) add `index * 1e6 + i` until the
 * heap is full; then every worker takes until the queue is empty, checking
 * each producer's order.
 */
export async function fullHeapQueue(
  ctx: WorkerContext<FullHeapQueueArgs>,
): Promise<FullHeapQueueReport> {
  const queue = Queue.attach(ctx.args.queue);
  let added = 0;
  if (ctx.index < ctx.args.producers) {
    try {
      for (;; added++) {
        queue.add(ctx.index * 1e6 + added);
        if ((added & 255) === 0) ctx.checkpoint();
      }
    } catch (e) {
      if (!(e instanceof HeapExhaustedError)) throw e;
    }
  }
  ctx.barrier.wait();
  const taken: number[] = [];
  // (With no producers, the queue holds the main thread's numbers: producer 0's.)
  const last = new Array<number>(Math.max(1, ctx.args.producers)).fill(-1);
  let refused = 0;
  for (;;) {
    let v: number | undefined;
    try {
      v = queue.tryTake();
    } catch (e) {
      if (!(e instanceof HeapExhaustedError)) throw e;
      refused++;
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    if (v === undefined) break;
    const p = Math.floor(v / 1e6);
    if (v % 1e6 <= last[p]) throw new Error(`producer ${p}: ${v} after ${last[p]}`);
    last[p] = v % 1e6;
    taken.push(v);
    if ((taken.length & 255) === 0) ctx.checkpoint();
  }
  return { added, taken, refused };
}

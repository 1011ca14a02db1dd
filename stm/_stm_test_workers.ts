/**
 * Worker bodies for the multi-worker STM tests (stm_workers_test.ts). Each
 * export runs inside a worker started by the testing harness; a worker that
 * sees something wrong throws, which fails the test with its seed.
 *
 * @module
 */

import { Loc, type LocHandle, Op, Retry, Xt } from "./mod.ts";
import { faultInjection, TimeoutError } from "../memory/mod.ts";
import type { WorkerContext } from "../testing/harness.ts";
import { Domain, H_WAITING } from "./_kcas.ts";
import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
} from "../testing/history.ts";

function attachAll(handles: readonly LocHandle[]): Loc[] {
  return handles.map((h) => Loc.attach(h));
}

/** Waits until word `at` of `flags` reaches `value`, staying stoppable. */
function awaitWord(
  ctx: WorkerContext<unknown>,
  flags: Int32Array,
  at: number,
  value: number,
): void {
  while (Atomics.load(flags, at) < value) {
    ctx.checkpoint();
    Atomics.wait(flags, at, Atomics.load(flags, at), 20);
  }
}

// ---------------------------------------------------------------------------
// Bank

export interface BankArgs {
  readonly accounts: readonly LocHandle[];
  readonly total: number;
  /** Workers below this index transfer; the others audit. */
  readonly writers: number;
  readonly transfers: number;
  /** Int32 words: [0] writers finished. */
  readonly flags: SharedArrayBuffer;
}

export interface BankReport {
  readonly commits: number;
  /** Attempts (committed or not) that saw a sum other than the total. */
  readonly violations: number;
  readonly attempts: number;
}

/**
 * Writers move random amounts between random accounts, with Xt.commit (2 or
 * 3 accounts), Op.atomically and Xt.first; auditors sum every account in a
 * read-only transaction and check the total inside the transaction body,
 * in every attempt.
 */
export function bank(ctx: WorkerContext<BankArgs>): BankReport {
  const accounts = attachAll(ctx.args.accounts);
  const n = accounts.length;
  const flags = new Int32Array(ctx.args.flags);
  let violations = 0;
  let attempts = 0;
  let commits = 0;
  if (ctx.index < ctx.args.writers) {
    for (let t = 0; t < ctx.args.transfers; t++) {
      const i = ctx.randomInt(n);
      const j = (i + 1 + ctx.randomInt(n - 1)) % n;
      const k = (j + 1 + ctx.randomInt(n - 1)) % n;
      const amount = 1 + ctx.randomInt(50);
      switch (ctx.randomInt(5)) {
        case 0:
        case 1:
          Xt.commit((xt) => {
            xt.fetchAndAdd(accounts[i], -amount);
            xt.fetchAndAdd(accounts[j], amount);
          });
          break;
        case 2:
          if (k !== i) {
            Xt.commit((xt) => {
              // Read a third account too, and make the transfer depend on it.
              const extra = xt.get(accounts[k]) > 0 ? 1 : 0;
              xt.fetchAndAdd(accounts[i], -amount - extra);
              xt.fetchAndAdd(accounts[j], amount + extra);
            }, { mode: ctx.randomInt(2) === 0 ? "lock-free" : "obstruction-free" });
          }
          break;
        case 3:
          for (;;) {
            const a = accounts[i].get();
            const b = accounts[j].get();
            if (
              Op.atomically([
                Op.cas(accounts[i], a, a - amount),
                Op.cas(accounts[j], b, b + amount),
              ])
            ) {
              break;
            }
          }
          break;
        case 4:
          Xt.commit(Xt.first([
            (xt) => {
              Retry.unless(xt.get(accounts[i]) >= amount);
              xt.fetchAndAdd(accounts[i], -amount);
              xt.fetchAndAdd(accounts[j], amount);
            },
            (xt) => {
              xt.fetchAndAdd(accounts[j], -amount);
              xt.fetchAndAdd(accounts[i], amount);
            },
          ]));
          break;
      }
      commits++;
    }
    Atomics.add(flags, 0, 1);
  } else {
    while (Atomics.load(flags, 0) < ctx.args.writers) {
      const sum = Xt.commit((xt) => {
        attempts++;
        let s = 0;
        for (let i = 0; i < n; i++) s += xt.get(accounts[i]);
        if (s !== ctx.args.total) violations++; // inside the attempt: opacity
        return s;
      });
      if (sum !== ctx.args.total) {
        throw new Error(`committed audit saw ${sum}, total ${ctx.args.total}`);
      }
      commits++;
    }
  }
  return { commits, violations, attempts };
}

// ---------------------------------------------------------------------------
// Read skew (the experiment of kcas's tour)

export interface SkewArgs {
  readonly a: LocHandle;
  readonly b: LocHandle;
  readonly rounds: number;
  /** Int32 words: [0] readers finished. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Worker 0 increments a and decrements b in one transaction until the
 * readers are done; the readers check, inside each attempt, that a + b is
 * 0, and fail with "read skew" otherwise.
 */
export function readSkew(ctx: WorkerContext<SkewArgs>): string {
  const a = Loc.attach(ctx.args.a);
  const b = Loc.attach(ctx.args.b);
  const flags = new Int32Array(ctx.args.flags);
  const readers = ctx.workers - 1;
  if (ctx.index === 0) {
    let updates = 0;
    while (Atomics.load(flags, 0) < readers) {
      Xt.commit((xt) => {
        xt.incr(a);
        xt.decr(b);
      });
      updates++;
    }
    return `updater: ${updates}`;
  }
  for (let i = 0; i < ctx.args.rounds; i++) {
    Xt.commit((xt) => {
      if (xt.get(a) + xt.get(b) !== 0) throw new Error("read skew");
    });
  }
  Atomics.add(flags, 0, 1);
  return "no read skew";
}

// ---------------------------------------------------------------------------
// Linearizability of k-CAS

export interface KcasArgs {
  /** LOCS locations per round. */
  readonly locs: readonly LocHandle[];
  readonly perRound: number;
  readonly opsPerRound: number;
  readonly clock: HistoryClockHandle;
}

/**
 * Random Op.atomically lists (1 to 3 entries, CAS and CMP), single gets and
 * whole snapshots through a read-only transaction, on a fresh set of
 * locations per round, recorded for the checker.
 */
export function kcasHistories(ctx: WorkerContext<KcasArgs>): OpRecord[][] {
  const locs = attachAll(ctx.args.locs);
  const per = ctx.args.perRound;
  const rounds = locs.length / per;
  const clock = HistoryClock.attach(ctx.args.clock);
  const out: OpRecord[][] = [];
  for (let round = 0; round < rounds; round++) {
    ctx.barrier.wait();
    const mine = locs.slice(round * per, (round + 1) * per);
    const rec = new HistoryRecorder(ctx.index, clock);
    for (let k = 0; k < ctx.args.opsPerRound; k++) {
      const r = ctx.randomInt(10);
      if (r < 6) {
        const count = 1 + ctx.randomInt(Math.min(3, per));
        const start = ctx.randomInt(per);
        const spec: [number, number, number, boolean][] = [];
        for (let e = 0; e < count; e++) {
          const i = (start + e) % per;
          spec.push([i, ctx.randomInt(3), ctx.randomInt(3), ctx.randomInt(3) === 0]);
        }
        const id = rec.invoke("kcas", [spec]);
        const ok = Op.atomically(
          spec.map(([i, expected, desired, cmp]) =>
            cmp ? Op.cmp(mine[i], expected) : Op.cas(mine[i], expected, desired)
          ),
          { mode: ctx.randomInt(2) === 0 ? "lock-free" : "obstruction-free" },
        );
        rec.respond(id, ok);
      } else if (r < 8) {
        const i = ctx.randomInt(per);
        const id = rec.invoke("get", [i]);
        rec.respond(id, mine[i].get());
      } else if (r < 9) {
        const id = rec.invoke("snapshot", []);
        rec.respond(id, Xt.commit((xt) => mine.map((l) => xt.get(l))));
      } else {
        const i = ctx.randomInt(per);
        const v = ctx.randomInt(3);
        const id = rec.invoke("exchange", [i, v]);
        rec.respond(id, mine[i].exchange(v));
      }
    }
    out.push(rec.records);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Blocking

export interface BlockingArgs {
  readonly x: LocHandle;
  readonly y: LocHandle;
  /** Int32 words: [0] waiters about to block, [1] timeouts seen. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Worker 0 blocks in a sync Xt.commit until x and y are both positive, then
 * takes both; worker 1 does the same with commitAsync (on the same
 * condition, taking one each from x and y); worker 2 checks that a wait
 * with a timeout throws TimeoutError, then, once both waiters announced
 * themselves, sets x, waits, and sets y (and so on): each waiter must be
 * woken by worker 2's commits.
 */
export async function blocking(ctx: WorkerContext<BlockingArgs>): Promise<string> {
  const x = Loc.attach(ctx.args.x);
  const y = Loc.attach(ctx.args.y);
  const flags = new Int32Array(ctx.args.flags);
  const take = (xt: Xt) => {
    const vx = xt.get(x);
    const vy = xt.get(y);
    Retry.unless(vx > 0 && vy > 0);
    xt.set(x, vx - 1);
    xt.set(y, vy - 1);
    return `${vx},${vy}`;
  };
  if (ctx.index === 0) {
    Atomics.add(flags, 0, 1);
    return `sync ${Xt.commit(take)}`;
  }
  if (ctx.index === 1) {
    Atomics.add(flags, 0, 1);
    return `async ${await Xt.commitAsync(take)}`;
  }
  try {
    Xt.commit((xt) => Retry.unless(xt.get(x) < 0), { timeoutMs: 30 });
    throw new Error("no timeout");
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
  }
  try {
    await Xt.commitAsync((xt) => Retry.unless(xt.get(y) < 0), { timeoutMs: 30 });
    throw new Error("no async timeout");
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
  }
  awaitWord(ctx, flags, 0, 2);
  await new Promise((r) => setTimeout(r, 30)); // let them park (not required for correctness)
  x.set(2); // not enough yet: both stay blocked (or re-block)
  await new Promise((r) => setTimeout(r, 30));
  y.set(2);
  // Both must wake and take one each.
  while (x.get() !== 0 || y.get() !== 0) {
    ctx.checkpoint();
    await new Promise((r) => setTimeout(r, 5));
  }
  return "committer";
}

export interface ChannelArgs {
  readonly items: LocHandle;
  readonly taken: LocHandle;
  readonly producers: number;
  readonly perProducer: number;
}

/**
 * Producers add items one at a time; consumers take one at a time and block
 * (sync or async, by index) while there are none. Every item must be taken:
 * a lost wake-up leaves a consumer parked and the test times out.
 */
export async function channel(ctx: WorkerContext<ChannelArgs>): Promise<number> {
  const items = Loc.attach(ctx.args.items);
  const taken = Loc.attach(ctx.args.taken);
  const { producers, perProducer } = ctx.args;
  const consumers = ctx.workers - producers;
  const total = producers * perProducer;
  if (ctx.index < producers) {
    for (let i = 0; i < perProducer; i++) {
      items.incr();
      if (i % 64 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    return perProducer;
  }
  const c = ctx.index - producers;
  const share = Math.floor(total / consumers) + (c < total % consumers ? 1 : 0);
  const takeOne = (xt: Xt) => {
    const n = xt.get(items);
    Retry.unless(n > 0);
    xt.set(items, n - 1);
    xt.incr(taken);
  };
  for (let i = 0; i < share; i++) {
    if (c % 2 === 0) Xt.commit(takeOne, { timeoutMs: 20_000 });
    else await Xt.commitAsync(takeOne, { timeoutMs: 20_000 });
  }
  return share;
}

// ---------------------------------------------------------------------------
// Workers dying inside commits

export interface DieBeforeNotifyArgs {
  readonly x: LocHandle;
  /** Waiters to see registered in the domain before worker 1 commits. */
  readonly waiters: number;
}

/**
 * Worker 0 blocks (sync) until `x` holds 1. Worker 1 waits until `waiters`
 * transactions are parked, then sets `x` to 1 and stops for good right
 * after winning its commit, before it notifies anyone.
 */
export function dieBeforeNotify(ctx: WorkerContext<DieBeforeNotifyArgs>): string {
  const x = Loc.attach(ctx.args.x);
  if (ctx.index === 0) {
    return Xt.commit((xt) => {
      Retry.unless(xt.get(x) === 1);
      return "sync";
    }, { timeoutMs: 20_000 });
  }
  const words = Domain.of(ctx.heap!).words;
  while (Atomics.load(words, H_WAITING) < ctx.args.waiters) {
    ctx.checkpoint();
    Atomics.wait(words, H_WAITING, Atomics.load(words, H_WAITING), 5);
  }
  faultInjection.hook = (site) => {
    if (site === "stm.committed") {
      ctx.post("dying");
      ctx.hang();
    }
  };
  x.set(1);
  throw new Error("the commit should have stopped at stm.committed");
}

export interface DyingArgs {
  readonly accounts: readonly LocHandle[];
  /** Workers below this index die at `site`, on visit `after[index]`. */
  readonly doomed: number;
  readonly site: string;
  readonly after: readonly number[];
  readonly transfers: number;
}

/**
 * Doomed workers transfer until their crash point stops them for good
 * (posting "dying" first); survivors run `transfers` transfers and must
 * finish whatever the dead left behind. Transfers keep the sum.
 */
export function transfersUntilDeath(ctx: WorkerContext<DyingArgs>): number {
  const accounts = attachAll(ctx.args.accounts);
  const n = accounts.length;
  const doomed = ctx.index < ctx.args.doomed;
  if (doomed) {
    let visits = 0;
    const after = ctx.args.after[ctx.index];
    faultInjection.hook = (site) => {
      if (site === ctx.args.site && ++visits === after) {
        ctx.post("dying");
        ctx.hang();
      }
    };
  }
  const limit = doomed ? 1_000_000 : ctx.args.transfers;
  for (let t = 0; t < limit; t++) {
    const i = ctx.randomInt(n);
    const j = (i + 1 + ctx.randomInt(n - 1)) % n;
    const k = (j + 1 + ctx.randomInt(n - 1)) % n;
    const amount = 1 + ctx.randomInt(9);
    switch (ctx.randomInt(4)) {
      case 0:
        Xt.commit((xt) => {
          xt.fetchAndAdd(accounts[i], -amount);
          xt.fetchAndAdd(accounts[j], amount);
        });
        break;
      case 1:
        Xt.commit((xt) => {
          // A read-only entry, validated (obstruction-free) or installed.
          if (k !== i && k !== j) xt.get(accounts[k]);
          xt.fetchAndAdd(accounts[i], -amount);
          xt.fetchAndAdd(accounts[j], amount);
        }, { mode: ctx.randomInt(2) === 0 ? "lock-free" : "obstruction-free" });
        break;
      case 2:
        accounts[i].update((v) => v); // a single-location commit that keeps the sum
        break;
      case 3:
        for (;;) {
          const a = accounts[i].get();
          const b = accounts[j].get();
          if (
            Op.atomically([Op.cas(accounts[i], a, a - amount), Op.cas(accounts[j], b, b + amount)])
          ) {
            break;
          }
        }
        break;
    }
    if ((t & 63) === 0) ctx.checkpoint();
  }
  if (doomed) throw new Error(`never reached crash point ${ctx.args.site}`);
  return limit;
}

// ---------------------------------------------------------------------------
// Stale views

export interface StaleArgs {
  readonly x: LocHandle;
  /** Int32 words: [0] ready, [1] go, [2] done, [3] mapped bytes when ready. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Attaches x (its views now cover the heap as it is), then, told to go,
 * reads x while the parent's commit on x is installed and undecided: the
 * read helps decide it, which validates a read-only entry on a Loc that
 * lies past this worker's views. Returns the value read.
 */
export function staleHelper(ctx: WorkerContext<StaleArgs>): number {
  const x = Loc.attach(ctx.args.x);
  const flags = new Int32Array(ctx.args.flags);
  Atomics.store(flags, 3, x.heap.mappedBytes);
  Atomics.store(flags, 0, 1);
  awaitWord(ctx, flags, 1, 1);
  const value = x.get();
  Atomics.store(flags, 2, 1);
  Atomics.notify(flags, 2);
  return value;
}

// ---------------------------------------------------------------------------
// Domain creation race

/**
 * Every worker makes the first Loc of a fresh heap at once: each stops inside
 * the domain creation window (after it saw no domain, before it publishes
 * its own) until all of them are there. Returns the domain header offset of
 * the Loc it made, from the loc block's domain word.
 */
export function domainRace(ctx: WorkerContext<undefined>): number {
  faultInjection.hook = (site) => {
    if (site === "stm.domain.create") ctx.barrier.wait();
  };
  const loc = Loc.make(ctx.heap!, ctx.index);
  faultInjection.hook = undefined;
  Xt.commit((xt) => xt.incr(loc));
  return ctx.heap!.i32[(loc.address >> 2) + 3];
}

// ---------------------------------------------------------------------------
// Cell stamps across slot reuse

/**
 * Makes one Loc in a fresh realm and returns `[slot, stamp word 0, stamp
 * word 1]` of its cell (words 2 and 3 of the cell the loc word names).
 */
export function cellStamp(ctx: WorkerContext<undefined>): number[] {
  const heap = ctx.heap!;
  const loc = Loc.make(heap, ctx.index);
  const i32 = heap.i32;
  const cell = Atomics.load(i32, (loc.address >> 2) + 2);
  return [heap.slot, i32[(cell >> 2) + 2], i32[(cell >> 2) + 3]];
}

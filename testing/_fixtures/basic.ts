/**
 * Worker functions for the harness tests and the harness's doc examples.
 * Each export runs inside a worker started by `spawnWorkers`.
 *
 * @module
 */

import type { WorkerContext } from "../harness.ts";

/** Returns `"index:id"`, showing which arguments reached which worker. */
export function echo(ctx: WorkerContext<{ id: number }>): string {
  return `${ctx.index}:${ctx.args.id}`;
}

/** Waits a little (a real macrotask), then returns the index times 2. */
export async function asyncDouble(ctx: WorkerContext): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 5 + ctx.randomInt(20)));
  return ctx.index * 2;
}

/** Posts 1, 2, … `rounds`, lining up with the others after each round; returns `rounds`. */
export function countRounds(ctx: WorkerContext<{ rounds: number }>): number {
  for (let round = 1; round <= ctx.args.rounds; round++) {
    ctx.post(round);
    ctx.barrier.wait();
  }
  return ctx.args.rounds;
}

/** Spins forever with a checkpoint per round, posting progress now and then. */
export function spinUntilStopped(ctx: WorkerContext<unknown>): never {
  let sink = 0;
  for (let i = 0;; i++) {
    ctx.checkpoint();
    sink = (sink + Math.imul(i, 31)) | 0;
    if (i % 10_000 === 0) ctx.post(i);
  }
}

/**
 * Takes a ticket from a shared counter as its first action after the start;
 * returns the ticket.
 */
export function ticket(ctx: WorkerContext<{ counter: SharedArrayBuffer }>): number {
  return Atomics.add(new Int32Array(ctx.args.counter), 0, 1);
}

/** Returns the seed and the first draws of the generator. */
export function draws(ctx: WorkerContext): number[] {
  return [ctx.seed, ctx.random(), ctx.random(), ctx.randomInt(1000)];
}

/** Worker `failIndex` throws a RangeError; the others park until they are stopped. */
export function throwOne(ctx: WorkerContext<{ failIndex: number }>): string {
  if (ctx.index === ctx.args.failIndex) {
    throw new RangeError(`boom from worker ${ctx.index}`);
  }
  ctx.hang();
}

/** Throws a string, not an Error. */
export function throwString(): never {
  throw "plain string thrown";
}

/** Leaves a rejected promise unhandled, then finishes normally. */
export async function floatingRejection(): Promise<string> {
  Promise.reject(new TypeError("nobody handles this"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return "finished";
}

/** Returns a value that cannot be structured-cloned. */
export function uncloneableResult(): () => void {
  return () => {};
}

/**
 * Worker `stuckIndex` posts, then parks forever without a checkpoint; the
 * others return their index.
 */
export function stuckOne(ctx: WorkerContext<{ stuckIndex: number }>): number {
  if (ctx.index === ctx.args.stuckIndex) {
    ctx.post("stuck");
    const word = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(word, 0, 0);
  }
  return ctx.index;
}

/**
 * Worker `victim` spins until stopped; the others count to `rounds` with a
 * checkpoint per round and return the count. Nobody uses the barrier after
 * the start, so the others are not affected when the victim is stopped.
 */
export function victimLoop(ctx: WorkerContext<{ victim: number; rounds: number }>): number {
  if (ctx.index === ctx.args.victim) spinUntilStopped(ctx);
  let count = 0;
  for (let i = 0; i < ctx.args.rounds; i++) {
    ctx.checkpoint();
    count++;
  }
  return count;
}

/** Posts once, then awaits a promise that never settles: only a stop ends it. */
export async function awaitForever(ctx: WorkerContext): Promise<never> {
  ctx.post("waiting");
  await new Promise<never>(() => {});
  throw new Error("unreachable");
}

/** Worker `hanger` hangs; the others meet at the barrier again and again. */
export function barrierRounds(ctx: WorkerContext<{ hanger: number }>): number {
  if (ctx.index === ctx.args.hanger) {
    ctx.post("hanging");
    ctx.hang();
  }
  let rounds = 0;
  for (;;) {
    ctx.barrier.wait();
    rounds++;
  }
}

/**
 * Phases for an oversubscribed run: in each phase every worker adds to a
 * shared counter, then all meet at the barrier and check that every add of
 * the phase is visible. Returns how many phases it checked.
 */
export function phases(
  ctx: WorkerContext<{ counter: SharedArrayBuffer; phases: number }>,
): number {
  const counter = new Int32Array(ctx.args.counter);
  for (let phase = 0; phase < ctx.args.phases; phase++) {
    Atomics.add(counter, 0, 1);
    ctx.barrier.wait();
    const seen = Atomics.load(counter, 0);
    const low = (phase + 1) * ctx.workers;
    if (seen < low || seen > low + ctx.workers - 1) {
      throw new Error(
        `phase ${phase}: counter is ${seen}, expected ${low} to ${low + ctx.workers - 1}`,
      );
    }
    ctx.barrier.wait();
  }
  return ctx.args.phases;
}

/** Posts, then hangs inside a try block whose finally block sets a shared flag. */
export function hangInTry(ctx: WorkerContext<{ flag: SharedArrayBuffer }>): never {
  const flag = new Int32Array(ctx.args.flag);
  try {
    ctx.post("inside");
    ctx.hang();
  } finally {
    Atomics.store(flag, 0, 1);
  }
}

/**
 * Worker 0 posts and hangs; the others post and then wait at the barrier
 * inside a try block whose finally block sets a shared flag. Stopping them
 * all must not run that finally block.
 */
export function waitInTry(ctx: WorkerContext<{ flag: SharedArrayBuffer }>): never {
  const flag = new Int32Array(ctx.args.flag);
  if (ctx.index === 0) {
    ctx.post("hanging");
    ctx.hang();
  }
  try {
    ctx.post("waiting");
    ctx.barrier.wait();
    throw new Error("the barrier completed without worker 0");
  } finally {
    Atomics.add(flag, 0, 1);
  }
}

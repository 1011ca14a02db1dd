/**
 * Worker bodies for the multi-worker stm/data tests (data_workers_test.ts).
 *
 * @module
 */

import {
  Accumulator,
  type AccumulatorHandle,
  Mvar,
  type MvarHandle,
  Queue,
  type QueueHandle,
} from "./mod.ts";
import { Loc, type LocHandle, Xt } from "../mod.ts";
import type { WorkerContext } from "../../testing/harness.ts";

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

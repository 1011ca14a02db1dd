/**
 * Multi-worker tests of stm/data: the dining philosophers with Mvar forks,
 * and a producer/consumer pipeline over a bounded Queue into an
 * Accumulator, with more workers than cores.
 */

import assert from "node:assert/strict";
import { Accumulator, Mvar, Queue } from "./mod.ts";
import { Loc } from "../mod.ts";
import { SharedHeap } from "../../memory/mod.ts";
import { runWorkers } from "../../testing/harness.ts";
import type { AddArgs, PhilosopherArgs, PipelineArgs } from "./_data_test_workers.ts";

const fixtures = new URL("./_data_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

Deno.test("dining philosophers: 5 philosophers with Mvar forks all eat, none starves, forks come back", async () => {
  const heap = SharedHeap.create();
  const n = 5;
  const forks = Array.from({ length: n }, (_, i) => Mvar.create(heap, i));
  const eaten = Loc.makeArray(heap, n, 0, { kind: "i32" });
  const minRounds = 200 * STRESS;
  const meals = await runWorkers<PhilosopherArgs, number>({
    module: fixtures,
    fn: "philosopher",
    workers: n,
    heap,
    args: { forks: forks.map((f) => f.handle), eaten: eaten.map((e) => e.handle), minRounds },
    timeoutMs: 60_000,
  });
  for (let i = 0; i < n; i++) {
    assert.ok(eaten[i].get() >= minRounds, `philosopher ${i} ate ${eaten[i].get()}`);
    assert.equal(meals[i], eaten[i].get());
    assert.equal(forks[i].tryPeek(), i, `fork ${i} is back`);
  }
});

Deno.test("pipeline: 3 producers, 5 consumers over a 4-slot Queue: every number arrives once", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap, { capacity: 4 });
  const sum = Accumulator.create(heap);
  const producers = 3;
  const perProducer = 300 * STRESS;
  const results = await runWorkers<PipelineArgs, number>({
    module: fixtures,
    fn: "pipeline",
    workers: 8,
    heap,
    args: { queue: queue.handle, sum: sum.handle, producers, perProducer },
    timeoutMs: 60_000,
  });
  assert.equal(results.slice(producers).reduce((s, n) => s + n, 0), producers * perProducer);
  assert.equal(sum.get(), producers * (perProducer * (perProducer + 1)) / 2);
  assert.equal(queue.length, 0);
});

Deno.test("Accumulator: set gives exactly the value asked for while other shards hold large sums", async () => {
  const heap = SharedHeap.create();
  const sum = Accumulator.create(heap, { shards: 4 });
  // Another worker's slot, and so (with 4 shards) most likely another shard.
  const [slot] = await runWorkers<AddArgs, number>({
    module: fixtures,
    fn: "addToAccumulator",
    workers: 1,
    heap,
    args: { sum: sum.handle, delta: 1e16 },
    timeoutMs: 30_000,
  });
  assert.equal(sum.get(), 1e16);
  assert.notEqual(slot % 4, heap.slot % 4, "the worker added to this worker's shard");
  for (const value of [1, 0.3, -7.25, 0]) {
    sum.set(value);
    assert.equal(sum.get(), value);
  }
});

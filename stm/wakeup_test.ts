/**
 * Every commit wakes the transactions blocked on what it wrote: workers
 * block (sync and async commits) with recovery from killed wakers off, so
 * that a commit without its notify leaves them parked and fails the test
 * (see testing/wakeups.ts).
 */

import assert from "node:assert/strict";
import { Loc } from "./mod.ts";
import { Queue } from "./data/mod.ts";
import { SharedHeap } from "../memory/mod.ts";
import { expectWoken } from "../testing/wakeups.ts";
import type { WakeArgs } from "./_wakeup_test_workers.ts";

const module = new URL("./_wakeup_test_workers.ts", import.meta.url);
const WORKERS = 4;

Deno.test("STM: a commit wakes every transaction blocked on the location it wrote", async () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 0);
  const got = await expectWoken<WakeArgs, number>({
    module,
    fn: "blockOnce",
    workers: WORKERS,
    heap,
    args: { kind: "loc", loc: loc.handle },
    release: () => loc.set(7),
  });
  assert.deepEqual(got, [7, 7, 7, 7]);
});

Deno.test("STM: each add to a Queue wakes a blocked take", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const got = await expectWoken<WakeArgs, number>({
    module,
    fn: "blockOnce",
    workers: WORKERS,
    heap,
    args: { kind: "queue", queue: queue.handle },
    release: () => {
      for (let i = 1; i <= WORKERS; i++) queue.add(i);
    },
  });
  assert.deepEqual(got.sort(), [1, 2, 3, 4]);
});

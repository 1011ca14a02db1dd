/**
 * Multi-worker tests of the STM: bank transfers with auditors checking the
 * total inside every attempt (opacity), linearizability of k-CAS histories,
 * the read-skew experiment of kcas's tour, blocking across workers (sync
 * and async, timeouts, no lost wake-ups), and workers dying at every crash
 * point of a commit.
 *
 * Worker bodies live in _stm_test_workers.ts.
 */

import assert from "node:assert/strict";
import { Loc, Retry, Xt } from "./mod.ts";
import { faultInjection, SharedHeap } from "../memory/mod.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import { HistoryClock, mergeHistories, type OpRecord } from "../testing/history.ts";
import { checkLinearizable, defineModel } from "../testing/linearizability.ts";
import type {
  BankArgs,
  BankReport,
  BlockingArgs,
  ChannelArgs,
  DieBeforeNotifyArgs,
  DyingArgs,
  KcasArgs,
  SkewArgs,
  StaleArgs,
} from "./_stm_test_workers.ts";

const fixtures = new URL("./_stm_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

function sumOf(locs: readonly Loc[]): number {
  return Xt.commit((xt) => locs.reduce((s, l) => s + xt.get(l), 0));
}

// ---------------------------------------------------------------------------
// Bank

for (const [writers, auditors] of [[4, 2], [6, 2]] as const) {
  Deno.test(`bank: ${writers} writers move money between 16 accounts, ${auditors} auditors always see the total`, async () => {
    const heap = SharedHeap.create();
    const accounts = Loc.makeArray(heap, 16, 1000, { kind: "i32" });
    const total = 16 * 1000;
    const args: BankArgs = {
      accounts: accounts.map((l) => l.handle),
      total,
      writers,
      transfers: 3000 * STRESS,
      flags: new SharedArrayBuffer(4),
    };
    const reports = await runWorkers<BankArgs, BankReport>({
      module: fixtures,
      fn: "bank",
      workers: writers + auditors,
      heap,
      args,
      timeoutMs: 120_000,
    });
    for (let w = 0; w < writers; w++) assert.equal(reports[w].commits, args.transfers);
    let audits = 0;
    for (let w = writers; w < writers + auditors; w++) {
      assert.equal(reports[w].violations, 0, `auditor ${w} saw a wrong total inside an attempt`);
      audits += reports[w].commits;
    }
    assert.ok(audits > 0, "the auditors ran");
    assert.equal(sumOf(accounts), total);
    assert.equal(accounts.reduce((s, l) => s + l.get(), 0), total);
  });
}

// ---------------------------------------------------------------------------
// Linearizability

const kcasModel = defineModel<readonly number[]>({
  name: "k-CAS registers",
  init: () => [0, 0, 0],
  ops: {
    kcas(state, [spec]) {
      const entries = spec as [number, number, number, boolean][];
      const ok = entries.every(([i, expected]) => state[i] === expected);
      if (!ok) return { state, result: false };
      const next = state.slice();
      for (const [i, , desired, cmp] of entries) if (!cmp) next[i] = desired;
      return { state: next, result: true };
    },
    get: (state, [i]) => ({ state, result: state[i as number] }),
    snapshot: (state) => ({ state, result: state.slice() }),
    exchange(state, [i, v]) {
      const next = state.slice();
      next[i as number] = v as number;
      return { state: next, result: state[i as number] };
    },
  },
  key: (state) => state.join(),
});

Deno.test(`linearizable: k-CAS-n-CMP, gets, snapshots and exchanges on 3 locations, 4 workers, ${150 * STRESS} histories`, async () => {
  const per = 3;
  const rounds = 150 * STRESS;
  const workers = 4;
  const heap = SharedHeap.create();
  const locs = Loc.makeArray(heap, per * rounds, 0, { kind: "i32" });
  const clock = HistoryClock.create();
  const args: KcasArgs = {
    locs: locs.map((l) => l.handle),
    perRound: per,
    opsPerRound: 10,
    clock: clock.handle,
  };
  const group = spawnWorkers<KcasArgs, OpRecord[][]>({
    module: fixtures,
    fn: "kcasHistories",
    workers,
    heap,
    args,
    timeoutMs: 120_000,
  });
  let perWorker: OpRecord[][][];
  try {
    perWorker = await group.results;
  } finally {
    await group.terminateAll();
  }
  for (let round = 0; round < rounds; round++) {
    const history = mergeHistories(perWorker.map((h) => h[round]));
    const result = checkLinearizable(history, kcasModel, { timeoutMs: 20_000 });
    if (result.ok !== true) {
      assert.fail(`round ${round} (seed ${group.seed}):\n${result.reason}`);
    }
  }
});

// ---------------------------------------------------------------------------
// Read skew

Deno.test("read skew: the tour's experiment reports no read skew, even inside failing attempts", async () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0, { kind: "i32" });
  const b = Loc.make(heap, 0, { kind: "i32" });
  const results = await runWorkers<SkewArgs, string>({
    module: fixtures,
    fn: "readSkew",
    workers: 3,
    heap,
    args: { a: a.handle, b: b.handle, rounds: 5000 * STRESS, flags: new SharedArrayBuffer(4) },
    timeoutMs: 60_000,
  });
  assert.deepEqual(results.slice(1), ["no read skew", "no read skew"]);
  assert.equal(a.get() + b.get(), 0);
  assert.ok(a.get() > 0, results[0]);
});

// ---------------------------------------------------------------------------
// Blocking

Deno.test("blocking: a sync and an async waiter on two locations are woken by another worker's commits; timeouts throw", async () => {
  const heap = SharedHeap.create();
  const x = Loc.make(heap, 0, { kind: "i32" });
  const y = Loc.make(heap, 0, { kind: "i32" });
  const results = await runWorkers<BlockingArgs, string>({
    module: fixtures,
    fn: "blocking",
    workers: 3,
    heap,
    args: { x: x.handle, y: y.handle, flags: new SharedArrayBuffer(8) },
    timeoutMs: 30_000,
  });
  assert.equal(results[2], "committer");
  // One of them took when both held 2, the other when both held 1.
  assert.deepEqual([results[0].slice(-3), results[1].slice(-3)].sort(), ["1,1", "2,2"]);
  assert.match(results[0], /^sync [12],[12]$/);
  assert.match(results[1], /^async [12],[12]$/);
  assert.equal(x.get(), 0);
  assert.equal(y.get(), 0);
});

Deno.test("blocking: 3 producers, 5 consumers (sync and async) on 2 cores: no wake-up is lost", async () => {
  const heap = SharedHeap.create();
  const items = Loc.make(heap, 0, { kind: "i32" });
  const taken = Loc.make(heap, 0, { kind: "i32" });
  const producers = 3;
  const perProducer = 400 * STRESS;
  const results = await runWorkers<ChannelArgs, number>({
    module: fixtures,
    fn: "channel",
    workers: 8,
    heap,
    args: { items: items.handle, taken: taken.handle, producers, perProducer },
    timeoutMs: 60_000,
  });
  assert.equal(results.reduce((s, n) => s + n, 0), 2 * producers * perProducer);
  assert.equal(items.get(), 0);
  assert.equal(taken.get(), producers * perProducer);
});

Deno.test("blocking: a committer that dies before it notifies leaves its waiters parked only until their next recheck", async () => {
  const heap = SharedHeap.create();
  const x = Loc.make(heap, 0, { kind: "i32" });
  // Parked before the commit, with a timeout far beyond the recheck period:
  // without rechecks both waiters would sleep until it and throw.
  const asyncWaiter = Xt.commitAsync((xt) => {
    Retry.unless(xt.get(x) === 1);
    return "async";
  }, { timeoutMs: 20_000 }).catch((error: unknown) => error);
  const group = spawnWorkers<DieBeforeNotifyArgs, string>({
    module: fixtures,
    fn: "dieBeforeNotify",
    workers: 2,
    heap,
    args: { x: x.handle, waiters: 2 },
    timeoutMs: 30_000,
  });
  let died = false;
  group.onMessage((index, value) => {
    if (value === "dying") {
      died = true;
      group.terminate(index);
    }
  });
  let results: string[];
  try {
    results = await group.results;
  } finally {
    await group.terminateAll();
  }
  assert.ok(died, "the committer should have died after its commit");
  assert.equal(results[0], "sync");
  assert.equal(results[1], undefined);
  assert.equal(await asyncWaiter, "async");
  assert.equal(x.get(), 1);
});

// ---------------------------------------------------------------------------
// Workers dying inside commits

const SITES = [
  "stm.install",
  "stm.installed",
  "stm.validated",
  "stm.committed",
  "stm.decided",
  "stm.cleanup",
  "stm.single.installed",
];
/** Groups per site; each has DOOMED dying workers and 2 survivors. */
const GROUPS = 8;
const DOOMED = 5;

for (const site of SITES) {
  Deno.test(`termination: ${GROUPS * DOOMED} workers die at ${site}; the sum holds, survivors finish, every account stays writable`, async () => {
    const heap = SharedHeap.create();
    const accounts = Loc.makeArray(heap, 8, 100, { kind: "i32" });
    const total = 800;
    const registered = heap.stats().workers;
    let deaths = 0;
    for (let g = 0; g < GROUPS; g++) {
      const args: DyingArgs = {
        accounts: accounts.map((l) => l.handle),
        doomed: DOOMED,
        site,
        after: Array.from({ length: DOOMED }, (_, i) => 1 + ((g * 7 + i * 13) % 40)),
        transfers: 1500,
      };
      const group = spawnWorkers<DyingArgs, number>({
        module: fixtures,
        fn: "transfersUntilDeath",
        workers: DOOMED + 2,
        heap,
        args,
        timeoutMs: 60_000,
      });
      group.onMessage((index, value) => {
        if (value === "dying") {
          deaths++;
          group.terminate(index); // evicts its heap slot
        }
      });
      let results: number[];
      try {
        results = await group.results;
      } finally {
        await group.terminateAll();
      }
      for (let w = 0; w < DOOMED; w++) {
        assert.equal(results[w], undefined, `worker ${w} should have died`);
      }
      assert.equal(results[DOOMED], 1500);
      assert.equal(results[DOOMED + 1], 1500);
      assert.equal(sumOf(accounts), total, `group ${g}: the sum changed`);
    }
    assert.equal(deaths, GROUPS * DOOMED);
    assert.equal(heap.stats().workers, registered, "a slot was left behind");
    // Every account can still be written (entries left by the dead get cleared).
    Xt.commit((xt) => {
      for (const account of accounts) xt.incr(account);
    });
    assert.equal(sumOf(accounts), total + accounts.length);
    for (const account of accounts) account.set(account.get() - 1);
    assert.equal(accounts.reduce((s, l) => s + l.get(), 0), total);
  });
}

// ---------------------------------------------------------------------------
// Views that predate growth

Deno.test("stale views: a worker helps decide a commit whose read-only entry lies past its views", async () => {
  const heap = SharedHeap.create({ initialBytes: 4 * 65536, maxBytes: 64 << 20 });
  const x = Loc.make(heap, 0);
  // Same shape as the commit below: its descriptor's size class gets a page
  // now, inside the worker's views, while the Loc it validates will not.
  const w = Loc.make(heap, 0);
  Xt.commit((xt) => xt.set(x, xt.get(w) + 1));
  const flags = new Int32Array(new SharedArrayBuffer(16));
  const group = spawnWorkers<StaleArgs, number>({
    module: fixtures,
    fn: "staleHelper",
    workers: 1,
    heap,
    args: { x: x.handle, flags: flags.buffer as SharedArrayBuffer },
    timeoutMs: 30_000,
  });
  try {
    while (Atomics.load(flags, 0) === 0) await new Promise((r) => setTimeout(r, 2));
    const mapped = Atomics.load(flags, 3);
    while (heap.sab.byteLength <= mapped) heap.allocate(1 << 20);
    // A Loc past the worker's views (new small pages come from the grown part).
    let far = Loc.make(heap, 7);
    for (let i = 0; i < 100_000 && far.address < mapped; i++) far = Loc.make(heap, 7);
    assert.ok(far.address >= mapped, `Loc at ${far.address}, worker maps ${mapped}`);
    let paused = false;
    faultInjection.hook = (site) => {
      if (site !== "stm.installed" || paused) return;
      paused = true;
      Atomics.store(flags, 1, 1);
      Atomics.notify(flags, 1);
      // Wait (blocking this thread) until the worker has read x; bounded,
      // so that a failing worker fails the test instead of hanging it.
      Atomics.wait(flags, 2, 0, 10_000);
    };
    try {
      Xt.commit((xt) => {
        xt.get(far); // read-only: validated by whoever decides
        xt.set(x, 5);
      });
    } finally {
      faultInjection.hook = undefined;
    }
    assert.ok(paused);
    const [seen] = await group.results;
    assert.equal(seen, 5, "the worker decided the commit and read its new value");
    assert.equal(x.get(), 5);
  } finally {
    await group.terminateAll();
  }
});

// ---------------------------------------------------------------------------
// Domain creation

Deno.test("domain: workers that make the first Loc of a heap at once all join one STM domain", async () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBytes;
  const domains = await runWorkers<undefined, number>({
    module: fixtures,
    fn: "domainRace",
    workers: 4,
    heap,
    args: undefined,
    timeoutMs: 60_000,
  });
  const root = heap.root("sabre.stm");
  assert.ok(root !== undefined);
  assert.deepEqual(domains, [root.offset, root.offset, root.offset, root.offset]);
  // The losers freed their headers: one header and four locs stay live.
  const locs = Loc.make(heap, 0);
  const header = heap.stats().liveBytes - before;
  locs.free();
  // A domain header is 4,352 bytes; four of them would be left if the losers leaked theirs.
  assert.ok(header < 2 * 4352, `live bytes after the race: ${header}`);
});

// ---------------------------------------------------------------------------
// Cell stamps

Deno.test("stamps: workers that hold the same heap slot in turn never give two cells the same stamp", async () => {
  // A helper deciding a dead owner's descriptor takes "same cell pointer,
  // same stamp" for "unchanged since it was read": a pooled cell reused at
  // the same Loc must not get the stamp it had, even from a new worker (a
  // new realm, its sequence restarted) that took over the slot.
  const heap = SharedHeap.create();
  Loc.make(heap, 0); // the domain, and this worker's slot
  const seen: number[][] = [];
  for (let run = 0; run < 2; run++) {
    const [report] = await runWorkers<undefined, number[]>({
      module: fixtures,
      fn: "cellStamp",
      workers: 1,
      heap,
      args: undefined,
      timeoutMs: 30_000,
    });
    seen.push(report);
  }
  assert.equal(seen[0][0], seen[1][0], "the second worker reused the first one's slot");
  assert.notDeepEqual(seen[0].slice(1), seen[1].slice(1), `stamps ${seen[0]} and ${seen[1]}`);
});

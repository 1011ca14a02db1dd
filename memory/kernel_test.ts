/**
 * Tests of the kernel's plumbing: the embedded bytes are kernel.wat
 * assembled, handles carry the heap's memory and attach() takes it, a kernel
 * call pins and unpins like pin()/unpin(), and a worker reads memory the heap
 * gained after it attached. The structures' own tests run their kernel paths
 * and their JavaScript paths against models.
 */

import assert from "node:assert/strict";
import { HandleError, SharedHeap } from "./mod.ts";
import { EPOCH_AT, instantiateKernel, KERNEL_SLOW } from "./_kernel.ts";
import { KERNEL_BASE64 } from "./_kernel_bytes.ts";
import { assembleKernel } from "./_kernel_build.ts";
import { H_EPOCH } from "./_layout.ts";
import { heapWithKernel } from "../testing/kernel.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import type { KernelGrowthArgs } from "./_heap_test_workers.ts";
import { epochWordAt, heapKernel, kernelForRead, kernelTrapped } from "./_heap_hooks.ts";

const fixtures = new URL("./_heap_test_workers.ts", import.meta.url);

/**
 * A location word pointing at an f64 cell holding `value`, both in a new
 * block of `bytes` (a large one lies past every earlier page).
 */
function locationWord(heap: SharedHeap, value: number, bytes = 32): number {
  const word = heap.allocate(bytes);
  const cell = word + 16;
  heap.f64[cell >> 3] = value;
  Atomics.store(heap.i32, word >> 2, cell);
  return word;
}

Deno.test("kernel: the embedded bytes are kernel.wat assembled (deno task kernel)", async () => {
  const assembled = await assembleKernel();
  const embedded = Uint8Array.from(atob(KERNEL_BASE64), (c) => c.charCodeAt(0));
  assert.deepEqual(embedded, assembled, "run `deno task kernel` after editing kernel.wat");
});

Deno.test("kernel: a heap has one here, and handles carry its memory", () => {
  const heap = SharedHeap.create();
  assert.ok(heap.memory instanceof WebAssembly.Memory);
  assert.ok(heapKernel(heap) !== null);
  assert.equal(heap.handle.memory, heap.memory);
  assert.equal(heap.handleOf("my.Thing", 3, 64).memory, heap.memory);
  assert.equal(heap.memory.buffer.byteLength, heap.sab.byteLength);
  // The memory comes before the buffer: Node 26 cannot deserialize the
  // buffer of a memory met first (a worker given such a handle never starts).
  const keys = Object.keys(heap.handle);
  assert.ok(keys.indexOf("memory") < keys.indexOf("sab"), keys.join());
  const plain = heapWithKernel(false);
  assert.equal(plain.memory, null);
  assert.equal(heapKernel(plain), null);
  assert.equal("memory" in plain.handle, false);
});

Deno.test("kernel: the buffer grows with the memory, past the initial size", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
  const blocks: number[] = [];
  while (heap.sab.byteLength < 8 << 20) blocks.push(heap.allocate(1 << 16));
  assert.equal(heap.memory!.buffer.byteLength, heap.sab.byteLength);
  const word = locationWord(heap, -1.25, 1 << 16);
  assert.ok(word > 1 << 20);
  assert.equal(heapKernel(heap)!.locGet(word), -1.25);
  for (const b of blocks) heap.free(b);
});

Deno.test("kernel: a call pins its own epoch and unpins, or leaves an outer pin alone", () => {
  const heap = SharedHeap.create();
  const kernel = heapKernel(heap)!;
  const word = locationWord(heap, 7.5);
  const pinAt = epochWordAt(heap);
  assert.ok(pinAt > 0 && pinAt % 4 === 0);
  assert.equal(Atomics.load(heap.i32, pinAt >> 2), 0);
  assert.equal(kernel.locGet(word), 7.5);
  assert.equal(Atomics.load(heap.i32, pinAt >> 2), 0, "unpinned after the call");
  {
    using _guard = heap.pin();
    const pinnedAt = Atomics.load(heap.i32, pinAt >> 2);
    assert.ok(pinnedAt > 0);
    assert.equal(kernel.locGet(word), 7.5);
    assert.equal(Atomics.load(heap.i32, pinAt >> 2), pinnedAt, "the outer pin stays");
  }
  assert.equal(Atomics.load(heap.i32, pinAt >> 2), 0);
  // A pin in the kernel holds back reclamation like pin(): the epoch word it
  // stores is the global epoch.
  assert.equal(EPOCH_AT, H_EPOCH * 4);
  assert.equal(kernel.epochAt.value, EPOCH_AT);
  // A word holding a descriptor (odd) sends the caller to its general path.
  Atomics.store(heap.i32, word >> 2, 8 * 1024 + 1);
  assert.equal(kernel.locGet(word), KERNEL_SLOW);
  assert.equal(Atomics.load(heap.i32, pinAt >> 2), 0);
  heap.close();
  assert.throws(() => epochWordAt(heap), /closed/);
});

Deno.test("kernel: gets through kernelForRead leave a read pin that moves with the epoch, until the task ends", async () => {
  const heap = heapWithKernel(true);
  const word = locationWord(heap, 2.5);
  const pinAt = epochWordAt(heap) >> 2;
  const i32 = heap.i32;
  const pinned = () => Atomics.load(i32, pinAt);
  const epoch = () => Atomics.load(i32, H_EPOCH);
  const read = () => kernelForRead(heap)!.locGet(word);
  // Moves the global epoch on, as another worker's collect() does once
  // every pinned worker shows the current one.
  const advance = () => {
    const e = epoch();
    assert.equal(Atomics.compareExchange(i32, H_EPOCH, e, e + 1), e);
    return e + 1;
  };
  assert.equal(pinned(), 0);
  assert.equal(read(), 2.5);
  assert.equal(pinned(), epoch(), "a get leaves a read pin at the global epoch");
  assert.equal(read(), 2.5);
  const before = epoch();
  const next = advance();
  assert.equal(pinned(), before, "held as it was until the next get");
  assert.equal(read(), 2.5);
  assert.equal(pinned(), next, "the next get moved it to the new epoch");
  await Promise.resolve();
  assert.equal(pinned(), 0, "released when the task ended");

  // pin() takes the word over, and the gets inside leave it alone even when
  // the epoch has moved on: the outer pin may be guarding what it read.
  read();
  heap.pin();
  const outer = pinned();
  assert.ok(outer !== 0);
  advance();
  assert.equal(read(), 2.5);
  assert.equal(pinned(), outer, "a get inside pin() left the outer pin");
  heap.unpin();
  assert.equal(pinned(), 0, "and unpin() cleared it");
  assert.equal(read(), 2.5);
  assert.equal(pinned(), epoch(), "a get after unpin() takes a read pin again");

  // A trap leaves the read pin as it was; releaseReadPins ends it.
  let trap: unknown;
  try {
    kernelForRead(heap)!.locGet(heap.sab.byteLength + (1 << 16));
  } catch (e) {
    trap = e;
  }
  assert.ok(trap instanceof WebAssembly.RuntimeError, `expected a trap, got ${trap}`);
  kernelTrapped(heap, trap);
  assert.equal(pinned(), epoch(), "the read pin outlives a trap");
  SharedHeap.releaseReadPins();
  assert.equal(pinned(), 0, "releaseReadPins ended it");

  // collect() ends it, so that this worker does not hold back its own
  // reclamation: a block retired now is freed by the collections below,
  // which could not move the epoch twice past a read pin.
  read();
  heap.retire(heap.allocate(16));
  let freed = 0;
  for (let i = 0; i < 3; i++) freed += heap.collect();
  assert.equal(freed, 1);
  assert.equal(pinned(), 0);

  // close() ends it too.
  read();
  assert.notEqual(pinned(), 0);
  heap.close();
  assert.equal(Atomics.load(i32, pinAt), 0, "released on close");
});

Deno.test("kernel: a get called on the kernel directly, without kernelForRead, pins per call", () => {
  const heap = heapWithKernel(true);
  const word = locationWord(heap, 1.5);
  const pinAt = epochWordAt(heap) >> 2;
  kernelForRead(heap);
  SharedHeap.releaseReadPins();
  assert.equal(heapKernel(heap)!.locGet(word), 1.5);
  assert.equal(Atomics.load(heap.i32, pinAt), 0, "read pins end with releaseReadPins");
});

Deno.test("kernel: a worker that has not joined the heap, or has left it, gets the bail-out", () => {
  // The kernel pins through the epoch word SharedHeap gives it at join.
  // Before that, and after close, it must not pin at all: it answers SLOW
  // (0 for the sets), and the caller's general path joins.
  const heap = SharedHeap.create();
  const word = locationWord(heap, 4.5); // allocating joins
  assert.equal(heapKernel(heap)!.locGet(word), 4.5);
  // A second instance over the same memory, never told a pin word: as in a
  // worker that attached and has not joined yet.
  const stranger = instantiateKernel(heap.memory!)!;
  assert.equal(stranger.locGet(word), KERNEL_SLOW, "not joined");
  stranger.setPinWord(epochWordAt(heap));
  assert.equal(stranger.locGet(word), 4.5, "told the word");
  const kernel = heapKernel(heap)!;
  heap.close();
  assert.equal(kernel.locGet(word), KERNEL_SLOW, "after close");
});

Deno.test("kernel: attach takes the memory from a handle, later if the first lacked it", () => {
  const heap = SharedHeap.create();
  const { memory: _memory, ...bare } = heap.handle;
  // In this realm the heap exists already and keeps its kernel.
  assert.equal(SharedHeap.attach(structuredClone(bare)), heap);
  assert.ok(heapKernel(heap) !== null);
  assert.throws(
    () => SharedHeap.attach({ ...heap.handle, memory: {} as WebAssembly.Memory }),
    (e: unknown) => e instanceof HandleError && /not a WebAssembly.Memory/.test(e.message),
  );
  const other = SharedHeap.create();
  assert.throws(
    () => SharedHeap.attach({ ...heap.handle, memory: other.memory! }),
    (e: unknown) => e instanceof HandleError && /not the memory of its heap/.test(e.message),
  );
});

Deno.test("kernel: a worker attached from a bare handle runs without it, then upgrades", async () => {
  const heap = SharedHeap.create();
  const { memory: _memory, ...bare } = heap.handle;
  const results = await runWorkers<unknown, [boolean, boolean]>({
    module: fixtures,
    fn: "kernelUpgrade",
    workers: 1,
    args: { bare, full: heap.handle },
  });
  assert.deepEqual(results, [[false, true]]);
});

Deno.test("kernel: a worker reads through the kernel memory the heap gained after it attached", async () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
  const mailbox = heap.allocateZeroed(16);
  const group = spawnWorkers<KernelGrowthArgs, unknown>({
    module: fixtures,
    fn: "kernelAfterGrowth",
    workers: 2,
    heap,
    args: { mailbox },
  });
  try {
    while (Atomics.load(heap.i32, (mailbox >> 2) + 2) < 2) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const blocks: number[] = [];
    while (heap.sab.byteLength < 8 << 20) blocks.push(heap.allocate(1 << 16));
    const word = locationWord(heap, Math.PI, 1 << 16);
    assert.ok(word > 1 << 20);
    Atomics.store(heap.i32, (mailbox >> 2) + 1, word);
    Atomics.store(heap.i32, mailbox >> 2, 1);
    Atomics.notify(heap.i32, mailbox >> 2);
    const results = await group.results;
    for (const r of results) {
      assert.deepEqual(r, { kernel: true, value: Math.PI, staleViews: true, pinned: false });
    }
  } finally {
    await group.terminateAll();
  }
});

Deno.test("kernel: a trap leaves the call's pin behind, and kernelTrapped undoes it", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
  const kernel = heapKernel(heap)!;
  const pinAt = epochWordAt(heap);
  // Past the memory's current size, as memory another worker has just added
  // looks to an instance that has not been told yet.
  const beyond = heap.sab.byteLength + (1 << 16);
  let trap: unknown;
  try {
    kernel.locGet(beyond);
  } catch (e) {
    trap = e;
  }
  assert.ok(trap instanceof WebAssembly.RuntimeError, `expected a trap, got ${trap}`);
  assert.notEqual(Atomics.load(heap.i32, pinAt >> 2), 0, "the trap stopped between pin and unpin");
  kernelTrapped(heap, trap);
  assert.equal(Atomics.load(heap.i32, pinAt >> 2), 0);
  // Inside an outer pin the call took none, and the outer pin stays.
  {
    using _guard = heap.pin();
    const outer = Atomics.load(heap.i32, pinAt >> 2);
    assert.throws(() => kernel.locGet(beyond), WebAssembly.RuntimeError);
    kernelTrapped(heap, new WebAssembly.RuntimeError("out of bounds"));
    assert.equal(Atomics.load(heap.i32, pinAt >> 2), outer);
  }
  // Anything else is not the kernel's to swallow.
  const other = new TypeError("not a trap");
  assert.throws(() => kernelTrapped(heap, other), (e: unknown) => e === other);
});

Deno.test("kernel: casCounted counts a CAS that succeeds, and writes nothing when it traps", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
  const kernel = heapKernel(heap)!;
  const block = heap.allocateZeroed(16);
  const at = block, countAt = block + 8;
  const i32 = heap.i32;
  i32[at >> 2] = 5;
  i32[countAt >> 2] = 10;
  // Succeeds: the old word comes back, and the count moves by delta.
  assert.equal(kernel.casCounted(at, 5, -7, countAt, -1), 5);
  assert.deepEqual([i32[at >> 2], i32[countAt >> 2]], [-7, 9]);
  // Fails: the word it saw comes back, and neither word moves.
  assert.equal(kernel.casCounted(at, 5, 6, countAt, 1), -7);
  assert.deepEqual([i32[at >> 2], i32[countAt >> 2]], [-7, 9]);
  assert.equal(kernel.casCounted(at, -7, 6, countAt, 1), -7);
  assert.deepEqual([i32[at >> 2], i32[countAt >> 2]], [6, 10]);
  // A count word past what the instance knows traps before the CAS.
  const beyond = heap.sab.byteLength + (1 << 16);
  assert.throws(() => kernel.casCounted(at, 6, 8, beyond, 1), WebAssembly.RuntimeError);
  assert.equal(i32[at >> 2], 6);
  heap.free(block);
});

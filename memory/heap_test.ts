import assert from "node:assert/strict";
import fc from "fast-check";
import {
  HandleError,
  HeapExhaustedError,
  SabreError,
  type SharedHandle,
  SharedHeap,
  type SharedHeapHandle,
} from "./mod.ts";
import { epochBefore, epochsBetween, nextEpoch } from "./_epochs.ts";
import { H_EPOCH } from "./_layout.ts";

const MiB = 1 << 20;

function assertThrowsWith(
  fn: () => unknown,
  errorClass: new (...args: never[]) => Error,
  ...fragments: string[]
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof errorClass, `expected ${errorClass.name}, got ${e}`);
    for (const fragment of fragments) {
      assert.ok(
        (e as Error).message.includes(fragment),
        `message ${JSON.stringify((e as Error).message)} lacks ${JSON.stringify(fragment)}`,
      );
    }
    return true;
  });
}

Deno.test("create: invalid options name the option and the value", () => {
  assertThrowsWith(
    () => SharedHeap.create({ maxBytes: 1000 }),
    RangeError,
    "'maxBytes' must be a multiple of 65536",
    "current value is 1000",
  );
  assertThrowsWith(
    () => SharedHeap.create({ initialBytes: 3 * 65536 + 7 }),
    RangeError,
    "'initialBytes'",
    "196615",
  );
  assertThrowsWith(() => SharedHeap.create({ maxBytes: 2 ** 32 }), RangeError, "'maxBytes'");
  assertThrowsWith(
    () => SharedHeap.create({ maxBytes: "8" as unknown as number }),
    TypeError,
    "'maxBytes' must be a number",
    '"8"',
  );
  assertThrowsWith(() => SharedHeap.create({ maxWorkers: 0 }), RangeError, "'maxWorkers'", "0");
  assertThrowsWith(() => SharedHeap.create({ maxWorkers: 2.5 }), RangeError, "2.5");
  assertThrowsWith(
    () => SharedHeap.create({ maxWorkers: null as unknown as number }),
    TypeError,
    "'maxWorkers'",
    "null",
  );
  assertThrowsWith(
    () => SharedHeap.create({ initialBytes: 4 * MiB, maxBytes: 2 * MiB }),
    RangeError,
    "must not exceed 'maxBytes'",
    "4194304",
  );
  assertThrowsWith(
    () => SharedHeap.create({ initialBytes: 65536, maxBytes: 256 * MiB }),
    RangeError,
    "'initialBytes' must be at least",
    "65536",
  );
  assertThrowsWith(
    () => SharedHeap.create(null as unknown as undefined),
    TypeError,
    "'options'",
  );
});

Deno.test("create: defaults and sizes", () => {
  const heap = SharedHeap.create();
  const stats = heap.stats();
  assert.equal(stats.maxBytes, 256 * MiB);
  assert.equal(stats.maxWorkers, 64);
  assert.equal(stats.heapBytes, MiB);
  assert.equal(stats.freeBytes + stats.metadataBytes, stats.heapBytes);
  assert.equal(stats.liveBlocks, 0);
  const small = SharedHeap.create({ initialBytes: 1 * MiB, maxBytes: 1 * MiB, maxWorkers: 2 });
  assert.equal(small.stats().heapBytes, MiB);
});

Deno.test("attach: the same realm gets the same instance, also from a cloned handle", () => {
  const heap = SharedHeap.create();
  assert.equal(SharedHeap.attach(heap.handle), heap);
  assert.equal(SharedHeap.attach(structuredClone(heap.handle)), heap);
  assert.equal(typeof heap.id, "string");
  assert.notEqual(SharedHeap.create().id, heap.id);
});

Deno.test("attach: bad handles throw HandleError with a clear message", () => {
  const heap = SharedHeap.create();
  const good = heap.handle;
  // A random SharedArrayBuffer, growable or not.
  assertThrowsWith(
    () => SharedHeap.attach({ ...good, sab: new SharedArrayBuffer(1 << 16) }),
    HandleError,
    "not a growable sabre heap",
  );
  const random = new SharedArrayBuffer(1 << 16, { maxByteLength: 1 << 20 });
  crypto.getRandomValues(new Uint8Array(random));
  assertThrowsWith(
    () => SharedHeap.attach({ ...good, sab: random }),
    HandleError,
    "not a sabre heap (bad magic number)",
  );
  // A handle of the wrong kind.
  assertThrowsWith(
    () => SharedHeap.attach({ ...good, kind: "sabre.HashMap" } as unknown as SharedHeapHandle),
    HandleError,
    'kind is not "sabre.SharedHeap"',
    '"sabre.HashMap"',
  );
  // Truncated handles: each field missing in turn.
  for (const field of ["kind", "version", "sab", "offset"]) {
    const truncated: Record<string, unknown> = { ...good };
    delete truncated[field];
    assertThrowsWith(
      () => SharedHeap.attach(truncated as unknown as SharedHeapHandle),
      HandleError,
      `no '${field}' field`,
    );
  }
  assertThrowsWith(
    () => SharedHeap.attach(42 as unknown as SharedHeapHandle),
    HandleError,
    "not an object",
    "42",
  );
  // A handle from a newer sabre.
  assertThrowsWith(
    () => SharedHeap.attach({ ...good, version: 99 }),
    HandleError,
    "newer sabre",
    "99",
  );
  // A heap whose layout is newer than this build.
  const newer = SharedHeap.create();
  const header = new Int32Array(newer.sab, 0, 4);
  const own = header[1];
  header[1] = own + 1;
  assertThrowsWith(
    () => SharedHeap.attach(newer.handle),
    HandleError,
    `heap layout version ${own + 1}`,
  );
  header[1] = own;
  assertThrowsWith(
    () => SharedHeap.attach({ ...good, offset: -4 }),
    HandleError,
    "offset",
    "-4",
  );
});

Deno.test("allocate: blocks are aligned, disjoint and keep their contents", () => {
  const heap = SharedHeap.create({ maxBytes: 64 * MiB });
  const live = new Map<number, number>();
  const sizes = [1, 8, 15, 16, 17, 100, 1000, 1024, 1025, 4000, 9000, 32768, 32769, 70000, 300000];
  for (let round = 0; round < 20; round++) {
    for (const size of sizes) {
      const ptr = heap.allocate(size);
      assert.equal(ptr % (size <= 8 ? 8 : 16), 0);
      assert.ok(heap.blockSize(ptr) >= size);
      heap.u8.fill((ptr >> 3) & 255, ptr, ptr + size);
      live.set(ptr, size);
    }
  }
  const ordered = [...live.entries()].sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ordered.length; i++) {
    assert.ok(ordered[i - 1][0] + ordered[i - 1][1] <= ordered[i][0], "blocks overlap");
  }
  for (const [ptr, size] of live) {
    const expected = (ptr >> 3) & 255;
    for (let i = 0; i < size; i += 7) assert.equal(heap.u8[ptr + i], expected);
    heap.free(ptr);
  }
  const stats = heap.stats();
  assert.equal(stats.liveBlocks, 0);
  assert.equal(stats.liveBytes, 0);
  heap.close();
  const after = SharedHeap.attach(heap.handle).stats();
  assert.equal(after.freeBytes + after.metadataBytes, after.heapBytes, "pages not coalesced back");
});

Deno.test("allocateZeroed: zeros in every block, also in pages used and freed before", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const isZero = (ptr: number, size: number) =>
    heap.u8.subarray(ptr, ptr + size).every((b) => b === 0);
  const dirty: number[] = [];
  // Small pages and large blocks at the bottom of the heap, all written and freed.
  for (let i = 0; i < 2000; i++) dirty.push(heap.allocate(100 + (i % 7) * 300));
  for (let i = 0; i < 6; i++) dirty.push(heap.allocate(70_000 << (i % 3)));
  for (const ptr of dirty) heap.u8.fill(0xa5, ptr, ptr + heap.blockSize(ptr));
  for (const ptr of dirty) heap.free(ptr);
  // Sizes that fit the freed pages, sizes that merge them with never-used
  // buddies, and sizes that make the heap grow.
  for (const size of [70_000, 200_000, 300_000, 600_000, 2 * MiB, 5 * MiB, 100, 40_000]) {
    const ptr = heap.allocateZeroed(size);
    assert.ok(isZero(ptr, size), `allocateZeroed(${size}) returned bytes that are not zero`);
    heap.u8.fill(0x5a, ptr, ptr + size);
    heap.free(ptr);
  }
  heap.close();
});

Deno.test("allocateZeroed: skips the fill for pages that no block has used yet", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const fill = Uint8Array.prototype.fill;
  let filled = 0;
  Uint8Array.prototype.fill = function (this: Uint8Array, ...args: Parameters<Uint8Array["fill"]>) {
    filled++;
    return fill.apply(this, args);
  };
  try {
    const fresh = heap.allocateZeroed(4 * MiB); // grows the heap: new pages
    assert.equal(filled, 0, "a block of pages fresh from growth was filled");
    heap.u8[fresh] = 1;
    heap.free(fresh);
    const reused = heap.allocateZeroed(4 * MiB);
    assert.equal(filled, 1, "a block of pages used before was not filled");
    assert.equal(heap.u8[reused], 0);
    heap.allocateZeroed(100);
    assert.equal(filled, 2, "a small block was not filled");
  } finally {
    Uint8Array.prototype.fill = fill;
    heap.close();
  }
});

Deno.test("allocate: random sequences match a model (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant("alloc" as const), size: fc.integer({ min: 1, max: 5000 }) }),
          fc.record({
            op: fc.constant("alloc" as const),
            size: fc.integer({ min: 1, max: 200000 }),
          }),
          fc.record({ op: fc.constant("free" as const), index: fc.nat() }),
        ),
        { maxLength: 300 },
      ),
      (ops) => {
        const heap = SharedHeap.create({ maxBytes: 32 * MiB, maxWorkers: 2 });
        const live: Array<[number, number, number]> = [];
        let tag = 1;
        for (const op of ops) {
          if (op.op === "alloc") {
            const ptr = heap.allocate(op.size);
            heap.u8.fill(tag & 255, ptr, ptr + op.size);
            live.push([ptr, op.size, tag++ & 255]);
          } else if (live.length > 0) {
            const [ptr, size, t] = live.splice(op.index % live.length, 1)[0];
            for (let i = 0; i < size; i++) if (heap.u8[ptr + i] !== t) return false;
            heap.free(ptr);
          }
        }
        for (const [ptr] of live) heap.free(ptr);
        const s = heap.stats();
        heap.close();
        return s.liveBlocks === 0 && s.liveBytes === 0;
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("allocate/free: bad input throws before anything changes", () => {
  const heap = SharedHeap.create();
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assertThrowsWith(() => heap.allocate(bad), RangeError, "'size'", String(bad));
  }
  assertThrowsWith(() => heap.allocate("8" as unknown as number), TypeError, "'size'", '"8"');
  const ptr = heap.allocate(64);
  assertThrowsWith(
    () => heap.free(ptr + 16 + 8),
    RangeError,
    "not the start of an allocated block",
  );
  assertThrowsWith(() => heap.free(0), RangeError, "'ptr' is not a block of this heap", "0");
  assertThrowsWith(() => heap.free(16), RangeError, "not a block of this heap");
  assertThrowsWith(() => heap.free(2 ** 40), RangeError, "not a block of this heap");
  assertThrowsWith(() => heap.free(1.5), RangeError, "1.5");
  const large = heap.allocate(100000);
  assertThrowsWith(() => heap.free(large + 65536), RangeError, "not the start");
  assert.equal(heap.stats().liveBlocks, 2);
  heap.free(ptr);
  heap.free(large);
  assert.equal(heap.stats().liveBlocks, 0);
});

Deno.test("inspect: console.log of a heap prints one line, not its views", () => {
  const heap = SharedHeap.create({ maxBytes: 64 * MiB });
  const text = Deno.inspect(heap);
  assert.equal(
    text,
    `SharedHeap { id: "${heap.id}", bytes: ${heap.sab.byteLength}, maxBytes: ${64 * MiB}, kernel: ${
      heap.memory !== null
    } }`,
  );
  heap.close();
  assert.match(Deno.inspect(heap), /, closed \}$/);
});

Deno.test("exhaustion: HeapExhaustedError, and the heap stays usable", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 2 * MiB, maxWorkers: 2 });
  assertThrowsWith(() => heap.allocate(4 * MiB), HeapExhaustedError, "2097152");
  const blocks: number[] = [];
  let error: unknown;
  try {
    for (;;) blocks.push(heap.allocate(3000));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof HeapExhaustedError);
  assert.equal(heap.stats().heapBytes, 2 * MiB);
  assert.equal(heap.stats().liveBlocks, blocks.length);
  // Still usable: free half, allocate again.
  for (const ptr of blocks.splice(0, blocks.length >> 1)) heap.free(ptr);
  for (let i = 0; i < 50; i++) blocks.push(heap.allocate(3000));
  assertThrowsWith(() => heap.allocate(MiB), HeapExhaustedError);
  for (const ptr of blocks) heap.free(ptr);
  assert.equal(heap.stats().liveBlocks, 0);
  const big = heap.allocate(MiB / 2);
  heap.free(big);
});

Deno.test("exhaustion: an allocation that finds the heap full first frees this worker's retired blocks and gives back its empty pages", () => {
  // Each size class keeps its current page when its last block goes (so that
  // a class whose one block comes and goes does not take and return a page
  // each time). Seven classes of 8 to 24 KiB then hold 17 of the 32 pages of
  // a 2 MiB heap, all empty, and a 1 MiB request cannot be met from the rest.
  const sizes = [8, 10, 12, 14, 16, 20, 24].map((k) => k << 10);
  const fill = (heap: SharedHeap, release: (ptr: number) => void) => {
    for (const size of sizes) release(heap.allocate(size));
  };
  const freed = SharedHeap.create({ initialBytes: 2 * MiB, maxBytes: 2 * MiB });
  fill(freed, (ptr) => freed.free(ptr));
  assert.equal(freed.stats().liveBlocks, 0);
  freed.free(freed.allocate(MiB));
  // The same with the blocks retired, some of them (retire() collected as
  // they came) one collection short of their reclamation: the allocation's
  // own collection frees them.
  const retired = SharedHeap.create({ initialBytes: 2 * MiB, maxBytes: 2 * MiB });
  fill(retired, (ptr) => retired.retire(ptr));
  retired.collect();
  assert.ok(retired.stats().retiredBlocks > 0);
  retired.free(retired.allocate(MiB));
  assert.equal(retired.stats().retiredBlocks, 0);
  // Past what collecting can give, it still throws, and the heap stays usable.
  const kept = freed.allocate(MiB);
  assertThrowsWith(() => freed.allocate(MiB), HeapExhaustedError);
  freed.free(kept);
  freed.free(freed.allocate(MiB));
});

Deno.test("exhaustion: a full heap serves a small request from free room in a larger class", () => {
  // Every page holds 12 KiB blocks; half of them are freed. A 10 KiB
  // request has no page of its own class and the pool has no page left, so
  // only the 12 KiB pages' free blocks can serve it.
  const heap = SharedHeap.create({ initialBytes: 2 * MiB, maxBytes: 2 * MiB });
  const blocks: number[] = [];
  try {
    for (;;) blocks.push(heap.allocate(12 << 10));
  } catch (e) {
    assert.ok(e instanceof HeapExhaustedError, String(e));
  }
  const kept = blocks.filter((_, i) => i % 2 === 0);
  for (let i = 1; i < blocks.length; i += 2) heap.free(blocks[i]);
  const smaller: number[] = [];
  for (let i = 1; i < blocks.length; i += 2) smaller.push(heap.allocate(10 << 10));
  for (const ptr of smaller) assert.equal(heap.blockSize(ptr), 12 << 10);
  // The larger class's room is used up: the next request fails as before.
  assertThrowsWith(() => heap.allocate(10 << 10), HeapExhaustedError, "10240");
  // Blocks taken from the larger class free into it like its own.
  for (const ptr of [...kept, ...smaller]) heap.free(ptr);
  assert.equal(heap.stats().liveBlocks, 0);
  heap.free(heap.allocate(MiB));
});

Deno.test("retire: large retired blocks trigger a collection before 64 of them pile up", () => {
  // A writer that replaces a 12 KiB block 2,000 times, pinned for each
  // replacement (as a B+ tree rewrites a leaf), in a 2 MiB heap: 64 such
  // blocks waiting for their epoch would take 768 KiB, and with the pages
  // each size class keeps, more than the heap.
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 2 * MiB });
  let current = heap.allocate(12 << 10);
  let most = 0;
  for (let i = 0; i < 2000; i++) {
    heap.pinForOperation();
    const next = heap.allocate((12 << 10) + (i % 3) * 1024);
    heap.retire(current);
    current = next;
    heap.unpin();
    most = Math.max(most, heap.stats().retiredBlocks);
  }
  assert.ok(most < 64, `up to ${most} retired blocks waited at once`);
  heap.retire(current);
  for (let i = 0; i < 3; i++) heap.collect();
  assert.equal(heap.stats().liveBlocks, 0);
});

Deno.test("growth: a small heap grows by doubling and old views are refreshed", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const i32Before = heap.i32;
  const blocks: number[] = [];
  for (let i = 0; i < 4000; i++) blocks.push(heap.allocate(2048));
  const stats = heap.stats();
  assert.ok(stats.growCount >= 3, `grew ${stats.growCount} times`);
  assert.notEqual(heap.i32, i32Before);
  assert.equal(heap.mappedBytes, heap.sab.byteLength);
  for (const ptr of blocks) heap.i32[ptr >> 2] = ptr;
  for (const ptr of blocks) assert.equal(heap.i32[ptr >> 2], ptr);
  assertThrowsWith(() => heap.ensure(heap.sab.byteLength + 4), RangeError, "past the heap");
  for (const ptr of blocks) heap.free(ptr);
});

Deno.test("growth: views made while another worker grows the buffer all cover mappedBytes", () => {
  // Stands in for a worker that grows the heap while this one builds its
  // views: every read of a buffer's length grows it by a page first.
  const byteLength = Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, "byteLength")!;
  let growing = false;
  Object.defineProperty(SharedArrayBuffer.prototype, "byteLength", {
    configurable: true,
    get(this: SharedArrayBuffer) {
      const bytes = byteLength.get!.call(this) as number;
      if (growing && this.growable && bytes + 65536 <= this.maxByteLength) this.grow(bytes + 65536);
      return byteLength.get!.call(this);
    },
  });
  let heap: SharedHeap;
  try {
    growing = true;
    heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  } finally {
    growing = false;
    Object.defineProperty(SharedArrayBuffer.prototype, "byteLength", byteLength);
  }
  assert.ok(heap.sab.byteLength > MiB, "the buffer grew while the heap was made");
  for (const view of [heap.i32, heap.u32, heap.u8, heap.u16, heap.f64, heap.i64]) {
    assert.equal(view.byteLength, heap.mappedBytes, view.constructor.name);
  }
  const end = heap.mappedBytes;
  assert.equal(heap.i32[(end >> 2) - 1], 0, "the last word of the mapped bytes reads");
  assert.equal(heap.f64[(end >> 3) - 1], 0);
});

Deno.test("epochs: retired memory waits for pinned readers, then is reused", () => {
  const heap = SharedHeap.create();
  const guard = heap.pin();
  const node = heap.allocate(48);
  heap.retire(node);
  for (let i = 0; i < 5; i++) heap.collect();
  assert.equal(heap.stats().retiredBlocks, 1, "freed while pinned");
  guard.unpin();
  let freed = 0;
  for (let i = 0; i < 3; i++) freed += heap.collect();
  assert.equal(freed, 1);
  assert.equal(heap.stats().retiredBlocks, 0);
  assert.equal(heap.allocate(48), node, "freed block is reused first");
});

Deno.test("epochs: across the wrap, where the epoch skips 0, a retired block still waits for two advances", () => {
  const heap = SharedHeap.create();
  Atomics.store(heap.i32, H_EPOCH, -1); // the epoch after 2^32 - 2 advances
  heap.retire(heap.allocate(64)); // retired at -1
  heap.collect(); // -1 → 1: one advance, not two
  assert.equal(heap.stats().epoch, 1);
  assert.equal(heap.stats().retiredBlocks, 1, "freed after one advance");
  heap.collect(); // 1 → 2
  assert.equal(heap.stats().retiredBlocks, 0);
});

Deno.test("epochs: distances count advances, also across the wrap (fast-check)", () => {
  const near = [-3, -2, -1, 1, 2, 0x7ffffffe, 0x7fffffff, -0x80000000];
  fc.assert(
    fc.property(
      fc.oneof(fc.constantFrom(...near), fc.integer({ min: -0x80000000, max: 0x7fffffff })),
      fc.integer({ min: 0, max: 40 }),
      (start, advances) => {
        const then = start === 0 ? 1 : start;
        let now = then;
        for (let i = 0; i < advances; i++) now = nextEpoch(now);
        assert.notEqual(now, 0);
        assert.equal(epochsBetween(then, now), advances);
        assert.equal(epochBefore(now, advances), then);
      },
    ),
  );
});

Deno.test("epochs: pins nest, guards dispose, misuse throws", () => {
  const heap = SharedHeap.create();
  {
    using _outer = heap.pin();
    {
      using _inner = heap.pin();
    }
    assert.ok(heap.isPinned);
  }
  assert.ok(!heap.isPinned);
  assertThrowsWith(() => heap.unpin(), SabreError, "no epoch is pinned");
  heap.pin();
  assertThrowsWith(() => heap.close(), SabreError, "pinned epoch");
  heap.unpin();
  heap.close();
  assertThrowsWith(() => heap.allocate(8), SabreError, "closed");
  assertThrowsWith(() => heap.retire(16), RangeError, "not a block");
});

Deno.test("epochs: many retires are collected automatically", () => {
  const heap = SharedHeap.create();
  for (let i = 0; i < 10000; i++) heap.retire(heap.allocate(64));
  const stats = heap.stats();
  assert.ok(stats.retiredBlocks < 200, `${stats.retiredBlocks} still retired`);
  assert.equal(stats.liveBlocks, stats.retiredBlocks);
});

Deno.test("roots: set, find, replace, delete, and bad input", () => {
  const heap = SharedHeap.create();
  const a = heap.allocate(64);
  const b = heap.allocate(64);
  const handle = (offset: number, kind = "app.Thing"): SharedHandle =>
    heap.handleOf(kind, 1, offset);
  heap.setRoot("counts", handle(a));
  heap.setRoot("índice ✓", handle(b, "app.Índice"));
  assert.deepEqual(heap.root("counts"), handle(a));
  assert.deepEqual(heap.root("índice ✓"), handle(b, "app.Índice"));
  heap.setRoot("counts", handle(b, "app.Other"));
  assert.equal(heap.root("counts")?.offset, b);
  assert.equal(heap.root("counts")?.kind, "app.Other");
  assert.deepEqual(heap.rootNames().sort(), ["counts", "índice ✓"].sort());
  assert.ok(heap.deleteRoot("counts"));
  assert.equal(heap.root("counts"), undefined);
  assert.ok(!heap.deleteRoot("counts"));
  assertThrowsWith(() => heap.setRoot("", handle(a)), RangeError, "1 to 64", '""');
  assertThrowsWith(() => heap.setRoot("x".repeat(65), handle(a)), RangeError, "65 bytes");
  assertThrowsWith(() => heap.root(7 as unknown as string), TypeError, "not a string", "7");
  const other = SharedHeap.create();
  assertThrowsWith(
    () => heap.setRoot("foreign", { ...handle(a), sab: other.sab }),
    RangeError,
    "another heap",
  );
  assertThrowsWith(() => heap.setRoot("neg", handle(-8)), RangeError, "offset", "-8");
  for (let i = heap.rootNames().length; i < 64; i++) heap.setRoot(`r${i}`, handle(a));
  assertThrowsWith(() => heap.setRoot("one-too-many", handle(a)), RangeError, "all 64");
});

Deno.test("registry: join, slot reuse after close, evictWorker validation", () => {
  const heap = SharedHeap.create({ maxWorkers: 2 });
  const slot = heap.join();
  assert.equal(heap.slot, slot);
  assert.equal(heap.stats().workers, 1);
  assertThrowsWith(() => heap.evictWorker(slot), RangeError, "use close()");
  assertThrowsWith(() => heap.evictWorker(2), RangeError, "'slot'", "2");
  heap.evictWorker(1); // free slot: nothing to do
  heap.close();
  assert.equal(SharedHeap.attach(heap.handle).stats().workers, 0);
});

Deno.test("registry: ownerId names one stay in a slot, ownerLeft sees it end; bad ids throw", () => {
  const heap = SharedHeap.create({ maxWorkers: 2 });
  const first = heap.ownerId();
  const slot = heap.slot;
  assert.ok(Number.isInteger(first) && first > 0, `ownerId ${first}`);
  assert.equal(heap.ownerId(), first);
  assert.equal(heap.ownerLeft(first), false);
  heap.close();
  const again = SharedHeap.attach(heap.handle);
  assert.equal(again.ownerLeft(first), true, "a closed worker's id");
  const second = again.ownerId(); // joins the same slot again
  assert.equal(again.slot, slot);
  assert.notEqual(second, first);
  assert.equal(again.ownerLeft(first), true, "the slot's earlier stay");
  assert.equal(again.ownerLeft(second), false);
  for (const bad of [0, -1, 1.5, 3, 2 ** 31, NaN, "1"]) {
    assertThrowsWith(() => again.ownerLeft(bad as number), RangeError, "'id'", String(bad));
  }
});

Deno.test("registry: pages a closed worker left in use serve the next worker that joins", () => {
  const heap = SharedHeap.create();
  const sizes = [8, 16, 24, 48, 100, 200, 500, 1000, 3000, 9000];
  const kept = sizes.map((size) => heap.allocate(size));
  heap.close(); // its pages still hold `kept`
  const next = SharedHeap.attach(heap.handle);
  next.join();
  const pages = next.stats().smallPageBytes;
  const more = sizes.map((size) => next.allocate(size));
  assert.equal(next.stats().smallPageBytes, pages, "the newcomer took fresh pages");
  for (const ptr of [...kept, ...more]) next.free(ptr);
  assert.equal(next.stats().liveBlocks, 0);
});

Deno.test("heap: setRootIfAbsent publishes once and hands later callers the first root", () => {
  const heap = SharedHeap.create();
  const a = heap.allocate(64);
  const b = heap.allocate(64);
  const handle = (offset: number, kind = "app.Counts") => heap.handleOf(kind, 1, offset);
  assert.deepEqual(heap.setRootIfAbsent("counts", handle(a)), handle(a));
  assert.deepEqual(heap.setRootIfAbsent("counts", handle(b, "app.Other")), handle(a));
  assert.deepEqual(heap.root("counts"), handle(a));
  heap.setRoot("counts", handle(b));
  assert.equal(heap.setRootIfAbsent("counts", handle(a)).offset, b);
  assert.ok(heap.deleteRoot("counts"));
  assert.equal(heap.setRootIfAbsent("counts", handle(a)).offset, a);
  // Bad input is refused before the lookup, even when the name exists.
  assertThrowsWith(() => heap.setRootIfAbsent("counts", handle(-8)), RangeError, "offset", "-8");
  assertThrowsWith(() => heap.setRootIfAbsent("", handle(a)), RangeError, "1 to 64", '""');
  const other = SharedHeap.create();
  assertThrowsWith(
    () => heap.setRootIfAbsent("counts", { ...handle(a), sab: other.sab }),
    RangeError,
    "another heap",
  );
});

Deno.test("bad input: a misspelt SharedHeap option throws TypeError naming it", () => {
  assert.throws(
    () => SharedHeap.create({ maxWorker: 2 } as never),
    (e) => e instanceof TypeError && /no field 'maxWorker'.*'maxWorkers'/.test(e.message),
  );
  assert.throws(() => SharedHeap.create(5 as never), /'options' must be an object/);
});

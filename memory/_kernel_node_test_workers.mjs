// Workers killed at random moments under Node while they loop over the
// kernel's casCounted: the CAS and its count must never come apart, since
// V8 stops WebAssembly only at a call or a loop's back edge. HashMap's
// exact size after a kill rests on this (ARCHITECTURE.md, "The size").
//
//   node _kernel_node_test_workers.mjs <bundle.mjs> [kills]
//
// The bundle is memory/_kernel_node_test_entry.ts built with `deno bundle`. Prints one JSON
// line: { kills, kernel } or { error }.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const bundle = isMainThread ? process.argv[2] : workerData.bundle;
if (!bundle) throw new Error("usage: node _kernel_node_test_workers.mjs <bundle.mjs> [kills]");
const bundleUrl = bundle.startsWith("file:") ? bundle : pathToFileURL(resolve(bundle)).href;
const { SharedHeap, heapKernel } = await import(bundleUrl);

if (!isMainThread) {
  const heap = SharedHeap.attach(workerData.heap);
  const kernel = heapKernel(heap);
  const { at, countAt } = workerData;
  const i32 = heap.i32;
  parentPort.postMessage("running");
  for (;;) {
    const seen = Atomics.load(i32, at >> 2);
    kernel.casCounted(at, seen, seen + 1, countAt, 1);
  }
} else {
  const kills = Number(process.argv[3] ?? "50");
  try {
    const heap = SharedHeap.create();
    if (heapKernel(heap) === null) {
      console.log(JSON.stringify({ kills: 0, kernel: false }));
    } else {
      const block = heap.allocateZeroed(16);
      const at = block, countAt = block + 8;
      for (let kill = 0; kill < kills; kill++) {
        const worker = new Worker(new URL(import.meta.url), {
          workerData: { bundle: bundleUrl, heap: heap.handle, at, countAt },
        });
        await new Promise((running, fail) => {
          worker.once("message", running);
          worker.once("error", fail);
        });
        await new Promise((wake) => setTimeout(wake, Math.random() * 10));
        await worker.terminate(); // settles once the thread has stopped
        const word = Atomics.load(heap.i32, at >> 2);
        const count = Atomics.load(heap.i32, countAt >> 2);
        if (word !== count) {
          throw new Error(`kill ${kill}: CAS made ${word} writes, counted ${count}`);
        }
      }
      console.log(JSON.stringify({ kills, kernel: true }));
    }
  } catch (error) {
    console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
    process.exitCode = 1;
  }
}

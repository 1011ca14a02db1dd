/**
 * sabre under Node: bundles `mod.ts` to one JavaScript file with
 * `deno bundle`, then runs `examples/node_workers.mjs` with `node`: four
 * `worker_threads` share a HashMap, a BPlusTree, a Mutex, a SeqCell and STM
 * accounts, while the main thread takes the Mutex with `lockAsync()`.
 *
 * Needs `node` on the PATH. Where it is missing the test is ignored, unless
 * `SABRE_REQUIRE_NODE=1` (CI sets it) makes that a failure.
 */

import assert from "node:assert/strict";
import { nodeVersion, requireNode, runUnderNode } from "../testing/node.ts";

const version = await nodeVersion();

Deno.test({
  name: `node: four worker_threads share every structure under Node ${version ?? "(not found)"}`,
  ignore: version === undefined && !requireNode,
  async fn() {
    assert.ok(version !== undefined, "node is not on the PATH (SABRE_REQUIRE_NODE=1)");
    const run = await runUnderNode("mod.ts", new URL("node_workers.mjs", import.meta.url));
    const result = run.result as { report: unknown; expected: unknown };
    assert.deepEqual(result.report, result.expected);
    assert.ok(run.success, `node exited with ${run.code}; stderr: ${run.stderr}`);
  },
});

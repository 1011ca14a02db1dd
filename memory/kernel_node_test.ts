/**
 * The kernel under Node, where `worker.terminate()` stops a worker wherever
 * V8 next takes a termination: workers killed while they loop over
 * `casCounted` never leave a CAS without its count. The script is
 * `_kernel_node_test_workers.mjs`.
 */

import assert from "node:assert/strict";
import { nodeVersion, requireNode, runUnderNode } from "../testing/node.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const version = await nodeVersion();

Deno.test({
  name: `kernel under node: a kill never parts casCounted's CAS from its count, ${
    40 * STRESS
  } kills (Node ${version ?? "not found"})`,
  ignore: version === undefined && !requireNode,
  async fn() {
    assert.ok(version !== undefined, "node is not on the PATH (SABRE_REQUIRE_NODE=1)");
    const run = await runUnderNode(
      "memory/_kernel_node_test_entry.ts",
      new URL("_kernel_node_test_workers.mjs", import.meta.url),
      [String(40 * STRESS)],
    );
    const result = run.result as { kills?: number; kernel?: boolean; error?: string };
    assert.equal(result.error, undefined, result.error);
    assert.ok(run.success, `node exited with ${run.code}; stderr: ${run.stderr}`);
    // From Node 26 on (toResizableBuffer) the heap has its kernel.
    if (Number(version!.slice(1).split(".")[0]) >= 26) {
      assert.deepEqual(result, { kills: 40 * STRESS, kernel: true });
    }
  },
});

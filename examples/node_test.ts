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

const root = new URL("../", import.meta.url);
const requireNode = Deno.env.get("SABRE_REQUIRE_NODE") === "1";

async function nodeVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

const version = await nodeVersion();

Deno.test({
  name: `node: four worker_threads share every structure under Node ${version ?? "(not found)"}`,
  ignore: version === undefined && !requireNode,
  async fn() {
    assert.ok(version !== undefined, "node is not on the PATH (SABRE_REQUIRE_NODE=1)");
    const dir = await Deno.makeTempDir({ prefix: "sabre-node-" });
    try {
      const bundle = `${dir}/sabre.mjs`;
      const built = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--platform", "browser", "-o", bundle, "mod.ts"],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(built.success, new TextDecoder().decode(built.stderr));
      const run = await new Deno.Command("node", {
        args: [new URL("node_workers.mjs", import.meta.url).pathname, bundle],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(run.stdout).trim();
      const stderr = new TextDecoder().decode(run.stderr).trim();
      assert.ok(stdout.length > 0, `node printed nothing; stderr: ${stderr}`);
      const result = JSON.parse(stdout.split("\n").at(-1)!);
      assert.deepEqual(result.report, result.expected);
      assert.ok(run.success, `node exited with ${run.code}; stderr: ${stderr}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

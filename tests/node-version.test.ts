// One Node version everywhere: package.json's `engines`, the README, docs/local-stack.md and the
// scripts (scripts/lib/node-version.mjs) say Node 22 or newer, and the `node` npm test's children
// run is that version (CI runs `npm test`). On a machine whose own Node is older, a script started
// with it fetches Node 22 from the npm registry into the user's cache folder and runs on it.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { MIN_NODE_MAJOR, NODE_VERSION } from "../scripts/lib/node-version.mjs";

const root = new URL("../", import.meta.url).pathname;
const major = (v: string) => Number(/^v?(\d+)/.exec(v)![1]);

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, cwd: root, env, stdout: "piped", stderr: "piped" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("engines, README, docs and the scripts agree on Node 22 or newer; npm test's node is one", async () => {
  assertEquals(MIN_NODE_MAJOR, 22);
  assertEquals(major(NODE_VERSION), MIN_NODE_MAJOR);
  const pkg = JSON.parse(await Deno.readTextFile(`${root}package.json`));
  assertEquals(pkg.engines, { node: `>=${MIN_NODE_MAJOR}` });
  assert((await Deno.readTextFile(`${root}README.md`)).includes(`Node.js ${MIN_NODE_MAJOR} or newer`));
  assert((await Deno.readTextFile(`${root}docs/local-stack.md`)).includes(`Node.js ${MIN_NODE_MAJOR} or newer`));
  assert(!/Node\.js 20\+/.test(await Deno.readTextFile(`${root}README.md`)));
  const { stdout } = await run("node", ["--version"]);
  assert(major(stdout) >= MIN_NODE_MAJOR, `npm test runs its children on ${stdout}`);
});

// The machine's own Node (PATH without the folder npm test put first): only where it is older.
const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const systemMajor = systemNode
  ? major(new TextDecoder().decode(new Deno.Command(systemNode, { args: ["--version"], stdout: "piped" }).outputSync().stdout))
  : 99;

Deno.test({
  name: "a script started with an older Node fetches Node 22 once into the user's cache and runs on it",
  ignore: systemMajor >= MIN_NODE_MAJOR,
  fn: async () => {
    const cache = await Deno.makeTempDir({ prefix: "supabill-node-cache-" });
    const script = `${cache}/which.mjs`;
    await Deno.writeTextFile(script, `import ${JSON.stringify(`${root}scripts/lib/node-version.mjs`)};\nconsole.log(process.version);\n`);
    try {
      const env = { XDG_CACHE_HOME: cache, PATH: Deno.env.get("PATH")!.split(":").filter((d) => !d.startsWith(cache)).join(":") };
      const first = await run(systemNode!, [script], env);
      assertEquals([first.code, first.stdout], [0, `v${NODE_VERSION}`], first.stderr);
      assert(first.stderr.includes(`fetching Node.js ${NODE_VERSION}`) && first.stderr.includes(cache), first.stderr);
      const again = await run(systemNode!, [script], env);
      assertEquals([again.code, again.stdout, again.stderr], [0, `v${NODE_VERSION}`, ""]);
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  },
});

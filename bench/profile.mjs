// `node bench/profile.mjs <scenario> [concurrency] [seconds]`: a CPU profile of Latchkey under one
// benchmark scenario, taken through workerd's inspector (Chrome DevTools protocol), printed as the
// functions with the most self time. Writes the whole profile to dist/bench/<scenario>.cpuprofile,
// which Chrome DevTools opens.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { latchkeySetup } from "./flows.mjs";
import { SCENARIOS } from "./scenarios.mjs";
import { build, cleanTemp, freePort, ROOT, serveWorker, startLoadGenerator } from "./servers.mjs";

const [id = "client_credentials", c = "16", seconds = "5"] = process.argv.slice(2);
const scenario = SCENARIOS.find((s) => s.id === id && s.server === "latchkey");
if (!scenario) throw new Error(`no Latchkey scenario ${id}`);

const { script } = build("latchkey", "wrangler.toml", "dev");
const port = await freePort();
const inspectorPort = await freePort();
const server = await serveWorker({
  name: "latchkey",
  config: "wrangler.toml",
  env: "dev",
  script,
  port,
  inspectorPort,
  localLimits: true,
  vars: { ISSUER: `http://127.0.0.1:${port}`, AUTHORIZATION_CODE_TTL: "600" },
});
const loader = startLoadGenerator();
try {
  const state = { settings: { codes: 3000 }, latchkeyChains: [] };
  state.latchkey = await latchkeySetup(server.origin);
  const job = await scenario.prepare(state, Number(c));

  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => t.id?.includes("latchkey") || t.title?.includes("latchkey")) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 0;
  const pending = new Map();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  };
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const msgId = ++next;
      pending.set(msgId, resolve);
      ws.send(JSON.stringify({ id: msgId, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  const result = await loader.run({
    ...job,
    origin: server.origin,
    connections: Number(c),
    seconds: Number(seconds),
    warmup_seconds: 0.5,
    cpu_pid: server.pid,
  });
  const { profile } = await send("Profiler.stop");
  ws.close();
  writeFileSync(join(ROOT, "dist", "bench", `${id}.cpuprofile`), JSON.stringify(profile));

  // Self time per function (by sample count), and total samples.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (const sample of profile.samples) {
    const f = byId.get(sample).callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  console.log(
    `${id} c=${c}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50_ms.toFixed(2)} ms, CPU ${result.cpu_ms.toFixed(3)} ms/req, errors ${result.errors}`,
  );
  for (const [key, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${key}`);
} finally {
  loader.stop();
  await server.stop();
  cleanTemp();
}

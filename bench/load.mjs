// The load generator: a child process of bench/run.mjs, so that its CPU is not the server's. It takes
// jobs over IPC and answers each with counts and latencies. One undici Pool per job whose
// keep-alive connections are the concurrency; each connection sends its next request only when
// the previous answer has arrived (closed loop), so the concurrency is exactly the number of
// requests in flight.
//
// Three kinds of job:
//   fixed  the same request again and again, for `seconds` (after `warmup_seconds` not counted);
//   list   each request of `requests` exactly once (codes are single-use): a fixed number of requests;
//   chain  refresh-token chains, one per connection: each answer's `refresh_token` goes into the next
//          request of the same chain, for `seconds`; the job returns every chain's last token.
// The server's CPU time is read from /proc/<cpu_pid> when counting starts and ends.
// An answer counts when it is HTTP 200 and, if the job says `expect`, its body contains that text.
import { Pool } from "undici";
import { cpuMs } from "./proc.mjs";

/** One request: the body is sent as given; `{token}` in a chain's body is replaced by the chain's token. */
function send(pool, { method = "POST", path, headers = {}, body }) {
  return pool.request({ method, path, headers, body });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function run(job) {
  const pool = new Pool(job.origin, { connections: job.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies = [];
  let errors = 0;
  let firstError;
  let counting = false;
  const fail = (what) => {
    errors++;
    firstError ??= what;
  };

  // One request, timed; returns the parsed JSON body for chains (undefined on failure).
  async function once(request, wantBody) {
    const start = performance.now();
    try {
      const res = await send(pool, request);
      const text = await res.body.text();
      const ms = performance.now() - start;
      // A 200 that is not the answer we measure (say `{"active":false}`) is an error too.
      if (res.statusCode !== 200 || (job.expect && !text.includes(job.expect))) {
        if (counting) fail(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
        return undefined;
      }
      if (counting) latencies.push(ms);
      return wantBody ? JSON.parse(text) : true;
    } catch (error) {
      if (counting) fail(String(error));
      return undefined;
    }
  }

  const loops = [];
  let started;
  let cpuStart;
  let finalChains;
  if (job.kind === "list") {
    let next = 0;
    counting = true;
    started = performance.now();
    cpuStart = cpuMs(job.cpu_pid);
    for (let c = 0; c < job.connections; c++) {
      loops.push(
        (async () => {
          while (next < job.requests.length) await once(job.requests[next++], false);
        })(),
      );
    }
    await Promise.all(loops);
  } else {
    const warmupEnd = performance.now() + (job.warmup_seconds ?? 0) * 1000;
    let end = Number.POSITIVE_INFINITY;
    const chains = job.kind === "chain" ? [...job.chains] : [];
    for (let c = 0; c < job.connections; c++) {
      loops.push(
        (async () => {
          while (performance.now() < end) {
            if (job.kind === "fixed") {
              await once(job.request, false);
              continue;
            }
            const token = chains[c];
            if (token === null) return;
            const body = await once({ ...job.template, body: job.template.body.replace("{token}", encodeURIComponent(token)) }, true);
            // A failed link ends its chain: its token may or may not have rotated.
            chains[c] = body?.refresh_token ?? null;
          }
        })(),
      );
    }
    // Wait out the warm-up, then count for `seconds`.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, warmupEnd - performance.now())));
    counting = true;
    started = performance.now();
    cpuStart = cpuMs(job.cpu_pid);
    end = started + job.seconds * 1000;
    await Promise.all(loops);
    finalChains = chains;
  }
  const elapsed = performance.now() - started;
  const cpu = cpuMs(job.cpu_pid) - cpuStart;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    errors,
    first_error: firstError,
    seconds: elapsed / 1000,
    rps: latencies.length / (elapsed / 1000),
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    /** CPU the server process (`cpu_pid`) spent per answered request while we counted. */
    cpu_ms: cpu / Math.max(1, latencies.length + errors),
    ...(finalChains ? { chains: finalChains } : {}),
  };
}

process.on("message", async ({ id, job }) => {
  try {
    process.send({ id, result: await run(job) });
  } catch (error) {
    process.send({ id, error: String(error?.stack ?? error) });
  }
});
// Ends with the benchmark, however it ends.
process.on("disconnect", () => process.exit(0));

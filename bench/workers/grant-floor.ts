import { DurableObject } from "cloudflare:workers";
import { floorToken } from "./floor-token";

/** The bindings Miniflare gives this control (bench/servers.mjs). */
interface FloorEnv {
  FLOOR: DurableObjectNamespace<FloorObject>;
}

/**
 * Control, the grant floor: one Durable Object call per request that makes one storage write, the
 * least a single-use code or a rotating refresh token can cost. Requests go round-robin over as
 * many objects as the benchmark has refresh-token chains, as the grants do; at `/new`, each goes to a
 * new object (for context: every authorization code lives in its own object); at `/issue`, the write
 * and one signature, the least any grant that mints a token from stored state can cost.
 */
export class FloorObject extends DurableObject {
  async write(value: { hash: string; at: number }): Promise<{ ok: true }> {
    await this.ctx.storage.put("grant", value);
    return { ok: true };
  }
}

const OBJECTS = 64;
let next = 0;

export default {
  async fetch(request, env): Promise<Response> {
    next = (next + 1) % OBJECTS;
    const path = new URL(request.url).pathname;
    // `/new`: the write goes to a brand-new object each time, as a code's first redemption reaches its own grant.
    const stub = env.FLOOR.get(path === "/new" ? env.FLOOR.newUniqueId() : env.FLOOR.idFromName(`floor-${next}`));
    const result = await stub.write({ hash: crypto.randomUUID(), at: Date.now() });
    // `/issue`, the issuance floor: the write, then the signing floor's one signature (`floor-token.ts`).
    if (path === "/issue") return floorToken();
    return Response.json(result, { headers: { "Cache-Control": "no-store" } });
  },
} satisfies ExportedHandler<FloorEnv>;

import { DurableObject } from "cloudflare:workers";

/** The bindings Miniflare gives this control (bench/servers.mjs). */
interface FloorEnv {
  FLOOR: DurableObjectNamespace<FloorObject>;
}

/**
 * Control, the grant floor: one Durable Object call per request that makes one storage write, the
 * least a single-use code or a rotating refresh token can cost. Requests go round-robin over as
 * many objects as the benchmark has refresh-token chains, as the grants do.
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
  async fetch(_request, env): Promise<Response> {
    next = (next + 1) % OBJECTS;
    const stub = env.FLOOR.get(env.FLOOR.idFromName(`floor-${next}`));
    const result = await stub.write({ hash: crypto.randomUUID(), at: Date.now() });
    return Response.json(result, { headers: { "Cache-Control": "no-store" } });
  },
} satisfies ExportedHandler<FloorEnv>;

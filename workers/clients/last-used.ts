import type { Context } from "hono";
import type { Client } from "../../schemas/client";
import { now } from "../clock";
import type { AppEnv } from "../types";

/**
 * Records that a dynamically registered client was used, for the Registry's idle sweep
 * (`durable-objects/registry-housekeeping.ts`), without a Durable Object call: a KV write of
 * `last-used:{client_id}`, after the response (`waitUntil`), at most once per TOUCH_INTERVAL per client
 * and isolate. Clients the admin registered never expire and are not recorded.
 */
export const TOUCH_INTERVAL = 3600;
/** How much older than the true last use a recorded one can be: the touch interval plus KV's 60 s of edge caching. */
export const LAST_USED_MARGIN = TOUCH_INTERVAL + 60;

const touched = new Map<string, number>();
const TOUCHED_MAX = 5000;

/** Records, after the response and at most hourly, that `client` was just used (dynamically registered clients only). */
export function markUsed(c: Context<AppEnv>, client: Client): void {
  if (client.registered_by !== "dynamic_registration" || c.get("cfg").CLIENT_IDLE_TTL === 0) return;
  const t = now();
  const last = touched.get(client.client_id);
  if (last !== undefined && t - last < TOUCH_INTERVAL && t >= last) return;
  if (touched.size >= TOUCHED_MAX) touched.delete(touched.keys().next().value as string);
  touched.set(client.client_id, t);
  const write = c.env.CLIENT_CACHE.put(`last-used:${client.client_id}`, String(t)).catch((error: unknown) => {
    // Not recorded: try again on the next use rather than an hour later.
    touched.delete(client.client_id);
    console.error(JSON.stringify({ level: "error", message: "could not record client use", client_id: client.client_id, error: String(error) }));
  });
  try {
    c.executionCtx.waitUntil(write);
  } catch {
    // No execution context (the app called directly): the write still runs, unattended.
  }
}

import type { InitialAccessToken } from "../schemas/registration";
import { LAST_USED_MARGIN } from "../workers/clients/last-used";
import type { RegistryCache } from "./registry-cache";
import { deleteClientRecord, type IdleEntry } from "./registry-clients";
import { beginRevocation } from "./registry-revocation";

/**
 * The Registry's alarm work: forget registration counts of past hours and expired initial access
 * tokens, and delete dynamically registered clients nobody has used for `idle_ttl` seconds.
 *
 * Last use is never recorded on the hot path by a Durable Object call: the Worker writes
 * `last-used:{client_id}` to KV at most once an hour per client and isolate (`workers/clients/last-used.ts`).
 * The sweep trusts its own `idle:` entry while that is recent, and reads KV only for a client that
 * looks idle. A recorded use is at most LAST_USED_MARGIN older than the true last use, so a client
 * is deleted no earlier than `idle_ttl` after its last use, and no later than `idle_ttl` + the margin
 * + one sweep interval (an hour, more while a sweep pages through many clients).
 */

/** Seconds between housekeeping rounds while anything needs watching. */
export const SWEEP_INTERVAL = 3600;
/**
 * Idle entries examined per alarm; a sweep over more continues in the next alarm, a second later. Each
 * costs at most three KV operations (the last-use read, and for a deleted client its two cached keys), so a
 * page stays under the 1,000 KV operations one invocation may make.
 */
export const SWEEP_PAGE = 250;

/** One round of housekeeping at `now`. Returns when the alarm should next run, or null when nothing is left to watch. */
export async function housekeeping(storage: DurableObjectStorage, env: Env, cache: RegistryCache, now: number, idle_ttl: number): Promise<number | null> {
  const hour = Math.floor(now / 3600);
  const rates = await storage.list<number>({ prefix: "rate:" });
  const pastRates = [...rates.keys()].filter((k) => Number(k.split(":")[1]) < hour);
  const expiring = [...(await storage.list<InitialAccessToken>({ prefix: "iat:" }))].filter(([, t]) => t.expires_at !== undefined);
  const expiredIats = expiring.filter(([, t]) => (t.expires_at as number) <= now).flatMap(([k, t]) => [k, `iat-id:${t.id}`]);
  for (let i = 0; i < pastRates.length + expiredIats.length; i += 128) {
    // storage.delete takes at most 128 keys at a time.
    await storage.delete([...pastRates, ...expiredIats].slice(i, i + 128));
  }
  const more = idle_ttl > 0 ? await sweepIdleClients(storage, env, cache, now, idle_ttl) : false;
  if (more) return now + 1;
  const watching = rates.size > pastRates.length || expiring.length * 2 > expiredIats.length || (await storage.list({ prefix: "idle:", limit: 1 })).size > 0;
  return watching ? now + SWEEP_INTERVAL : null;
}

/** One page of the idle sweep; true when it stopped before the end. */
async function sweepIdleClients(storage: DurableObjectStorage, env: Env, cache: RegistryCache, now: number, idle_ttl: number): Promise<boolean> {
  const cursor = await storage.get<string>("sweep-cursor");
  const page = await storage.list<IdleEntry>({ prefix: "idle:", limit: SWEEP_PAGE, ...(cursor ? { startAfter: cursor } : {}) });
  const deadline = idle_ttl + LAST_USED_MARGIN;
  for (const [key, entry] of page) {
    if (now - entry.last_used <= deadline) continue;
    const clientId = key.slice("idle:".length);
    const observed = Number((await env.CLIENT_CACHE.get(`last-used:${clientId}`)) ?? 0);
    if (observed > entry.last_used) {
      await storage.put(key, { last_used: observed } satisfies IdleEntry);
      if (now - observed <= deadline) continue;
    }
    // Its grants are revoked by the same alarm, after the sweep (`registry-revocation.ts`).
    await beginRevocation(storage, `client:${clientId}`);
    await deleteClientRecord(storage, env, cache, clientId);
  }
  const last = [...page.keys()].at(-1);
  if (page.size === SWEEP_PAGE && last) {
    await storage.put("sweep-cursor", last);
    return true;
  }
  await storage.delete("sweep-cursor");
  return false;
}

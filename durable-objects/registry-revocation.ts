import { log } from "../workers/observe/log";

/**
 * Revoking every grant of a deleted client or user. Each grant is one Durable Object call, and one
 * invocation may make only so many (50 subrequests on the Workers Free plan), so the Registry revokes a
 * page at a time: the deletion marks its owner (`revoking:{owner}`, written with the deletion), revokes a
 * first page at once, and the Registry's alarm continues until the owner's index is empty. A page that
 * fails is tried again by the alarm; revoking a grant twice changes nothing.
 *
 * Storage keys: `grant-of:{owner}\n{grant_id}` (the index, see `registry.ts`), `revoking:{owner}`.
 */

/** Most grants revoked in one invocation (each is a Durable Object call). */
export const REVOKE_PAGE = 40;
const REVOKING = "revoking:";

/** Marks `owner` (`client:{id}` or `user:{id}`) as having grants left to revoke. */
export async function beginRevocation(storage: DurableObjectStorage, owner: string): Promise<void> {
  await storage.put(`${REVOKING}${owner}`, true);
}

/**
 * Revokes up to `limit` grants indexed under `owner` and drops them from the index; when none remain,
 * the owner's mark too. An index entry that names no grant object is dropped.
 */
export async function revokeGrantsOf(storage: DurableObjectStorage, env: Env, owner: string, limit = REVOKE_PAGE): Promise<{ revoked: number; more: boolean }> {
  const prefix = `grant-of:${owner}\n`;
  const entries = await storage.list({ prefix, limit: limit + 1 });
  const keys = [...entries.keys()].slice(0, limit);
  await Promise.all(keys.map((k) => revokeGrant(env, k.slice(prefix.length))));
  // storage.delete takes at most 128 keys at a time.
  for (let i = 0; i < keys.length; i += 128) await storage.delete(keys.slice(i, i + 128));
  const more = entries.size > limit;
  if (!more) await storage.delete(`${REVOKING}${owner}`);
  return { revoked: keys.length, more };
}

/** The alarm's part: a page of every marked owner's grants, REVOKE_PAGE in all. True while some remain. */
export async function continueRevocations(storage: DurableObjectStorage, env: Env): Promise<boolean> {
  const owners = [...(await storage.list({ prefix: REVOKING })).keys()].map((k) => k.slice(REVOKING.length));
  let budget = REVOKE_PAGE;
  let pending = false;
  for (const owner of owners) {
    if (budget === 0) return true;
    try {
      const { revoked, more } = await revokeGrantsOf(storage, env, owner, budget);
      budget -= revoked;
      pending ||= more;
    } catch (error) {
      log("warn", "revocation_deferred", { owner, error: String(error) });
      pending = true;
    }
  }
  return pending;
}

async function revokeGrant(env: Env, grantId: string): Promise<void> {
  let id: DurableObjectId;
  try {
    id = env.GRANTS.idFromString(grantId);
  } catch {
    return; // not an object id of ours: nothing to revoke
  }
  await env.GRANTS.get(id).revoke("owner_deleted");
}

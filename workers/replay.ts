import { sha256 } from "./crypto";

/** How many ReplayGuard objects share the load. Changing it forgets nothing dangerous: ids are short-lived. */
const SHARDS = 32;

/**
 * Claims a single-use identifier in its ReplayGuard shard. `namespace` keeps kinds apart (a DPoP
 * `jti` cannot collide with a client-assertion `jti`). Returns false if it was used before.
 */
export async function claimOnce(env: Env, namespace: string, id: string, exp: number, now: number): Promise<boolean> {
  const key = await sha256(`${namespace}\u0000${id}`);
  const shard = (key.charCodeAt(0) * 64 + key.charCodeAt(1)) % SHARDS;
  const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(`replay-${shard}`));
  const result = await stub.claim({ id: key, exp, now });
  return result.ok;
}

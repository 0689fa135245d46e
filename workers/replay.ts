import { sha256 } from "./crypto";

/** How many ReplayGuard objects share the load. Changing it forgets nothing dangerous: ids are short-lived. */
const SHARDS = 32;

/** The ReplayGuard shard of `id` in `namespace`, and the key it is recorded under there. */
async function shardOf(env: Env, namespace: string, id: string) {
  const key = await sha256(`${namespace}\u0000${id}`);
  const shard = (key.charCodeAt(0) * 64 + key.charCodeAt(1)) % SHARDS;
  return { stub: env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(`replay-${shard}`)), key };
}

/**
 * Claims a single-use identifier in its ReplayGuard shard. `namespace` keeps kinds apart (a DPoP
 * `jti` cannot collide with a client-assertion `jti`). Returns false if it was used before.
 */
export async function claimOnce(env: Env, namespace: string, id: string, exp: number, now: number): Promise<boolean> {
  const { stub, key } = await shardOf(env, namespace, id);
  const result = await stub.claim({ id: key, exp, now });
  return result.ok;
}

/** Gives back a claim made by `claimOnce`, so the identifier may be used once more. */
export async function releaseClaim(env: Env, namespace: string, id: string): Promise<void> {
  const { stub, key } = await shardOf(env, namespace, id);
  await stub.release({ id: key });
}

/** Whether `id` was claimed in `namespace` and its claim has not yet expired. */
export async function wasClaimed(env: Env, namespace: string, id: string, now: number): Promise<boolean> {
  const { stub, key } = await shardOf(env, namespace, id);
  return stub.seen({ id: key, now });
}

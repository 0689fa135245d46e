import { createLocalJWKSet, createRemoteJWKSet, customFetch, type JWK, type JWTVerifyGetKey } from "jose";
import * as v from "valibot";
import { type Client, JwksSchema } from "../../schemas/client";
import type { Config } from "../config";
import { outboundPolicy, safeFetch } from "./safe-fetch";

/** A client's `jwks_uri` could not be used; `description` is a wire-safe phrase ("answered HTTP 404, not 200"). */
export class ClientKeysUnavailable extends Error {
  override name = "ClientKeysUnavailable";
  constructor(readonly description: string) {
    super(description);
  }
}

/** How long an unknown `kid` waits before it may trigger another fetch of a jwks_uri. */
const REFETCH_COOLDOWN_MS = 30_000;
const REMOTE_MAX = 1000;
const remote = new Map<string, JWTVerifyGetKey>();
/** Key sets of `jwks` by value, per client record: jose imports each key once per set, not per request. */
const local = new WeakMap<object, JWTVerifyGetKey>();

/**
 * The keys a client's assertions (or a trusted attester's attestations) are verified with: its `jwks`, or its `jwks_uri` fetched through
 * `safeFetch` (same SSRF rules, size cap and deadline as a metadata document) and kept per isolate by
 * jose for at most CIMD_CACHE_MAX_TTL. A `kid` not in the cached set refetches, at most once per cooldown,
 * so a client can rotate keys without waiting for the cache.
 */
export function clientKeys(client: Pick<Client, "jwks" | "jwks_uri">, cfg: Config): JWTVerifyGetKey | null {
  if (client.jwks) {
    // Client records are cached per isolate (`clients/cache.ts`); a changed record is a new object, so new keys.
    let keys = local.get(client.jwks);
    if (!keys) {
      keys = createLocalJWKSet(client.jwks);
      local.set(client.jwks, keys);
    }
    return keys;
  }
  if (!client.jwks_uri) return null;
  const id = `${client.jwks_uri}\u0000${cfg.CIMD_CACHE_MAX_TTL}`;
  let keys = remote.get(id);
  if (!keys) {
    const policy = outboundPolicy(cfg);
    keys = createRemoteJWKSet(new URL(client.jwks_uri), {
      cooldownDuration: REFETCH_COOLDOWN_MS,
      cacheMaxAge: cfg.CIMD_CACHE_MAX_TTL * 1000,
      timeoutDuration: policy.timeoutMs,
      [customFetch]: async (url: string) => {
        const result = await safeFetch(url, policy, { accept: "application/jwk-set+json, application/json" });
        if (!result.ok) throw new ClientKeysUnavailable(result.description);
        // The same rule as for `jwks` by value: public signing keys only.
        if (!v.is(JwksSchema, result.json)) throw new ClientKeysUnavailable("is not a JWK Set of public keys");
        return Response.json(result.json);
      },
    });
    if (remote.size >= REMOTE_MAX) remote.delete(remote.keys().next().value as string);
    remote.set(id, keys);
  }
  return keys;
}

/** Tests only: forget every fetched key set. */
export function clearClientKeys(): void {
  remote.clear();
}

/**
 * The client's public key whose `kid` is `kid`, as a JWK: from `jwks`, or from the `jwks_uri` set that
 * `clientKeys` caches, refetched (at most once per cooldown) when the kid is not in it. HTTP message
 * signatures name their key by `keyid` alone, with no JWS header for jose's key selection to read.
 */
export async function clientJwk(client: Client, cfg: Config, kid: string): Promise<JWK | undefined> {
  const find = (set: { keys: JWK[] } | undefined) => set?.keys.find((k) => k.kid === kid);
  if (client.jwks) return find(client.jwks as { keys: JWK[] });
  const keys = clientKeys(client, cfg) as JWTVerifyGetKey & Partial<RemoteKeys>;
  if (!keys?.reload || !keys.jwks) return undefined;
  if (!keys.fresh) await keys.reload();
  let jwk = find(keys.jwks());
  if (!jwk && !keys.coolingDown) {
    await keys.reload();
    jwk = find(keys.jwks());
  }
  return jwk;
}

/** What jose's remote JWK set exposes besides the key getter. */
interface RemoteKeys {
  readonly coolingDown: boolean;
  readonly fresh: boolean;
  reload: () => Promise<void>;
  jwks: () => { keys: JWK[] } | undefined;
}

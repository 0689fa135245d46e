import { createLocalJWKSet, errors, importJWK, type JWK, type JWTVerifyGetKey } from "jose";
import { KEYSET_CACHE_SECONDS, type KeySet, type SigningAlg } from "../../durable-objects/key-ring";
import { config } from "../config";

interface Loaded {
  set: KeySet;
  signing: Map<SigningAlg, Promise<{ kid: string; key: CryptoKey }>>;
  verify: JWTVerifyGetKey;
  body: string;
}

/** Per-isolate copy of the KeyRing's answer; imported CryptoKeys are kept with it. */
let loaded: { promise: Promise<Loaded>; refresh_at: number; loaded_at: number } | undefined;

/** Least time between two loads that a token naming an unknown `kid` may cause, so such tokens cannot flood the KeyRing. */
const UNKNOWN_KID_RELOAD_SECONDS = 30;

function load(env: Env, now: number): Promise<Loaded> {
  if (loaded && now < loaded.refresh_at) return loaded.promise;
  const cfg = config(env);
  const ring = env.KEY_RING.get(env.KEY_RING.idFromName("key-ring"));
  // Old keys must outlive every token they signed, plus the time an isolate may still sign with them.
  const retain_seconds = Math.max(cfg.ACCESS_TOKEN_TTL, cfg.ID_TOKEN_TTL) + KEYSET_CACHE_SECONDS + 60;
  const promise = ring.current({ rotation_interval: cfg.KEY_ROTATION_INTERVAL, retain_seconds, now }).then((set) => ({
    set,
    signing: new Map(),
    verify: createLocalJWKSet(set.jwks),
    body: JSON.stringify(set.jwks),
  }));
  loaded = { promise, refresh_at: now + KEYSET_CACHE_SECONDS, loaded_at: now };
  promise.then(
    (l) => {
      if (loaded?.promise === promise) loaded.refresh_at = l.set.refresh_at;
    },
    () => {
      if (loaded?.promise === promise) loaded = undefined;
    },
  );
  return promise;
}

/** The key that signs with `alg` now, imported once per isolate. */
export async function signingKey(env: Env, alg: SigningAlg, now: number): Promise<{ kid: string; key: CryptoKey }> {
  const l = await load(env, now);
  let key = l.signing.get(alg);
  if (!key) {
    const { kid, private_jwk } = l.set.signing[alg];
    key = importJWK(private_jwk as JWK, alg).then((k) => ({ kid, key: k as CryptoKey }));
    l.signing.set(alg, key);
  }
  return key;
}

/** The published JWK Set (RFC 7517) as a JSON string, and how long it may be cached. */
export async function publishedJwks(env: Env, now: number): Promise<{ body: string; max_age: number }> {
  const l = await load(env, now);
  return { body: l.body, max_age: Math.max(0, Math.min(KEYSET_CACHE_SECONDS, l.set.refresh_at - now)) };
}

/**
 * Key resolver for verifying tokens Latchkey itself issued. Keys are published a rotation before they sign,
 * so a `kid` this isolate's copy lacks is normally not ours; but after a changed KEY_ENCRYPTION_KEY the
 * KeyRing signs with a new key at once, which isolates holding the older copy would refuse for up to
 * KEYSET_CACHE_SECONDS. So an unknown `kid` loads the set again, at most every UNKNOWN_KID_RELOAD_SECONDS.
 */
export async function ownKeys(env: Env, now: number): Promise<JWTVerifyGetKey> {
  const { verify } = await load(env, now);
  return async (header, token) => {
    try {
      return await verify(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || typeof header.kid !== "string") throw error;
      if (loaded && now < loaded.loaded_at + UNKNOWN_KID_RELOAD_SECONDS) throw error;
      loaded = undefined;
      return (await load(env, now)).verify(header, token);
    }
  };
}

/** For tests: forget the isolate's copy. */
export function resetKeyCache(): void {
  loaded = undefined;
}

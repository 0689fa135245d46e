import { base64url, importJWK, type JWK } from "jose";
import { config } from "../config";
import type { VapidKeys } from "./web-push";

let cached: { source: string; keys: Promise<VapidKeys> } | undefined;

/**
 * The VAPID key pair (RFC 8292): `VAPID_PRIVATE_JWK` when configured (a secret), else the one the
 * VapidKeys Durable Object generated and keeps. Imported once per isolate.
 */
export function vapidKeys(env: Env): Promise<VapidKeys> {
  const configured = config(env).VAPID_PRIVATE_JWK;
  const source = configured ?? "generated";
  if (cached?.source === source) return cached.keys;
  const jwk: Promise<JWK> = configured
    ? Promise.resolve(JSON.parse(configured) as JWK)
    : env.VAPID_KEYS.get(env.VAPID_KEYS.idFromName("vapid"))
        .keyPair()
        .then((k) => k.private_jwk as JWK);
  const keys = jwk.then(async (j) => ({ privateKey: (await importJWK(j, "ES256")) as CryptoKey, publicKey: publicKeyOf(j) }));
  cached = { source, keys };
  keys.catch(() => {
    if (cached?.keys === keys) cached = undefined;
  });
  return keys;
}

/** RFC 8292 §3.2: the public key as an uncompressed P-256 point (0x04 || x || y), base64url. */
export function publicKeyOf(jwk: JWK): string {
  const x = base64url.decode(jwk.x as string);
  const y = base64url.decode(jwk.y as string);
  const point = new Uint8Array(65);
  point[0] = 4;
  point.set(x, 1);
  point.set(y, 33);
  return base64url.encode(point);
}

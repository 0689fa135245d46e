import { base64url, calculateJwkThumbprint, importJWK, type JWK } from "jose";
import type { NotifyKeyPurpose } from "../../durable-objects/notify-keys";
import { config } from "../config";

/** A P-256 signing key for notifications: the private key, its public JWK, and its RFC 7638 thumbprint as `kid`. */
export interface NotifyKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
}

const cached = new Map<string, Promise<NotifyKey>>();

/**
 * The key for `purpose`, imported once per isolate: for `vapid` the configured `VAPID_PRIVATE_JWK` if
 * any, else the one the NotifyKeys Durable Object generated and keeps.
 */
export function notifyKey(env: Env, purpose: NotifyKeyPurpose): Promise<NotifyKey> {
  const configured = purpose === "vapid" ? config(env).VAPID_PRIVATE_JWK : undefined;
  const id = `${purpose}\u0000${configured ?? "generated"}`;
  let key = cached.get(id);
  if (!key) {
    const jwk: Promise<JWK> = configured
      ? Promise.resolve(JSON.parse(configured) as JWK)
      : env.NOTIFY_KEYS.get(env.NOTIFY_KEYS.idFromName("notify-keys"))
          .keyPair({ purpose })
          .then((k) => k.private_jwk as JWK);
    key = jwk.then(async (j) => {
      const publicJwk: JWK = { kty: "EC", crv: "P-256", x: j.x, y: j.y };
      return { privateKey: (await importJWK(j, "ES256")) as CryptoKey, publicJwk, kid: await calculateJwkThumbprint(publicJwk) };
    });
    cached.set(id, key);
    key.catch(() => cached.delete(id));
  }
  return key;
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

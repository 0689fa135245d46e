import { DurableObject } from "cloudflare:workers";
import type { JWK } from "jose";

/**
 * VapidKeys: keeps the VAPID key pair (RFC 8292) when none is configured (`VAPID_PRIVATE_JWK`). One
 * instance (`idFromName("vapid")`); the key is generated on first use and never changes, because every
 * push subscription a browser made is bound to it (RFC 8292 §3.2, `applicationServerKey`).
 *
 *   (none) ──keyPair (first call)──► kept ──keyPair──► kept
 */
export class VapidKeys extends DurableObject<Env> {
  /** The private key as a JWK (its `x` and `y` are the public key). Generated once, inside one input gate. */
  async keyPair(): Promise<{ private_jwk: JWK }> {
    const kept = await this.ctx.storage.get<JWK>("vapid");
    if (kept) return { private_jwk: kept };
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JWK;
    // Two first calls may race through generation; the first stored key wins and both answer with it.
    const raced = await this.ctx.storage.get<JWK>("vapid");
    if (raced) return { private_jwk: raced };
    await this.ctx.storage.put("vapid", jwk);
    return { private_jwk: jwk };
  }
}

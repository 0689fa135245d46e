import { DurableObject } from "cloudflare:workers";
import type { JWK } from "jose";

/** What a key pair is for; each purpose has its own key, never shared across protocols. */
export type NotifyKeyPurpose = "vapid" | "webhook";

/**
 * NotifyKeys: the P-256 key pairs that sign what Latchkey sends to users' devices and gateways, one
 * per purpose: the VAPID key of Web Push (RFC 8292; used when `VAPID_PRIVATE_JWK` is not configured)
 * and the webhook signing key (RFC 9421). One instance (`idFromName("notify-keys")`). A key is
 * generated on first use and never changes: browsers bind push subscriptions to the VAPID key, and
 * gateways pin the webhook key from `/webhook-keys`.
 *
 *   (none) ──keyPair (first call for a purpose)──► kept ──keyPair──► kept
 */
export class NotifyKeys extends DurableObject<Env> {
  /** The private key as a JWK (its `x` and `y` are the public key). */
  async keyPair(input: { purpose: NotifyKeyPurpose }): Promise<{ private_jwk: JWK }> {
    const key = `key:${input.purpose}`;
    const kept = this.ctx.storage.kv.get<JWK>(key);
    if (kept) return { private_jwk: kept };
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JWK;
    // Two first calls may both generate; the first one stored wins and both answer with it.
    const raced = this.ctx.storage.kv.get<JWK>(key);
    if (raced) return { private_jwk: raced };
    this.ctx.storage.kv.put(key, jwk);
    return { private_jwk: jwk };
  }
}

import type { Context } from "hono";
import type { JWK } from "jose";
import { checkContentDigest, HTTPSIG_ALGS, targetOnOrigin, verifyRequestSignature } from "../httpsig/verify";

export { HTTPSIG_ALGS };

/** draft-richer-oauth-httpsig-03 §5: the tag of a signature presenting a bound token. */
export const PRESENTATION_TAG = "httpsig-oauth";

/**
 * HTTP message signature bound tokens at a resource server (draft-richer-oauth-httpsig-03 §5, §6): a
 * token whose `cnf.jwk` names a key is accepted only as `Authorization: HTTPSig <token>` with an RFC 9421
 * signature tagged `httpsig-oauth` by that key. These options tune how.
 */
export interface HttpsigOptions {
  /** How far (seconds) `created` may lie from the server's clock, either way. Default 30. */
  windowSeconds?: number;
  /** Components to require besides `@method`, `@target-uri` and `authorization` (say `content-digest`, `content-type`). */
  require?: readonly string[];
  /**
   * Replay protection (draft §6: "The nonce value has not been previously used within the time validity
   * window"), which the kit cannot do alone. Called once per signature that passed every other check with a
   * fixed-length id (base64url SHA-256 of the key and nonce) and the time until which it could still
   * pass; record it and return true the first time, false after. Use a consistent store (a Durable Object
   * such as Latchkey's ReplayGuard), not isolate memory. Without it a captured request can be replayed
   * within the window.
   */
  claimNonce?: (id: string, until: number) => Promise<boolean>;
  /** The time, seconds since the epoch. Default: the system clock. */
  now?: () => number;
}

export type SignatureCheck = { ok: true } | { ok: false; description: string };

/**
 * draft §6: "the RS MUST perform the following checks": the signature validates with the token's key and
 * that key's algorithm, `created` is recent, `nonce` unused, `tag` is `httpsig-oauth`, and the covered
 * components include `@method`, `@target-uri` and `authorization`. `@target-uri` is this resource's
 * configured origin plus the request's path and query — never the Host header, which the client chooses.
 */
export async function checkHttpsig(c: Context, resource: string, jwk: JWK, options: HttpsigOptions = {}): Promise<SignatureCheck> {
  const url = new URL(c.req.url);
  const headers = c.req.raw.headers;
  const body = async () => new Uint8Array(await c.req.raw.clone().arrayBuffer());
  // draft §6: "If the request includes an entity body ... and a digest as per [RFC9530], the RS MUST validate the digest."
  if (headers.has("content-digest")) {
    const digest = await checkContentDigest(headers, await body());
    if (!digest.ok) return digest;
  }
  const result = await verifyRequestSignature(
    { method: c.req.method, headers },
    {
      tag: PRESENTATION_TAG,
      required: ["@method", "@target-uri", "authorization", ...(options.require ?? [])],
      targetUri: targetOnOrigin(new URL(resource).origin, url),
      now: options.now?.() ?? Math.floor(Date.now() / 1000),
      windowSeconds: options.windowSeconds ?? 30,
      // draft §6: "If the request includes multiple signatures tagged httpsig-oauth, all signatures MUST be validated."
      single: false,
      body,
      // draft §6: "The RS determines the key bound to the token and validates the kid value against that key."
      keyFor: async (keyid) =>
        keyid === jwk.kid ? { ok: true, value: jwk } : { ok: false, description: `keyid ${keyid} is not the key the access token is bound to` },
      claimNonce: async (nonce, until) => (options.claimNonce ? options.claimNonce(await replayId(jwk, nonce), until) : true),
    },
  );
  return result.ok ? { ok: true } : result;
}

/** The key's public material and the nonce, hashed: a nonce is single-use per key. */
async function replayId(jwk: JWK, nonce: string): Promise<string> {
  const material = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e, nonce]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material)));
  return btoa(String.fromCharCode(...digest))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

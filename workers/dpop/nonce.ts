import { rotatingValue } from "../rotating-value";

/**
 * Server-provided DPoP nonces (RFC 9449 §8), stateless: a nonce is the HMAC of a time bucket under a key
 * derived from SESSION_SECRET for this purpose alone, so every isolate in every location computes the
 * same value without shared state, and nobody without the secret can predict the next one ("Nonce values
 * MUST be unpredictable"). A nonce is accepted in its own bucket and the next, so it lives between one
 * and two periods; a fresh one goes out on every response to a DPoP request.
 *
 *   bucket  = floor(now / NONCE_PERIOD)
 *   nonce   = base64url(HMAC-SHA256(key, "dpop-nonce " + bucket))      43 characters, RFC 9449 §8.1 NQCHAR
 */

/** Seconds per nonce bucket. */
export const NONCE_PERIOD = 300;

const nonces = rotatingValue("dpop-nonce", NONCE_PERIOD);

/** The nonce to hand out now (RFC 9449 §8.2: "by including a DPoP-Nonce HTTP header"). */
export function currentNonce(secret: string, now: number): Promise<string> {
  return nonces.current(secret, now);
}

/**
 * Whether `nonce` is one this server handed out recently: the current bucket's or the previous one's.
 * RFC 9449 §8: "If the nonce claim in the DPoP proof does not exactly match a nonce recently supplied by
 * the authorization server to the client, the authorization server MUST reject the request."
 */
export function nonceIsFresh(secret: string, nonce: string, now: number): Promise<boolean> {
  return nonces.isFresh(secret, nonce, now);
}

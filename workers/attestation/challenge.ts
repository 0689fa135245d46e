import { rotatingValue } from "../rotating-value";

/**
 * Attestation challenges (draft-ietf-oauth-attestation-based-client-auth-11 §8), stateless like DPoP
 * nonces (`workers/dpop/nonce.ts`): the HMAC of a time bucket under a key derived from SESSION_SECRET
 * for this purpose alone, so every isolate computes the same value and nobody without the secret can
 * predict the next. A challenge is accepted in its own bucket and the next (5 to 10 minutes).
 *
 *   bucket     = floor(now / CHALLENGE_PERIOD)
 *   challenge  = base64url(HMAC-SHA256(key, "attestation-challenge " + bucket))
 *
 * The same values serve as RFC 9711 `eat_nonce`s: an attestation result carrying one proves it was
 * made after the challenge was handed out.
 */

/** Seconds per challenge bucket. */
export const CHALLENGE_PERIOD = 300;

const challenges = rotatingValue("attestation-challenge", CHALLENGE_PERIOD);

/** The challenge to hand out now (the challenge endpoint, the `OAuth-Client-Attestation-Challenge` header). */
export function currentChallenge(secret: string, now: number): Promise<string> {
  return challenges.current(secret, now);
}

/** Whether `challenge` is one this server handed out recently: this bucket's or the previous one's. */
export function challengeIsFresh(secret: string, challenge: string, now: number): Promise<boolean> {
  return challenges.isFresh(secret, challenge, now);
}

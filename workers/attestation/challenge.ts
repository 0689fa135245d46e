import { hmac, hmacKey, timingSafeEqualStrings } from "../crypto";

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

const PURPOSE = "latchkey attestation-challenge";

let cached: { secret: string; bucket: number; challenge: Promise<string> } | undefined;

function challengeFor(secret: string, bucket: number): Promise<string> {
  return hmacKey(secret, PURPOSE).then((key) => hmac(key, `attestation-challenge ${bucket}`));
}

/** The challenge to hand out now (the challenge endpoint, the `OAuth-Client-Attestation-Challenge` header). */
export function currentChallenge(secret: string, now: number): Promise<string> {
  const bucket = Math.floor(now / CHALLENGE_PERIOD);
  if (cached?.secret !== secret || cached.bucket !== bucket) cached = { secret, bucket, challenge: challengeFor(secret, bucket) };
  return cached.challenge;
}

/** Whether `challenge` is one this server handed out recently: this bucket's or the previous one's. */
export async function challengeIsFresh(secret: string, challenge: string, now: number): Promise<boolean> {
  const bucket = Math.floor(now / CHALLENGE_PERIOD);
  const [current, previous] = await Promise.all([currentChallenge(secret, now), challengeFor(secret, bucket - 1)]);
  const [a, b] = await Promise.all([timingSafeEqualStrings(challenge, current), timingSafeEqualStrings(challenge, previous)]);
  return a || b;
}

import { hmac, hmacKey, timingSafeEqualStrings } from "./crypto";

/**
 * Stateless server-issued values that rotate: the HMAC of a time bucket under a key derived from
 * SESSION_SECRET for one purpose alone, so every isolate in every location computes the same value
 * without shared state, and nobody without the secret can predict the next. A value is accepted in its
 * own bucket and the next, so it lives between one and two periods. DPoP nonces (RFC 9449 §8) and
 * attestation challenges (draft-ietf-oauth-attestation-based-client-auth-11 §8) are both made this way.
 *
 *   bucket = floor(now / period)
 *   value  = base64url(HMAC-SHA256(key(purpose), label + " " + bucket))      43 characters
 */
export interface RotatingValue {
  /** Seconds per bucket. */
  period: number;
  /** The value to hand out now; computed once per bucket and isolate. */
  current(secret: string, now: number): Promise<string>;
  /** Whether `value` is this bucket's or the previous one's, compared in constant time. */
  isFresh(secret: string, value: string, now: number): Promise<boolean>;
}

export function rotatingValue(label: string, period: number): RotatingValue {
  const purpose = `latchkey ${label}`;
  let cached: { secret: string; bucket: number; value: Promise<string> } | undefined;
  const valueFor = (secret: string, bucket: number) => hmacKey(secret, purpose).then((key) => hmac(key, `${label} ${bucket}`));
  const current = (secret: string, now: number): Promise<string> => {
    const bucket = Math.floor(now / period);
    if (cached?.secret !== secret || cached.bucket !== bucket) cached = { secret, bucket, value: valueFor(secret, bucket) };
    return cached.value;
  };
  return {
    period,
    current,
    async isFresh(secret, value, now) {
      const [latest, previous] = await Promise.all([current(secret, now), valueFor(secret, Math.floor(now / period) - 1)]);
      const [a, b] = await Promise.all([timingSafeEqualStrings(value, latest), timingSafeEqualStrings(value, previous)]);
      return a || b;
    },
  };
}

import { base64url } from "jose";
import type { PasswordHash } from "../schemas/resource";
import { timingSafeEqualStrings } from "./crypto";

/** OWASP Password Storage Cheat Sheet: PBKDF2-HMAC-SHA256 with 600,000 iterations. */
export const PBKDF2_ITERATIONS = 600_000;
/**
 * The most iterations one PBKDF2 call may ask of Cloudflare's hosted runtime: above it `deriveBits`
 * throws NotSupportedError (workerd issue #1346; local workerd does not enforce it).
 */
export const PBKDF2_CALL_LIMIT = 100_000;

const encoder = new TextEncoder();

async function pbkdf2(secret: Uint8Array, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", secret, "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256));
}

/**
 * `PBKDF2-SHA256-CHAIN`: `iterations` of PBKDF2-HMAC-SHA256 in calls of at most PBKDF2_CALL_LIMIT, each
 * call's 32-byte output the next call's password, same salt. A guess costs an attacker every iteration,
 * in sequence, as one call of that count would; the runtime never sees a count above its limit.
 */
async function chain(password: string, salt: Uint8Array, iterations: number): Promise<string> {
  let secret = encoder.encode(password);
  for (let left = iterations; left > 0; left -= PBKDF2_CALL_LIMIT) secret = await pbkdf2(secret, salt, Math.min(left, PBKDF2_CALL_LIMIT));
  return base64url.encode(secret);
}

/** Hashes a password with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return {
    alg: "PBKDF2-SHA256-CHAIN",
    iterations: PBKDF2_ITERATIONS,
    salt: base64url.encode(salt),
    hash: await chain(password, salt, PBKDF2_ITERATIONS),
  };
}

/**
 * Whether `password` matches `stored`, compared in constant time. A `PBKDF2-SHA256` hash (one call, as
 * written before the chain) is checked as written; above PBKDF2_CALL_LIMIT only local workerd can.
 */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const salt = base64url.decode(stored.salt);
  const candidate =
    stored.alg === "PBKDF2-SHA256-CHAIN"
      ? await chain(password, salt, stored.iterations)
      : base64url.encode(await pbkdf2(encoder.encode(password), salt, stored.iterations));
  return timingSafeEqualStrings(candidate, stored.hash);
}

let dummy: Promise<PasswordHash> | undefined;

/** Spends the same work as a real check, so an unknown email takes as long as a wrong password. */
export async function burnPasswordCheck(password: string): Promise<false> {
  dummy ??= hashPassword("latchkey-timing-equaliser");
  await verifyPassword(password, await dummy);
  return false;
}

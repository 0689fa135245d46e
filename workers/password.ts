import { base64url } from "jose";
import type { PasswordHash } from "../schemas/resource";
import { timingSafeEqualStrings } from "./crypto";

/** OWASP Password Storage Cheat Sheet: PBKDF2-HMAC-SHA256 with 600,000 iterations. */
export const PBKDF2_ITERATIONS = 600_000;

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return base64url.encode(new Uint8Array(bits));
}

/** Hashes a password with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return {
    alg: "PBKDF2-SHA256",
    iterations: PBKDF2_ITERATIONS,
    salt: base64url.encode(salt),
    hash: await derive(password, salt, PBKDF2_ITERATIONS),
  };
}

/** Whether `password` matches `stored`, compared in constant time. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const candidate = await derive(password, base64url.decode(stored.salt), stored.iterations);
  return timingSafeEqualStrings(candidate, stored.hash);
}

let dummy: Promise<PasswordHash> | undefined;

/** Spends the same work as a real check, so an unknown email takes as long as a wrong password. */
export async function burnPasswordCheck(password: string): Promise<false> {
  dummy ??= hashPassword("latchkey-timing-equaliser");
  await verifyPassword(password, await dummy);
  return false;
}

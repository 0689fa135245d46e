import { base64url } from "jose";

const encoder = new TextEncoder();

/** `bytes` bytes from the CSPRNG, base64url without padding (32 bytes → 43 characters). */
export function randomToken(bytes = 32): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** base64url(SHA-256(ASCII(input))), as PKCE S256 (RFC 7636 §4.2) and token hashes use it. */
export async function sha256(input: string | Uint8Array): Promise<string> {
  const data = typeof input === "string" ? encoder.encode(input) : input;
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

/**
 * Constant-time comparison of two strings: the time depends on their lengths, never on their
 * contents or where they differ. Strings of other lengths are unequal after the same comparison
 * work (of `a` with itself), so no hashing is needed first.
 */
export function timingSafeEqualStrings(a: string, b: string): boolean {
  const ea = encoder.encode(a);
  const eb = encoder.encode(b);
  if (ea.byteLength !== eb.byteLength) {
    crypto.subtle.timingSafeEqual(ea, ea);
    return false;
  }
  return crypto.subtle.timingSafeEqual(ea, eb);
}

const hmacKeys = new Map<string, Promise<CryptoKey>>();

/** HMAC-SHA256 key for `secret` with a domain-separating `purpose`, imported once per isolate. */
export function hmacKey(secret: string, purpose: string): Promise<CryptoKey> {
  const id = `${purpose}\u0000${secret}`;
  let key = hmacKeys.get(id);
  if (!key) {
    key = crypto.subtle
      .importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
      .then((base) => crypto.subtle.sign("HMAC", base, encoder.encode(purpose)))
      .then((derived) => crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]));
    hmacKeys.set(id, key);
  }
  return key;
}

/** base64url(HMAC-SHA256(key, message)). */
export async function hmac(key: CryptoKey, message: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message))));
}

import { base64url, SignJWT } from "jose";
import type { PushSubscriptionRecord } from "../../schemas/approval";

/**
 * Web Push (RFC 8030) with message encryption (RFC 8291, `aes128gcm` of RFC 8188) and VAPID (RFC 8292),
 * on WebCrypto alone.
 *
 * Why not a library: `@block65/webcrypto-web-push` (the one DESIGN.md names) implements aes128gcm
 * correctly, but draws the salt and the ephemeral key inside, so its output cannot be checked against
 * RFC 8291 Appendix A byte for byte; and it would be a new dependency in a node_modules other branches
 * share. The derivation is short (two HKDFs and one AES-GCM record), and `encryptPayload` takes the
 * salt and key pair as options precisely so that `test/workers/web-push.test.ts` can pin it to the RFC.
 */

const enc = new TextEncoder();
/** RFC 8188 §2: one record of this size holds every message we send. */
const RECORD_SIZE = 4096;
/** Header (salt 16, rs 4, idlen 1, key 65), padding delimiter 1 and GCM tag 16 share the record. */
export const MAX_PLAINTEXT = RECORD_SIZE - 86 - 17;

async function hkdf(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, bytes: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, bytes * 8));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * RFC 8291 §3.4 / §4: encrypts `plaintext` for the user agent's `p256dh` key and `auth` secret into an
 * `aes128gcm` body (a single record). `salt` and `senderKeys` are for the RFC's test vectors only.
 */
export async function encryptPayload(
  plaintext: Uint8Array,
  subscription: Pick<PushSubscriptionRecord, "keys">,
  options: { salt?: Uint8Array; senderKeys?: CryptoKeyPair } = {},
): Promise<Uint8Array> {
  if (plaintext.length > MAX_PLAINTEXT) throw new RangeError(`a Web Push message holds at most ${MAX_PLAINTEXT} bytes`);
  const uaPublic = base64url.decode(subscription.keys.p256dh);
  const authSecret = base64url.decode(subscription.keys.auth);
  // RFC 8291 §3.1: the user agent's key is an uncompressed P-256 point; §3.2: the auth secret is 16 bytes.
  if (uaPublic.length !== 65 || uaPublic[0] !== 4 || authSecret.length !== 16) throw new TypeError("malformed push subscription keys");
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(16));
  const sender = options.senderKeys ?? ((await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"])) as CryptoKeyPair);
  const asPublic = new Uint8Array((await crypto.subtle.exportKey("raw", sender.publicKey)) as ArrayBuffer);
  const uaKey = await crypto.subtle.importKey("raw", uaPublic, { name: "ECDH", namedCurve: "P-256" }, false, []);
  // workers-types spell the ECDH parameter `$public` (a generator artefact); the runtime reads `public`.
  const ecdh = { name: "ECDH", public: uaKey } as unknown as SubtleCryptoDeriveKeyAlgorithm;
  const ecdhSecret = new Uint8Array(await crypto.subtle.deriveBits(ecdh, sender.privateKey, 256));
  // RFC 8291 §3.3: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32).
  const ikm = await hkdf(authSecret, ecdhSecret, concat(enc.encode("WebPush: info\0"), uaPublic, asPublic), 32);
  // RFC 8188 §2.2, §2.3: content encryption key and nonce from the salt.
  const cek = await hkdf(salt, ikm, enc.encode("Content-Encoding: aes128gcm\0"), 16);
  const nonce = await hkdf(salt, ikm, enc.encode("Content-Encoding: nonce\0"), 12);
  const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["encrypt"]);
  // RFC 8188 §2: the last (here the only) record ends with the delimiter 0x02.
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, concat(plaintext, new Uint8Array([2]))));
  const rs = new Uint8Array(4);
  new DataView(rs.buffer).setUint32(0, RECORD_SIZE);
  return concat(salt, rs, new Uint8Array([asPublic.length]), asPublic, sealed);
}

/** A VAPID key pair (RFC 8292 §3.2): the public key as the 65-byte uncompressed point, base64url. */
export interface VapidKeys {
  privateKey: CryptoKey;
  publicKey: string;
}

/**
 * RFC 8292 §2, §3: `Authorization: vapid t=<JWT>, k=<public key>`; the JWT's `aud` is the push
 * service's origin, `exp` at most 24 hours ahead, `sub` a contact.
 */
export async function vapidAuthorization(endpoint: string, vapid: VapidKeys, subject: string, now: number): Promise<string> {
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: "ES256", typ: "JWT" })
    .setAudience(new URL(endpoint).origin)
    .setExpirationTime(now + 12 * 3600)
    .setSubject(subject)
    .sign(vapid.privateKey);
  return `vapid t=${jwt}, k=${vapid.publicKey}`;
}

/** RFC 8030 §5: POSTs one encrypted message to the subscription's push service. */
export async function sendWebPush(
  subscription: PushSubscriptionRecord,
  message: string,
  vapid: VapidKeys,
  options: { subject: string; now: number; ttl?: number; urgency?: "low" | "normal" | "high" },
): Promise<Response> {
  const body = await encryptPayload(enc.encode(message), subscription);
  return fetch(subscription.endpoint, {
    method: "POST",
    headers: {
      Authorization: await vapidAuthorization(subscription.endpoint, vapid, options.subject, options.now),
      "Content-Encoding": "aes128gcm",
      "Content-Type": "application/octet-stream",
      // RFC 8030 §5.2, §5.3: how long the push service keeps it; approvals are worth a prompt wake-up.
      TTL: String(options.ttl ?? 600),
      Urgency: options.urgency ?? "high",
    },
    body,
    redirect: "manual",
    signal: AbortSignal.timeout(10_000),
  });
}

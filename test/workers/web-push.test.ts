import { env } from "cloudflare:workers";
import { base64url, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { notifyKey, publicKeyOf } from "../../workers/notify/keys";
import { encryptPayload, MAX_PLAINTEXT, vapidAuthorization } from "../../workers/notify/web-push";

/**
 * Web Push message encryption against RFC 8291 Appendix A, byte for byte, and a receiver written from
 * RFC 8188 / RFC 8291 §3.4 that decrypts what we send; VAPID headers per RFC 8292.
 */
const RFC8291 = {
  plaintext: "When I grow up, I want to be a watermelon",
  asPrivate: "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
  asPublic: "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8",
  uaPrivate: "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
  uaPublic: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
  salt: "DGv6ra1nlYgDCS1FRnbzlw",
  auth: "BTBZMqHH6r4Tts7J_aSIgg",
  body: "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
};

/** A P-256 JWK from a raw private scalar and the uncompressed public point. */
function jwkOf(d: string, publicPoint: string): JsonWebKey {
  const p = base64url.decode(publicPoint);
  return { kty: "EC", crv: "P-256", d, x: base64url.encode(p.slice(1, 33)), y: base64url.encode(p.slice(33, 65)) };
}

async function ecdhPair(d: string, publicPoint: string): Promise<CryptoKeyPair> {
  const jwk = jwkOf(d, publicPoint);
  const alg = { name: "ECDH", namedCurve: "P-256" };
  const privateKey = await crypto.subtle.importKey("jwk", jwk, alg, true, ["deriveBits"]);
  const publicKey = await crypto.subtle.importKey("raw", base64url.decode(publicPoint), alg, true, []);
  return { privateKey, publicKey };
}

async function hkdf(salt: Uint8Array, ikm: Uint8Array, info: string | Uint8Array, bytes: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const infoBytes = typeof info === "string" ? new TextEncoder().encode(info) : info;
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: infoBytes }, key, bytes * 8));
}

/** The user agent's side (RFC 8291 §3.4, RFC 8188 §2), written independently of the sender. */
async function decrypt(body: Uint8Array, uaPrivate: string, uaPublic: string, auth: string): Promise<string> {
  const salt = body.slice(0, 16);
  const idlen = body[20] as number;
  const asPublic = body.slice(21, 21 + idlen);
  const ua = await ecdhPair(uaPrivate, uaPublic);
  const asKey = await crypto.subtle.importKey("raw", asPublic, { name: "ECDH", namedCurve: "P-256" }, false, []);
  const params = { name: "ECDH", public: asKey } as unknown as SubtleCryptoDeriveKeyAlgorithm;
  const secret = new Uint8Array(await crypto.subtle.deriveBits(params, ua.privateKey, 256));
  const info = new Uint8Array([...new TextEncoder().encode("WebPush: info\0"), ...base64url.decode(uaPublic), ...asPublic]);
  const ikm = await hkdf(base64url.decode(auth), secret, info, 32);
  const cek = await crypto.subtle.importKey("raw", await hkdf(salt, ikm, "Content-Encoding: aes128gcm\0", 16), "AES-GCM", false, ["decrypt"]);
  const nonce = await hkdf(salt, ikm, "Content-Encoding: nonce\0", 12);
  const padded = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, cek, body.slice(21 + idlen)));
  const end = padded.lastIndexOf(2);
  expect(padded.slice(end + 1).every((b) => b === 0)).toBe(true);
  return new TextDecoder().decode(padded.slice(0, end));
}

describe("Web Push message encryption (RFC 8291)", () => {
  it("reproduces the RFC 8291 Appendix A body byte for byte", async () => {
    const body = await encryptPayload(
      new TextEncoder().encode(RFC8291.plaintext),
      { keys: { p256dh: RFC8291.uaPublic, auth: RFC8291.auth } },
      { salt: base64url.decode(RFC8291.salt), senderKeys: await ecdhPair(RFC8291.asPrivate, RFC8291.asPublic) },
    );
    expect(base64url.encode(body)).toBe(RFC8291.body);
  });

  it("decrypts the RFC's body with the user agent's keys", async () => {
    expect(await decrypt(base64url.decode(RFC8291.body), RFC8291.uaPrivate, RFC8291.uaPublic, RFC8291.auth)).toBe(RFC8291.plaintext);
  });

  it("encrypts with a fresh salt and key each time, and the receiver reads it back", async () => {
    const message = JSON.stringify({ type: "approval_request", title: "Agent asks for access" });
    const keys = { p256dh: RFC8291.uaPublic, auth: RFC8291.auth };
    const [a, b] = await Promise.all([
      encryptPayload(new TextEncoder().encode(message), { keys }),
      encryptPayload(new TextEncoder().encode(message), { keys }),
    ]);
    expect(base64url.encode(a.slice(0, 16))).not.toBe(base64url.encode(b.slice(0, 16)));
    expect(await decrypt(a, RFC8291.uaPrivate, RFC8291.uaPublic, RFC8291.auth)).toBe(message);
  });

  it("refuses malformed subscription keys and messages longer than one record", async () => {
    await expect(encryptPayload(new Uint8Array(1), { keys: { p256dh: RFC8291.auth, auth: RFC8291.auth } })).rejects.toThrow("malformed push subscription keys");
    await expect(encryptPayload(new Uint8Array(MAX_PLAINTEXT + 1), { keys: { p256dh: RFC8291.uaPublic, auth: RFC8291.auth } })).rejects.toThrow(
      /at most 3993 bytes/,
    );
  });
});

describe("VAPID (RFC 8292)", () => {
  it("signs an ES256 JWT for the push service's origin and sends the uncompressed public key", async () => {
    const jwk = jwkOf(RFC8291.asPrivate, RFC8291.asPublic);
    const privateKey = (await importJWK({ ...jwk, kty: "EC" }, "ES256")) as CryptoKey;
    const publicKey = publicKeyOf(jwk as never);
    expect(publicKey).toBe(RFC8291.asPublic);
    const header = await vapidAuthorization("https://push.example:8443/send/abc", { privateKey, publicKey }, "mailto:ops@example.com", 1_700_000_000);
    const [, t, k] = /^vapid t=([^,]+), k=(.+)$/.exec(header) as RegExpExecArray;
    expect(k).toBe(RFC8291.asPublic);
    expect(decodeProtectedHeader(t as string)).toEqual({ alg: "ES256", typ: "JWT" });
    const verifyKey = await importJWK({ kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, "ES256");
    const { payload } = await jwtVerify(t as string, verifyKey, { currentDate: new Date(1_700_000_000_000) });
    expect(payload).toEqual({ aud: "https://push.example:8443", exp: 1_700_000_000 + 12 * 3600, sub: "mailto:ops@example.com" });
    expect(decodeJwt(t as string).exp).toBeLessThanOrEqual(1_700_000_000 + 86_400);
  });
});

describe("the VAPID key", () => {
  it("is the configured VAPID_PRIVATE_JWK when set, else one generated once and kept, distinct from the webhook key", async () => {
    const configured = { ...env, VAPID_PRIVATE_JWK: JSON.stringify(jwkOf(RFC8291.asPrivate, RFC8291.asPublic)) } as Env;
    expect(publicKeyOf((await notifyKey(configured, "vapid")).publicJwk)).toBe(RFC8291.asPublic);
    const generated = await notifyKey(env, "vapid");
    expect(publicKeyOf(generated.publicJwk)).not.toBe(RFC8291.asPublic);
    expect((await notifyKey(env, "vapid")).kid).toBe(generated.kid);
    expect((await notifyKey(env, "webhook")).kid).not.toBe(generated.kid);
  });
});

import type { NotifyKey } from "./keys";

/**
 * Signed webhooks: HTTP Message Signatures (RFC 9421) with `ecdsa-p256-sha256` over the method, the
 * target URI, the content type and the Content-Digest (RFC 9530) of the body, so a chat or SMS gateway
 * can check that a notification came from this server and was not altered. Gateways get the public key
 * from `/webhook-keys` (a JWK Set) and find it by `keyid`, the key's RFC 7638 thumbprint.
 *
 * Why by hand: the signature covers a fixed list of components with fixed parameters, so the only
 * Structured Fields (RFC 9651) we emit are an inner list of quoted component names and integer or
 * quoted-token parameters, none of which carry user input. `test/workers/webhook.test.ts` checks the
 * signature base and the digest against RFC 9421 §B.2.4.
 */

/** RFC 9421 §3.3.1: the signature algorithm, named in the `alg` parameter. */
export const WEBHOOK_ALG = "ecdsa-p256-sha256";
/** RFC 9421 §2.3 `tag`: what the signature is for, so it cannot be taken for another application's. */
export const WEBHOOK_TAG = "latchkey-approval";
const COMPONENTS = ["@method", "@target-uri", "content-type", "content-digest"] as const;

/** RFC 9530 §2: `Content-Digest: sha-256=:<base64>:` (or sha-512). */
export async function contentDigest(body: string, alg: "sha-256" | "sha-512" = "sha-256"): Promise<string> {
  const digest = await crypto.subtle.digest(alg === "sha-256" ? "SHA-256" : "SHA-512", new TextEncoder().encode(body));
  return `${alg}=:${btoa(String.fromCharCode(...new Uint8Array(digest)))}:`;
}

/** RFC 9421 §2.3: the serialized `@signature-params` (and the value of Signature-Input's member). */
export function signatureParams(components: readonly string[], params: Array<[string, string | number]>): string {
  const list = `(${components.map((c) => `"${c}"`).join(" ")})`;
  return list + params.map(([name, value]) => `;${name}=${typeof value === "number" ? value : `"${value}"`}`).join("");
}

/** RFC 9421 §2.5: one line per covered component, then the signature parameters. */
export function signatureBase(components: Array<[string, string]>, params: string): string {
  return [...components.map(([name, value]) => `"${name}": ${value}`), `"@signature-params": ${params}`].join("\n");
}

/** The headers that sign `body` for a POST to `url`: Content-Type, Content-Digest, Signature-Input, Signature. */
export async function webhookHeaders(url: string, body: string, key: NotifyKey, now: number): Promise<Record<string, string>> {
  const contentType = "application/json";
  const digest = await contentDigest(body);
  const params = signatureParams(COMPONENTS, [
    ["created", now],
    ["keyid", key.kid],
    ["alg", WEBHOOK_ALG],
    ["tag", WEBHOOK_TAG],
  ]);
  const base = signatureBase(
    [
      ["@method", "POST"],
      // RFC 9421 §2.2.2: the full target URI as sent.
      ["@target-uri", new URL(url).href],
      ["content-type", contentType],
      ["content-digest", digest],
    ],
    params,
  );
  // RFC 9421 §3.3.4: ECDSA signatures are r || s, 64 bytes, which is what WebCrypto produces.
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, new TextEncoder().encode(base)));
  return {
    "Content-Type": contentType,
    "Content-Digest": digest,
    "Signature-Input": `sig1=${params}`,
    Signature: `sig1=:${btoa(String.fromCharCode(...signature))}:`,
  };
}

/** POSTs a signed notification to a user's webhook. */
export async function sendWebhook(url: string, body: string, key: NotifyKey, now: number): Promise<Response> {
  return fetch(url, { method: "POST", headers: await webhookHeaders(url, body, key, now), body, redirect: "manual", signal: AbortSignal.timeout(10_000) });
}

/** The public webhook key as a JWK Set (RFC 7517), for `/webhook-keys`. */
export function webhookJwks(key: NotifyKey): { keys: Array<Record<string, unknown>> } {
  // `alg` ES256 is the same algorithm as the signatures' `ecdsa-p256-sha256` (RFC 9421 §3.3.4), in JOSE's
  // spelling: JOSE libraries need it to import the key.
  return { keys: [{ ...key.publicJwk, kid: key.kid, alg: "ES256", use: "sig" }] };
}

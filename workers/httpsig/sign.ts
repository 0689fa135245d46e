import { type BareItem, serializeDictionary, serializeInnerList } from "structured-headers";
import { resolver, signatureBase } from "./fields";
import { WEBCRYPTO } from "./verify";

/**
 * A small RFC 9421 request signer for clients (an agent calling Latchkey's token endpoint or a resource
 * protected by the kit) and for tests. It covers what draft-richer-oauth-httpsig-03 needs: derived
 * components from the target URI, header fields, a `Content-Digest` (RFC 9530, sha-256) of the body, and
 * the `created`, `nonce`, `keyid` and `tag` parameters. The algorithm is the key's (no `alg` parameter).
 */

export interface SignRequestOptions {
  /** The private key (WebCrypto, e.g. from jose `generateKeyPair` or `importJWK`). */
  privateKey: Parameters<typeof crypto.subtle.sign>[1];
  /** Its JWS algorithm: ES256, ES384, EdDSA, RS256 or PS256. */
  alg: string;
  /** The `keyid` parameter: the key's `kid`. */
  keyid: string;
  /** The `tag` parameter: `httpsig-oauth-token-request` at the token endpoint, `httpsig-oauth` at a resource. */
  tag: string;
  /** Covered components, in order. Default: `@method`, `@target-uri`, then `content-digest` with a body and `authorization` when present. */
  components?: string[];
  /** Seconds since the epoch. Default now. */
  created?: number;
  /** Default: 16 random bytes, base64url. */
  nonce?: string;
  /** Optional `expires`. */
  expires?: number;
  /** More parameters (tests use it to add a forbidden `alg`). */
  extraParams?: Record<string, BareItem>;
  /** Dictionary label. Default `sig1`. */
  label?: string;
}

/**
 * Signs a request: returns its headers plus `Content-Digest` (when a body is given and it is not already
 * set), `Signature-Input` and `Signature`. `url` is the target URI exactly as the server knows it.
 */
export async function signRequest(
  request: { method: string; url: string; headers?: ConstructorParameters<typeof Headers>[0]; body?: string | Uint8Array },
  options: SignRequestOptions,
): Promise<Headers> {
  const headers = new Headers(request.headers);
  const body = typeof request.body === "string" ? new TextEncoder().encode(request.body) : request.body;
  if (body !== undefined && !headers.has("content-digest")) headers.set("content-digest", await contentDigest(body));
  const components = options.components ?? [
    "@method",
    "@target-uri",
    ...(body !== undefined ? ["content-digest"] : []),
    ...(headers.has("authorization") ? ["authorization"] : []),
  ];
  const params = new Map<string, BareItem>([
    ["created", options.created ?? Math.floor(Date.now() / 1000)],
    ...(options.expires !== undefined ? [["expires", options.expires] as [string, BareItem]] : []),
    ["keyid", options.keyid],
    ["nonce", options.nonce ?? randomNonce()],
    ["tag", options.tag],
    ...Object.entries(options.extraParams ?? {}),
  ]);
  const inner: [[string, Map<string, BareItem>][], Map<string, BareItem>] = [components.map((c) => [c, new Map()]), params];
  const signatureParams = serializeInnerList(inner);
  const base = signatureBase({ components, signatureParams }, resolver(request.method, new URL(request.url), headers));
  if (!base.ok) throw new Error(base.description);
  const algorithm = WEBCRYPTO[options.alg];
  if (!algorithm) throw new Error(`unsupported alg ${options.alg}`);
  const signature = await crypto.subtle.sign(algorithm, options.privateKey, new TextEncoder().encode(base.value));
  const label = options.label ?? "sig1";
  headers.set("signature-input", serializeDictionary(new Map([[label, inner]])));
  headers.set("signature", serializeDictionary(new Map([[label, [signature, new Map()]]])));
  return headers;
}

/** RFC 9530 `Content-Digest: sha-256=:<base64>:` of a body. */
export async function contentDigest(body: string | Uint8Array): Promise<string> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return serializeDictionary(new Map([["sha-256", [digest, new Map()]]]));
}

function randomNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

import { base64url } from "jose";
import { randomToken, sha256 } from "../crypto";

/**
 * Opaque handles for authorization codes, refresh tokens and pushed authorization requests. A handle
 * names the Durable Object that holds it, so no lookup table is needed; the object stores only the hash.
 *
 *   lkc_<64 hex: GrantObject id>_<43 base64url: 256-bit secret>      authorization code
 *   lkr_<64 hex: GrantObject id>_<43 base64url: 256-bit secret>      refresh token
 *   lkp_<64 hex: PushedRequest id>_<43 base64url: 256-bit secret>    pushed request (RFC 9126 request_uri)
 *   lka_<64 hex: ApprovalQueue id>_<43 base64url: 256-bit secret>    CIBA auth_req_id
 *   lkd_<64 hex: ApprovalQueue id>_<43 base64url: 256-bit secret>    RFC 8628 device_code
 */
export type HandleKind = "code" | "refresh" | "request" | "auth_req" | "device";

const PREFIX: Record<HandleKind, string> = { code: "lkc_", refresh: "lkr_", request: "lkp_", auth_req: "lka_", device: "lkd_" };
const SHAPE = /^lk[crpad]_([0-9a-f]{64})_([A-Za-z0-9_-]{43})$/;

export interface Handle {
  /** The full token as the client sees it. */
  token: string;
  /** Hex id of the GrantObject. */
  object_id: string;
  /** base64url SHA-256 of the whole token: what the object stores. */
  hash: string;
}

/** A fresh handle for the object `objectId`. */
export async function mintHandle(kind: HandleKind, objectId: string): Promise<Handle> {
  const token = `${PREFIX[kind]}${objectId}_${randomToken(32)}`;
  return { token, object_id: objectId, hash: await sha256(token) };
}

/** Parses a presented handle; null when it is not one of ours or of another kind. */
export async function parseHandle(kind: HandleKind, token: string): Promise<Handle | null> {
  const m = SHAPE.exec(token);
  if (!m || !token.startsWith(PREFIX[kind])) return null;
  return { token, object_id: m[1] as string, hash: await sha256(token) };
}

/**
 * Seals a successor refresh token under a key derived from the token it replaces (SHA-256 →
 * AES-256-GCM), so the grant can hand the same successor back to a retry without storing it in clear:
 * only the holder of the old token can open it.
 */
export async function sealSuccessor(oldToken: string, successor: string): Promise<string> {
  const key = await successorKey(oldToken, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(successor)));
  return `${base64url.encode(iv)}.${base64url.encode(sealed)}`;
}

/** Opens what `sealSuccessor` produced; null if it was not sealed for `oldToken`. */
export async function openSuccessor(oldToken: string, sealed: string): Promise<string | null> {
  const [iv, data] = sealed.split(".");
  if (!iv || !data) return null;
  try {
    const key = await successorKey(oldToken, ["decrypt"]);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: base64url.decode(iv) }, key, base64url.decode(data));
    return new TextDecoder().decode(plain);
  } catch {
    return null;
  }
}

/** Domain separation: the grant stores SHA-256 of the bare token, never of this prefix and the token. */
const SUCCESSOR_KEY_PREFIX = new TextEncoder().encode("latchkey refresh successor\u0000");

/**
 * AES-256-GCM key = SHA-256(prefix ‖ old token). The token carries a 256-bit random secret, so one
 * domain-separated hash is a sound key derivation (HKDF's extract step is for inputs that are not
 * uniformly random), and it costs one digest where HKDF took a key import and a derivation.
 */
async function successorKey(oldToken: string, usages: Array<"encrypt" | "decrypt">): Promise<CryptoKey> {
  const token = new TextEncoder().encode(oldToken);
  const input = new Uint8Array(SUCCESSOR_KEY_PREFIX.length + token.length);
  input.set(SUCCESSOR_KEY_PREFIX);
  input.set(token, SUCCESSOR_KEY_PREFIX.length);
  const raw = await crypto.subtle.digest("SHA-256", input);
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, usages);
}

import { sha256 } from "../crypto";

const KV_KEY_BYTES = 512;
const encoder = new TextEncoder();

/**
 * Where `key` lives in KV: itself, or, past KV's 512-byte key limit (a long resource URI or client_id
 * URL), its prefix up to the first `:` and its SHA-256. Everything that reads or writes such a key goes
 * through this one function.
 */
export async function kvKey(key: string): Promise<string> {
  if (key.length * 3 <= KV_KEY_BYTES || encoder.encode(key).byteLength <= KV_KEY_BYTES) return key;
  return `${key.slice(0, key.indexOf(":") + 1)}sha256:${await sha256(key)}`;
}

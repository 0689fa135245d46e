import { type OutboundPolicy, outboundUrlProblem } from "./safe-fetch";

/**
 * Client Identifier URLs (draft-ietf-oauth-client-id-metadata-document, "Client Identifier URL").
 * Latchkey never issues a client_id that starts with a scheme (its own are `lk_…`), so any client_id
 * that looks like an http(s) URL is taken as one and must pass these rules.
 */
export function isClientIdUrl(clientId: string): boolean {
  return /^https?:\/\//i.test(clientId);
}

const MAX_LENGTH = 2000;

/**
 * Why `clientId` is not an acceptable Client Identifier URL, as a phrase, or null. Beyond the draft's
 * rules, the URL must be written exactly as the URL parser serialises it: the draft compares by "simple
 * string comparison", and this way the string compared, the URL fetched and the `client_id` the document
 * must repeat are one and the same (so `https://a.example:443/c`, which is a different client_id from
 * `https://a.example/c` but fetches the same document, is refused rather than conflated).
 */
export function clientIdUrlProblem(clientId: string, policy: OutboundPolicy): string | null {
  if (clientId.length > MAX_LENGTH) return `must not be longer than ${MAX_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    return "is not a valid URL";
  }
  // "MUST NOT contain a fragment component"
  if (clientId.includes("#")) return "must not contain a fragment";
  // "MUST contain a path component": the text after the authority starts with "/".
  const afterAuthority = clientId.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  if (!afterAuthority.startsWith("/")) return "must contain a path";
  // "MUST NOT contain single-dot or double-dot path components" (percent-encoded dots count: the
  // URL parser treats `%2e` as a dot).
  const path = afterAuthority.split("?")[0] as string;
  if (path.split("/").some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) return "must not contain . or .. path segments";
  // "MUST NOT contain a userinfo component", https only, no special-use hosts, port 443: the fetch rules.
  const unfetchable = outboundUrlProblem(clientId, policy);
  if (unfetchable) return unfetchable;
  if (url.href !== clientId) return "must be written in canonical form (lowercase scheme and host, no default port, no needless escapes)";
  return null;
}

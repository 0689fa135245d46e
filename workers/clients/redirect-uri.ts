/**
 * Redirect URI rules (OAuth 2.1 §2.3 and §8.4.2, RFC 8252, RFC 9700 §4.1): full URIs, no fragment,
 * compared by exact string; the only latitude is the port of a loopback IP literal.
 */

const LOOPBACK_IPS = new Set(["127.0.0.1", "[::1]"]);
const LOOPBACK_NAMES = new Set([...LOOPBACK_IPS, "localhost"]);

/**
 * RFC 3986 §2: a URI is unreserved and reserved characters, and `%` followed by two hex digits. The
 * WHATWG parser behind `new URL()` takes more (spaces, `\`, `"`, non-ASCII, a bare `%`) and repairs it,
 * so the registered string and the address a redirect really goes to could differ. `'` is left out too:
 * in an http(s) query the parser percent-encodes it.
 */
const RFC3986 = /^(?:[A-Za-z0-9\-._~:/?#[\]@!$&()*+,;=]|%[0-9A-Fa-f]{2})*$/;
/**
 * A dot segment (RFC 3986 §5.2.4) before any query or fragment: the parser removes it, taking `%2e` for
 * a dot too, so `/a/../cb` would be registered but `/cb` redirected to.
 */
const DOT_SEGMENT = /^[^?#]*\/(?:\.|%2e){1,2}(?:[/?#]|$)/i;

/** Parameters of the authorization response (OAuth 2.1 §4.1.2, §4.1.2.1; RFC 9207 §2). */
const RESPONSE_PARAMETERS = ["code", "state", "iss", "error", "error_description", "error_uri"];

/** Whether a redirect URI is http on a loopback IP literal, whose port may vary (RFC 8252 §7.3). */
export function isLoopbackIpRedirect(uri: string): boolean {
  const u = new URL(uri);
  return u.protocol === "http:" && LOOPBACK_IPS.has(u.hostname);
}

/** Why a redirect URI cannot be registered, or null when it can. */
export function redirectUriProblem(uri: string): string | null {
  if (!RFC3986.test(uri)) {
    return "must contain only RFC 3986 characters (percent-encode spaces, quotes, apostrophes, backslashes, control and non-ASCII characters, and follow each % by two hex digits)";
  }
  if (DOT_SEGMENT.test(uri)) return "must not contain dot segments (/./ or /../)";
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return "is not an absolute URI";
  }
  // OAuth 2.1 §2.3.1: "The redirect URI MUST NOT include a fragment component."
  if (uri.includes("#")) return "must not contain a fragment";
  if (url.username || url.password) return "must not contain user information";
  // The authorization response appends these; one already in the query would be read in its place (RFC 9207's `iss` above all).
  const reserved = RESPONSE_PARAMETERS.find((name) => url.searchParams.has(name));
  if (reserved) return `must not carry the response parameter ${reserved} in its query`;
  if (url.protocol === "https:") return null;
  if (url.protocol === "http:") {
    // RFC 8252 §7.3 loopback redirection for native apps; any other http URI is refused.
    return LOOPBACK_NAMES.has(url.hostname) ? null : "must use https (http is allowed only for loopback)";
  }
  if (["javascript:", "data:", "file:", "vbscript:", "blob:", "about:"].includes(url.protocol)) {
    return "uses a forbidden scheme";
  }
  // RFC 8252 §7.1 / OAuth 2.1 §8.4.1: private-use schemes are reverse domain names (contain a period).
  if (!url.protocol.slice(0, -1).includes(".")) return "private-use schemes must be reverse domain names";
  return null;
}

/**
 * The registered URI that `presented` matches, or null. Exact string match; for loopback IP literals
 * over http the port may differ (OAuth 2.1 §8.4.2: "MUST allow any port to be specified").
 */
export function matchRedirectUri(registered: readonly string[], presented: string): string | null {
  if (registered.includes(presented)) return presented;
  let p: URL;
  try {
    p = new URL(presented);
  } catch {
    return null;
  }
  if (p.protocol !== "http:" || !LOOPBACK_IPS.has(p.hostname) || presented.includes("#")) return null;
  for (const candidate of registered) {
    const r = new URL(candidate);
    if (r.protocol !== "http:" || r.hostname !== p.hostname) continue;
    // Compare everything but the port, as strings, so that no normalisation widens the match.
    const withoutPort = (u: URL) => `${u.protocol}//${u.hostname}${u.pathname}${u.search}`;
    if (withoutPort(r) === withoutPort(p) && stripPort(candidate) === stripPort(presented)) return presented;
  }
  return null;
}

/** The URI string with its port removed from the authority, without any other normalisation. */
function stripPort(uri: string): string {
  return uri.replace(/^(http:\/\/(?:127\.0\.0\.1|\[::1\]))(?::\d+)?/, "$1");
}

import type { Context } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { OAuthError } from "../errors";
import type { AppEnv } from "../types";
import { ErrorPage } from "../ui/pages";

/**
 * Sends the browser back to the client (OAuth 2.1 §4.1.2): query parameters on the redirect URI,
 * always with `iss` (RFC 9207) and the `state` the client sent. 303, so a POSTed form is never
 * re-posted (RFC 9700 §4.11).
 */
export function redirectToClient(c: Context<AppEnv>, redirectUri: string, params: Record<string, string | undefined>): Response {
  const added = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined) added.append(name, value);
  added.append("iss", c.get("cfg").ISSUER);
  // The Location carries a code (or an error for it): no cache may keep it.
  c.header("Cache-Control", "no-store");
  return c.redirect(withQuery(redirectUri, added), 303);
}

/**
 * `uri` with `added` appended to its query, the registered query kept byte for byte (OAuth 2.1 §4.1.2 "MUST
 * retain"); re-serializing it through URLSearchParams would rewrite characters such as `/` and `:`.
 */
export function withQuery(uri: string, added: URLSearchParams): string {
  const query = added.toString();
  if (!query) return uri;
  return `${uri}${uri.includes("?") ? (uri.endsWith("?") || uri.endsWith("&") ? "" : "&") : "?"}${query}`;
}

export function redirectError(c: Context<AppEnv>, redirectUri: string, error: OAuthError, state: string | undefined): Response {
  return redirectToClient(c, redirectUri, { error: error.error, error_description: error.description, state });
}

/**
 * Renders a page with a strict CSP: no scripts at all, our stylesheet only, no framing, and forms
 * that may post only here — plus the client's origin, because browsers apply `form-action` to the
 * redirect that follows a form submission.
 */
export function page(c: Context<AppEnv>, body: JSX.Element, status: 200 | 400 | 401 | 403 | 429 = 200, redirectUri?: string): Response {
  const formTargets = ["'self'"];
  if (redirectUri) {
    const u = new URL(redirectUri);
    formTargets.push(u.protocol === "http:" || u.protocol === "https:" ? u.origin : u.protocol);
  }
  c.header(
    "Content-Security-Policy",
    `default-src 'none'; style-src 'self'; img-src 'self'; form-action ${formTargets.join(" ")}; frame-ancestors 'none'; base-uri 'none'`,
  );
  c.header("Cache-Control", "no-store");
  return c.html(`<!doctype html>${body}`, status);
}

/**
 * The error page: the error code and its description. `selfRegisteredClientAt`: the host an error was
 * not redirected to, because the client registered itself and nobody is signed in (`errorForClient`).
 */
export function errorPage(c: Context<AppEnv>, error: OAuthError, options: { selfRegisteredClientAt?: string } = {}): Response {
  const body = ErrorPage({ title: "This request cannot be completed", message: error.description, code: error.error, ...options });
  return page(c, body as JSX.Element, 400);
}

import type { Context } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { AppEnv } from "../types";

/**
 * Renders a signed-in user's page (inbox, device): `default-src 'none'` as everywhere, plus scripts,
 * WebSocket connections and service workers from this origin only, and forms that post only here.
 */
export function userPage(c: Context<AppEnv>, body: JSX.Element, status: 200 | 400 | 403 | 429 = 200): Response {
  c.header(
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; connect-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
  c.header("Cache-Control", "no-store");
  return c.html(`<!doctype html>${body}`, status);
}

/** Where the sign-in page may send the browser afterwards: only these pages of ours. */
export function safeNext(next: string | undefined): string {
  return next && /^\/(inbox|device)(\?user_code=[A-Za-z0-9-]{1,20})?$/.test(next) ? next : "/inbox";
}

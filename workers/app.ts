import { Hono } from "hono";
import { config } from "./config";
import { admin } from "./endpoints/admin";
import { authorize } from "./endpoints/authorize";
import { introspect } from "./endpoints/introspect";
import { jwks } from "./endpoints/jwks";
import { metadata } from "./endpoints/metadata";
import { register } from "./endpoints/register";
import { revoke } from "./endpoints/revoke";
import { token } from "./endpoints/token";
import { ui } from "./endpoints/ui";
import { userinfo } from "./endpoints/userinfo";
import { NotFound, OAuthError, ServerError } from "./errors";
import { apiCors, securityHeaders } from "./middleware/headers";
import type { AppEnv } from "./types";

/**
 * The authorization server: one Hono app, one router per endpoint. Every error leaves as OAuth JSON
 * (`{error, error_description}`) with its status; anything unexpected is logged and becomes
 * `server_error` without detail.
 */
export function buildApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(securityHeaders);
  app.use(async (c, next) => {
    c.set("cfg", config(c.env));
    await next();
  });
  // Only endpoints that browser-based clients call directly get CORS (RFC 9700 §4.1: none on /authorize).
  for (const path of ["/.well-known/*", "/jwks", "/token", "/introspect", "/revoke", "/userinfo", "/register"]) app.use(path, apiCors);

  app.route("/", metadata);
  app.route("/", jwks);
  app.route("/", authorize);
  app.route("/", ui);
  app.route("/", token);
  app.route("/", introspect);
  app.route("/", revoke);
  app.route("/", userinfo);
  app.route("/", register);
  app.route("/admin", admin);

  app.notFound(() => {
    throw new NotFound("no such endpoint");
  });
  app.onError((err, c) => {
    const known = err instanceof OAuthError ? err : null;
    const error = known ?? new ServerError("the server could not complete the request");
    if (!known || error.status >= 500) {
      console.error(
        JSON.stringify({ level: "error", path: new URL(c.req.url).pathname, error: String(err), detail: known?.detail, stack: (err as Error).stack }),
      );
    }
    const res = c.json(error.toJSON(), error.status);
    for (const [name, value] of Object.entries(error.headers)) res.headers.set(name, value);
    if (error.status !== 404 && error.status !== 405) res.headers.set("Cache-Control", "no-store");
    return res;
  });
  return app;
}

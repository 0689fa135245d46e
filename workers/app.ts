import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { config } from "./config";
import { admin } from "./endpoints/admin";
import { authorize } from "./endpoints/authorize";
import { bcAuthorize } from "./endpoints/bc-authorize";
import { challenge } from "./endpoints/challenge";
import { clientConfiguration } from "./endpoints/client-configuration";
import { device } from "./endpoints/device";
import { deviceAuthorization } from "./endpoints/device-authorization";
import { health } from "./endpoints/health";
import { inbox } from "./endpoints/inbox";
import { introspect } from "./endpoints/introspect";
import { jwks } from "./endpoints/jwks";
import { logout } from "./endpoints/logout";
import { metadata } from "./endpoints/metadata";
import { par } from "./endpoints/par";
import { register } from "./endpoints/register";
import { revoke } from "./endpoints/revoke";
import { token } from "./endpoints/token";
import { ui } from "./endpoints/ui";
import { userinfo } from "./endpoints/userinfo";
import { NotFound, OAuthError, RequestTooLarge, ServerError } from "./errors";
import { apiCors, securityHeaders } from "./middleware/headers";
import { requestContext } from "./middleware/request-context";
import { log } from "./observe/log";
import type { AppEnv } from "./types";

/** The largest request body any endpoint accepts. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The authorization server: one Hono app, one router per endpoint. Every error leaves as OAuth JSON
 * (`{error, error_description}`) with its status; anything unexpected is logged and becomes
 * `server_error` without detail.
 */
export function buildApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(requestContext);
  app.use(securityHeaders);
  // No endpoint takes more than this; each also has its own, smaller limit where it reads the body.
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new RequestTooLarge("the request body is too large");
      },
    }),
  );
  app.use(async (c, next) => {
    c.set("cfg", config(c.env));
    await next();
  });
  // Only endpoints that browser-based clients call directly get CORS (RFC 9700 §4.1: none on /authorize).
  for (const path of [
    "/.well-known/*",
    "/jwks",
    "/token",
    "/par",
    "/challenge",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/register",
    "/register/*",
    "/device_authorization",
  ])
    app.use(path, apiCors);

  app.route("/", health);
  app.route("/", metadata);
  app.route("/", jwks);
  app.route("/", authorize);
  app.route("/", ui);
  app.route("/", par);
  app.route("/", token);
  app.route("/", challenge);
  app.route("/", introspect);
  app.route("/", revoke);
  app.route("/", userinfo);
  app.route("/", register);
  app.route("/", clientConfiguration);
  app.route("/admin", admin);
  app.route("/", bcAuthorize);
  app.route("/", deviceAuthorization);
  app.route("/", inbox);
  app.route("/", device);
  app.route("/", logout);

  app.notFound(() => {
    throw new NotFound("no such endpoint");
  });
  app.onError((err, c) => {
    const known = err instanceof OAuthError ? err : null;
    const error = known ?? new ServerError("the server could not complete the request");
    const request_id = c.get("request_id");
    // A refusal, and a deliberate 503 (say, the admin API switched off), is in the request's log line
    // (`middleware/request-context.ts`); a failure has a line of its own, with its internal detail and stack.
    if (!known || error.error === "server_error") {
      log("error", "unexpected_error", {
        request_id,
        path: c.req.path,
        error: String(err),
        ...(known?.detail ? { detail: known.detail } : {}),
        stack: (err as Error).stack,
      });
    }
    const res = c.json(error.toJSON(), error.status);
    for (const [name, value] of Object.entries(error.headers)) res.headers.set(name, value);
    if (error.status !== 404 && error.status !== 405) res.headers.set("Cache-Control", "no-store");
    return res;
  });
  return app;
}

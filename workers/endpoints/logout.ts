import { type Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import { decodeJwt } from "jose";
import { redirectTarget } from "../authorize/issue-code";
import { errorPage, page, withQuery } from "../authorize/respond";
import { activeSession, clearSession, csrfToken, csrfValid, type SignedIn } from "../authorize/session";
import { findClient } from "../clients/cache";
import { now } from "../clock";
import { Forbidden, InvalidRequest, OAuthError } from "../errors";
import { formBody, type Params, queryOrFormBody } from "../middleware/form-body";
import { methodNotAllowed } from "../middleware/method";
import { audit } from "../observe/audit";
import { readIdTokenHint } from "../tokens/id-token";
import type { AppEnv } from "../types";
import { LoggedOutPage, LogoutConfirmPage, type LogoutFields } from "../ui/logout";

/**
 * OpenID Connect RP-Initiated Logout 1.0 at `end_session_endpoint` (`/logout`, GET or POST). The client
 * is named by the `id_token_hint`'s audience or `client_id` (both must agree); the browser returns only to a
 * `post_logout_redirect_uri` that client registered, with `state`, and for a client that registered itself only
 * with a valid hint (§3: nothing else confirms such a target; RFC 9700 §4.11.2). The user is asked first (§2),
 * unless the hint is an ID token of this very session (same user, same sign-in).
 */
export const logout = new Hono<AppEnv>();

interface LogoutRequest {
  fields: LogoutFields;
  /** The client asking: the hint's audience, or `client_id`. */
  clientId?: string;
  clientName?: string;
  /** The user and sign-in the hint names, if one was sent. */
  hint?: { sub: string; auth_time?: number };
  /** A registered URI the browser is not sent to (a self-registered client without a hint): named on the page. */
  notReturnedTo?: string;
  /** Where to send the browser afterwards: a registered post_logout_redirect_uri, else nowhere (a page). */
  target?: string;
}

logout.on(["GET", "POST"], "/logout", queryOrFormBody, async (c) => {
  if (c.req.method === "HEAD") return methodNotAllowed("GET, POST")();
  // §2: POST is supported. A cross-site POST carries no session cookie (SameSite=Lax), so it would sign
  // nobody out and say it had: the same request is made again as a GET, which a top-level navigation sends it with.
  if (c.req.method === "POST") return c.redirect(`/logout?${c.get("params").without([])}`, 303);
  const request = await readOrErrorPage(c, c.get("params"));
  if (request instanceof Response) return request;
  const active = await activeSession(c);
  const thisSession = active && request.hint?.sub === active.session.sub && request.hint.auth_time === active.session.auth_time;
  if (active && !thisSession) return confirmPage(c, active, request);
  if (active) signOut(c, active.user.id, request);
  return finish(c, request);
});

logout.post("/logout/confirm", formBody, async (c) => {
  const params = c.get("params");
  if (!(await csrfValid(c, params.get("csrf")))) throw new Forbidden("the form has expired; go back to the application and try again");
  const request = await readOrErrorPage(c, params);
  if (request instanceof Response) return request;
  const active = await activeSession(c);
  // The page asked another account than the one signed in now (another tab): this one is asked anew.
  if (active && params.get("for") !== active.user.id) return confirmPage(c, active, request);
  const leaving = params.get("decision") === "sign_out";
  if (active && leaving) signOut(c, active.user.id, request);
  // Declined: the user stays, and the client hears nothing it could take for a logout.
  if (!leaving) return page(c, LoggedOutPage({ signedOut: false }) as JSX.Element);
  return finish(c, request);
});

logout.all("/logout", methodNotAllowed("GET, POST"));
logout.all("/logout/confirm", methodNotAllowed("POST"));

/** §2: the question to the signed-in user, whose answer the form takes (`for`). */
async function confirmPage(c: Context<AppEnv>, active: SignedIn, request: LogoutRequest): Promise<Response> {
  const fields = { ...request.fields, for: active.user.id };
  const body = LogoutConfirmPage({ csrf: await csrfToken(c), email: active.user.email, clientName: request.clientName, fields });
  return page(c, body as JSX.Element, 200, request.target);
}

/** The logout request's parameters checked (§2, §3), or the error page that says what is wrong. */
async function readOrErrorPage(c: Context<AppEnv>, params: Params): Promise<LogoutRequest | Response> {
  try {
    return await readLogoutRequest(c, params);
  } catch (error) {
    if (error instanceof OAuthError) return errorPage(c, error);
    throw error;
  }
}

async function readLogoutRequest(c: Context<AppEnv>, params: Params): Promise<LogoutRequest> {
  const fields: LogoutFields = {
    id_token_hint: params.get("id_token_hint"),
    client_id: params.get("client_id"),
    post_logout_redirect_uri: params.get("post_logout_redirect_uri"),
    state: params.get("state"),
  };
  let clientId = fields.client_id;
  let hint: LogoutRequest["hint"];
  if (fields.id_token_hint) {
    const aud = audienceOf(fields.id_token_hint);
    // §2: "When both client_id and id_token_hint are present, the OP MUST verify that the Client Identifier matches".
    if (clientId !== undefined && clientId !== aud) throw new InvalidRequest("client_id does not match the audience of the id_token_hint");
    clientId = aud;
    // §2: the OP "MUST validate that it was the issuer of the ID Token"; an expired one is fine.
    hint = await readIdTokenHint(c.env, c.get("cfg"), aud, fields.id_token_hint, now());
  }
  const client = clientId !== undefined ? await findClient(c.env, clientId).catch(() => null) : null;
  if (clientId !== undefined && !client) throw new InvalidRequest("the client is not known to this server");
  const uri = fields.post_logout_redirect_uri;
  // §3: the browser goes back only to a URI the client registered; one the server cannot tie to a client is refused.
  if (uri !== undefined && !client) throw new InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id to name its client");
  if (uri !== undefined && !client?.post_logout_redirect_uris?.includes(uri)) {
    throw new InvalidRequest("post_logout_redirect_uri is not registered for this client");
  }
  // §3 and RFC 9700 §4.11.2: anyone can register a client with any URI; without a hint it proves nothing.
  if (uri !== undefined && client?.registered_by !== "admin" && !hint) {
    return { fields, clientId, clientName: client?.client_name, notReturnedTo: redirectTarget(uri) };
  }
  return { fields, clientId, clientName: client?.client_name, hint, target: uri };
}

/** The `aud` of a presented ID token, before verification names the key (an ID token has one audience here). */
function audienceOf(token: string): string {
  let aud: unknown;
  try {
    aud = decodeJwt(token).aud;
  } catch {
    throw new InvalidRequest("id_token_hint is not a JWT");
  }
  const single = Array.isArray(aud) && aud.length === 1 ? aud[0] : aud;
  if (typeof single !== "string") throw new InvalidRequest("id_token_hint is not an ID token issued by this server");
  return single;
}

function signOut(c: Context<AppEnv>, sub: string, request: LogoutRequest): void {
  clearSession(c);
  audit(c, { event: "session.ended", outcome: "success", client_id: request.clientId, subject: sub, detail: "rp-initiated logout" });
}

/** §3: back to the registered URI with `state`; without one, a page that says the user is signed out. */
function finish(c: Context<AppEnv>, request: LogoutRequest): Response {
  if (!request.target) return page(c, LoggedOutPage({ signedOut: true, notReturnedTo: request.notReturnedTo }) as JSX.Element);
  c.header("Cache-Control", "no-store");
  return c.redirect(withQuery(request.target, new URLSearchParams(request.fields.state !== undefined ? { state: request.fields.state } : {})), 303);
}

import { Hono } from "hono";
import { errorForClient, resume } from "../authorize/flow";
import { readAuthorizationRequest } from "../authorize/front-channel";
import { signInUsed } from "../authorize/issue-code";
import { interactionClient } from "../authorize/pushed";
import { RedirectableError, UntrustedRedirect } from "../authorize/request";
import { errorPage } from "../authorize/respond";
import { openInteraction } from "../authorize/session";
import { InvalidRequest, OAuthError } from "../errors";
import { queryOrFormBody } from "../middleware/form-body";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";

/**
 * OAuth 2.1 §4.1.1 authorization endpoint (GET, and POST as a form), also for pushed requests
 * (RFC 9126 §4): validate, then `resume` decides between the sign-in page, the consent page and the
 * code. No CORS here (RFC 9700 §4.1). An error goes back to the client, except before anyone signed in
 * for a client that registered itself (RFC 9700 §4.11.2, `errorForClient`).
 */
export const authorize = new Hono<AppEnv>();

authorize.on(["GET", "POST"], "/authorize", async (c) => {
  // Hono answers HEAD with the GET handler; here that would run the whole flow (even issue a code).
  if (c.req.method === "HEAD") return methodNotAllowed("GET, POST")();
  try {
    await queryOrFormBody(c, async () => {});
  } catch (error) {
    // A malformed request (repeated parameter, wrong body type) has no trustworthy redirect URI yet.
    return errorPage(c, error instanceof InvalidRequest ? error : new InvalidRequest("the request could not be read"));
  }
  // OIDC Core §3.1.2.1: POST is supported. A cross-site POST does not carry the session cookie (SameSite=Lax),
  // so the same request is made again as a GET, which a top-level navigation sends it with.
  if (c.req.method === "POST") return c.redirect(`/authorize?${c.get("params").without([])}`, 303);
  try {
    const { client, interaction } = await readAuthorizationRequest(c);
    return await resume(c, client, interaction);
  } catch (error) {
    if (error instanceof UntrustedRedirect) return errorPage(c, error.error);
    if (error instanceof RedirectableError) return errorForClient(c, error.client, undefined, error.redirect_uri, error.error, error.state);
    throw error;
  }
});

/** Where the sign-in form sends the browser back to: the same decision, with the same request. */
authorize.get("/authorize/continue", async (c) => {
  if (c.req.method === "HEAD") return methodNotAllowed("GET")();
  const interaction = await openInteraction(c, c.req.query("interaction"));
  if (!interaction) return errorPage(c, new InvalidRequest("this sign-in has expired or is invalid; start again from the application"));
  let client: Awaited<ReturnType<typeof interactionClient>>;
  try {
    client = await interactionClient(c.env, interaction);
  } catch (error) {
    // A client_id URL whose document can no longer be fetched or validated.
    if (error instanceof OAuthError) return errorPage(c, error);
    throw error;
  }
  if (!client) return errorPage(c, new InvalidRequest("the client is not known to this server"));
  // Replayed from the history after its sign-in gave a code: not a second code, nor a consent page for one.
  if (await signInUsed(c.env, interaction)) return errorPage(c, new InvalidRequest("this sign-in was already used; start again from the application"));
  return resume(c, client, interaction, c.req.query("interaction"));
});

authorize.all("/authorize", methodNotAllowed("GET, POST"));
authorize.all("/authorize/continue", methodNotAllowed("GET"));

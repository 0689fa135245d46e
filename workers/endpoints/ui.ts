import { type Context, Hono } from "hono";
import { consentPage, loginPage, needsLogin } from "../authorize/flow";
import { issueCode } from "../authorize/issue-code";
import { consumePushedRequest, interactionClient, pushedRequestUsedUp } from "../authorize/pushed";
import { errorPage, redirectError } from "../authorize/respond";
import { activeSession, csrfValid, openInteraction, sealInteraction, writeSession } from "../authorize/session";
import { checkPassword } from "../authorize/sign-in";
import { now } from "../clock";
import { randomToken } from "../crypto";
import { AccessDenied, Forbidden, InvalidRequest, OAuthError } from "../errors";
import { formBody } from "../middleware/form-body";
import { methodNotAllowed } from "../middleware/method";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";
import { STYLESHEET } from "../ui/layout";

/** The sign-in and consent form handlers, and the stylesheet the pages use. */
export const ui = new Hono<AppEnv>();

ui.get("/assets/latchkey.css", (c) => c.body(STYLESHEET, 200, { "Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=86400" }));

/** Every form post: a CSRF token bound to this browser, and a valid interaction. */
async function formContext(c: Context<AppEnv>) {
  const params = c.get("params");
  if (!(await csrfValid(c, params.get("csrf")))) throw new Forbidden("the form has expired; go back to the application and try again");
  const token = params.get("interaction");
  const interaction = await openInteraction(c, token);
  if (!interaction || !token) throw new InvalidRequest("this sign-in has expired or is invalid; start again from the application");
  const client = await interactionClient(c.env, interaction);
  if (!client) throw new InvalidRequest("the client is not known to this server");
  return { params, interaction, token, client };
}

type FormContext = Awaited<ReturnType<typeof formContext>>;

/** A form handler that runs only for a valid form (CSRF, interaction, client); anything else is an error page. */
function withForm(handle: (c: Context<AppEnv>, ctx: FormContext) => Promise<Response>) {
  return async (c: Context<AppEnv>) => {
    let ctx: FormContext;
    try {
      ctx = await formContext(c);
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      return errorPage(c, error);
    }
    return handle(c, ctx);
  };
}

ui.post(
  "/login",
  formBody,
  withForm(async (c, ctx) => {
    const email = ctx.params.get("email")?.trim().toLowerCase();
    const password = ctx.params.get("password");
    if (!email || !password) return loginPage(c, ctx.client, ctx.interaction, ctx.token, { message: "Enter your email and password.", email });
    const checked = await checkPassword(c, email, password);
    if (!checked.ok) {
      if (checked.retry_after) c.header("Retry-After", String(checked.retry_after));
      return loginPage(c, ctx.client, ctx.interaction, ctx.token, { message: checked.message, email, status: checked.status });
    }
    const session = { sub: checked.user.id, auth_time: now(), amr: ["pwd"], generation: checked.user.session_generation ?? 0 };
    await writeSession(c, session);
    // This sign-in satisfies prompt=login and max_age; carrying it on keeps the next step from asking again.
    const { iat, ...request } = ctx.interaction;
    const next = await sealInteraction(c, { ...request, signed_in: { sub: session.sub, auth_time: session.auth_time, id: randomToken(16) } }, iat);
    return c.redirect(`/authorize/continue?interaction=${encodeURIComponent(next)}`, 303);
  }),
);

ui.post(
  "/consent",
  formBody,
  withForm(async (c, ctx) => {
    const { interaction, client } = ctx;
    const signedIn = await activeSession(c);
    // The sign-in page carries the same interaction and CSRF token as this form: posted here, they must
    // not stand in for the sign-in that prompt=login or max_age asks for.
    if (!signedIn || needsLogin(signedIn.session, interaction)) return loginPage(c, client, interaction, ctx.token);
    const { session } = signedIn;
    // The page was shown to another account than the one signed in now (another tab): ask this one.
    if (ctx.params.get("for") !== session.sub) return consentPage(c, client, signedIn, interaction, ctx.token);
    const decision = ctx.params.get("decision");
    if (decision === "deny") {
      audit(c, { event: "authorization.denied", outcome: "failure", client_id: client.client_id, subject: session.sub });
      // A refused pushed request is answered, so it is used up like one that got its code.
      const consumed = interaction.pushed ? await consumePushedRequest(c, interaction.pushed) : { ok: true as const };
      if (!consumed.ok) return errorPage(c, pushedRequestUsedUp(consumed.reason));
      return redirectError(c, interaction.redirect_uri, new AccessDenied("the user denied the request"), interaction.state);
    }
    if (decision !== "allow") return consentPage(c, client, signedIn, interaction, ctx.token);
    return issueCode(c, client, interaction, session, true);
  }),
);

for (const path of ["/login", "/consent"]) ui.all(path, methodNotAllowed("POST"));
ui.all("/assets/latchkey.css", methodNotAllowed("GET"));
